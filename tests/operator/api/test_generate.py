"""scripts/generate_api.py: the CRD (manifests/ and the chart's copy) and docs/api.md are what the
API module generates, and --check says so or names what is stale."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import yaml
from modelrollout.operator.api import crd, reference

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "generate_api.py"


def _script():
    """The script beside the package, not part of it (not in the wheel)."""
    spec = importlib.util.spec_from_file_location("generate_api", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generate = _script()


def test_the_committed_files_are_what_the_api_module_generates():
    done = subprocess.run([sys.executable, "-P", str(SCRIPT), "--check"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert set(generate.OUTPUTS) == {ROOT / "manifests/crd/modeldeployments.yaml", ROOT / "docs/api.md",
                                     ROOT / "charts/modelrollout/crds/modeldeployments.yaml"}


def test_check_names_a_stale_file_and_writing_fixes_it(tmp_path, monkeypatch, capsys):
    outputs = {tmp_path / "crd.yaml": crd.render, tmp_path / "api.md": reference.render}
    monkeypatch.setattr(generate, "OUTPUTS", outputs)
    monkeypatch.setattr(generate, "ROOT", tmp_path)
    assert generate.main([]) == 0 and generate.main(["--check"]) == 0
    (tmp_path / "crd.yaml").write_text(crd.render().replace("minimum: 0", "minimum: 1", 1))
    assert generate.main(["--check"]) == 1
    assert "crd.yaml is out of date" in capsys.readouterr().err
    assert generate.main([]) == 0 and generate.main(["--check"]) == 0


def test_the_crd_says_it_is_generated_and_parses_as_one_document():
    text = crd.render()
    assert text.startswith("# This is an auto-generated file. DO NOT EDIT")
    (doc,) = yaml.safe_load_all(text)
    assert doc == crd.document()
