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

``--strategy`` runs one of them from 1.0.0. It prints the rollout as it goes and writes a
chart (traffic share, error ratio and latency per version as the clients saw them, and
the error rate the analysis read from Prometheus) and a summary into the output folder.
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
}


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
}


@dataclass(frozen=True)
class Sample:
    """The operator's view at one moment: what the chart's weight lines are drawn from."""

    at: float
    stable_version: str | None
    candidate_version: str | None
    candidate_weight: int
    phase: str
    strategy: str


@dataclass(frozen=True)
class Outcome:
    rollout: Rollout
    result: str  # promoted, rolled back, or the phase it ended in
    seconds: float
    served_before: int  # client requests it answered before the rollout settled
    failed_metrics: tuple[str, ...]  # what the analysis failed on, when it did


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
                time.sleep(2)
        finally:
            results = traffic.stop()
        versions = cluster.status(NAME).get("revisionVersions") or {}
        seen = _analysis_view(cluster, versions, started, say)
    chart = folder / "rollout.png"
    _chart(chart, results, samples, versions, started, seen)
    summary = _summary(results, versions, outcomes, chart)
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
    return model_deployment(NAME, models[version], version, prometheus_url, [], INTERVAL_SECONDS, METRICS,
                            progress_deadline_seconds=60, strategy=STRATEGIES[strategy])


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
                              status.get("strategy", "")))
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


def _analysis_view(cluster: LocalCluster, versions: dict, started: float, say) -> dict[str, list]:
    """The builtin error rate of every revision over the demo, as the operator's analysis
    reads it from Prometheus (the same query, a point a second): version -> [(s, value)]."""
    query = BUILTIN["builtin"]["error-rate"].value
    now_wall, now = time.time(), time.monotonic()
    start_wall = now_wall - (now - started)

    async def fetch() -> dict[str, list]:
        async with httpx.AsyncClient() as client:
            provider = PrometheusProvider(cluster.prometheus.url, client, timeout_seconds=10)
            seen = {}
            for revision, version in sorted(versions.items(), key=lambda item: item[1]):
                promql = render(query, NAME, cluster.namespace, revision, INTERVAL_SECONDS)
                points = await provider.query_range(promql, start_wall, now_wall, 1)
                seen[version] = [(t - start_wall, value) for t, value in points]
            return seen

    try:
        return asyncio.run(fetch())
    except PrometheusError as exc:
        say(f"no analysis view in the chart: {exc}")
        return {}


def _chart(path: Path, results: list[Result], samples: list[Sample], versions: dict, started: float,
           seen: dict[str, list]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    buckets: dict[str, dict[int, list[Result]]] = defaultdict(lambda: defaultdict(list))
    for result in results:
        version = versions.get(result.revision, "unknown")
        buckets[version][int(result.at - started)].append(result)
    figure, (share, errors, analysis, latency) = plt.subplots(4, 1, figsize=(10, 12), sharex=True)
    totals: dict[int, int] = defaultdict(int)
    for per_second in buckets.values():
        for second, items in per_second.items():
            totals[second] += len(items)
    for version in sorted(buckets):
        seconds = sorted(buckets[version])
        share.plot(seconds, [100 * len(buckets[version][s]) / totals[s] for s in seconds], ".", ms=3,
                   label=f"{version}: served share")
        errors.plot(seconds, [sum(r.status != 200 for r in buckets[version][s]) / len(buckets[version][s])
                              for s in seconds], label=version)
        latency.plot(seconds, [1000 * _p99([r.seconds for r in buckets[version][s]]) for s in seconds],
                     label=f"{version} p99")
    times = [s.at - started for s in samples]
    share.step(times, [s.candidate_weight for s in samples], where="post", color="black", lw=1,
               label="candidate weight set by the operator")
    for version, points in sorted(seen.items()):
        analysis.plot([t for t, _ in points], [v for _, v in points], label=version)
    analysis.axhline(ERROR_RATE_MAX, color="red", ls="--", lw=1, label="analysis threshold (max)")
    share.set_ylabel("% of requests")
    share.set_ylim(-5, 105)
    errors.set_ylabel("error ratio (clients)")
    analysis.set_ylabel(f"error rate over {INTERVAL_SECONDS} s\n(Prometheus, gateway metrics)")
    latency.set_ylabel("client latency p99 (ms)")
    latency.set_xlabel("seconds since the demo started")
    for axis in (share, errors, analysis, latency):
        axis.grid(alpha=0.3)
        axis.legend(loc="upper left", fontsize=8)
    _strategy_spans(share, samples, started)
    share.set_title("modelrollout demo: shadow, canary and blue-green rollouts, as clients saw them")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _strategy_spans(axis, samples: list[Sample], started: float) -> None:
    """Shade the time each strategy's rollouts ran, and name it."""
    spans: list[list] = []
    for sample in samples:
        moment = sample.at - started
        if spans and spans[-1][0] == sample.strategy:
            spans[-1][2] = moment
        else:
            spans.append([sample.strategy, moment, moment])
    shades = {"shadow": "tab:purple", "canary": "tab:orange", "blueGreen": "tab:cyan"}
    for strategy, begin, end in spans:
        if strategy in shades and end > begin:
            axis.axvspan(begin, end, color=shades[strategy], alpha=0.08)
            axis.text(begin + 0.5, 2, strategy, fontsize=8, va="bottom")


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def _summary(results: list[Result], versions: dict, outcomes: list[Outcome], chart: Path) -> str:
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
    lines += ["", f"Chart: {chart}"]
    return "\n".join(lines) + "\n"
