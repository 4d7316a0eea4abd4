"""The version is one fact: pyproject.toml's, read back from the package metadata by `modelrollout
--version`, the server's GET /v2, and the modelrollout_build_info metric of every process."""

from __future__ import annotations

import platform
import subprocess
import tomllib
from importlib.metadata import version as distribution_version
from pathlib import Path

import httpx
import pytest
from modelrollout.serving.contract import metric_names as names
from prometheus_client.parser import text_string_to_metric_families

from modelrollout import build_info
from modelrollout.harness.emulator import KubeEmulator
from modelrollout.install_manifests import model_deployment_crd
from tests.support.processes import MODELROLLOUT, ServerProcess, free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def build_info_samples(metrics_text: str) -> list[dict[str, str]]:
    """The label sets of modelrollout_build_info whose value is 1."""
    return [sample.labels for family in text_string_to_metric_families(metrics_text)
            if family.name == names.BUILD_INFO for sample in family.samples if sample.value == 1]


EXPECTED = [{"version": PYPROJECT_VERSION, "python_version": platform.python_version()}]


def test_the_installed_version_is_pyprojects():
    assert build_info.version() == distribution_version("modelrollout") == PYPROJECT_VERSION


def test_the_command_line_prints_it():
    done = subprocess.run([MODELROLLOUT, "--version"], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, f"modelrollout {PYPROJECT_VERSION}\n"), done.stderr
    assert "--version" in subprocess.run([MODELROLLOUT, "--help"], capture_output=True, text=True,
                                         timeout=60).stdout


def test_the_server_reports_it_in_v2_and_in_its_metrics(tiny_server):
    meta = httpx.get(tiny_server.url + "/v2").json()
    assert (meta["name"], meta["version"]) == ("modelrollout", PYPROJECT_VERSION)
    assert build_info_samples(httpx.get(tiny_server.url + "/metrics").text) == EXPECTED


def test_the_gateway_exports_it(start_gateway):
    gateway = start_gateway({"models": {}})
    assert build_info_samples(httpx.get(gateway.url + "/metrics").text) == EXPECTED


@pytest.mark.slow
def test_the_operator_exports_it(tmp_path):
    metrics_port, liveness_port = free_port(), free_port()
    with KubeEmulator(tmp_path) as kube:
        kube.define_crd(model_deployment_crd())
        operator = ServerProcess([], tmp_path / "operator.log", command=[
            MODELROLLOUT, "operator", "--namespace", "ml", "--kubeconfig", str(kube.kubeconfig),
            "--metrics-port", str(metrics_port), "--liveness-port", str(liveness_port)], port=metrics_port)
        try:
            def answers(url: str) -> httpx.Response | None:
                try:
                    response = httpx.get(url)
                except httpx.TransportError:
                    return None
                return response if response.status_code == 200 else None

            # kopf's liveness endpoint answers once the operator runs (and handles SIGTERM).
            wait_for(lambda: answers(f"http://127.0.0.1:{liveness_port}/healthz"), 60, "the operator")
            metrics = answers(f"http://127.0.0.1:{metrics_port}/metrics")
            assert metrics is not None and build_info_samples(metrics.text) == EXPECTED
        finally:
            assert operator.stop() == 0, operator.logs()
