"""The harness loads only with the kmock releases it is tested with (supported_kmock.py)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from modelrollout.harness import supported_kmock
from modelrollout.harness.supported_kmock import REQUIREMENT, UnsupportedKmock, refusal

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("version", ["0.8", "0.8.0", "0.8.3", "0.8.1.post1"])
def test_the_tested_releases_are_accepted(version):
    assert refusal(version) is None


@pytest.mark.parametrize("version", ["0.7", "0.7.9", "0.9", "0.10", "1.0", "1.8", "unknown"])
def test_other_releases_are_refused_naming_both_versions(version):
    reason = refusal(version)
    assert reason is not None
    assert f"kmock {version} is installed" in reason
    assert REQUIREMENT in reason


def test_a_missing_kmock_names_the_extra():
    reason = refusal(None)
    assert reason is not None
    assert "kmock is not installed" in reason and "modelrollout[demo]" in reason


def test_the_check_reads_the_installed_version(monkeypatch):
    monkeypatch.setattr(supported_kmock, "installed_version", lambda: "0.9.1")
    with pytest.raises(UnsupportedKmock, match=r"kmock 0\.9\.1 is installed"):
        supported_kmock.require_supported_kmock()
    monkeypatch.setattr(supported_kmock, "installed_version", lambda: "0.8")
    supported_kmock.require_supported_kmock()


def test_the_installed_kmock_is_supported():
    assert refusal(supported_kmock.installed_version()) is None


def test_the_demo_extra_pins_the_same_releases():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert [r for r in extras["demo"] if r.startswith("kmock")] == [REQUIREMENT]


def test_importing_the_harness_with_another_kmock_fails_with_the_message(tmp_path):
    # A distribution's metadata found first on sys.path is the one importlib.metadata reads:
    # kmock 0.9, as far as the harness can tell, with the real kmock's code still importable.
    dist_info = tmp_path / "kmock-0.9.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: kmock\nVersion: 0.9\n")
    result = subprocess.run([sys.executable, "-P", "-c", "import modelrollout.harness.emulator"],
                            cwd=tmp_path, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line == (
        "modelrollout.harness.supported_kmock.UnsupportedKmock: modelrollout's harness supports "
        "kmock>=0.8,<0.9 (it uses kmock internals, tested with 0.8.x), and kmock 0.9 is installed: "
        "pip install 'kmock>=0.8,<0.9'"
    )
