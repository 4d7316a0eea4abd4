"""The real kubectl binary for the tests, found as scripts/setup.sh provides it: the
machine's own on PATH, else the official binary setup.sh put in .venv/bin."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

VENV_BIN = os.path.dirname(sys.executable)


def kubectl_binary() -> str:
    found = shutil.which("kubectl", path=os.pathsep.join([os.environ.get("PATH", ""), VENV_BIN]))
    if found is None:
        pytest.fail("no kubectl binary: run scripts/setup.sh (it installs one into .venv/bin)")
    return found


def kubectl_env(kubeconfig: Path, home: Path) -> dict[str, str]:
    """KUBECONFIG set, .venv/bin on PATH (for the kubectl-modelrollout plugin), and a HOME of
    the test's own so kubectl's discovery cache never outlives the API server it describes."""
    return {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(home),
            "PATH": os.pathsep.join([VENV_BIN, os.environ.get("PATH", "")])}


def run_kubectl(env: dict[str, str], *args: str, stdin: str | None = None, ok: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess:
    done = subprocess.run([kubectl_binary(), *args], env=env, input=stdin, capture_output=True, text=True,
                          timeout=timeout)
    if ok:
        assert done.returncode == 0, f"kubectl {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done
