"""manifests/install/: valid objects, locked-down pods, arguments the CLI accepts, and the
ServiceAccount and ports that the RBAC files and Dockerfile.operator provide."""

from __future__ import annotations

from pathlib import Path

import click
import kubernetes_validate
import pytest
import yaml

from modelrollout.cli import main
from tests.support.dockerfiles import final_stage

ROOT = Path(__file__).resolve().parents[2]
DOCS = list(yaml.safe_load_all((ROOT / "manifests/install/operator.yaml").read_text()))
DEPLOYMENT = next(d for d in DOCS if d["kind"] == "Deployment")
POD = DEPLOYMENT["spec"]["template"]["spec"]
(CONTAINER,) = POD["containers"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d["kind"])
def test_every_document_is_a_valid_kubernetes_object(doc):
    kubernetes_validate.validate(doc, "1.30", strict=True)


def test_the_pod_is_locked_down():
    assert POD["securityContext"]["runAsNonRoot"] is True and POD["securityContext"]["runAsUser"] != 0
    security = CONTAINER["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "memory" in CONTAINER["resources"]["limits"]


def test_arguments_are_options_the_operator_command_accepts():
    command = main.commands["operator"]
    with click.Context(command) as context:
        command.parse_args(context, list(CONTAINER["args"]))
    with pytest.raises(click.UsageError), click.Context(command) as context:  # the check can fail
        command.parse_args(context, ["--tick-secs", "2"])


def test_service_account_and_ports_match_rbac_and_the_image():
    rbac = list(yaml.safe_load_all((ROOT / "manifests/rbac/operator.yaml").read_text()))
    account = next(d for d in rbac if d["kind"] == "ServiceAccount")
    assert POD["serviceAccountName"] == account["metadata"]["name"]
    assert DEPLOYMENT["metadata"]["namespace"] == account["metadata"]["namespace"]
    stage = final_stage(ROOT / "Dockerfile.operator")
    ports = {p["name"]: p["containerPort"] for p in CONTAINER["ports"]}
    assert str(ports["metrics"]) in stage.env["MODELROLLOUT_METRICS_PORT"]
    assert str(ports["healthz"]) in stage.env["MODELROLLOUT_LIVENESS_PORT"]
    assert CONTAINER["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    # Leader election makes more replicas, and a rolling upgrade, safe: only the Lease's holder acts.
    assert DEPLOYMENT["spec"]["replicas"] == 1 and DEPLOYMENT["spec"]["strategy"]["type"] == "RollingUpdate"
    assert "--leader-elect" in CONTAINER["args"]
