"""What `pip install modelrollout` gives works on its own.

The sdist and the wheel, built as a release builds them (`python -m build`: the sdist, then the
wheel from it), pass `twine check` and carry manifests/ byte for byte. The wheel, installed with
the extras a user picks into a fresh virtualenv and run from an empty folder with no checkout in
reach, prints its version and the install manifests and runs the demo. The images' version label
is the package's version.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tomllib
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from modelrollout.harness.process import wait_for
from tests.support.kubectl import kubectl_env, run_kubectl

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
DOCKERFILES = sorted(ROOT.glob("Dockerfile.*"))


def manifest_files() -> dict[str, bytes]:
    """Every YAML file of manifests/, by its path inside the folder."""
    return {str(p.relative_to(MANIFESTS)): p.read_bytes() for p in sorted(MANIFESTS.rglob("*.yaml"))}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_the_image_label_is_the_package_version(dockerfile: Path):
    text = dockerfile.read_text()
    before_first_stage, _, stages = text.partition("\nFROM ")
    (default,) = re.findall(r"^ARG VERSION=(\S+)$", before_first_stage, re.M)
    assert default == VERSION
    build_stage, _, final_stage = stages.rpartition("\nFROM ")
    assert re.search(r'^LABEL .*org\.opencontainers\.image\.version="\$\{VERSION\}"', final_stage.replace(
        "\\\n", " "), re.M)
    assert re.search(r"^ARG VERSION$", final_stage, re.M) and re.search(r"^ARG VERSION$", build_stage, re.M)
    # The wheel is built in the image from the folders pyproject.toml maps to packages.
    for folder in sorted(set(PYPROJECT["tool"]["setuptools"]["package-dir"].values())):
        assert re.search(rf"^COPY {folder} \./{folder}$", build_stage, re.M), f"{dockerfile.name}: {folder}"


@dataclass
class Dist:
    sdist: Path
    wheel: Path


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Dist:
    out = tmp_path_factory.mktemp("dist")
    # Run from the output folder with -P: the repository root must not shadow `operator`.
    done = subprocess.run([sys.executable, "-P", "-m", "build", "--outdir", str(out), str(ROOT)],
                          cwd=out, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (sdist,), (wheel,) = sorted(out.glob("*.tar.gz")), sorted(out.glob("*.whl"))
    return Dist(sdist, wheel)


@pytest.mark.slow
def test_twine_check_passes(dist: Dist):
    done = subprocess.run([sys.executable, "-P", "-m", "twine", "check", "--strict", str(dist.sdist),
                           str(dist.wheel)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 2


@pytest.mark.slow
def test_the_wheel_and_sdist_carry_manifests_byte_for_byte(dist: Dist):
    expected = manifest_files()
    assert {"crd/modeldeployments.yaml", "kustomization.yaml", "install/operator.yaml",
            "install/gateway.yaml", "rbac/operator-namespaced.yaml"} <= expected.keys()
    with zipfile.ZipFile(dist.wheel) as wheel:
        prefix = "modelrollout/manifests/"
        packaged = {name[len(prefix):]: wheel.read(name) for name in wheel.namelist()
                    if name.startswith(prefix) and name.endswith(".yaml")}
        names = wheel.namelist()
    assert packaged == expected
    assert f"modelrollout-{VERSION}.dist-info/METADATA" in names
    assert not [n for n in names if n.startswith(("tests/", "bench/", "operator/", "serving/"))]
    with tarfile.open(dist.sdist) as sdist:
        top = f"modelrollout-{VERSION}/manifests/"
        in_sdist = {m.name[len(top):]: sdist.extractfile(m).read() for m in sdist.getmembers()
                    if m.name.startswith(top) and m.name.endswith(".yaml")}
    assert in_sdist == expected


@dataclass
class InstalledWheel:
    """modelrollout installed from the wheel into a fresh virtualenv, run from an empty folder."""

    venv: Path
    folder: Path  # the working directory: empty, outside the repository

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not k.startswith("MODELROLLOUT_")}
        return {**env, "PATH": f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
                "VIRTUAL_ENV": str(self.venv)}

    def command(self, *args: str) -> list[str]:
        return [str(self.venv / "bin" / "modelrollout"), *args]

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """`modelrollout ARGS`, to its end."""
        return subprocess.run(self.command(*args), cwd=self.folder, env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def start(self, *args: str, log: Path) -> subprocess.Popen:
        """`modelrollout ARGS` left running (a long-running command), output to ``log``; stop it."""
        with open(log, "wb") as out:
            return subprocess.Popen(self.command(*args), cwd=self.folder, env=self.env, stdout=out,
                                    stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def installed(dist: Dist, tmp_path_factory) -> Iterator[InstalledWheel]:
    base = tmp_path_factory.mktemp("installed")
    folder = base / "empty"
    folder.mkdir()
    venv.create(base / "venv", with_pip=True)
    pip = [str(base / "venv" / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    done = subprocess.run([*pip, f"{dist.wheel}[demo]"], cwd=folder, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    yield InstalledWheel(base / "venv", folder)
    shutil.rmtree(base / "venv", ignore_errors=True)  # about half a gigabyte


@pytest.mark.slow
def test_the_installed_package_is_the_wheel_and_no_checkout_is_importable(installed: InstalledWheel):
    probe = "import json, sys, modelrollout.harness.cluster as c; print(json.dumps([c.__file__, sys.path]))"
    done = subprocess.run([str(installed.venv / "bin" / "python"), "-c", probe], cwd=installed.folder,
                          env=installed.env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    module_file, path = json.loads(done.stdout)
    assert Path(module_file).is_relative_to(installed.venv)
    assert not [p for p in path if p and Path(p).resolve().is_relative_to(ROOT)]
    assert not list(installed.folder.iterdir())


@pytest.mark.slow
def test_installed_version(installed: InstalledWheel):
    done = installed.run("--version")
    assert (done.returncode, done.stdout) == (0, f"modelrollout {VERSION}\n"), done.stderr


@pytest.mark.slow
def test_installed_manifests_are_the_objects_of_manifests(installed: InstalledWheel):
    done = installed.run("manifests")
    assert done.returncode == 0, done.stderr
    printed = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    listed = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["resources"]
    expected = [doc for path in listed for doc in yaml.safe_load_all((MANIFESTS / path).read_bytes()) if doc]

    def key(doc: dict) -> tuple:
        return doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"]

    assert sorted(printed, key=key) == sorted(expected, key=key)


@pytest.mark.slow
def test_installed_demo_promotes_a_canary_and_rolls_back_a_broken_model(installed: InstalledWheel):
    # One strategy: the README's full demo runs from the checkout in tests/e2e/test_demo.py.
    done = installed.run("demo", "--strategy", "canary", timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = (installed.folder / "modelrollout-demo" / "summary.md").read_text()
    assert "| to 4.0.0 | canary | promoted |" in summary and "| to 3.0.0 | canary | rolled back |" in summary
    chart = (installed.folder / "modelrollout-demo" / "rollout.png").read_bytes()
    assert chart.startswith(b"\x89PNG") and len(chart) > 20_000
    assert "unexpected" not in done.stdout and "no analysis view" not in done.stdout


@pytest.mark.slow
def test_installed_cluster_serves_the_real_kubectl_and_stops_on_ctrl_c(installed: InstalledWheel, tmp_path):
    log = tmp_path / "cluster.log"
    proc = installed.start("cluster", "--folder", "local", log=log)
    try:
        wait_for(lambda: "kubectl describe mdep" in log.read_text() or proc.poll() is not None, 120,
                 "modelrollout cluster to print the next commands")
        assert proc.poll() is None, log.read_text()[-3000:]
        text = log.read_text()
        kubeconfig = Path(re.search(r"export KUBECONFIG=(\S+)", text).group(1))
        assert kubeconfig.is_relative_to(installed.folder / "local")
        example = re.search(r"kubectl apply -f (\S+)", text).group(1)
        env = {**kubectl_env(kubeconfig, tmp_path), "PATH": f"{installed.venv / 'bin'}{os.pathsep}"
               + os.environ.get("PATH", "")}
        run_kubectl(env, "create", "namespace", "ml")
        run_kubectl(env, "apply", "-f", example)
        run_kubectl(env, "wait", "mdep/iris", "-n", "ml", "--for=condition=Available", "--timeout=120s",
                    timeout=150)
        status = run_kubectl(env, "modelrollout", "status", "iris", "-n", "ml").stdout
        assert "Phase:      Healthy" in status, status  # the installed plugin, found by kubectl
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
    assert code == 0, log.read_text()[-3000:]


def test_nothing_here_reads_manifests_from_a_checkout():
    """Product code reads manifests through the package (modelrollout/install_manifests.py), never
    from a path next to its own source file."""
    for folder in ("modelrollout", "operator", "serving"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            assert not re.search(r"""/\s*["']manifests["']|["'](?:\.\./)*manifests/""", text), path


def test_the_packaged_crd_is_the_file_of_manifests():
    from modelrollout.install_manifests import CRD, read_text

    assert read_text(CRD).encode() == (MANIFESTS / CRD).read_bytes()



def test_docs_name_no_folder_of_the_machine_they_were_written_on():
    """Commands in the docs run from the reader's clone or install: no `cd /work/...`."""
    pages = [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("*/README.md")]
    assert len(pages) > 5
    for page in pages:
        found = re.findall(r"(?<![\w.])/(?:work|root|home|Users)/\S*", page.read_text())
        assert not found, f"{page.relative_to(ROOT)}: {found}"


def test_every_package_folder_is_in_the_distribution():
    """An import package missing from pyproject's list works in a checkout (editable install)
    and breaks the wheel: every folder with an __init__.py is listed."""
    mapping = PYPROJECT["tool"]["setuptools"]["package-dir"]
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    for package, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            assert ".".join((package, *parts)) in listed, init.parent
