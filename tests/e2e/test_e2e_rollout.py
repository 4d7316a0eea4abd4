"""End to end: the operator, gateway, servers and Prometheus as real processes on one
machine (modelrollout.harness.LocalCluster), real client traffic through the gateway."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from modelrollout.harness.cluster import LocalCluster
from modelrollout.harness.service_proxy import ServiceProxy
from modelrollout.harness.traffic import Traffic, wait_serving
from tests.support.e2e import healthy_on, rollout_of
from tests.support.kubectl import kubectl_env, run_kubectl
from tests.support.processes import wait_for

pytestmark = pytest.mark.slow

INTERVAL = 3.0
PLUGIN = os.path.join(os.path.dirname(sys.executable), "kubectl-modelrollout")




def deploy(cluster: LocalCluster, models, name: str, version: str, steps: list, **analysis) -> None:
    cluster.apply(rollout_of(name, models[version], version, cluster.prometheus.url, steps, INTERVAL,
                             **analysis))


def deploy_healthy(cluster: LocalCluster, models, name: str, version: str, steps: list, **analysis) -> None:
    """Deploy ``version`` as the first revision and wait until it serves."""
    deploy(cluster, models, name, version, steps, **analysis)
    cluster.wait_for(name, healthy_on(version), what=f"{version} healthy")


def start_traffic(cluster: LocalCluster, name: str) -> Traffic:
    wait_serving(cluster.gateway.url, name)
    return Traffic(cluster.gateway.url, name).start()



def test_a_canary_promotes_step_by_step_with_no_failed_request(cluster, models):
    steps = [{"setWeight": 30}, {"analysis": {"metrics": ["error-rate"]}},
             {"setWeight": 60}, {"analysis": {"metrics": ["error-rate"]}}]
    deploy_healthy(cluster, models, "iris-a", "1.0.0", steps)
    traffic = start_traffic(cluster, "iris-a")
    try:
        time.sleep(1)
        deploy(cluster, models, "iris-a", "2.0.0", steps)
        weights = []

        def promoted(status: dict) -> bool:
            weight = (status.get("traffic") or {}).get("candidate")
            if weight is not None and (not weights or weights[-1] != weight):
                weights.append(weight)
            return healthy_on("2.0.0")(status)

        final = cluster.wait_for("iris-a", promoted, timeout=180, what="v2 promoted")
        time.sleep(1)
    finally:
        results = traffic.stop()
    assert [w for w in weights if w] == [30, 60]  # every step, in order, nothing skipped
    assert final["traffic"] == {"stable": 100, "candidate": 0, "mirror": 0}
    assert final["history"][-1]["result"] == "Promoted" and final["history"][-1]["modelVersion"] == "2.0.0"
    failed = [r for r in results if r.status != 200]
    assert len(results) > 200 and failed == []
    served = {r.revision for r in results}
    assert {final["stableRevision"], *final["revisionVersions"]} >= served and len(served) == 2


def test_b_a_broken_candidate_is_rolled_back_within_two_intervals(cluster, models):
    steps = [{"setWeight": 20}, {"analysis": {"metrics": ["error-rate"]}}, {"setWeight": 100}]
    deploy_healthy(cluster, models, "iris-b", "2.0.0", steps)
    traffic = start_traffic(cluster, "iris-b")
    try:
        deploy(cluster, models, "iris-b", "3.0.0", steps)
        weighted = cluster.wait_for("iris-b", lambda s: (s.get("traffic") or {}).get("candidate") == 20,
                                    timeout=120, what="v3 at 20%")
        moved_at = time.monotonic()
        final = cluster.wait_for("iris-b", lambda s: s.get("phase") == "Degraded", timeout=60,
                                 what="rollback")
        rolled_back_after = time.monotonic() - moved_at
        time.sleep(1)
    finally:
        results = traffic.stop()
    assert final["reason"] == "AnalysisFailed" and "error-rate" in final["message"]
    assert final["traffic"]["candidate"] == 0 and final["stableVersion"] == "2.0.0"
    assert final["history"][-1]["result"] == "Aborted"
    # Two analysis intervals, plus the time the status takes to be read here.
    assert rolled_back_after <= 2 * INTERVAL + 1.5, rolled_back_after
    # Only requests sent to the candidate can fail: bounded by its weight.
    errors = sum(1 for r in results if r.status != 200)
    assert 0 < errors <= 0.2 * len(results)
    assert all(r.revision == weighted["candidateRevision"] for r in results if r.status != 200)


def test_c_an_idle_candidate_is_inconclusive_and_never_promotes(cluster, models):
    steps = [{"setWeight": 50}, {"analysis": {"metrics": ["error-rate"]}}]
    deploy_healthy(cluster, models, "iris-c", "1.0.0", steps)
    deploy(cluster, models, "iris-c", "2.0.0", steps)  # nobody sends a request
    paused = cluster.wait_for("iris-c", lambda s: s.get("phase") == "Paused", timeout=120, what="pause")
    assert paused["reason"] == "AnalysisInconclusive"
    assert paused["analysis"][-1]["phase"] == "Inconclusive"
    time.sleep(3 * INTERVAL)
    later = cluster.status("iris-c")
    assert later["phase"] == "Paused" and later["stableVersion"] == "1.0.0"
    assert later["traffic"]["candidate"] == 50  # held where it was, not promoted


def test_d_a_killed_operator_resumes_at_the_same_step_without_moving_traffic(cluster, models):
    steps = [{"setWeight": 25}, {"pause": {"duration": "8s"}}, {"setWeight": 50},
             {"analysis": {"metrics": ["error-rate"]}}]
    deploy_healthy(cluster, models, "iris-d", "1.0.0", steps)
    traffic = start_traffic(cluster, "iris-d")
    try:
        deploy(cluster, models, "iris-d", "2.0.0", steps)
        cluster.wait_for("iris-d", lambda s: s.get("currentStep") == 1 and s["traffic"]["candidate"] == 25,
                         timeout=120, what="the pause at 25%")
        cluster.operator.kill()
        while_dead = time.monotonic()
        before = cluster.status("iris-d")
        time.sleep(10)  # longer than the pause: nobody may move on meanwhile
        assert cluster.status("iris-d") == before
        during = [r for r in traffic.results if r.at > while_dead]
        candidate_share = sum(r.revision == before["candidateRevision"] for r in during) / len(during)
        assert 0.1 < candidate_share < 0.45  # the gateway kept the 25% split
        cluster.operator.restart()
        final = cluster.wait_for("iris-d", healthy_on("2.0.0"), timeout=180, what="v2 promoted")
        time.sleep(1)
    finally:
        results = traffic.stop()
    assert final["history"][-1]["result"] == "Promoted"
    assert [r for r in results if r.status != 200] == []


def test_e_prometheus_down_pauses_the_rollout_and_never_promotes(cluster, models):
    steps = [{"setWeight": 20}, {"analysis": {"metrics": ["error-rate"]}}]
    deploy_healthy(cluster, models, "iris-e", "1.0.0", steps, consecutiveErrorLimit=2)
    traffic = start_traffic(cluster, "iris-e")
    try:
        deploy(cluster, models, "iris-e", "2.0.0", steps, consecutiveErrorLimit=2)
        cluster.wait_for("iris-e", lambda s: s.get("traffic", {}).get("candidate") == 20, timeout=120,
                         what="20%")
        cluster.prometheus.stop()
        try:
            paused = cluster.wait_for("iris-e", lambda s: s.get("phase") == "Paused", timeout=60,
                                      what="inconclusive pause")
            time.sleep(3 * INTERVAL)
            later = cluster.status("iris-e")
        finally:
            cluster.prometheus.start()
    finally:
        traffic.stop()
    assert paused["reason"] == "AnalysisInconclusive"
    assert [m["phase"] for m in paused["analysis"]][-2:] == ["Error", "Error"]
    assert "Prometheus unreachable" in paused["analysis"][-1]["message"]
    assert later["phase"] == "Paused" and later["stableVersion"] == "1.0.0"
    assert later["traffic"]["candidate"] == 20


def test_f_kubectl_scale_from_2_to_6_in_the_middle_of_a_canary_keeps_the_weights_and_every_request(
        cluster, models, tmp_path):
    """`kubectl scale` on the ModelDeployment (its scale subresource) while the canary is at
    25%: stable grows to 6, the candidate to its share (2), the step and the weight stay, and
    the promotion waits for 6 candidate pods."""
    steps = [{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"pause": {"duration": "2s"}}]

    def apply(version: str) -> None:
        doc = rollout_of("iris-f", models[version], version, cluster.prometheus.url, steps, INTERVAL)
        doc["spec"]["replicas"] = 2
        cluster.apply(doc)

    apply("1.0.0")
    cluster.wait_for("iris-f", lambda s: healthy_on("1.0.0")(s) and s.get("replicas") == 2, what="1.0.0 x2")
    traffic = start_traffic(cluster, "iris-f")
    weights: list[int] = []

    def seen(check):
        def watched(status: dict) -> bool:
            weight = (status.get("traffic") or {}).get("candidate")
            if weight is not None and (not weights or weights[-1] != weight):
                weights.append(weight)
            return check(status)
        return watched

    try:
        apply("2.0.0")
        paused = cluster.wait_for("iris-f", seen(lambda s: s.get("currentStep") == 1 and s.get("paused")),
                                  what="the pause at 25%")
        assert paused["replicas"] == 2 + 1  # stable 2, the candidate's share of 25%: 1
        env = kubectl_env(cluster.kube.kubeconfig, tmp_path)
        run_kubectl(env, "scale", "mdep/iris-f", "-n", "ml", "--replicas", "6")
        # stable 6 and the candidate's 25% of 6 (2 pods), the pause untouched
        scaled = cluster.wait_for("iris-f", seen(lambda s: s.get("replicas") == 6 + 2), timeout=120,
                                  what="6 stable and 2 candidate pods ready")
        assert scaled["currentStep"] == 1 and scaled["traffic"]["candidate"] == 25 and scaled["paused"]
        candidate = scaled["candidateRevision"]
        cluster.command("iris-f", "resume", "f-1")
        final = cluster.wait_for("iris-f", seen(healthy_on("2.0.0")), timeout=180, what="2.0.0 promoted")
        time.sleep(1)
    finally:
        results = traffic.stop()
    assert [w for w in weights if w] == [25, 50]  # nothing skipped, nothing repeated
    deployment = cluster.kube.get("apps/v1", "Deployment", f"iris-f-{candidate}", cluster.namespace)
    assert deployment["spec"]["replicas"] == 6 and final["readyReplicas"] == 6
    failed = [r for r in results if r.status != 200]
    assert len(results) > 200 and failed == []


def test_g_pause_promote_and_abort_through_the_kubectl_plugin(cluster, models):
    steps = [{"setWeight": 10}, {"pause": {"duration": "10m"}}, {"setWeight": 40}, {"pause": {}},
             {"setWeight": 80}, {"pause": {}}]
    deploy_healthy(cluster, models, "iris-g", "1.0.0", steps)
    deploy(cluster, models, "iris-g", "2.0.0", steps)
    cluster.wait_for("iris-g", lambda s: s.get("traffic", {}).get("candidate") == 10
                     and s.get("currentStep") == 1, timeout=120, what="first pause")
    spec_before = cluster.get("iris-g")["spec"]

    def plugin(*args: str) -> str:
        done = subprocess.run([PLUGIN, *args, "iris-g", "-n", "ml",
                               "--kubeconfig", str(cluster.kube.kubeconfig)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    plugin("pause")
    assert cluster.status("iris-g")["phase"] == "Paused"
    assert cluster.status("iris-g")["reason"] == "PausedByUser"
    plugin("resume")
    out = plugin("promote")  # skips the 10-minute pause
    assert "promote: done" in out
    cluster.wait_for("iris-g", lambda s: s.get("traffic", {}).get("candidate") == 40, what="40%")
    assert "Traffic:    stable 60%, candidate 40%" in plugin("status")
    out = plugin("abort")
    final = cluster.status("iris-g")
    assert final["phase"] == "Degraded" and final["reason"] == "AbortedByUser"
    assert final["traffic"]["candidate"] == 0 and final["stableVersion"] == "1.0.0"
    assert cluster.get("iris-g")["spec"] == spec_before  # nothing for GitOps to see


def test_h_replicas_routing_splits_by_the_pods_behind_the_entry_service(cluster, models):
    """No gateway: clients reach the entry Service (the harness's kube-proxy stand-in); the
    operator decides which pods stand behind it and reads the servers' own metrics."""
    name = "iris-h"
    steps = [{"pause": {}}, {"setWeight": 50}, {"analysis": {"metrics": ["error-rate"]}}, {"pause": {}}]

    def apply(version: str) -> None:
        doc = rollout_of(name, models[version], version, cluster.prometheus.url, steps, INTERVAL)
        doc["spec"]["trafficRouting"] = {"replicas": {}}
        cluster.apply(doc)

    apply("1.0.0")
    # Ready replicas and EndpointSlices reach the API a moment apart: wait for both.
    first = cluster.wait_for(name, lambda s: healthy_on("1.0.0")(s)
                             and (s.get("replicaRouting") or {}).get("stableEndpoints") == 1,
                             what="1.0.0 healthy behind the entry Service")
    service = cluster.kube.get("v1", "Service", name, cluster.namespace)
    assert not service["spec"].get("selector")  # the operator picks the endpoints, not a selector
    with ServiceProxy(cluster.kube, cluster.namespace, name) as proxy:
        wait_for(proxy.endpoints, 15, "the entry Service has an endpoint")
        traffic = Traffic(proxy.url, name, new_connection_per_request=True).start()
        try:
            apply("2.0.0")
            # Gate passed, paused at step 0: the candidate is ready but nobody reaches it.
            cluster.wait_for(name, lambda s: s.get("phase") == "Paused"
                             and s.get("candidateVersion") == "2.0.0",
                             what="candidate gated, paused before any weight", timeout=60)
            gated = traffic.wait_results(40, since=time.monotonic() + 1)  # one proxy refresh and a bit
            cluster.command(name, "resume", "h-1")
            half = cluster.wait_for(name, lambda s: s.get("currentStep") == 3 and s.get("phase") == "Paused",
                                    what="50% and analysis passed")
            split = traffic.wait_results(60, since=time.monotonic() + 1)  # one proxy refresh and a bit
            cluster.command(name, "resume", "h-2")
            final = cluster.wait_for(name, healthy_on("2.0.0"), what="2.0.0 promoted")
            time.sleep(2)
        finally:
            results = traffic.stop()
    assert first["replicaRouting"] == {"stableEndpoints": 1, "candidateEndpoints": 0, "requestedWeight": 0,
                                       "candidateWeight": 0}
    assert gated and {r.version for r in gated} == {"1.0.0"}
    assert half["replicaRouting"] == {"stableEndpoints": 1, "candidateEndpoints": 1, "requestedWeight": 50,
                                      "candidateWeight": 50}
    # Past the analysis step (no data would have paused it at step 2 as inconclusive): the
    # builtin error rate was read from the servers' metrics, by the candidate's revision.
    assert half["reason"] == "PausedByStep"
    share = sum(r.version == "2.0.0" for r in split) / len(split)
    assert 0.3 < share < 0.7, share
    assert final["replicaRouting"] == {"stableEndpoints": 1, "candidateEndpoints": 0, "requestedWeight": 0,
                                       "candidateWeight": 0}
    assert results[-1].version == "2.0.0"
    failed = [r for r in results if r.status != 200]
    assert len(results) > 200 and failed == []
