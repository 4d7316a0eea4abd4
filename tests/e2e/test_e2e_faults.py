"""End to end, things going wrong mid-rollout, for every strategy at once: canary, blue-green
and shadow run side by side in one cluster (real operator, gateway, servers, Prometheus),
each with its own client traffic through the gateway, while the fault is made to happen.

What each test asserts is in its docstring; docs/operator.md ("What happens when something
goes wrong") says the same for users. Client failures are counted per request, and only
those the gateway's retry cannot save are allowed: a request already sent to a pod that
is killed (at most one per client stream per kill, since each stream has one in flight).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from modelrollout.serving.contract import metric_names as names
from modelrollout.serving.examples import write_model_versions
from prometheus_client.parser import text_string_to_metric_families

from modelrollout.harness.apiserver.faults import Fault
from modelrollout.harness.cluster import OPERATOR, LocalCluster, model_deployment
from modelrollout.harness.model_files import ModelFiles
from modelrollout.harness.ports import free_port
from modelrollout.harness.process import wait_for
from modelrollout.harness.traffic import Result, Traffic, wait_serving
from modelrollout.harness.unreliable_proxy import UnreliableProxy
from tests.support.e2e import ERROR_RATE

pytestmark = pytest.mark.slow

INTERVAL = 3.0
PREVIEW = {"x-modelrollout-revision": "preview"}
SHADOW_ERRORS = {"name": "shadow-error-rate", "thresholdRange": {"max": 0.05}, "minSamples": 5}


@dataclass(frozen=True)
class Kind:
    """One strategy as these tests run it: held in a step where the candidate gets its traffic."""

    strategy: dict
    version: str  # the candidate's model version (a shadow must agree with 1.0.0)
    metrics: tuple = (ERROR_RATE,)

    def held(self, status: dict) -> bool:
        kind = next(iter(self.strategy))
        if kind == "canary":
            return status.get("currentStep") == 1 and (status.get("traffic") or {}).get("candidate") == 30
        if kind == "blueGreen":
            return status.get("reason") == "WaitingForPromotion"
        return status.get("reason") == "Shadowing" and (status.get("traffic") or {}).get("mirror") == 100


HELD = {
    "canary": Kind({"canary": {"steps": [{"setWeight": 30}, {"pause": {}}]}}, "2.0.0"),
    "bg": Kind({"blueGreen": {}}, "2.0.0"),  # waits for a person; testers reach the preview by header
    "shadow": Kind({"shadow": {"duration": "1h"}}, "1.0.1"),
}


@dataclass
class Rollout:
    """One ModelDeployment, its clients (and preview testers), and what its candidate is."""

    name: str
    kind: Kind
    clients: Traffic
    testers: Traffic | None = None
    status: dict = field(default_factory=dict)

    @property
    def candidate(self) -> str:
        return self.status["candidateRevision"]

    @property
    def deployment(self) -> str:
        return f"{self.name}-{self.candidate}"

    def stop(self) -> tuple[list[Result], list[Result]]:
        return self.clients.stop(), (self.testers.stop() if self.testers else [])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path_factory.mktemp("cluster"), tick_seconds=0.5) as local:
        yield local


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return write_model_versions(tmp_path_factory.mktemp("models"))


def deploy(cluster: LocalCluster, name: str, model: dict, kind: Kind, replicas: int = 1,
           prometheus: str | None = None, **spec) -> None:
    """``model``: spec.model (uri, version, sha256...)."""
    doc = model_deployment(name, Path("/"), model["version"], prometheus or cluster.prometheus.url, [],
                           INTERVAL, list(kind.metrics), strategy=kind.strategy, consecutiveErrorLimit=2)
    doc["spec"].update(model=model, replicas=replicas, **spec)
    cluster.apply(doc)


def model_of(models, version: str) -> dict:
    return {"uri": models[version].as_uri(), "version": version}


def healthy_on(version: str):
    return lambda s: s.get("phase") == "Healthy" and s.get("stableVersion") == version


@contextlib.contextmanager
def rollouts(cluster: LocalCluster, models, prefix: str, kinds: dict[str, Kind] = HELD, replicas: int = 1,
             rate: float = 30.0, candidate: Callable[[str], dict] | None = None, hold: bool = True,
             **spec) -> Iterator[dict[str, Rollout]]:
    """1.0.0 healthy for every kind, clients (and bg testers) sending, then each kind's
    candidate deployed (``candidate(key)``: its spec.model) and, with ``hold``, held in its
    step. Everything is deleted at the end."""
    made: dict[str, Rollout] = {}
    try:
        for key, kind in kinds.items():
            deploy(cluster, f"{prefix}-{key}", model_of(models, "1.0.0"), kind, replicas, **spec)
        for key, kind in kinds.items():
            name = f"{prefix}-{key}"
            cluster.wait_for(name, healthy_on("1.0.0"), what=f"{name} on 1.0.0")
            wait_serving(cluster.gateway.url, name)
            made[key] = Rollout(name, kind, Traffic(cluster.gateway.url, name, rate_per_second=rate).start())
            if "blueGreen" in kind.strategy:
                made[key].testers = Traffic(cluster.gateway.url, name, rate_per_second=rate / 2,
                                            headers=PREVIEW).start()
        for key, rollout in made.items():
            model = candidate(key) if candidate else model_of(models, rollout.kind.version)
            deploy(cluster, rollout.name, model, rollout.kind, replicas, **spec)
        for rollout in made.values():
            if hold:
                rollout.status = cluster.wait_for(rollout.name, rollout.kind.held, timeout=120,
                                                  what=f"{rollout.name} held in its step")
        yield made
    finally:
        for rollout in made.values():
            rollout.stop()
        for key in kinds:
            with contextlib.suppress(Exception):
                cluster.kube.delete("modelrollout.io/v1alpha1", "ModelDeployment", f"{prefix}-{key}",
                                    cluster.namespace)


def command(cluster: LocalCluster, name: str, action: str, command_id: str) -> dict:
    """What `kubectl modelrollout <action>` does, and the status once the operator carried it out."""
    cluster.command(name, action, command_id)
    return cluster.wait_for(name, lambda s: s.get("handledCommand") == command_id, timeout=30,
                            what=f"{action} carried out")


def failed(results: list[Result]) -> list[Result]:
    return [r for r in results if r.status != 200]


def gateway_metric(cluster: LocalCluster, name: str, **labels) -> float:
    """The sum of the gateway's samples of ``name`` carrying ``labels``."""
    text = httpx.get(f"{cluster.gateway.url}/metrics", timeout=5).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()))


def events(cluster: LocalCluster, name: str) -> list[dict]:
    found = [e for e in cluster.kube.list("v1", "Event", cluster.namespace)
             if e["involvedObject"]["name"] == name]
    return sorted(found, key=lambda e: int(e["metadata"]["resourceVersion"]))


def route_weights(cluster: LocalCluster, name: str) -> dict[str, int]:
    """role -> weight of the route the operator wrote in status."""
    return {r["role"]: r["weight"] for r in cluster.status(name)["route"]["revisions"]}


def kill_candidate(cluster: LocalCluster, rollout: Rollout, killed: list[int]) -> None:
    """SIGKILL the candidate's pod once a process not killed before runs it (the kubelet
    restarts it after a backoff); its pid goes into ``killed``."""
    def running():
        return next((p for p in cluster.kubelet.processes(rollout.deployment)
                     if p.state == "running" and p.pid not in killed), None)

    pod = wait_for(running, 30, f"{rollout.deployment} running again")
    killed.append(pod.pid)
    cluster.kubelet.kill(pod.name)


# --- pods ------------------------------------------------------------------------------------


def test_a_killed_candidate_pod_is_waited_for_and_one_that_crash_loops_aborts_the_rollout(cluster, models):
    """One kill: the pod comes back (the kubelet restarts it) and the rollout waits in its
    step, same candidate, same split. Two more: three restarts are a crash loop, and the
    rollout aborts (CandidateCrashLoop) with all traffic on stable. Clients lose at most the
    request each stream had in flight on the candidate at each kill; shadow clients, whose
    requests the candidate never answers, lose none."""
    with rollouts(cluster, models, "kill") as made:
        killed: dict[str, list[int]] = {key: [] for key in made}
        for key, rollout in made.items():
            kill_candidate(cluster, rollout, killed[key])
        for rollout in made.values():
            cluster.kubelet.wait_ready(rollout.deployment, 1, timeout=60)
            rollout.clients.wait_results(20, since=time.monotonic())
            again = cluster.status(rollout.name)
            assert again.get("phase") != "Degraded", again.get("message")
            assert rollout.kind.held(again) and again["candidateRevision"] == rollout.candidate, again
        for _ in range(2):
            for key, rollout in made.items():
                kill_candidate(cluster, rollout, killed[key])
        ended = {r.name: cluster.wait_for(r.name, lambda s: s.get("phase") == "Degraded", timeout=90,
                                          what="the crash loop caught") for r in made.values()}
        for rollout in made.values():
            rollout.clients.wait_results(20, since=time.monotonic())
        results = {key: rollout.stop() for key, rollout in made.items()}
    for key, rollout in made.items():
        final = ended[rollout.name]
        assert final["reason"] == "CandidateCrashLoop", final["message"]
        assert final["traffic"] == {"stable": 100, "candidate": 0, "mirror": 0}
        assert final["history"][-1]["result"] == "Aborted"
        clients, testers = results[key]
        lost = failed(clients) + failed(testers)
        assert all(r.revision == rollout.candidate for r in lost), lost  # only what the candidate had
        assert len(failed(clients)) <= 3 and len(failed(testers)) <= 3, lost  # one in flight per kill
        if key == "shadow":
            assert lost == []
        assert len(clients) > 100


def test_a_stable_pod_killed_under_load_is_ejected_and_clients_lose_at_most_what_was_in_flight(cluster,
                                                                                                models):
    """Two stable pods: one is killed while clients send. The gateway stops sending to it
    (refused connections are retried on the other pod, and it is ejected after repeated
    failures); each client stream loses at most the request it had on that pod."""
    with rollouts(cluster, models, "stable", replicas=2, rate=60) as made:
        before = {key: gateway_metric(cluster, "modelrollout_gateway_ejections_total", model=r.name,
                                      revision=r.status["stableRevision"]) for key, r in made.items()}
        killed_at = {}
        for key, rollout in made.items():
            stable = f"{rollout.name}-{rollout.status['stableRevision']}"
            pod = next(p for p in cluster.kubelet.processes(stable) if p.state == "running")
            cluster.kubelet.kill(pod.name)
            killed_at[key] = time.monotonic()
        for key, rollout in made.items():
            rollout.clients.wait_results(100, since=killed_at[key])

        dropped: set[str] = set()  # the dead pod left the gateway's endpoints before an ejection

        def ejections() -> dict[str, float] | None:
            """Once the gateway stopped sending to every dead pod: ejected (the third failure in a
            row on it does it), or, on a loaded machine where the clients sent fewer than three
            requests to it first, taken out with its endpoint (the pod turned unready)."""
            now = {key: gateway_metric(cluster, "modelrollout_gateway_ejections_total", model=r.name,
                                       revision=r.status["stableRevision"]) for key, r in made.items()}
            for key, r in made.items():
                if gateway_metric(cluster, names.GATEWAY_READY_ENDPOINTS, model=r.name,
                                  revision=r.status["stableRevision"]) < 2:
                    dropped.add(key)
            return now if all(now[key] > before[key] or key in dropped for key in made) else None

        after = wait_for(ejections, 15, "the dead pods ejected or out of the endpoints", poll_seconds=0.2)
        still = {r.name: cluster.status(r.name) for r in made.values()}
        results = {key: rollout.stop() for key, rollout in made.items()}
    for key, rollout in made.items():
        clients, testers = results[key]
        assert len(failed(clients)) <= 1 and failed(testers) == [], failed(clients)
        assert all(r.revision == rollout.status["stableRevision"] for r in failed(clients))
        assert after[key] > before[key] or key in dropped, f"{rollout.name}: the dead pod was still sent to"
        assert rollout.kind.held(still[rollout.name])  # the candidate's rollout did not notice


def test_a_restarted_gateway_restores_every_route_from_status_with_the_same_weights(cluster, models):
    """The gateway keeps no state: after a restart it reads each ModelDeployment's
    status.route again. Canary clients get 30% candidate again, blue-green clients only
    stable while testers reach the preview, and the shadow's copies are compared again."""
    with rollouts(cluster, models, "gw") as made:
        weights = {key: route_weights(cluster, rollout.name) for key, rollout in made.items()}
        cluster.gateway.restart()
        up_at = time.monotonic()
        compared_before = gateway_metric(cluster, "modelrollout_shadow_comparisons_total",
                                         model=made["shadow"].name)
        after = {key: rollout.clients.wait_results(150, since=up_at) for key, rollout in made.items()}
        tested = made["bg"].testers.wait_results(30, since=up_at)
        wait_for(lambda: gateway_metric(cluster, "modelrollout_shadow_comparisons_total",
                                        model=made["shadow"].name) > compared_before + 20, 30,
                 "the shadow's copies compared again")
        served = {key: route_weights(cluster, rollout.name) for key, rollout in made.items()}
        gauges = {key: {role: gateway_metric(cluster, "modelrollout_gateway_weight_percent", model=r.name,
                                             role=role) for role in weights[key]} for key, r in made.items()}
    for key in made:
        assert served[key] == weights[key]  # nobody rewrote the route meanwhile
        assert gauges[key] == {role: float(w) for role, w in weights[key].items()}, key
        assert failed(after[key]) == [], failed(after[key])[:3]
    share = sum(r.revision == made["canary"].candidate for r in after["canary"]) / len(after["canary"])
    assert 0.15 < share < 0.45, share
    assert {r.revision for r in after["bg"]} == {made["bg"].status["stableRevision"]}
    assert {r.revision for r in tested} == {made["bg"].candidate} and failed(tested) == []
    assert {r.revision for r in after["shadow"]} == {made["shadow"].status["stableRevision"]}


# --- Prometheus ------------------------------------------------------------------------------

# A Prometheus that answers without a sample count gives inconclusive measurements: one is
# tolerated (inconclusiveLimit), the next pauses.
PROMPT = {"inconclusiveLimit": 1}
ANALYSED = {
    "canary": Kind({"canary": {"steps": [{"setWeight": 30}, {"analysis": {"metrics": ["error-rate"]}},
                                         {"setWeight": 100}]}}, "2.0.0", ({**ERROR_RATE, **PROMPT},)),
    "bg": Kind({"blueGreen": {"prePromotionAnalysis": {"metrics": ["error-rate"]}, "autoPromotionSeconds": 0,
                              "scaleDownDelaySeconds": 1}}, "2.0.0", ({**ERROR_RATE, **PROMPT},)),
    "shadow": Kind({"shadow": {"duration": "3s", "analysis": {"metrics": ["shadow-error-rate"]},
                               "scaleDownDelaySeconds": 1}}, "1.0.1", ({**SHADOW_ERRORS, **PROMPT},)),
}


def test_a_slow_or_flapping_prometheus_is_inconclusive_and_never_promotes_and_recovery_resumes(cluster,
                                                                                              models):
    """Each ModelDeployment reads Prometheus through its own proxy. Slow (answers after the
    operator's 5 s query timeout): Error measurements, two in a row, and the rollout pauses
    as AnalysisInconclusive. Flapping (every other answer a 503, so never a value and its
    sample count together): the same after a resume. Nothing is promoted meanwhile. With
    Prometheus healthy again, a resume measures afresh and the rollout completes."""
    proxies = {key: UnreliableProxy(cluster.prometheus.url).start() for key in ANALYSED}
    seen: dict[str, list[dict]] = {key: [] for key in ANALYSED}
    made: dict[str, Rollout] = {}

    def paused(key: str):
        def check(status: dict) -> bool:
            seen[key].append(status)
            return status.get("reason") == "AnalysisInconclusive"
        return check

    try:
        for proxy in proxies.values():
            proxy.slow(7.0)
        for key, kind in ANALYSED.items():
            deploy(cluster, f"prom-{key}", model_of(models, "1.0.0"), kind, prometheus=proxies[key].url)
        for key, kind in ANALYSED.items():
            name = f"prom-{key}"
            cluster.wait_for(name, healthy_on("1.0.0"), what=f"{name} on 1.0.0")
            wait_serving(cluster.gateway.url, name)
            made[key] = Rollout(name, kind, Traffic(cluster.gateway.url, name, rate_per_second=30).start())
            if key == "bg":
                made[key].testers = Traffic(cluster.gateway.url, name, rate_per_second=20,
                                            headers=PREVIEW).start()
            deploy(cluster, name, model_of(models, kind.version), kind, prometheus=proxies[key].url)
        slow = {key: cluster.wait_for(r.name, paused(key), timeout=120, what="slow: paused")
                for key, r in made.items()}
        for proxy in proxies.values():
            proxy.flapping()
        flapped_from = {key: proxies[key].failed for key in made}
        for rollout in made.values():
            command(cluster, rollout.name, "resume", f"{rollout.name}-flapping")
        flapping = {key: cluster.wait_for(r.name, paused(key), timeout=120, what="flapping: paused")
                    for key, r in made.items()}
        for proxy in proxies.values():
            proxy.healthy()
        for rollout in made.values():
            command(cluster, rollout.name, "resume", f"{rollout.name}-recovered")
        final = {key: cluster.wait_for(r.name, healthy_on(r.kind.version), timeout=120, what="promoted")
                 for key, r in made.items()}
        results = {key: rollout.stop() for key, rollout in made.items()}
    finally:
        for rollout in made.values():
            rollout.stop()
            with contextlib.suppress(Exception):
                cluster.kube.delete("modelrollout.io/v1alpha1", "ModelDeployment", rollout.name,
                                    cluster.namespace)
        for proxy in proxies.values():
            proxy.stop()
    for key in made:
        errors = [m for m in slow[key]["analysis"] if m["phase"] == "Error"]
        assert len(errors) >= 2 and all("Prometheus unreachable: ReadTimeout" in m["message"] for m in errors)
        assert slow[key]["stableVersion"] == "1.0.0"
        flapped = [m for m in flapping[key]["analysis"] if m["phase"] == "Error"]
        assert len(flapped) >= 2 and all("503" in m["message"] for m in flapped), flapping[key]["analysis"]
        assert proxies[key].failed > flapped_from[key]
        assert not [m for m in flapping[key]["analysis"] if m["phase"] == "Successful"]
        # Never promoted (nor switched) while Prometheus was slow or flapping.
        assert all(s.get("stableVersion") == "1.0.0" for s in seen[key])
        assert all((s.get("traffic") or {}).get("candidate", 0) in (0, 30) for s in seen[key])
        assert final[key]["history"][-1]["result"] == "Promoted"
        clients, testers = results[key]
        assert failed(clients) == [] and failed(testers) == []


# --- the API server --------------------------------------------------------------------------

MOVING = {
    "canary": Kind({"canary": {"steps": [{"setWeight": 20}, {"pause": {"duration": "3s"}}, {"setWeight": 60},
                                         {"pause": {"duration": "3s"}}]}}, "2.0.0"),
    "bg": Kind({"blueGreen": {"autoPromotionSeconds": 3, "scaleDownDelaySeconds": 1}}, "2.0.0"),
    "shadow": Kind({"shadow": {"duration": "4s", "scaleDownDelaySeconds": 1}}, "1.0.1"),
}
REFUSALS = 4  # of each kind: 500, then 409, then 429
WRITES = frozenset({"create", "patch", "update", "delete"})


def test_api_server_errors_are_retried_with_backoff_without_skipping_or_repeating_a_step(cluster, models):
    """While rollouts move, the API server refuses the operator's writes: 500 four times, then
    409 four times, then 429 (Retry-After: 2 s) four times. The operator backs off (each
    rollout's refused attempts further and further apart, never at the 0.5 s tick), and once
    the API server answers again every rollout goes on from where it was: each canary weight
    once and in order, one history entry per result, one Event per step, and a Warning
    ReconcileFailing Event (then ReconcileRecovered) naming what was refused."""
    seen: dict[str, list[dict]] = {key: [] for key in MOVING}
    with rollouts(cluster, models, "api", kinds=MOVING, hold=False) as made:
        cluster.wait_for(made["canary"].name, lambda s: (s.get("traffic") or {}).get("candidate") == 20,
                         timeout=120, what="the canary at 20%")
        faults = [cluster.kube.inject(Fault(status, verbs=set(WRITES), identity=OPERATOR, count=REFUSALS,
                                            seconds=60, retry_after_seconds=2)) for status in (500, 409, 429)]

        def spent() -> bool:
            for key, rollout in made.items():
                seen[key].append(cluster.status(rollout.name))
            return sum(f.hits for f in faults) >= 3 * REFUSALS

        wait_for(spent, 60, "every refusal given", poll_seconds=0.2)
        for key, rollout in made.items():
            def promoted(status: dict, key: str = key) -> bool:
                seen[key].append(status)
                return healthy_on(MOVING[key].version)(status)

            cluster.wait_for(rollout.name, promoted, timeout=120, what=f"{rollout.name} promoted")
            rollout.clients.wait_results(20, since=time.monotonic())
        told = {key: events(cluster, rollout.name) for key, rollout in made.items()}
        results = {key: rollout.stop() for key, rollout in made.items()}
    # Backoff: a rollout's refused reconciles (its Events aside) come further and further apart.
    for key, rollout in made.items():
        times = sorted(at for f in faults for at, call in f.refused
                       if call.resource != "events" and rollout.name in (call.name or ""))
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert times and all(gap >= 0.8 for gap in gaps), (key, gaps)
        assert all(b >= a - 0.3 for a, b in zip(gaps, gaps[1:], strict=False)), (key, gaps)
    weights = [(s.get("traffic") or {}).get("candidate") for s in seen["canary"]]
    assert [w for i, w in enumerate(weights) if w and (i == 0 or weights[i - 1] != w)] == [20, 60]
    steps = [s.get("currentStep") or 0 for s in seen["canary"] if s.get("candidateRevision")]
    assert steps == sorted(steps)  # never back to an earlier step
    for key in made:
        final = seen[key][-1]
        assert [h["result"] for h in final["history"]] == ["Deployed", "Promoted"], final["history"]
        reasons = [e["reason"] for e in told[key]]
        assert reasons.count("NewRevision") == 1 and reasons.count("Promoted") == 1, reasons
        if key == "canary":
            assert reasons.count("WeightSet") == 2, reasons
        assert failed(results[key][0]) == [] and failed(results[key][1]) == []
    warnings = [e for key in made for e in told[key] if e["reason"] == "ReconcileFailing"]
    assert warnings and all(e["type"] == "Warning" for e in warnings)
    said = " ".join(e["message"] for key in made for e in told[key] if e["reason"].startswith("Reconcile"))
    assert "500 InternalError" in said and "409 Conflict" in said and "429 TooManyRequests" in said, said
    assert any(e["reason"] == "ReconcileRecovered" for key in made for e in told[key])


# --- the model itself ------------------------------------------------------------------------

DEADLINE_SECONDS = 20


def test_an_unreachable_or_tampered_model_never_becomes_ready_and_the_deadline_says_why(cluster, models):
    """The candidate's model URL refuses connections, or serves a file whose sha256 is not
    the one in the spec: its pods stay unready, no client reaches it, and at
    progressDeadlineSeconds the rollout aborts with the pods' own reason in the message."""
    closed = free_port()  # nothing listens there
    wrong = hashlib.sha256(models["1.0.0"].read_bytes()).hexdigest()  # not the served file's
    cases = {f"{cause}-{key}": kind for cause in ("gone", "sha") for key, kind in HELD.items()}
    with ModelFiles(models["2.0.0"].parent) as files:
        def candidate(key: str) -> dict:
            file = models[cases[key].version].name
            if key.startswith("gone"):
                return {"uri": f"http://127.0.0.1:{closed}/{file}", "version": cases[key].version}
            return {"uri": files.url(file), "version": cases[key].version, "sha256": wrong}

        with rollouts(cluster, models, "model", kinds=cases, candidate=candidate, hold=False,
                      progressDeadlineSeconds=DEADLINE_SECONDS) as made:
            ended = {key: cluster.wait_for(r.name, lambda s: s.get("phase") == "Degraded", timeout=90,
                                           what="the deadline") for key, r in made.items()}
            for rollout in made.values():
                rollout.clients.wait_results(20, since=time.monotonic())
            results = {key: rollout.stop() for key, rollout in made.items()}
    for key, final in ended.items():
        assert final["reason"] == "ProgressDeadlineExceeded", final["message"]
        assert f"progressDeadlineSeconds ({DEADLINE_SECONDS})" in final["message"]
        if key.startswith("gone"):
            assert "model failed to load: could not download" in final["message"], final["message"]
            assert "ConnectError" in final["message"], final["message"]
        else:
            assert "model failed to load: sha256 of" in final["message"] and wrong in final["message"]
        assert final["traffic"] == {"stable": 100, "candidate": 0, "mirror": 0}
        assert final["history"][-1]["result"] == "Aborted"
        clients, testers = results[key]
        assert failed(clients) == [] and failed(testers) == []
        assert {r.version for r in clients} == {"1.0.0"}
