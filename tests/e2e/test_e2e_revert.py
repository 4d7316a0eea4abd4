"""End to end: retry after an abort, revert to the version before (with steps, or fast with
rollbackWindow), a Deployment scaled by hand put back, and the history of a superseded
canary. Real processes, real traffic through the gateway."""

from __future__ import annotations

import time

import pytest

from modelrollout.harness.cluster import LocalCluster
from modelrollout.harness.traffic import Traffic, wait_serving
from tests.support.e2e import healthy_on, rollout_of
from tests.support.processes import wait_for

pytestmark = pytest.mark.slow

INTERVAL = 3.0
QUICK = [{"setWeight": 50}, {"pause": {"duration": "1s"}}]




def deploy(cluster: LocalCluster, models, name: str, version: str, steps: list, **spec) -> None:
    doc = rollout_of(name, models[version], version, cluster.prometheus.url, steps, INTERVAL)
    doc["spec"].update(spec)
    cluster.apply(doc)



def weights_seen(cluster: LocalCluster, name: str, done, timeout: float = 120) -> tuple[dict, list[int]]:
    """Follow the status until ``done``; the candidate weights it went through, in order."""
    seen: list[int] = []

    def check(status: dict) -> bool:
        weight = (status.get("traffic") or {}).get("candidate")
        if weight is not None and (not seen or seen[-1] != weight):
            seen.append(weight)
        return done(status)

    return cluster.wait_for(name, check, timeout=timeout, what="rollout settled"), seen


def replicas(cluster: LocalCluster, name: str, revision: str) -> int:
    deployment = cluster.kube.get("apps/v1", "Deployment", f"{name}-{revision}", cluster.namespace)
    return deployment["spec"]["replicas"]


def test_retry_after_an_abort_reaches_the_same_step_and_promotes_with_no_failed_request(cluster, models):
    name = "retry"
    steps = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}, {"pause": {"duration": "1s"}}]
    deploy(cluster, models, name, "1.0.0", steps)
    cluster.wait_for(name, healthy_on("1.0.0"), what="1.0.0 healthy")
    wait_serving(cluster.gateway.url, name)
    traffic = Traffic(cluster.gateway.url, name).start()
    try:
        deploy(cluster, models, name, "2.0.0", steps)
        at_20 = cluster.wait_for(name, lambda s: s.get("currentStep") == 1 and s.get("phase") == "Paused",
                                 timeout=120, what="paused at 20%")
        candidate = at_20["candidateRevision"]
        cluster.command(name, "abort", "retry-1")
        cluster.wait_for(name, lambda s: s.get("phase") == "Degraded", what="aborted")
        wait_for(lambda: replicas(cluster, name, candidate) == 0, 30, "the aborted candidate scaled down")
        cluster.command(name, "retry", "retry-2")
        again = cluster.wait_for(name, lambda s: s.get("currentStep") == 1 and s.get("phase") == "Paused"
                                 and s["traffic"]["candidate"] == 20, timeout=120, what="20% again")
        assert again["candidateRevision"] == candidate and replicas(cluster, name, candidate) == 1
        cluster.command(name, "resume", "retry-3")
        final = cluster.wait_for(name, healthy_on("2.0.0"), timeout=120, what="2.0.0 promoted")
        traffic.wait_results(20, since=time.monotonic())  # clients still answered after the promotion
    finally:
        results = traffic.stop()
    assert [h["result"] for h in final["history"][-2:]] == ["Aborted", "Promoted"]
    assert [r for r in results if r.status != 200] == []
    assert {r.version for r in results} == {"1.0.0", "2.0.0"}


@pytest.mark.parametrize("wait_after_promotion", [0, 10], ids=["at-once", "10s-later"])
def test_a_revert_to_the_version_before_rolls_out_again_through_its_steps(cluster, models,
                                                                         wait_after_promotion):
    name = f"revert-{wait_after_promotion}"
    deploy(cluster, models, name, "1.0.0", QUICK)
    first = cluster.wait_for(name, healthy_on("1.0.0"), what="1.0.0 healthy")
    wait_serving(cluster.gateway.url, name)
    traffic = Traffic(cluster.gateway.url, name).start()
    try:
        deploy(cluster, models, name, "2.0.0", QUICK)
        cluster.wait_for(name, healthy_on("2.0.0"), timeout=120, what="2.0.0 promoted")
        wait_for(lambda: replicas(cluster, name, first["stableRevision"]) == 0, 30, "1.0.0 scaled down")
        time.sleep(wait_after_promotion)
        deploy(cluster, models, name, "1.0.0", QUICK)  # a git revert
        final, weights = weights_seen(cluster, name, healthy_on("1.0.0"))
        traffic.wait_results(20, since=time.monotonic())
    finally:
        results = traffic.stop()
    assert final["stableRevision"] == first["stableRevision"]  # the same revision came back
    assert 50 in weights  # through its steps: no rollbackWindow here
    assert [h["result"] for h in final["history"]] == ["Deployed", "Promoted", "Promoted"]
    assert [r for r in results if r.status != 200] == []


def test_a_revert_within_the_rollback_window_goes_to_100_percent_in_one_write(cluster, models):
    name = "fast-revert"
    steps = [{"setWeight": 20}, {"pause": {"duration": "2s"}}, {"setWeight": 60},
             {"pause": {"duration": "2s"}}]
    window = {"rollbackWindow": {"revisions": 1}}
    deploy(cluster, models, name, "1.0.0", steps, **window)
    first = cluster.wait_for(name, healthy_on("1.0.0"), what="1.0.0 healthy")
    wait_serving(cluster.gateway.url, name)
    traffic = Traffic(cluster.gateway.url, name).start()
    try:
        deploy(cluster, models, name, "2.0.0", steps, **window)
        _, forward = weights_seen(cluster, name, healthy_on("2.0.0"))
        time.sleep(10)  # much later than the promotion
        deploy(cluster, models, name, "1.0.0", steps, **window)
        final, back = weights_seen(cluster, name, healthy_on("1.0.0"))
        reverted_at = time.monotonic()
        traffic.wait_results(20, since=reverted_at)
    finally:
        results = traffic.stop()
    assert [w for w in forward if w] == [20, 60]  # the first rollout walked its steps
    assert [w for w in back if w] == []  # the revert never sat at a share: 0, then all of it
    assert final["stableRevision"] == first["stableRevision"]
    entry = final["history"][-1]
    assert (entry["result"], entry["reason"]) == ("Promoted", "FastRevert")
    events = [e for e in cluster.kube.list("v1", "Event", cluster.namespace)
              if e["involvedObject"]["name"] == name and e["reason"] == "FastRevert"]
    assert events and "rollbackWindow" in events[0]["message"]
    assert [r for r in results if r.status != 200] == []
    assert all(r.version == "1.0.0" for r in results if r.at > reverted_at)


def test_a_deployment_scaled_by_hand_is_put_back_with_an_event(cluster, models):
    name = "drift"
    deploy(cluster, models, name, "1.0.0", QUICK)
    healthy = cluster.wait_for(name, healthy_on("1.0.0"), what="1.0.0 healthy")
    revision = healthy["stableRevision"]
    cluster.kube.merge_patch("apps/v1", "Deployment", f"{name}-{revision}", {"spec": {"replicas": 0}},
                             cluster.namespace)  # kubectl scale --replicas=0
    wait_for(lambda: replicas(cluster, name, revision) == 1, 15, "the operator puts the replicas back")
    cluster.wait_for(name, healthy_on("1.0.0"), what="healthy again")

    def repaired() -> list[dict]:
        return [e for e in cluster.kube.list("v1", "Event", cluster.namespace)
                if e["involvedObject"]["name"] == name and e["reason"] == "DriftRepaired"]

    events = wait_for(repaired, 15, "a DriftRepaired Event")
    assert events[0]["type"] == "Warning"
    assert f"Deployment {name}-{revision}: spec.replicas was 0, set back to 1" in events[0]["message"]


def test_the_history_lists_a_canary_superseded_by_a_newer_spec(cluster, models):
    name = "superseded"
    steps = [{"setWeight": 30}, {"pause": {}}]
    deploy(cluster, models, name, "1.0.0", steps)
    cluster.wait_for(name, healthy_on("1.0.0"), what="1.0.0 healthy")
    deploy(cluster, models, name, "2.0.0", steps)
    paused = cluster.wait_for(name, lambda s: s.get("phase") == "Paused", timeout=120, what="2.0.0 at 30%")
    deploy(cluster, models, name, "4.0.0", steps)
    newer = cluster.wait_for(name, lambda s: s.get("candidateVersion") == "4.0.0", what="4.0.0 candidate")
    entry = newer["history"][-1]
    assert (entry["revision"], entry["modelVersion"], entry["result"]) == (
        paused["candidateRevision"], "2.0.0", "Superseded")
    assert entry["startedAt"] and entry["at"] >= entry["startedAt"]
    # Kept for history (revisionHistoryLimit), scaled down: not deleted as if forgotten.
    wait_for(lambda: replicas(cluster, name, paused["candidateRevision"]) == 0, 30, "scaled down")
