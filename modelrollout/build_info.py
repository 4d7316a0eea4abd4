"""What is installed: the version, and the ``modelrollout_build_info`` metric every process exports.

The version is one fact, pyproject.toml's ``version``, read back from the installed package's
metadata: `modelrollout --version`, the server's ``GET /v2``, this metric and the images' label
(Dockerfile.*'s ``VERSION`` build argument, checked against it by tests/install/test_packaging.py) all
say the same.
"""

from __future__ import annotations

import platform
from importlib.metadata import version as _distribution_version

from prometheus_client import CollectorRegistry, Gauge

from modelrollout.serving.contract import metric_names as names

DISTRIBUTION = "modelrollout"


def version() -> str:
    return _distribution_version(DISTRIBUTION)


def register(registry: CollectorRegistry) -> None:
    """Export the build info (value 1) on a process's registry."""
    names.family(Gauge, names.BUILD_INFO, registry).labels(
        version=version(), python_version=platform.python_version()).set(1)
