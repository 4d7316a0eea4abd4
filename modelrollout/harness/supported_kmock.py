"""The kmock releases the harness is tested with, checked when the harness is imported.

The harness's API server (apiserver/) subclasses kmock's KubernetesEmulator and reaches into
what kmock does not publish: its object store, its request path, its resource list, its
request history (docs/harness.md, "What the harness takes from kmock", lists each). Any
kmock release may change them, and a changed internal would show up as a wrong answer in
the middle of a request. So outside the tested releases the harness refuses to load, naming
the installed version and the supported ones.

The version is read from the installed distribution's metadata, before anything imports
kmock: the pure pieces (api/) do not load kmock or aiohttp, and a missing kmock gets the
same clear answer (install the demo extra) as a wrong one.
"""

from __future__ import annotations

import re
from importlib import metadata

__all__ = [
    "REQUIREMENT", "TESTED", "UnsupportedKmock", "installed_version", "refusal", "require_supported_kmock",
]

# The releases the harness is tested with (major, minor): 0.8.x. pyproject.toml's demo extra
# pins the same range (tests/harness/test_harness_kmock_versions.py keeps the two together).
TESTED = (0, 8)
REQUIREMENT = "kmock>=0.8,<0.9"


class UnsupportedKmock(ImportError):
    """The installed kmock is missing, or a release the harness is not tested with."""


def refusal(installed: str | None) -> str | None:
    """Why the harness cannot run with kmock ``installed`` (None: not installed); None if it can."""
    if installed is None:
        return (f"modelrollout's harness needs {REQUIREMENT}, and kmock is not installed: "
                f"pip install 'modelrollout[demo]'")
    release = re.match(r"(\d+)\.(\d+)", installed)
    if release is not None and (int(release[1]), int(release[2])) == TESTED:
        return None
    return (f"modelrollout's harness supports {REQUIREMENT} (it uses kmock internals, tested with "
            f"{TESTED[0]}.{TESTED[1]}.x), and kmock {installed} is installed: pip install '{REQUIREMENT}'")


def installed_version() -> str | None:
    try:
        return metadata.version("kmock")
    except metadata.PackageNotFoundError:
        return None


def require_supported_kmock() -> None:
    reason = refusal(installed_version())
    if reason is not None:
        raise UnsupportedKmock(reason)
