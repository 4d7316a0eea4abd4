"""The layers of STYLE.md, kept honest by import-linter (contracts in pyproject.toml)."""

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_hold(tmp_path):
    # grimp reads packages from one folder tree, while pyproject maps operator/ and serving/
    # into modelrollout from outside it: lay the import tree out as the wheel would.
    package_dir = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for package, folder in sorted(package_dir.items()):
        shutil.copytree(ROOT / folder, tmp_path / package.replace(".", "/"), dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    lint = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    result = subprocess.run(
        [lint, "--config", str(ROOT / "pyproject.toml")],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_ruff_is_clean():
    ruff = os.path.join(os.path.dirname(sys.executable), "ruff")
    result = subprocess.run(
        [ruff, "check", "modelrollout", "serving", "operator", "tests", "bench", "monitoring"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
