"""The real promtool (Debian's prometheus package, which scripts/setup.sh installs)."""

from __future__ import annotations

import shutil
import subprocess


def promtool(*args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("promtool")
    assert binary, "promtool is not installed: bash scripts/setup.sh"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120)
