"""`modelrollout demo`: the three strategies on this machine, no cluster needed.

It builds versions of a small model, starts the local harness (emulated API server,
kubelet stand-in running real `modelrollout serve` processes, Prometheus, gateway and
operator), sends steady client traffic through the gateway and rolls out, each strategy
showing what it is for:

    shadow      1.0.1 (1.0.0 exported again) answers copies only, agrees: promoted;
                2.0.0 answers differently: caught, and not one client request saw it
    canary      4.0.0 (1.0.0 retrained) step by step: promoted; 3.0.0 fails on half of the
                real inputs: the analysis catches it at 20% and rolls it back; 6.0.0 is
                healthy and fast but predicts other classes: error rate and latency pass,
                the prediction-shift gate rolls it back
    blue-green  5.0.0 previewed (testers reach it by header), analysed on that traffic,
                then every client switched at once, the old revision kept warm a while
    guard       after the rollout: 7.0.0 is promoted, then the clients' inputs drift and it
                fails on them; the gateway answers from the simpler fallback model request
                by request, the guard fires and sends all traffic there, and once the inputs
                are back traffic returns to 7.0.0 on its own

``--strategy`` runs one of them from 1.0.0. It prints the rollout as it goes and writes a
chart (traffic share, error ratio and latency per version as the clients saw them, the
error rate the analysis read from Prometheus, the shadow's agreement and the guard's
moments; one colour per version in every panel) and a summary into the output folder.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import click
import httpx

from modelrollout.harness.cluster import LocalCluster, model_deployment
from modelrollout.harness.traffic import Result, Traffic, wait_serving
from modelrollout.operator.analysis.providers.prometheus import PrometheusError, PrometheusProvider
from modelrollout.operator.analysis.queries import BUILTIN, render
from modelrollout.serving.examples import write_model_versions

from .chart import Limits, Sample, draw

NAME = "iris"
INTERVAL_SECONDS = 4
ERROR_RATE_MAX = 0.05
PREDICTION_SHIFT_MAX = 0.05  # Jensen-Shannon divergence of the class shares, candidate vs stable
PREVIEW_HEADER = {"x-modelrollout-revision": "preview"}
# A busy machine scrapes a candidate's first requests an interval or two late: each metric
# measures again meanwhile (inconclusiveLimit) rather than pause for a person.
_PATIENT = {"inconclusiveLimit": 6}
METRICS = [
    {"name": "error-rate", "thresholdRange": {"max": ERROR_RATE_MAX}, "minSamples": 5, **_PATIENT},
    {"name": "latency-p99", "thresholdRange": {"max": 0.25}, "minSamples": 5, **_PATIENT},
    {"name": "prediction-shift", "thresholdRange": {"max": PREDICTION_SHIFT_MAX}, "minSamples": 15,
     **_PATIENT},
    {"name": "shadow-agreement", "thresholdRange": {"min": 0.99}, "minSamples": 20, **_PATIENT},
    {"name": "shadow-error-rate", "thresholdRange": {"max": 0.01}, "minSamples": 20, **_PATIENT},
]
STRATEGIES = {
    "shadow": {"shadow": {"duration": "8s", "minComparisons": 100, "then": "promote",
                          "scaleDownDelaySeconds": 3,
                          "analysis": {"metrics": ["shadow-agreement", "shadow-error-rate"]}}},
    "canary": {"canary": {"steps": [
        {"setWeight": 20}, {"analysis": {"metrics": ["error-rate", "latency-p99", "prediction-shift"]}},
        {"setWeight": 50}, {"analysis": {"metrics": ["error-rate", "latency-p99", "prediction-shift"]}},
    ]}},
    "blue-green": {"blueGreen": {"prePromotionAnalysis": {"metrics": ["error-rate"]},
                                 "autoPromotionSeconds": 2,
                                 "postPromotionAnalysis": {"metrics": ["error-rate"]},
                                 "scaleDownDelaySeconds": 6}},
    "guard": {"canary": {"steps": [{"setWeight": 50},
                                   {"analysis": {"metrics": ["error-rate", "latency-p99"]}}]}},
}
# The fourth act (docs/guard.md): the promoted model watched, a simpler model to fall back to.
GUARD = {"triggers": [{"metric": "error-rate", "for": "4s", "failureLimit": 1}],
         "recovery": {"automatic": True, "healthyFor": "8s"}}
FALLBACK_VERSION = "simple"
DRIFT = 1.5  # added to every feature the clients send once 7.0.0 is promoted: tomorrow's inputs


@dataclass(frozen=True)
class Rollout:
    strategy: str  # a key of STRATEGIES
    version: str
    expected: str  # "promoted" or "rolled back"
    story: str


SCENARIOS = {
    "shadow": [Rollout("shadow", "1.0.1", "promoted", "1.0.0 exported again: the same answers"),
               Rollout("shadow", "2.0.0", "rolled back", "healthy and fast, but it answers differently")],
    "canary": [Rollout("canary", "4.0.0", "promoted", "1.0.0 retrained: the same answers"),
               Rollout("canary", "3.0.0", "rolled back", "fails on half of the real inputs"),
               Rollout("canary", "6.0.0", "rolled back",
                       "healthy and fast, but other classes for half the inputs")],
    "blue-green": [Rollout("blue-green", "5.0.0", "promoted", "previewed, then every client at once")],
    "guard": [Rollout("guard", "7.0.0", "promoted",
                      "good on today's inputs, fails on drifted ones: guarded after its promotion")],
}


@dataclass(frozen=True)
class Outcome:
    rollout: Rollout
    result: str  # promoted, rolled back, or the phase it ended in
    seconds: float
    served_before: int  # client requests it answered before the rollout settled
    failed_metrics: tuple[str, ...]  # what the analysis failed on, when it did


@dataclass(frozen=True)
class Guarded:
    """The fourth act, as it went."""

    version: str  # the promoted, guarded model
    trigger: str  # what the guard saw
    fallback: str  # the fallback's model version
    fell_after: float  # seconds from the drift to all traffic on the fallback
    answered_per_request: int  # requests the gateway answered from the fallback before that
    failed: int  # client requests that failed during the act
    recovered_after: float  # seconds from the inputs coming back to traffic back on the model
    drifted_at: float  # time.monotonic() of the drift, and of the inputs coming back
    back_at: float


def run(folder: Path, strategy: str | None = None) -> None:
    # The emulated API server runs in this process: its access log is not the demo's story.
    for noisy in ("aiohttp.access", "kmock", "modelrollout.harness", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    folder = folder.resolve()  # the pods and file:// model URIs need absolute paths
    folder.mkdir(parents=True, exist_ok=True)
    models = write_model_versions(folder / "models", stem=NAME)
    plan = [r for name, rollouts in SCENARIOS.items() if strategy in (None, name) for r in rollouts]
    started = time.monotonic()
    say = _printer(started)
    say("starting the local cluster: API server, kubelet, Prometheus, gateway, operator")
    samples: list[Sample] = []
    outcomes: list[Outcome] = []
    guarded: Guarded | None = None
    with LocalCluster(folder / "cluster", namespace="demo") as cluster:
        say(f"gateway on {cluster.gateway.url}, Prometheus on {cluster.prometheus.url}")
        cluster.apply(_model_deployment(models, "1.0.0", plan[0].strategy, cluster.prometheus.url))
        _follow(cluster, say, samples, _settled("1.0.0"), timeout=90)
        wait_serving(cluster.gateway.url, NAME)
        traffic = Traffic(cluster.gateway.url, NAME, rate_per_second=40, max_seconds=300).start()
        try:
            time.sleep(2)
            for rollout in plan:
                outcomes.append(_roll_out(cluster, models, rollout, traffic, say, samples))
                if rollout.strategy == "guard" and outcomes[-1].result == "promoted":
                    guarded = _after_the_rollout(cluster, rollout.version, traffic, say, samples)
                time.sleep(2)
        finally:
            results = traffic.stop()
        versions = cluster.status(NAME).get("revisionVersions") or {}
        seen = _analysis_view(cluster, versions, started, say, "error-rate")
        agreed = _analysis_view(cluster, versions, started, say, "shadow-agreement")
    chart = folder / "rollout.png"
    moments = [] if guarded is None else [(guarded.drifted_at, "inputs drift"),
                                          (guarded.back_at, "inputs back")]
    agreement_min = next(m["thresholdRange"]["min"] for m in METRICS if m["name"] == "shadow-agreement")
    views = {"error-rate": seen, "shadow-agreement": agreed}
    draw(chart, results, samples, versions, started, views, moments,
         Limits(INTERVAL_SECONDS, ERROR_RATE_MAX, agreement_min))
    summary = _summary(results, versions, outcomes, guarded, chart)
    (folder / "summary.md").write_text(summary)
    click.echo("\n" + summary)
    say(f"done in {time.monotonic() - started:.0f} s")


def _roll_out(cluster: LocalCluster, models: dict[str, Path], rollout: Rollout, traffic: Traffic, say,
              samples: list[Sample]) -> Outcome:
    say(f"{rollout.strategy}: applying model {rollout.version} ({rollout.story})")
    began = time.monotonic()
    cluster.apply(_model_deployment(models, rollout.version, rollout.strategy, cluster.prometheus.url))
    settled = _settled(rollout.version)
    testers = None
    if rollout.strategy == "blue-green":  # people trying the preview, once it is up, before any client
        status = _follow(cluster, say, samples, lambda s: s.get("gatePassed") or settled(s), timeout=120)
        if not settled(status):
            say(f"testers send requests with '{_header(status)}' to the preview")
            testers = Traffic(cluster.gateway.url, NAME, rate_per_second=15, max_seconds=120,
                              headers=PREVIEW_HEADER).start()
    try:
        final = _follow(cluster, say, samples, settled, timeout=120)
    finally:
        if testers is not None:
            tested = testers.stop()
            say(f"{len(tested)} preview requests by header, {sum(r.status != 200 for r in tested)} failed")
    phase = final.get("phase", "?")
    result = {"Healthy": "promoted", "Degraded": "rolled back"}.get(phase, phase)
    if result != rollout.expected:
        say(f"unexpected: {rollout.version} ended {final.get('phase')} ({final.get('message')})")
    served = sum(1 for r in list(traffic.results) if r.version == rollout.version and r.at >= began)
    if rollout.strategy == "shadow":
        say(f"{served} client requests answered by {rollout.version} before the decision "
            f"(it answered copies only)")
    return Outcome(rollout, result, time.monotonic() - began, served, _failed_metrics(final))


def _after_the_rollout(cluster: LocalCluster, version: str, traffic: Traffic, say,
                       samples: list[Sample]) -> Guarded:
    """The promoted ``version`` meets drifted inputs it fails on: the gateway answers from the
    fallback request by request, the guard fires and sends it all traffic; the inputs come
    back and traffic returns to ``version`` on its own."""
    say(f"after the rollout: the clients' inputs drift (every feature +{DRIFT:g}); {version} fails on them")
    drifted = time.monotonic()
    traffic.offset = DRIFT
    active = _follow(cluster, say, samples, lambda s: (s.get("fallback") or {}).get("active"), timeout=90)
    fell = time.monotonic()
    fallback, trigger = active["fallback"], active["guard"]["trigger"]
    say(f"the guard fired on {version}: {trigger}; {fallback['version']} serves all traffic")
    traffic.wait_results(80, since=fell, timeout=30)  # a while on the fallback
    say(f"the inputs come back; {version} is measured on mirrored copies meanwhile")
    traffic.offset = 0.0
    back = time.monotonic()
    _follow(cluster, say, samples, lambda s: not (s.get("fallback") or {}).get("active"), timeout=90)
    recovered = time.monotonic()
    during = [r for r in list(traffic.results) if r.at >= drifted]
    per_request = sum(1 for r in during if r.at < fell and r.revision == fallback["revision"])
    return Guarded(version, trigger, fallback["version"], fell - drifted, per_request,
                   sum(r.status != 200 for r in during), recovered - back, drifted, back)


def _failed_metrics(status: dict) -> tuple[str, ...]:
    """The metrics an AnalysisFailed abort names ("analysis failed: a, b (details)")."""
    message = status.get("message") or ""
    if status.get("reason") != "AnalysisFailed" or "analysis failed:" not in message:
        return ()
    named = message.split("analysis failed:", 1)[1].split("(", 1)[0]
    return tuple(name.strip() for name in named.split(",") if name.strip())


def _header(status: dict) -> str:
    return (status.get("preview") or {}).get("header") or "x-modelrollout-revision: preview"


def _model_deployment(models: dict[str, Path], version: str, strategy: str, prometheus_url: str) -> dict:
    doc = model_deployment(NAME, models[version], version, prometheus_url, [], INTERVAL_SECONDS, METRICS,
                           progress_deadline_seconds=60, strategy=STRATEGIES[strategy])
    if strategy == "guard":
        simple = {"uri": models[FALLBACK_VERSION].resolve().as_uri(), "version": FALLBACK_VERSION}
        doc["spec"].update(guard=GUARD, fallback={"model": simple, "perRequest": {"deadline": "500ms"}})
    return doc


def _settled(version: str):
    """Done when ``version`` serves, or when a rollout of it was aborted (not an earlier one's)."""
    def check(status: dict) -> bool:
        if status.get("phase") == "Healthy" and status.get("stableVersion") == version:
            return True
        last = (status.get("history") or [{}])[-1]
        return (status.get("phase") == "Degraded" and not status.get("candidateRevision")
                and last.get("result") == "Aborted" and last.get("modelVersion") == version)
    return check


def _follow(cluster: LocalCluster, say, samples: list[Sample], done, timeout: float) -> dict:
    """Print every change of the rollout until ``done(status)``; sample it for the chart."""
    deadline = time.monotonic() + timeout
    shown = None
    while True:
        status = cluster.status(NAME)
        traffic = status.get("traffic") or {}
        samples.append(Sample(time.monotonic(), status.get("stableVersion"), status.get("candidateVersion"),
                              int(traffic.get("candidate") or 0), status.get("phase", ""),
                              status.get("strategy", ""), bool((status.get("fallback") or {}).get("active"))))
        line = _line(status)
        if line != shown:
            say(line)
            shown = line
        if done(status):
            return status
        if time.monotonic() > deadline:
            raise click.ClickException(f"the rollout did not settle within {timeout:.0f}s: "
                                       f"{status.get('message')}")
        time.sleep(0.25)


def _line(status: dict) -> str:
    traffic = status.get("traffic") or {}
    candidate = status.get("candidateVersion")
    parts = [f"{status.get('phase', 'Pending'):<11}", f"stable {status.get('stableVersion') or '-'}"]
    if candidate:
        parts.append(f"candidate {candidate} at {traffic.get('candidate', 0)}%"
                     + (f", mirrored {traffic['mirror']}%" if traffic.get("mirror") else ""))
    parts.append(status.get("message") or "")
    last = (status.get("analysis") or [])[-1:]
    if last and candidate:
        value = last[0].get("value")
        parts.append(f"[{last[0]['metric']} = {'no data' if value is None else f'{value:.3g}'}: "
                     f"{last[0]['phase']}]")
    return "  ".join(parts)


def _printer(started: float):
    def say(text: str) -> None:
        click.echo(f"[{time.monotonic() - started:6.1f}s] {text}")
    return say


def _analysis_view(cluster: LocalCluster, versions: dict, started: float, say,
                   metric: str) -> dict[str, list]:
    """A builtin metric of every revision over the demo (error-rate, shadow-agreement), as the
    operator's analysis reads it from Prometheus (the same query, a point a second): version
    -> [(s, value)], for the revisions it has a value for."""
    query = BUILTIN["builtin"][metric].value
    now_wall, now = time.time(), time.monotonic()
    start_wall = now_wall - (now - started)

    async def fetch() -> dict[str, list]:
        async with httpx.AsyncClient() as client:
            provider = PrometheusProvider(cluster.prometheus.url, client, timeout_seconds=10)
            seen = {}
            for revision, version in sorted(versions.items(), key=lambda item: item[1]):
                promql = render(query, NAME, cluster.namespace, revision, INTERVAL_SECONDS)
                points = await provider.query_range(promql, start_wall, now_wall, 1)
                if points:
                    seen[version] = [(t - start_wall, value) for t, value in points]
            return seen

    try:
        return asyncio.run(fetch())
    except PrometheusError as exc:
        say(f"no analysis view in the chart: {exc}")
        return {}


def _summary(results: list[Result], versions: dict, outcomes: list[Outcome], guarded: Guarded | None,
             chart: Path) -> str:
    by_version: dict[str, list[Result]] = defaultdict(list)
    for result in results:
        by_version[versions.get(result.revision, "unknown")].append(result)
    lines = ["# modelrollout demo", "", "| rollout | strategy | outcome | took | what it shows |",
             "|---|---|---|---|---|"]
    for outcome in outcomes:
        rollout = outcome.rollout
        lines.append(f"| to {rollout.version} | {rollout.strategy} | {outcome.result} | "
                     f"{outcome.seconds:.0f} s | {rollout.story} |")
    lines += ["", "| version | requests served | errors | error ratio |", "|---|---|---|---|"]
    for version in sorted(by_version):
        served = by_version[version]
        failed = sum(r.status != 200 for r in served)
        lines.append(f"| {version} | {len(served)} | {failed} | {failed / len(served):.3f} |")
    failed = [r for r in results if r.status != 200]
    lines += ["", f"{len(results)} client requests, {len(failed)} failed "
              f"({len(failed) / max(1, len(results)):.2%})."]
    broken = {o.rollout.version for o in outcomes if o.rollout.expected == "rolled back"}
    if failed and all(versions.get(r.revision) in broken for r in failed):
        lines.append("Every failed request was answered by a model that was then rolled back, while it held "
                     "its canary weight.")
    for outcome in outcomes:
        if outcome.rollout.strategy == "shadow" and outcome.result == "rolled back":
            lines.append(f"The shadow caught {outcome.rollout.version} after {outcome.served_before} client "
                         "requests answered by it: it only ever answered copies.")
        if outcome.failed_metrics == ("prediction-shift",):
            lines.append(f"Only the prediction-shift gate caught {outcome.rollout.version}: its error rate "
                         "and latency passed, it predicted other classes than stable on the same traffic.")
    if guarded is not None:
        lines += ["", f"After the rollout: {guarded.version} was promoted, then the clients' inputs drifted "
                  f"and it failed on them. The guard saw {guarded.trigger}, and {guarded.fell_after:.0f} s "
                  f"after the drift all traffic went to the fallback {guarded.fallback} in one routing "
                  f"write. Before that the gateway answered {guarded.answered_per_request} requests from "
                  f"{guarded.fallback} one by one (per-request fallback); {guarded.failed} client requests "
                  "failed during the act. Once the "
                  f"inputs were back, traffic returned to {guarded.version} on its own after "
                  f"{guarded.recovered_after:.0f} s (every trigger healthy for "
                  f"{GUARD['recovery']['healthyFor']})."]
    lines += ["", f"Chart: {chart}"]
    return "\n".join(lines) + "\n"
