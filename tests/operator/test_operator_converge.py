"""converge.py: the merge patch that makes a live object hold what the operator wants."""

from __future__ import annotations

import copy
import json

from modelrollout.operator.kube.converge import (
    LAST_APPLIED,
    holds,
    last_applied,
    plan,
    scaled,
    with_last_applied,
)
from modelrollout.operator.kube.manifests import deployment, entry_service_body
from modelrollout.operator.routing import Target
from modelrollout.operator.spec import parse_spec

from tests.support.operator_fixtures import SPEC

TARGET = Target(name="iris", namespace="ml", model="iris", options={}, uid="1234")


def created(body: dict) -> dict:
    """What an API server hands back after a create: our body, plus what it defaults."""
    live = with_last_applied(body)
    live["metadata"].update(uid="u-1", resourceVersion="7", creationTimestamp="2026-12-01T00:00:00Z")
    live["spec"]["progressDeadlineSeconds"] = 600
    live["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] = "/dev/termination-log"
    live["spec"]["template"]["spec"]["dnsPolicy"] = "ClusterFirst"
    live["status"] = {"replicas": body["spec"]["replicas"]}
    return live


def test_an_unchanged_object_with_server_defaults_needs_no_write():
    body = deployment(TARGET, parse_spec(SPEC), "abc", 2)
    assert plan(body, created(body)).patch == {}


def test_a_revision_scaled_down_by_the_operator_comes_back_when_wanted_again():
    wanted = deployment(TARGET, parse_spec(SPEC), "abc", 2)
    live = created(wanted)
    down = plan(scaled(live, 0), live)  # the operator's own scale-down
    assert down.patch["spec"] == {"replicas": 0} and down.drift == ()
    live["spec"]["replicas"] = 0
    live["metadata"]["annotations"][LAST_APPLIED] = down.patch["metadata"]["annotations"][LAST_APPLIED]
    back = plan(wanted, live)  # retried, or reverted to: the same body as when it was created
    assert back.patch["spec"] == {"replicas": 2}
    assert back.drift == ()  # the operator changed its mind; nobody else did


def test_a_person_scaling_an_owned_deployment_is_drift_and_is_put_back():
    wanted = deployment(TARGET, parse_spec(SPEC), "abc", 2)
    live = created(wanted)
    live["spec"]["replicas"] = 0  # kubectl scale --replicas=0
    repair = plan(wanted, live)
    assert repair.patch["spec"] == {"replicas": 2}
    assert [c.describe() for c in repair.drift] == ["spec.replicas was 0, set back to 2"]


def test_an_older_revision_is_kept_as_last_written_and_drift_there_is_seen_too():
    wanted = deployment(TARGET, parse_spec(SPEC), "abc", 0)
    live = created(wanted)
    live["spec"]["replicas"] = 3
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "someone/else:latest"
    repair = plan(scaled(live, 0), live)
    assert repair.patch["spec"]["replicas"] == 0
    assert repair.patch["spec"]["template"]["spec"]["containers"][0]["image"] == SPEC["server"]["image"]
    assert {c.path for c in repair.drift} == {"spec.replicas", "spec.template.spec.containers"}


def test_what_the_operator_wrote_before_and_wants_no_more_is_removed():
    selecting = entry_service_body(TARGET, "abc", by_replicas=False)
    live = with_last_applied(selecting)
    live["spec"]["clusterIP"] = "10.0.0.7"  # the API server's, never ours to remove
    unselecting = entry_service_body(TARGET, "abc", by_replicas=True)
    patch = plan(unselecting, live).patch
    assert patch["spec"] == {"selector": None}
    assert json.loads(patch["metadata"]["annotations"][LAST_APPLIED])["spec"].get("selector") is None


def test_a_new_wish_is_an_update_not_drift():
    old = deployment(TARGET, parse_spec(SPEC), "abc", 2)
    live = created(old)
    new_spec = copy.deepcopy(SPEC)
    new_spec["server"] = {**SPEC["server"], "env": [{"name": "A", "value": "1"}]}
    change = plan(deployment(TARGET, parse_spec(new_spec), "abc", 2), live)
    assert change.patch["spec"]["template"]["spec"]["containers"][0]["env"][-1] == {"name": "A", "value": "1"}
    assert change.drift == ()


def test_quantities_are_compared_as_the_api_server_writes_them():
    assert holds({"resources": {"limits": {"cpu": "1000m", "memory": "1Gi"}}},
                 {"resources": {"limits": {"cpu": "1", "memory": "1073741824"}}})
    assert not holds({"resources": {"limits": {"cpu": "2"}}}, {"resources": {"limits": {"cpu": "1"}}})
    assert not holds({"replicas": 1}, {"replicas": "1"})  # only quantities are numbers written as text


def test_lists_are_compared_element_by_element_and_written_whole():
    assert holds({"ports": [{"port": 80}]}, {"ports": [{"port": 80, "protocol": "TCP"}]})
    assert not holds({"ports": [{"port": 80}]}, {"ports": [{"port": 80}, {"port": 81}]})
    assert holds({"volumes": [{"emptyDir": {}}]}, {"volumes": [{"emptyDir": {"medium": ""}}]})


def test_a_mangled_record_is_planned_as_if_never_written():
    body = deployment(TARGET, parse_spec(SPEC), "abc", 2)
    live = created(body)
    live["metadata"]["annotations"][LAST_APPLIED] = "{not json"
    assert last_applied(live) is None
    patch = plan(body, live).patch
    assert set(patch) == {"metadata"}  # only the record is written again; the fields hold
    assert last_applied({"metadata": {"annotations": {LAST_APPLIED: patch["metadata"]["annotations"][
        LAST_APPLIED]}}}) is not None
