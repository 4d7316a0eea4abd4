"""End to end: blue-green and shadow with real processes and steady client traffic through
the gateway (builtin routing). Every response names the revision that answered it
(X-Modelrollout-Revision), so "no client was ever answered by it" is checked per request."""

from __future__ import annotations

import time

import pytest

from modelrollout.harness.cluster import LocalCluster, model_deployment
from modelrollout.harness.traffic import Result, Traffic, wait_serving
from tests.support.e2e import ERROR_RATE, healthy_on

pytestmark = pytest.mark.slow

INTERVAL = 3.0
PREVIEW = {"x-modelrollout-revision": "preview"}
SHADOW_METRICS = [
    {"name": "shadow-agreement", "thresholdRange": {"min": 0.99}, "minSamples": 20},
    # Both sides run the same kind of model on one loaded machine, and a p99 over a few
    # seconds is the slowest few requests: a spike or two is tolerated, as users would.
    {"name": "shadow-latency-ratio", "thresholdRange": {"max": 10}, "minSamples": 20, "failureLimit": 2},
    {"name": "shadow-error-rate", "thresholdRange": {"max": 0.01}, "minSamples": 20},
]




def deploy(cluster: LocalCluster, models, name: str, version: str, strategy: dict,
           metrics: list[dict] | None = None) -> None:
    cluster.apply(model_deployment(name, models[version], version, cluster.prometheus.url, [], INTERVAL,
                                   [ERROR_RATE] if metrics is None else metrics, strategy=strategy))


def start(cluster: LocalCluster, models, name: str, strategy: dict, metrics: list[dict] | None = None,
          **traffic) -> Traffic:
    """1.0.0 deployed and healthy, then client traffic through the gateway."""
    deploy(cluster, models, name, "1.0.0", strategy, metrics)
    cluster.wait_for(name, healthy_on("1.0.0"), what="1.0.0 healthy")
    wait_serving(cluster.gateway.url, name)
    return Traffic(cluster.gateway.url, name, **traffic).start()



def follow(cluster: LocalCluster, name: str, done, timeout: float = 150) -> list[tuple[float, dict]]:
    """Every status seen until ``done(status)``, each with when it was seen."""
    seen: list[tuple[float, dict]] = []

    def check(status: dict) -> bool:
        seen.append((time.monotonic(), status))
        return done(status)

    cluster.wait_for(name, check, timeout=timeout, what="the rollout to settle")
    return seen


def events(cluster: LocalCluster, name: str) -> list[tuple[str, str]]:
    """(reason, message) of the ModelDeployment's Events."""
    return [(e["reason"], e["message"]) for e in cluster.kube.list("v1", "Event", cluster.namespace)
            if e["involvedObject"]["name"] == name]


def versions_in_order(results: list[Result]) -> list[str]:
    """The model versions that answered, with repeats folded: ["1.0.0", "2.0.0"] is one switch."""
    folded: list[str] = []
    for result in results:
        if result.version and (not folded or folded[-1] != result.version):
            folded.append(result.version)
    return folded


def test_blue_green_previews_analyses_and_switches_every_client_at_once(cluster, models):
    name = "bg"
    strategy = {"blueGreen": {"prePromotionAnalysis": {"metrics": ["error-rate"]},
                              "autoPromotionSeconds": 2,
                              "postPromotionAnalysis": {"metrics": ["error-rate"]},
                              "scaleDownDelaySeconds": 4}}
    clients = start(cluster, models, name, strategy)
    previews = None
    try:
        deploy(cluster, models, name, "2.0.0", strategy)
        # Testers start once the preview is up and answering, as people would.
        cluster.wait_for(name, lambda s: s.get("gatePassed"), timeout=120, what="the preview passed its gate")
        previews = Traffic(cluster.gateway.url, name, rate_per_second=20, headers=PREVIEW).start()
        seen = follow(cluster, name, healthy_on("2.0.0"))
        clients.wait_results(20, since=time.monotonic())
    finally:
        results, previewed = clients.stop(), previews.stop() if previews else []
    statuses = [status for _, status in seen]
    # Pre-promotion analysis ran on the preview's own traffic, then one switch, then the
    # post-promotion analysis, then the keep-warm window of the old revision.
    told = events(cluster, name)
    assert ("StepDone", "pre-promotion analysis successful") in told
    assert any(reason == "Switched" for reason, _ in told)
    assert any(reason == "Promoted" and "post-promotion analysis successful" in text for reason, text in told)
    assert any(reason == "ScaleDownDelay" for reason, _ in told)
    assert all((s.get("traffic") or {}).get("candidate") in (0, 100, None) for s in statuses)
    preview_revision = next(s["blueGreen"]["previewRevision"] for s in statuses
                            if (s.get("blueGreen") or {}).get("previewRevision"))
    assert next(s for s in statuses if s.get("preview"))["preview"] == {
        "header": "x-modelrollout-revision: preview", "service": f"{name}-preview"}
    # Clients: answered by 1.0.0, then all by 2.0.0 from one moment on, none failed.
    assert [r for r in results + previewed if r.status != 200] == []
    assert versions_in_order(results) == ["1.0.0", "2.0.0"]
    # The preview header reached 2.0.0 before any client did.
    first_client_v2 = next(r.at for r in results if r.version == "2.0.0")
    assert any(r.version == "2.0.0" and r.revision == preview_revision and r.at < first_client_v2
               for r in previewed)


def test_blue_green_failing_post_promotion_analysis_switches_back_in_one_write(cluster, models):
    name = "bg-back"
    strategy = {"blueGreen": {"autoPromotionSeconds": 0, "postPromotionAnalysis": {"metrics": ["error-rate"]},
                              "abortScaleDownDelaySeconds": 2}}
    clients = start(cluster, models, name, strategy)
    try:
        deploy(cluster, models, name, "3.0.0", strategy)  # fails on half of the real inputs
        switched = cluster.wait_for(name, lambda s: (s.get("traffic") or {}).get("candidate") == 100,
                                    timeout=120, what="the switch to 3.0.0")
        switched_at = time.monotonic()
        final = cluster.wait_for(name, lambda s: s.get("phase") == "Degraded", timeout=60,
                                 what="the switch back")
        back_at = time.monotonic()
        clients.wait_results(20, since=back_at + 1)
    finally:
        results = clients.stop()
    assert final["reason"] == "AnalysisFailed" and "post-promotion error-rate" in final["message"]
    assert final["traffic"] == {"stable": 100, "candidate": 0, "mirror": 0}
    assert final["stableVersion"] == "1.0.0"
    assert back_at - switched_at <= 2 * INTERVAL + 1.5  # two analysis intervals, plus reading the status
    failed = [r for r in results if r.status != 200]
    assert failed and all(r.revision == switched["candidateRevision"] for r in failed)
    # Only while 3.0.0 had the traffic (the gateway learns of each switch a moment later).
    assert all(switched_at - 2 <= r.at <= back_at + 2 for r in failed)
    assert all(r.version == "1.0.0" for r in results if r.at > back_at + 2)


def test_a_shadow_that_agrees_is_promoted_and_answered_no_client_before(cluster, models):
    name = "shadow-ok"
    strategy = {"shadow": {"duration": "6s", "minComparisons": 40, "then": "promote",
                           "scaleDownDelaySeconds": 2,
                           "analysis": {"metrics": [m["name"] for m in SHADOW_METRICS]}}}
    clients = start(cluster, models, name, strategy, SHADOW_METRICS)
    try:
        deploy(cluster, models, name, "1.0.1", strategy, SHADOW_METRICS)  # 1.0.0 exported again
        seen = follow(cluster, name, healthy_on("1.0.1"))
        promoted_seen = next(at for at, status in seen if status.get("stableVersion") == "1.0.1")
        clients.wait_results(20, since=time.monotonic())
    finally:
        results = clients.stop()
    statuses = [status for _, status in seen]
    shadowing = [s for s in statuses if s.get("reason") == "Shadowing" and (s.get("shadow") or {})]
    assert max(s["shadow"]["comparisons"] for s in shadowing) >= 40
    assert max(s["shadow"].get("agreement") or 0 for s in shadowing) >= 0.99
    assert all((s.get("traffic") or {}).get("candidate", 0) == 0 for s in statuses)
    candidate = shadowing[0]["candidateRevision"]
    assert [r for r in results if r.status != 200] == []
    # Before the promotion was seen, the candidate answered copies only, never a client.
    assert not [r for r in results if r.revision == candidate and r.at < promoted_seen - 2]
    assert versions_in_order(results) == ["1.0.0", "1.0.1"]
    assert statuses[-1]["history"][-1]["result"] == "Promoted"


def test_a_shadow_that_disagrees_is_caught_without_any_client_seeing_it(cluster, models):
    name = "shadow-bad"
    strategy = {"shadow": {"duration": "5m", "then": "promote",
                           "analysis": {"metrics": [m["name"] for m in SHADOW_METRICS]}}}
    clients = start(cluster, models, name, strategy, SHADOW_METRICS)
    try:
        deploy(cluster, models, name, "2.0.0", strategy, SHADOW_METRICS)  # healthy, fast, other answers
        seen = follow(cluster, name, lambda s: s.get("phase") == "Degraded")
        clients.wait_results(20, since=time.monotonic())
    finally:
        results = clients.stop()
    final = seen[-1][1]
    assert final["reason"] == "AnalysisFailed" and "shadow-agreement" in final["message"]
    assert "shadow-latency-ratio" not in final["message"] and "shadow-error-rate" not in final["message"]
    candidate = final["history"][-1]["revision"]
    assert final["history"][-1]["result"] == "Aborted" and final["traffic"]["mirror"] == 0
    assert [r for r in results if r.status != 200] == []
    assert not [r for r in results if r.revision == candidate or r.version == "2.0.0"]  # not one client


def test_a_restarted_operator_resumes_a_waiting_preview_and_a_running_shadow_without_moving_traffic(
        cluster, models):
    strategies = {
        "bg-restart": {"blueGreen": {}},  # waits for a person to promote
        "shadow-restart": {"shadow": {"duration": "1h", "analysis": {"metrics": ["shadow-error-rate"]}}},
    }
    metrics = [ERROR_RATE, SHADOW_METRICS[2]]
    traffic = {name: start(cluster, models, name, strategy, metrics) for name, strategy in strategies.items()}
    try:
        for name, strategy in strategies.items():
            deploy(cluster, models, name, "2.0.0", strategy, metrics)
        waiting = cluster.wait_for("bg-restart", lambda s: s.get("reason") == "WaitingForPromotion",
                                   timeout=120, what="the preview waiting for a person")
        shadowing = cluster.wait_for("shadow-restart", lambda s: s.get("reason") == "Shadowing"
                                     and s["traffic"]["mirror"] == 100, timeout=120, what="the shadow")
        cluster.operator.kill()
        down_at = time.monotonic()
        for name in strategies:
            traffic[name].wait_results(100, since=down_at)
        assert cluster.status("bg-restart")["reason"] == "WaitingForPromotion"
        cluster.operator.restart()
        again = cluster.wait_for("shadow-restart",
                                 lambda s: s["shadow"]["comparisons"] > shadowing["shadow"]["comparisons"],
                                 timeout=60, what="the shadow counting again")
        assert again["candidateRevision"] == shadowing["candidateRevision"]
        assert again["traffic"]["mirror"] == 100 and again["shadow"]["stage"] == "Shadowing"
        assert again["shadow"]["stageStartedAt"] == shadowing["shadow"]["stageStartedAt"]  # not started over
        assert cluster.status("bg-restart")["candidateRevision"] == waiting["candidateRevision"]
        for name in strategies:
            cluster.command(name, "promote", f"{name}-1")
        for name in strategies:
            cluster.wait_for(name, lambda s: s.get("stableVersion") == "2.0.0", timeout=120, what="promoted")
    finally:
        results = {name: t.stop() for name, t in traffic.items()}
    for name, answers in results.items():
        assert [r for r in answers if r.status != 200] == [], name
        assert versions_in_order(answers) == ["1.0.0", "2.0.0"], name  # one switch, by the promote
