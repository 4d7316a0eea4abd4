"""manifests/install/gateway.yaml and Dockerfile.gateway: valid objects, a locked-down pod, the
ServiceAccount of manifests/rbac/gateway.yaml, arguments the CLI accepts, and the image's command
with the Deployment's arguments serving against an API server (the emulated one here)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import click
import httpx
import kubernetes_validate
import pytest
import yaml

from modelrollout.cli import main
from modelrollout.harness.emulator import KubeEmulator
from modelrollout.install_manifests import model_deployment_crd
from tests.support.dockerfiles import final_stage
from tests.support.processes import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
DOCS = list(yaml.safe_load_all((ROOT / "manifests/install/gateway.yaml").read_text()))
DEPLOYMENT = next(d for d in DOCS if d["kind"] == "Deployment")
SERVICE = next(d for d in DOCS if d["kind"] == "Service")
POD = DEPLOYMENT["spec"]["template"]["spec"]
(CONTAINER,) = POD["containers"]
STAGE = final_stage(ROOT / "Dockerfile.gateway")


def parsed_args(args: list[str]) -> dict:
    command = main.commands["gateway"]
    with click.Context(command) as context:
        command.parse_args(context, list(args))
        return dict(context.params)


def parsed_settings(args: list[str]):
    """The gateway's settings as its command builds them from ``args``."""
    return main.commands["gateway"].settings_of(parsed_args(args))


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d["kind"])
def test_every_document_is_a_valid_kubernetes_object(doc):
    kubernetes_validate.validate(doc, "1.30", strict=True)


def test_the_pod_is_locked_down():
    pod_security = POD["securityContext"]
    assert pod_security["runAsNonRoot"] is True and pod_security["runAsUser"] != 0
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    security = CONTAINER["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= CONTAINER["resources"]["requests"].keys()
    assert "memory" in CONTAINER["resources"]["limits"]


def test_arguments_ports_and_probes_are_the_gateways():
    params = parsed_args(CONTAINER["args"])
    assert params["kubernetes"] is True and params["routes"] is None and params["host"] == "0.0.0.0"
    ports = {p["name"]: p["containerPort"] for p in CONTAINER["ports"]}
    assert ports == {"http": params["port"]} and str(params["port"]) == STAGE.env["MODELROLLOUT_PORT"]
    assert CONTAINER["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert CONTAINER["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    # Draining and in-flight requests end before the kubelet kills the pod.
    shutdown = parsed_settings(CONTAINER["args"]).shutdown
    assert shutdown.drain_seconds + shutdown.grace_seconds < POD["terminationGracePeriodSeconds"]
    with pytest.raises(click.UsageError):  # the check can fail
        parsed_args(["--kubernetes", "--drain-secs", "5"])


def test_service_account_namespace_and_service_match_rbac_and_the_pods():
    rbac = list(yaml.safe_load_all((ROOT / "manifests/rbac/gateway.yaml").read_text()))
    account = next(d for d in rbac if d["kind"] == "ServiceAccount")
    assert POD["serviceAccountName"] == account["metadata"]["name"]
    install = list(yaml.safe_load_all((ROOT / "manifests/install/operator.yaml").read_text()))
    namespace = next(d for d in install if d["kind"] == "Namespace")["metadata"]["name"]
    assert DEPLOYMENT["metadata"]["namespace"] == SERVICE["metadata"]["namespace"] == namespace
    assert account["metadata"]["namespace"] == namespace
    labels = DEPLOYMENT["spec"]["template"]["metadata"]["labels"]
    assert DEPLOYMENT["spec"]["selector"]["matchLabels"] == SERVICE["spec"]["selector"] == labels
    assert [p["targetPort"] for p in SERVICE["spec"]["ports"]] == ["http"]


def test_the_image_is_the_servers_pinned_slim_python_without_root_or_compilers():
    assert STAGE.base == final_stage(ROOT / "Dockerfile.server").base
    uid = (STAGE.user or "").split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    for line in STAGE.run_lines:
        assert not re.search(r"\b(gcc|g\+\+|build-essential|clang|make)\b", line), line
    assert any("[gateway]" in line for line in STAGE.run_lines)  # no onnxruntime, no kopf
    assert STAGE.entrypoint == ["modelrollout", "gateway"] and STAGE.cmd == ["--kubernetes"]


@pytest.mark.slow
def test_the_image_command_with_the_deployments_arguments_serves_from_the_api(tmp_path):
    executable = os.path.join(os.path.dirname(sys.executable), STAGE.entrypoint[0])
    port = free_port()
    with KubeEmulator(tmp_path) as kube:
        kube.define_crd(model_deployment_crd())
        env = {**STAGE.env, "MODELROLLOUT_KUBECONFIG": str(kube.kubeconfig)}
        # The Deployment's arguments, then loopback and a free port instead of 0.0.0.0:8000, and no
        # drain wait at the end (later options win).
        args = [*CONTAINER["args"], "--host", "127.0.0.1", "--port", str(port), "--drain-seconds", "0"]
        gateway = ServerProcess(args, tmp_path / "gateway.log", env,
                                command=[executable, *STAGE.entrypoint[1:]], port=port)
        try:
            gateway.wait_ready()  # the readiness probe's path: the route table came from the API
            assert httpx.get(gateway.url + "/v2/health/live").status_code == 200
            assert "modelrollout_build_info{" in httpx.get(gateway.url + "/metrics").text
        finally:
            code = gateway.stop()
    assert code == 0, gateway.logs()
