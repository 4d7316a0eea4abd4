"""Dockerfile.operator: pinned slim base, non-root, no compilers, and its entrypoint
runs the operator against an API server (the emulated one here)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from modelrollout.harness.emulator import KubeEmulator
from modelrollout.harness.ports import free_port
from modelrollout.harness.process import wait_for
from modelrollout.install_manifests import model_deployment_crd
from tests.support.dockerfiles import final_stage

ROOT = Path(__file__).resolve().parents[2]
STAGE = final_stage(ROOT / "Dockerfile.operator")


def test_base_image_is_the_servers_pinned_slim_python():
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", STAGE.base), STAGE.base
    assert STAGE.base == final_stage(ROOT / "Dockerfile.server").base


def test_runs_as_a_numeric_non_root_user_without_compilers():
    uid = (STAGE.user or "").split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    for line in STAGE.run_lines:
        assert not re.search(r"\b(gcc|g\+\+|build-essential|clang|make)\b", line), line
    assert any("[operator]" in line for line in STAGE.run_lines)  # no onnxruntime in this image


@pytest.mark.slow
def test_entrypoint_reconciles_and_answers_probes(tmp_path):
    assert STAGE.entrypoint == ["modelrollout", "operator"]
    executable = os.path.join(os.path.dirname(sys.executable), STAGE.entrypoint[0])
    metrics, liveness = free_port(), free_port()
    with KubeEmulator(tmp_path) as kube:
        kube.define_crd(model_deployment_crd())
        kube.create({"apiVersion": "modelrollout.io/v1alpha1", "kind": "ModelDeployment",
                     "metadata": {"name": "iris", "namespace": "ml"},
                     "spec": {"model": {"uri": "file:///m/model.onnx", "version": "1"},
                              "server": {"image": "s"},
                              "strategy": {"canary": {"steps": [{"setWeight": 50}]}}}})
        # The image's ENV, with the addresses moved to loopback for the test.
        env = {**os.environ, **STAGE.env, "MODELROLLOUT_METRICS_HOST": "127.0.0.1",
               "MODELROLLOUT_METRICS_PORT": str(metrics), "MODELROLLOUT_LIVENESS_PORT": str(liveness),
               "MODELROLLOUT_NAMESPACE": "ml", "MODELROLLOUT_KUBECONFIG": str(kube.kubeconfig)}
        with open(tmp_path / "operator.log", "wb") as log:
            proc = subprocess.Popen([executable, *STAGE.entrypoint[1:], *STAGE.cmd], env=env, stdout=log,
                                    stderr=subprocess.STDOUT)
        try:
            def routed() -> dict:
                status = kube.get("modelrollout.io/v1alpha1", "ModelDeployment", "iris", "ml").get("status")
                return status if (status or {}).get("route") else {}

            wait_for(routed, 30, lambda: "a route; " + (tmp_path / "operator.log").read_text()[-3000:],
                     poll_seconds=0.3)
            assert httpx.get(f"http://127.0.0.1:{liveness}/healthz").status_code == 200
            assert "modelrollout_rollout_phase" in httpx.get(f"http://127.0.0.1:{metrics}/metrics").text
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)
    assert code == 0
