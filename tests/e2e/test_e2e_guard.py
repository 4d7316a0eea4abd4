"""End to end: after the rollout. A promoted model meets traffic it fails or drifts on; the
guard falls back, and traffic comes back by hand or on its own.

- drifted inputs: input-drift fires the guard on the promoted 2.0.0; all traffic goes to
  the previous stable 1.0.0 in one routing write; an operator killed meanwhile changes
  nothing; a person recovers once the inputs are back;
- failing inputs with per-request fallback: clients see no error at all while the guard
  decides, then the named fallback model serves, and traffic goes back on its own once the
  guarded model's copies are answered again;
- a fallback model that cannot load (wrong sha256) is reported and never gets a request.

Real processes, real Prometheus, traffic through the gateway.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from modelrollout.serving.examples import build_faulty_mlp, build_mlp

from modelrollout.harness.cluster import LocalCluster, model_deployment
from modelrollout.harness.process import wait_for
from modelrollout.harness.traffic import Traffic, wait_serving
from tests.support.e2e import ERROR_RATE, healthy_on
from tests.support.processes import MODELROLLOUT

pytestmark = pytest.mark.slow

INTERVAL = 3.0
DRIFT = {"name": "input-drift", "thresholdRange": {"max": 0.25}, "minSamples": 50, "inconclusiveLimit": 10}
SHIFT = 3.0  # added to every feature: far outside the uniform [0, 1) the models were profiled on


def profiled(folder: Path, model: bytes) -> Path:
    """A model folder with a profile of the inputs the harness's clients send (uniform [0, 1))."""
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(model)
    sample = folder.parent / f"{folder.name}-sample.npy"
    np.save(sample, np.random.default_rng(0).random((2000, 4)).astype(np.float32))
    done = subprocess.run([MODELROLLOUT, "profile", "--model", str(folder), "--data", str(sample),
                           "--out", str(folder / "profile.json")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return folder


def spec_of(cluster: LocalCluster, name: str, model: Path, version: str, metrics: list, guard: dict,
            fallback: dict) -> dict:
    steps = [{"setWeight": 50}]
    doc = model_deployment(name, model, version, cluster.prometheus.url, steps, INTERVAL, metrics)
    doc["spec"].update(guard=guard, fallback=fallback)
    return doc


def answers_from(traffic: Traffic, revision: str, count: int, since: float, timeout: float = 60.0) -> list:
    """Once an answer after ``since`` comes from ``revision``, the ``count`` answers after it
    (bounded): the gateway acts on a route a moment after the operator wrote it."""
    deadline = time.monotonic() + timeout
    while True:
        first = next((r for r in list(traffic.results) if r.at > since and r.revision == revision), None)
        if first is not None:
            return traffic.wait_results(count, since=first.at, timeout=timeout)
        if time.monotonic() > deadline:
            raise TimeoutError(f"no answer from {revision} within {timeout} s")
        time.sleep(0.05)


def reasons(cluster: LocalCluster, name: str) -> list[str]:
    found = [e for e in cluster.kube.list("v1", "Event", cluster.namespace)
             if e["involvedObject"]["name"] == name]
    found.sort(key=lambda e: int(e["metadata"]["resourceVersion"]))
    return [e["reason"] for e in found]


def reconciled(url: str) -> float:
    text = httpx.get(url, timeout=5).text
    return sum(float(v) for v in re.findall(r"^modelrollout_reconcile_duration_seconds_count\{[^}]*\} (\S+)$",
                                            text, re.M))


def last_of(guard: dict, metric: str) -> str | None:
    mine = [m for m in guard.get("analysis") or [] if m["metric"] == metric]
    return mine[-1]["phase"] if mine else None


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("guarded")
    return {"1.0.0": profiled(root / "v1", build_mlp([4, 16, 3], seed=0)),
            "2.0.0": profiled(root / "v2", build_mlp([4, 16, 3], seed=1)),
            "faulty": profiled(root / "faulty", build_faulty_mlp([4, 16, 3], seed=2, fail_above=1.0)),
            "simple": profiled(root / "simple", build_mlp([4, 16, 3], seed=5))}


def test_drifted_inputs_fire_the_guard_which_falls_back_to_the_previous_stable_until_a_person_recovers(
        cluster, folders):
    name = "guard-drift"
    # prediction-shift is measured against the model's profile (nothing else is on its traffic);
    # its bound is above ln 2, the largest divergence there is: measured, never fired.
    shift = {"name": "prediction-shift", "thresholdRange": {"max": 0.7}, "minSamples": 20,
             "inconclusiveLimit": 10}
    guard = {"triggers": [{"metric": "input-drift", "for": "3s", "failureLimit": 1},
                          {"metric": "prediction-shift", "for": "3s"}]}
    fallback = {"previousStable": {}}
    metrics = [DRIFT, shift]
    cluster.apply(spec_of(cluster, name, folders["1.0.0"], "1.0.0", metrics, guard, fallback))
    first = cluster.wait_for(name, healthy_on("1.0.0"), what="1.0.0 healthy")
    wait_serving(cluster.gateway.url, name)
    traffic = Traffic(cluster.gateway.url, name, rate_per_second=40, max_seconds=420).start()
    try:
        cluster.apply(spec_of(cluster, name, folders["2.0.0"], "2.0.0", metrics, guard, fallback))
        promoted = cluster.wait_for(name, healthy_on("2.0.0"), timeout=150, what="2.0.0 promoted")
        guarded, previous = promoted["stableRevision"], first["stableRevision"]
        healthy = lambda s: all(last_of(s.get("guard") or {}, metric) == "Successful"  # noqa: E731
                                for metric in ("input-drift", "prediction-shift"))
        watched = cluster.wait_for(name, healthy, timeout=120, what="the guard measuring undrifted inputs")
        traffic.offset = SHIFT
        active = cluster.wait_for(name, lambda s: (s.get("fallback") or {}).get("active"), timeout=150,
                                  what="the fallback taking the traffic")
        on_fallback = answers_from(traffic, previous, 40, since=time.monotonic())
        # Killed while the fallback serves: nothing moves, and a new operator reads it all back.
        cluster.operator.kill()
        while_down = traffic.wait_results(40, since=time.monotonic())
        cluster.operator.restart()
        wait_for(lambda: reconciled(cluster.operator.metrics_url) >= 3, 60, "the new operator's reconciles")
        restarted = cluster.status(name)
        traffic.offset = 0.0
        cluster.wait_for(name, lambda s: last_of(s["guard"], "input-drift") == "Successful", timeout=150,
                         what="the guarded revision's mirrored inputs healthy again")
        cluster.command(name, "recover", "guard-drift-recover-1")
        back = cluster.wait_for(name, lambda s: not s["fallback"]["active"], timeout=60, what="the recovery")
        on_guarded = answers_from(traffic, guarded, 40, since=time.monotonic())
    finally:
        results = traffic.stop()
    shifts = [m for m in watched["guard"]["analysis"] if m["metric"] == "prediction-shift"]
    assert shifts[-1]["value"] is not None and 0 <= shifts[-1]["value"] < 0.7  # against the profile
    guard_seen = active["guard"]
    assert active["phase"] == "Degraded" and active["reason"] == "FallbackActive"
    assert active["fallback"]["revision"] == previous
    assert active["stableRevision"] == guarded  # a status transition: stable is still the guarded one
    assert guard_seen["state"] == "Fired" and "input-drift" in guard_seen["trigger"]
    since = re.search(r"since (\S+) ", guard_seen["trigger"]).group(1)
    fired_after = (_time(guard_seen["firedAt"]) - _time(since))
    assert fired_after <= 3 + 2 * INTERVAL, fired_after  # within its for plus two intervals
    assert {r.revision for r in on_fallback} == {previous}
    assert {r.revision for r in while_down} == {previous}
    for key in ("guard", "fallback", "stableRevision", "reason"):
        want, got = active[key], restarted[key]
        if key == "guard":  # measuring goes on: its measurements and next time move, nothing else
            want, got = ({k: v for k, v in d.items() if k not in ("analysis", "nextAt")} for d in (want, got))
        assert got == want, key
    assert back["guard"]["state"] == "Watching" and back["phase"] == "Healthy"
    assert {r.revision for r in on_guarded} == {guarded}
    told = reasons(cluster, name)
    assert told.count("GuardFired") == 1 and told.count("FallbackActive") == 1 and "Recovered" in told
    assert [r for r in results if r.status != 200] == []  # drift is not an error: nobody failed


def test_per_request_fallback_hides_a_failing_model_and_traffic_comes_back_on_its_own(cluster, folders):
    name = "guard-fails"
    errors = {**ERROR_RATE, "interval": "2s"}
    guard = {"triggers": [{"metric": "error-rate", "for": "2s", "failureLimit": 1}],
             "recovery": {"automatic": True, "healthyFor": "6s"}}
    fallback = {"model": {"uri": folders["simple"].resolve().as_uri(), "version": "simple-1"},
                "perRequest": {"deadline": "2s"}}
    cluster.apply(spec_of(cluster, name, folders["faulty"], "1.0.0", [errors], guard, fallback))
    ready = cluster.wait_for(name, lambda s: s.get("phase") == "Healthy"
                             and (s.get("fallback") or {}).get("readyReplicas", 0) >= 1,
                             what="1.0.0 healthy, its fallback warm")
    guarded, standby = ready["stableRevision"], ready["fallback"]["revision"]
    cluster.wait_for(name, lambda s: (s.get("route") or {}).get("fallback"), timeout=30,
                     what="the route naming the fallback")
    wait_serving(cluster.gateway.url, name)
    traffic = Traffic(cluster.gateway.url, name, rate_per_second=40, max_seconds=300).start()
    try:
        traffic.wait_results(40)
        traffic.offset = SHIFT  # every request now fails on the guarded model
        shifted = time.monotonic()
        # The clients send one request at a time: the first answer after the shift may be to a
        # request built before it (today's inputs); every later one carried shifted inputs.
        hidden = traffic.wait_results(41, since=shifted)[1:]
        active = cluster.wait_for(name, lambda s: (s.get("fallback") or {}).get("active"), timeout=120,
                                  what="the fallback taking the traffic")
        traffic.offset = 0.0
        back = cluster.wait_for(name, lambda s: s["guard"]["state"] == "Watching"
                                and not s["fallback"]["active"], timeout=120, what="the automatic recovery")
        on_guarded = answers_from(traffic, guarded, 40, since=time.monotonic())
    finally:
        results = traffic.stop()
    assert len(hidden) >= 40 and {r.revision for r in hidden} == {standby}  # the fallback, per request
    assert active["reason"] == "FallbackActive" and "error-rate" in active["guard"]["trigger"]
    assert back["phase"] == "Healthy" and "Recovered" in reasons(cluster, name)
    assert {r.revision for r in on_guarded} == {guarded}
    assert [r for r in results if r.status != 200] == []  # no client saw an error


def test_a_fallback_model_that_cannot_load_is_reported_and_never_routed_to(cluster, folders, tmp_path):
    name = "guard-unready"
    guard = {"triggers": [{"metric": "error-rate", "for": "2s", "failureLimit": 1}]}
    copy = tmp_path / "simple"
    shutil.copytree(folders["simple"], copy)
    fallback = {"model": {"uri": copy.resolve().as_uri(), "version": "simple-1", "sha256": "0" * 64}}
    errors = {**ERROR_RATE, "interval": "2s"}
    cluster.apply(spec_of(cluster, name, folders["faulty"], "1.0.0", [errors], guard, fallback))
    ready = cluster.wait_for(name, lambda s: s.get("phase") == "Healthy" and s.get("fallback"),
                             what="1.0.0 healthy")
    wait_serving(cluster.gateway.url, name)
    traffic = Traffic(cluster.gateway.url, name, rate_per_second=40, max_seconds=240, offset=SHIFT).start()
    try:
        fired = cluster.wait_for(name, lambda s: s.get("reason") == "FallbackNotReady"
                                 and "sha256" in (s.get("message") or ""), timeout=150,
                                 what="the guard reporting an unready fallback")
        after = traffic.wait_results(40, since=time.monotonic())
    finally:
        results = traffic.stop()
    standby = ready["fallback"]["revision"]
    assert fired["phase"] == "Degraded" and not fired["fallback"]["active"]
    assert fired["fallback"]["readyReplicas"] == 0 and "sha256" in fired["fallback"]["problem"]
    assert [r for r in results if r.revision == standby] == []  # never a request to it
    assert {r.status for r in after} == {500}  # no fallback to hide the failures: the guard says so


def _time(text: str) -> float:
    from modelrollout.operator.status import parse_time
    return parse_time(text).timestamp()
