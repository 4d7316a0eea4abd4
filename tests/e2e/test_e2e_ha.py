"""End to end: two operator replicas with leader election (a Lease), real pods, client
traffic through the gateway. Exactly one acts; when it is killed, or can no longer renew
its Lease, the other takes over within a bounded time and the rollout goes on from the
step it was at, with the traffic split untouched meanwhile."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest
from modelrollout.serving.examples import write_model_versions

from modelrollout.harness.apiserver.faults import Fault
from modelrollout.harness.cluster import OPERATOR, LocalCluster
from modelrollout.harness.components import LEADER_ELECTION, OperatorProcess
from modelrollout.harness.process import wait_for
from modelrollout.harness.traffic import Traffic, wait_serving
from tests.support.e2e import rollout_of

pytestmark = pytest.mark.slow

INTERVAL = 3.0
LEASE_SECONDS, RENEW_DEADLINE_SECONDS, RETRY_SECONDS = 4.0, 3.0, 0.5  # LEADER_ELECTION's times
# From the leader's last renewal: the lease runs out as the standby saw it, then its next look.
TAKEOVER_BOUND_SECONDS = LEASE_SECONDS + 2 * RETRY_SECONDS + 1.0  # + 1 s for a loaded machine
STEPS = [{"setWeight": 25}, {"pause": {"duration": "15s"}}, {"setWeight": 50}, {"pause": {}}]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[LocalCluster]:
    folder = tmp_path_factory.mktemp("cluster")
    with LocalCluster(folder, tick_seconds=0.5, operator_args=LEADER_ELECTION) as local:
        local.standby = local.start_operator(folder / "operator-b.log", LEADER_ELECTION, OPERATOR + "#b")
        yield local


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return write_model_versions(tmp_path_factory.mktemp("models"))


def deploy(cluster: LocalCluster, models, name: str, version: str) -> None:
    cluster.apply(rollout_of(name, models[version], version, cluster.prometheus.url, STEPS, INTERVAL))


def holder(cluster: LocalCluster) -> str:
    lease = cluster.kube.get("coordination.k8s.io/v1", "Lease", "modelrollout-operator",
                             "modelrollout-system")
    return lease["spec"].get("holderIdentity") or ""


def replica_of(cluster: LocalCluster, identity: str) -> OperatorProcess:
    """The process whose instance (hostname-pid) holds the Lease."""
    pid = int(identity.rsplit("-", 1)[1])
    return next(p for p in (cluster.operator, cluster.standby) if p.pid == pid)


def reconciles(process: OperatorProcess) -> float:
    """Reconciles this replica ran, from its own /metrics."""
    text = httpx.get(process.metrics_url, timeout=5).text
    return sum(float(v) for v in re.findall(r"^modelrollout_reconcile_duration_seconds_count\{[^}]*\} (\S+)$",
                                            text, re.M))


def events_by(cluster: LocalCluster, name: str) -> list[tuple[str, str]]:
    """(reason, reportingInstance) of the ModelDeployment's Events, oldest first."""
    found = [e for e in cluster.kube.list("v1", "Event", cluster.namespace)
             if e["involvedObject"]["name"] == name]
    found.sort(key=lambda e: int(e["metadata"]["resourceVersion"]))
    return [(e["reason"], e.get("reportingInstance")) for e in found]


def at_25(status: dict) -> bool:
    return status.get("currentStep") == 1 and status["traffic"]["candidate"] == 25


def healthy_on(version: str):
    return lambda s: s.get("phase") == "Healthy" and s.get("stableVersion") == version


def test_the_standby_takes_over_a_killed_leader_at_the_same_step_without_moving_traffic(cluster, models):
    name = "ha-kill"
    deploy(cluster, models, name, "1.0.0")
    cluster.wait_for(name, healthy_on("1.0.0"), what="1.0.0 healthy")
    first = holder(cluster)
    leader = replica_of(cluster, first)
    standby = cluster.standby if leader is cluster.operator else cluster.operator
    assert reconciles(leader) > 0 and reconciles(standby) == 0  # exactly one acts
    wait_serving(cluster.gateway.url, name)
    traffic = Traffic(cluster.gateway.url, name).start()
    try:
        deploy(cluster, models, name, "2.0.0")
        paused = cluster.wait_for(name, at_25, timeout=120, what="the timed pause at 25%")
        leader.kill()
        killed_at = time.monotonic()
        successor = wait_for(lambda: (h := holder(cluster)) != first and h, 3 * TAKEOVER_BOUND_SECONDS,
                             "the standby to take the Lease", poll_seconds=0.1)
        took = time.monotonic() - killed_at
        between = cluster.status(name)
        during = traffic.wait_results(40, since=killed_at)
        resumed = cluster.wait_for(name, lambda s: s.get("currentStep") == 3, timeout=60,
                                   what="50% and the pause")
        cluster.command(name, "promote", "ha-kill-1")
        final = cluster.wait_for(name, healthy_on("2.0.0"), timeout=60, what="2.0.0 promoted")
        traffic.wait_results(20, since=time.monotonic())
    finally:
        results = traffic.stop()
        leader.restart()  # a standby again, for the next test
    print(f"takeover after {took:.2f} s (bound {TAKEOVER_BOUND_SECONDS:g} s)")  # shown with -s
    assert took <= TAKEOVER_BOUND_SECONDS, took
    assert replica_of(cluster, successor) is standby
    # Until the new leader acted, nothing moved: the same step, the same split.
    assert (between["currentStep"], between["traffic"]) == (1, paused["traffic"])
    assert between["candidateRevision"] == paused["candidateRevision"]
    share = sum(r.revision == paused["candidateRevision"] for r in during) / len(during)
    assert 0.05 < share < 0.5, share  # the gateway kept the 25% split
    # The new leader went on from the pause (not a new rollout): 50% next, then promoted.
    assert resumed["candidateRevision"] == paused["candidateRevision"]
    assert resumed["traffic"]["candidate"] == 50
    told = events_by(cluster, name)
    assert [reason for reason, _ in told].count("NewRevision") == 1
    assert [reason for reason, _ in told].count("WeightSet") == 2  # 25% once, 50% once
    assert {who for _, who in told} == {first, successor}
    after = told[[who for _, who in told].index(successor):]
    assert all(who == successor for _, who in after)  # once it acted, only it did
    assert final["history"][-1]["result"] == "Promoted"
    assert [r for r in results if r.status != 200] == []


def test_a_leader_that_cannot_renew_stops_and_the_standby_takes_over(cluster, models):
    name = "ha-renew"
    deploy(cluster, models, name, "1.0.0")
    cluster.wait_for(name, healthy_on("1.0.0"), what="1.0.0 healthy")
    wait_for(lambda: holder(cluster), 30, "a leader")
    first = holder(cluster)
    leader = replica_of(cluster, first)
    identity = OPERATOR if leader is cluster.operator else OPERATOR + "#b"
    wait_serving(cluster.gateway.url, name)
    traffic = Traffic(cluster.gateway.url, name).start()
    try:
        deploy(cluster, models, name, "2.0.0")
        cluster.wait_for(name, at_25, timeout=120, what="the timed pause at 25%")
        refused_at = time.time()
        cluster.kube.inject(Fault(500, verbs={"update"}, resource="leases", identity=identity))
        successor = wait_for(lambda: (h := holder(cluster)) != first and h, 3 * TAKEOVER_BOUND_SECONDS,
                             "the standby to take the Lease", poll_seconds=0.1)
        cluster.kube.clear_faults()
        final = cluster.wait_for(name, lambda s: s.get("currentStep") == 3, timeout=60,
                                 what="50% and the pause")
        traffic.wait_results(20, since=time.monotonic())
    finally:
        cluster.kube.clear_faults()
        results = traffic.stop()
    assert replica_of(cluster, successor) is not leader
    # The old leader stopped writing within its renew deadline (and a reconcile in flight).
    late = [w for w in cluster.kube.writes(since=refused_at + RENEW_DEADLINE_SECONDS + 1.0)
            if w.identity == identity and w.resource != "leases"]
    assert late == []
    assert "stops leading: could not renew" in leader.logs()
    assert final["traffic"]["candidate"] == 50
    assert [r for r in results if r.status != 200] == []
