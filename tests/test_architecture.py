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
        [ruff, "check", "modelrollout", "serving", "operator", "tests", "bench", "monitoring", "scripts"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


HARNESS_CONTRACT = "the harness is not the product: only the demo and cluster commands import it, or kmock"
# The modules that may import the harness: itself, and the demo and cluster commands.
NOT_PRODUCT = {"modelrollout.harness", "modelrollout.demo", "modelrollout.local_cluster"}


def _contract(name: str) -> dict:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (contract,) = [c for c in contracts if c["name"] == name]
    return contract


def test_harness_contract_covers_every_product_module():
    # The contract lists the product module by module ("modelrollout" as a whole would take
    # in the harness): a new module of modelrollout/ must join the list or be named here.
    package_dir = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    here = ROOT / "modelrollout"
    top_level = {f"modelrollout.{path.stem}" for path in here.glob("*.py") if path.stem != "__init__"}
    top_level |= {f"modelrollout.{path.parent.name}" for path in here.glob("*/__init__.py")}
    top_level |= {package for package in package_dir if package.count(".") == 1}
    sources = set(_contract(HARNESS_CONTRACT)["source_modules"])
    assert sources | NOT_PRODUCT == top_level, (sorted(top_level - sources - NOT_PRODUCT),
                                                sorted(sources - top_level))
    assert not sources & NOT_PRODUCT


def test_command_line_loads_no_harness(tmp_path):
    # The contract ignores cli.py's imports of demo.py and local_cluster.py (import-linter
    # cannot tell an import inside a command's function from one at the top): true only
    # while importing the command line (and the kubectl plugin) leaves the harness unloaded.
    program = (
        "import sys, modelrollout.cli, modelrollout.kubectl\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'kmock' or m in"
        " ('modelrollout.demo', 'modelrollout.local_cluster') or m.startswith('modelrollout.harness')))\n"
    )
    result = subprocess.run([sys.executable, "-P", "-c", program], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# Modules over about 400 lines, each with its reason in docs/development.md ("Module size").
LONG_MODULES = {"operator/api/v1alpha1.py", "serving/gateway/frontend.py"}
MAX_LINES = 420


def test_no_module_is_long_unless_the_docs_say_why():
    sources = [path for folder in ("operator", "serving", "modelrollout", "monitoring")
               for path in (ROOT / folder).rglob("*.py")]
    long = {str(path.relative_to(ROOT)) for path in sources if len(path.read_text().splitlines()) > MAX_LINES}
    assert long == LONG_MODULES
    reasons = (ROOT / "docs" / "development.md").read_text().split("## Module size", 1)[1]
    for module in LONG_MODULES:
        assert f"`{module}`" in reasons, module
