"""The real operator process (kopf) against the emulated API server, without pods.

What the operator writes for a first revision, how it reports a spec it cannot use,
and that a killed operator changes nothing when it comes back. Rollouts with real
server processes are in test_e2e_*.py.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from modelrollout.serving.contract import metric_names as names

from modelrollout.harness.components import OperatorProcess
from modelrollout.harness.emulator import KubeEmulator
from modelrollout.harness.process import wait_for
from modelrollout.install_manifests import model_deployment_crd

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CRD = model_deployment_crd()
MD = "modelrollout.io/v1alpha1"
MODEL = {
    "apiVersion": MD, "kind": "ModelDeployment",
    "metadata": {"name": "iris", "namespace": "ml", "uid": "uid-iris"},
    "spec": {
        "model": {"uri": "file:///models/iris/1/model.onnx", "version": "1.0.0"},
        "replicas": 2,
        "server": {"image": "modelrollout-server:test"},
        "strategy": {"canary": {"steps": [{"setWeight": 50}]}},
    },
}


@pytest.fixture
def kube(tmp_path) -> Iterator[KubeEmulator]:
    with KubeEmulator(tmp_path) as emulator:
        emulator.define_crd(CRD)
        yield emulator


@pytest.fixture
def operator(kube, tmp_path) -> Iterator[OperatorProcess]:
    process = OperatorProcess(kube.kubeconfig, "ml", tmp_path / "operator.log", tick_seconds=0.3)
    process.wait_healthy()
    yield process
    process.stop()


def eventually(check: Callable[[], object], timeout: float = 15.0):
    """``check()``'s first truthy result; its last failure is raised when none came in time."""
    failures: list[Exception] = []

    def attempt() -> object:
        try:
            return check()
        except (AssertionError, KeyError, TypeError) as exc:
            failures[:] = [exc]
            return None

    try:
        return wait_for(attempt, timeout, "the check", poll_seconds=0.2)
    except TimeoutError:
        if failures:
            raise failures[0] from None
        raise


def status(kube: KubeEmulator, name: str = "iris") -> dict:
    return kube.get(MD, "ModelDeployment", name, "ml").get("status") or {}


def condition(doc: dict, kind: str) -> dict:
    return next(c for c in doc.get("conditions", []) if c["type"] == kind)


def test_first_revision_gets_its_deployment_services_route_and_event(kube, operator):
    kube.create(copy.deepcopy(MODEL))
    doc = eventually(lambda: status(kube).get("route") and status(kube))
    revision = doc["stableRevision"]
    assert doc["traffic"] == {"stable": 100, "candidate": 0, "mirror": 0}
    assert doc["route"]["revisions"] == [{"name": revision, "role": "stable", "weight": 100,
                                          "service": f"iris-{revision}"}]
    deployment = kube.get("apps/v1", "Deployment", f"iris-{revision}", "ml")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["metadata"]["ownerReferences"][0]["uid"] == "uid-iris"
    services = {s["metadata"]["name"]: s["spec"]["selector"] for s in kube.list("v1", "Service", "ml")}
    assert services[f"iris-{revision}"]["modelrollout.io/revision"] == revision
    assert services["iris"]["modelrollout.io/revision"] == revision  # the entry Service: stable
    # Pods are not ready (no kubelet here): the rollout is not called healthy.
    assert doc["phase"] == "Progressing" and condition(doc, "Available")["status"] == "False"
    metrics = httpx.get(operator.metrics_url).text
    assert ('modelrollout_rollout_phase{name="iris",namespace="ml",phase="Progressing",strategy="canary"} 1.0'
            in metrics)
    assert 'modelrollout_rollout_weight_percent{name="iris",namespace="ml",role="stable"} 100.0' in metrics


def test_a_ready_stable_turns_healthy_and_status_stops_changing(kube, operator):
    kube.create(copy.deepcopy(MODEL))
    revision = eventually(lambda: status(kube).get("stableRevision"))
    kube.merge_patch("apps/v1", "Deployment", f"iris-{revision}", {"status": {"readyReplicas": 2}}, "ml",
                     subresource="status")
    eventually(lambda: status(kube)["phase"] == "Healthy")
    settled = status(kube)
    time.sleep(1.5)  # five ticks
    assert status(kube) == settled
    assert condition(settled, "Available")["status"] == "True"


def reconciles(operator: OperatorProcess, name: str = "iris") -> float:
    """How many reconciles of ``name`` the operator has finished (its own metric)."""
    for line in httpx.get(operator.metrics_url).text.splitlines():
        if line.startswith(f"{names.RECONCILE_DURATION}_count") and f'name="{name}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def model_deployment_reads(kube: KubeEmulator, identity: str) -> int:
    return sum(row["count"] for row in kube.audit() if row["identity"] == identity
               and row["resource"] == "modeldeployments" and row["verb"] == "get")


def test_a_rollout_in_progress_is_ticked_from_the_watch_without_reading_the_object_again(kube, tmp_path):
    """Every tick of a rollout that waits (pods that never become ready) starts from the
    watch's copy of the ModelDeployment, or the operator's own last write, not from a GET."""
    kube.create(copy.deepcopy(MODEL))
    identity = "operator-ticks"
    process = OperatorProcess(kube.kubeconfig_for(identity), "ml", tmp_path / "ticks.log", tick_seconds=0.2)
    try:
        process.wait_healthy()
        eventually(lambda: status(kube)["stableRevision"] and reconciles(process) >= 2)
        reads, before = model_deployment_reads(kube, identity), reconciles(process)
        assert reads >= 1  # the loop's first reconcile reads it
        writes = len(kube.writes())
        eventually(lambda: reconciles(process) >= before + 15, timeout=30)  # 15 ticks
        assert model_deployment_reads(kube, identity) == reads
        assert len(kube.writes()) == writes  # nothing changed: nothing written
        # A change still reaches the next tick, through the watch.
        kube.merge_patch(MD, "ModelDeployment", "iris", {"spec": {"replicas": 3}}, "ml")
        revision = status(kube)["stableRevision"]
        deployment = f"iris-{revision}"
        eventually(lambda: kube.get("apps/v1", "Deployment", deployment, "ml")["spec"]["replicas"] == 3)
        assert model_deployment_reads(kube, identity) == reads
    finally:
        process.stop()


def test_an_invalid_spec_is_reported_and_other_models_go_on(kube, operator):
    bad = copy.deepcopy(MODEL)
    bad["metadata"]["name"] = "broken"
    bad["spec"]["strategy"]["canary"]["steps"] = [{"analysis": {"metrics": ["error-rate"]}}]
    kube.create(bad)
    kube.create(copy.deepcopy(MODEL))
    doc = eventually(lambda: status(kube, "broken").get("conditions") and status(kube, "broken"))
    invalid = condition(doc, "InvalidSpec")
    assert invalid["status"] == "True" and invalid["reason"] == "SpecInvalid"
    assert "spec.strategy.canary.steps[0].analysis.metrics" in invalid["message"]
    assert "'error-rate' is not defined in spec.analysis.metrics" in invalid["message"]
    assert doc["phase"] == "Degraded" and "route" not in doc
    names = [d["metadata"]["name"] for d in kube.list("apps/v1", "Deployment", "ml")]
    assert not [n for n in names if n.startswith("broken")]
    eventually(lambda: status(kube).get("route"))  # the valid one is reconciled meanwhile
    events = [e for e in kube.list("v1", "Event", "ml") if e["involvedObject"]["name"] == "broken"]
    assert [e["reason"] for e in events] == ["SpecInvalid"]
    # Fixed: the condition clears.
    kube.merge_patch(MD, "ModelDeployment", "broken",
                     {"spec": {"strategy": {"canary": {"steps": [{"setWeight": 10}]}}}}, "ml")
    eventually(lambda: condition(status(kube, "broken"), "InvalidSpec")["status"] == "False")


def steady(kube: KubeEmulator) -> dict:
    """The status once it stopped changing: the same in two reads a second apart."""
    seen = [status(kube)]

    def unchanged() -> dict | None:
        time.sleep(1.0)
        seen.append(status(kube))
        return seen[-1] if seen[-1] == seen[-2] else None

    return wait_for(unchanged, 30, "the status to settle", poll_seconds=0)


def test_a_killed_operator_comes_back_without_changing_anything(kube, operator):
    kube.create(copy.deepcopy(MODEL))
    eventually(lambda: status(kube).get("route"))
    before = steady(kube)
    deployments = kube.list("apps/v1", "Deployment", "ml")
    operator.kill()
    operator.restart()
    time.sleep(1.5)
    assert status(kube) == before
    assert kube.list("apps/v1", "Deployment", "ml") == deployments
    assert operator.stop() == 0  # SIGTERM: a clean exit


def revision_slice(revision: str, host: str) -> dict:
    """What the EndpointSlice controller writes for a revision's Service: one ready pod, and
    the Service's labels (the controller copies them; the operator's watch selects on one)."""
    service = f"iris-{revision}"
    labels = kube_labels_of_service(revision)
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service}-x1", "namespace": "ml",
                         "labels": {**labels, "kubernetes.io/service-name": service}},
            "addressType": "IPv4", "endpoints": [{"addresses": [host], "conditions": {"ready": True}}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}


def kube_labels_of_service(revision: str) -> dict:
    return {"app.kubernetes.io/managed-by": "modelrollout", "modelrollout.io/model-deployment": "iris",
            "modelrollout.io/revision": revision}


def entry_slices(kube: KubeEmulator) -> list[dict]:
    return [s for s in kube.list("discovery.k8s.io/v1", "EndpointSlice", "ml")
            if s["metadata"]["labels"].get("kubernetes.io/service-name") == "iris"]


def test_replicas_routing_writes_the_entry_slices_and_takes_them_back_when_routing_changes(kube, operator):
    doc = copy.deepcopy(MODEL)
    doc["spec"]["trafficRouting"] = {"replicas": {}}
    kube.create(doc)
    revision = eventually(lambda: status(kube).get("replicaRouting") and status(kube)["stableRevision"])
    assert status(kube)["replicaRouting"]["stableEndpoints"] == 0  # no pod ready yet
    assert not kube.get("v1", "Service", "iris", "ml")["spec"].get("selector")
    kube.create(revision_slice(revision, "10.1.0.7"))
    (entry,) = eventually(lambda: entry_slices(kube))
    assert [e["addresses"] for e in entry["endpoints"]] == [["10.1.0.7"]]
    assert entry["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "modelrollout.io/operator"
    eventually(lambda: status(kube)["replicaRouting"]["stableEndpoints"] == 1)
    assert "route" not in status(kube)  # the gateway has nothing to serve for it
    # Routing changed to builtin: the Service selects stable again, our slice goes, and
    # status trades replicaRouting for the gateway's route.
    kube.merge_patch(MD, "ModelDeployment", "iris", {"spec": {"trafficRouting": {"replicas": None,
                                                                                 "builtin": {}}}}, "ml")
    eventually(lambda: status(kube).get("route") and "replicaRouting" not in status(kube))
    assert entry_slices(kube) == []
    selector = kube.get("v1", "Service", "iris", "ml")["spec"]["selector"]
    assert selector == {"modelrollout.io/model-deployment": "iris", "modelrollout.io/revision": revision}


def test_replicas_routing_refuses_a_mirror_step_and_says_where(kube, operator):
    doc = copy.deepcopy(MODEL)
    doc["spec"]["trafficRouting"] = {"replicas": {}}
    doc["spec"]["strategy"]["canary"]["steps"] = [{"setWeight": 20}, {"setMirror": {"percent": 50}}]
    kube.create(doc)
    invalid = condition(eventually(lambda: status(kube).get("conditions") and status(kube)), "InvalidSpec")
    assert invalid["status"] == "True" and "cannot mirror" in invalid["message"]
    assert "spec.strategy.canary.steps[1].setMirror" in invalid["message"]
    assert kube.list("apps/v1", "Deployment", "ml") == []  # nothing was started


REFUSED = {
    "shadow without a router": (
        {"trafficRouting": {"replicas": {}}, "strategy": {"shadow": {}}},
        "spec.strategy.shadow: needs a router that copies requests (trafficRouting.builtin or gatewayAPI); "
        "trafficRouting.replicas cannot mirror"),
    "shadow-agreement behind an HTTPRoute": (
        {"trafficRouting": {"gatewayAPI": {"parentRefs": [{"name": "gw"}]}},
         "strategy": {"shadow": {"analysis": {"metrics": ["shadow-agreement"]}}},
         "analysis": {"prometheus": {"address": "http://127.0.0.1:9090"},
                      "metrics": [{"name": "shadow-agreement", "thresholdRange": {"min": 0.99}}]}},
        "spec.analysis.metrics[0]: 'shadow-agreement' needs every mirrored answer compared, which only the "
        "modelrollout gateway does"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_strategy_its_routing_cannot_carry_out_is_refused_with_what_to_change(kube, operator, case):
    change, message = REFUSED[case]
    doc = copy.deepcopy(MODEL)
    doc["spec"].update(change)
    kube.create(doc)
    invalid = condition(eventually(lambda: status(kube).get("conditions") and status(kube)), "InvalidSpec")
    assert invalid["status"] == "True" and invalid["message"].startswith(message), invalid["message"]
    assert kube.list("apps/v1", "Deployment", "ml") == []
