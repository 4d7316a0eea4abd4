"""`modelrollout demo`: two rollouts on this machine, no cluster needed.

It builds three versions of a small model (v2 good, v3 failing on half of the real
inputs), starts the local harness (emulated API server, kubelet stand-in running real
`modelrollout serve` processes, Prometheus, gateway and operator), sends steady client
traffic through the gateway, then rolls v1 -> v2 by canary (promoted) and v2 -> v3
(caught by analysis and rolled back on its own). It prints the rollout as it goes and
writes a chart (traffic share, error ratio and latency per version over time as the
clients saw them, and the error rate the analysis read from Prometheus) and a summary
into the output folder.
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
STEPS = [
    {"setWeight": 20}, {"analysis": {"metrics": ["error-rate", "latency-p99"]}},
    {"setWeight": 50}, {"analysis": {"metrics": ["error-rate", "latency-p99"]}},
]


@dataclass(frozen=True)
class Sample:
    """The operator's view at one moment: what the chart's weight lines are drawn from."""

    at: float
    stable_version: str | None
    candidate_version: str | None
    candidate_weight: int
    phase: str


def run(folder: Path) -> None:
    # The emulated API server runs in this process: its access log is not the demo's story.
    for noisy in ("aiohttp.access", "kmock", "modelrollout.harness", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    folder = folder.resolve()  # the pods and file:// model URIs need absolute paths
    folder.mkdir(parents=True, exist_ok=True)
    models = write_model_versions(folder / "models", stem=NAME)
    started = time.monotonic()
    say = _printer(started)
    say("starting the local cluster: API server, kubelet, Prometheus, gateway, operator")
    samples: list[Sample] = []
    outcomes: list[tuple[str, str, float]] = []
    with LocalCluster(folder / "cluster", namespace="demo") as cluster:
        say(f"gateway on {cluster.gateway.url}, Prometheus on {cluster.prometheus.url}")
        cluster.apply(_model_deployment(models, "1.0.0", cluster.prometheus.url))
        _follow(cluster, say, samples, _settled("1.0.0"), timeout=90)
        wait_serving(cluster.gateway.url, NAME)
        traffic = Traffic(cluster.gateway.url, NAME, rate_per_second=40, max_seconds=170).start()
        try:
            time.sleep(2)
            for version, expected in (("2.0.0", "Healthy"), ("3.0.0", "Degraded")):
                say(f"applying model {version}")
                began = time.monotonic()
                cluster.apply(_model_deployment(models, version, cluster.prometheus.url))
                final = _follow(cluster, say, samples, _settled(version), timeout=90)
                outcomes.append((version, final.get("phase", "?"), time.monotonic() - began))
                if final.get("phase") != expected:
                    say(f"unexpected: {version} ended {final.get('phase')} ({final.get('message')})")
                time.sleep(3)
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


def _model_deployment(models: dict[str, Path], version: str, prometheus_url: str) -> dict:
    return model_deployment(NAME, models[version], version, prometheus_url, STEPS, INTERVAL_SECONDS, [
        {"name": "error-rate", "thresholdRange": {"max": ERROR_RATE_MAX}, "minSamples": 5},
        {"name": "latency-p99", "thresholdRange": {"max": 0.25}, "minSamples": 5},
    ], progress_deadline_seconds=60)


def _settled(version: str):
    def check(status: dict) -> bool:
        if status.get("phase") == "Healthy" and status.get("stableVersion") == version:
            return True
        return status.get("phase") == "Degraded" and not status.get("candidateRevision")
    return check


def _follow(cluster: LocalCluster, say, samples: list[Sample], done, timeout: float) -> dict:
    """Print every change of the rollout until ``done(status)``; sample it for the chart."""
    deadline = time.monotonic() + timeout
    shown = None
    while True:
        status = cluster.status(NAME)
        traffic = status.get("traffic") or {}
        samples.append(Sample(time.monotonic(), status.get("stableVersion"), status.get("candidateVersion"),
                              int(traffic.get("candidate") or 0), status.get("phase", "")))
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
        parts.append(f"candidate {candidate} at {traffic.get('candidate', 0)}%")
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
    share.set_title("modelrollout demo: v1 -> v2 promoted, v2 -> v3 rolled back")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def _summary(results: list[Result], versions: dict, outcomes: list, chart: Path) -> str:
    by_version: dict[str, list[Result]] = defaultdict(list)
    for result in results:
        by_version[versions.get(result.revision, "unknown")].append(result)
    lines = ["# modelrollout demo", "", "| rollout | outcome | took |", "|---|---|---|"]
    names = {"Healthy": "promoted", "Degraded": "rolled back"}
    for version, phase, seconds in outcomes:
        lines.append(f"| to {version} | {names.get(phase, phase)} | {seconds:.0f} s |")
    lines += ["", "| version | requests served | errors | error ratio |", "|---|---|---|---|"]
    for version in sorted(by_version):
        served = by_version[version]
        failed = sum(r.status != 200 for r in served)
        lines.append(f"| {version} | {len(served)} | {failed} | {failed / len(served):.3f} |")
    failed = [r for r in results if r.status != 200]
    lines += ["", f"{len(results)} client requests, {len(failed)} failed "
              f"({len(failed) / max(1, len(results)):.2%})."]
    if failed and all(versions.get(r.revision) == "3.0.0" for r in failed):
        lines.append("Every failed request was answered by the broken 3.0.0 while it held its canary weight.")
    lines += ["", f"Chart: {chart}"]
    return "\n".join(lines) + "\n"
