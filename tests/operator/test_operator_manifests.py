"""Bodies of the owned objects, and the status merge patch."""

from __future__ import annotations

import kubernetes_validate
from modelrollout.operator.kube.apply import merge_diff
from modelrollout.operator.kube.manifests import (
    deployment,
    entry_service_body,
    revision_service_body,
)
from modelrollout.operator.routing import Target
from modelrollout.operator.spec import parse_spec

from tests.support.operator_fixtures import SPEC

TARGET = Target(name="iris", namespace="ml", model="iris", options={}, uid="1234")


def spec(**changes):
    return parse_spec({**SPEC, **changes})


def test_deployment_is_a_valid_locked_down_server_pod():
    body = deployment(TARGET, spec(server={"image": "srv:1", "env": [{"name": "A", "value": "1"}],
                                           "batching": {"maxBatchSize": 16}}), "abc123", 3)
    kubernetes_validate.validate(body, "1.30", strict=True)
    assert body["metadata"]["name"] == "iris-abc123" and body["spec"]["replicas"] == 3
    assert body["metadata"]["ownerReferences"][0]["uid"] == "1234"
    pod = body["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MODELROLLOUT_MODEL_URI"] == SPEC["model"]["uri"]
    assert env["MODELROLLOUT_MAX_BATCH_SIZE"] == "16"
    assert env["MODELROLLOUT_REVISION"] == "abc123"  # the revision label of the server's metrics
    assert env["A"] == "1" and env["MODELROLLOUT_HOST"] == "0.0.0.0"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True and not pod["automountServiceAccountToken"]
    selector = body["spec"]["selector"]["matchLabels"]
    assert selector.items() <= body["spec"]["template"]["metadata"]["labels"].items()


def test_user_env_cannot_rewire_the_pod():
    env = [{"name": "MODELROLLOUT_PORT", "value": "1"}]
    body = deployment(TARGET, spec(server={"image": "s", "env": env}), "abc", 1)
    ports = [e["value"] for e in body["spec"]["template"]["spec"]["containers"][0]["env"]
             if e["name"] == "MODELROLLOUT_PORT"]
    assert ports == ["8080"]


def test_services_select_the_right_pods():
    revision = revision_service_body(TARGET, "abc")
    entry = entry_service_body(TARGET, "abc", by_replicas=False)
    spread = entry_service_body(TARGET, "abc", by_replicas=True)
    for body in (revision, entry, spread):
        kubernetes_validate.validate(body, "1.30", strict=True)
    assert revision["spec"]["selector"] == {"modelrollout.io/model-deployment": "iris",
                                            "modelrollout.io/revision": "abc"}
    assert entry["metadata"]["name"] == "iris" and entry["spec"]["selector"] == revision["spec"]["selector"]
    # replicas routing: no selector; the operator writes the entry Service's EndpointSlices
    assert "selector" not in spread["spec"]
    assert revision["spec"]["ports"][0]["name"] == "http"


def test_merge_diff_sends_changes_and_nulls_for_what_went_away():
    old = {"phase": "Progressing", "route": {"revisions": [1], "mirror": {"percent": 5}},
           "command": {"id": "x"}}
    new = {"phase": "Progressing", "route": {"revisions": [1, 2]}, "candidateRevision": None, "step": 1}
    # Absent and null are the same to a merge patch: no write for candidateRevision.
    assert merge_diff(old, new) == {"route": {"revisions": [1, 2], "mirror": None}, "step": 1}
    assert merge_diff(new, new) == {}
    # The same inside a nested object: no empty patch of it (a write every tick, otherwise).
    assert merge_diff({"canary": {"step": 0}}, {"canary": {"step": 0, "stepStartedAt": None}}) == {}
    assert merge_diff({"canary": {"step": 0}}, {"canary": {"step": 1, "stepStartedAt": None}}) == \
        {"canary": {"step": 1}}
