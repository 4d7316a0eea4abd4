"""The demo's chart: per version, what the clients saw (share, errors, latency), what the
analysis read from Prometheus (error rate, shadow agreement), and the guard's moments; one
colour per version in every panel. Drawn with matplotlib once the demo is over."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from modelrollout.harness.traffic import Result


@dataclass(frozen=True)
class Sample:
    """The operator's view at one moment: what the chart's weight lines are drawn from."""

    at: float
    stable_version: str | None
    candidate_version: str | None
    candidate_weight: int
    phase: str
    strategy: str
    fallback_active: bool = False  # the guard fired and the fallback serves all traffic


@dataclass(frozen=True)
class Limits:
    """The thresholds the chart draws, as the demo's spec sets them."""

    interval_seconds: float
    error_rate_max: float
    agreement_min: float


def draw(path: Path, results: list[Result], samples: list[Sample], versions: dict, started: float,
         views: dict[str, dict[str, list]], moments: list[tuple[float, str]], limits: Limits) -> None:
    """``views``: what the analysis read from Prometheus per version (error-rate,
    shadow-agreement); ``moments``: (time.monotonic(), what happened to the clients'
    inputs), marked on every panel."""
    seen, agreed = views["error-rate"], views["shadow-agreement"]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    buckets: dict[str, dict[int, list[Result]]] = defaultdict(lambda: defaultdict(list))
    for result in results:
        version = versions.get(result.revision, "unknown")
        buckets[version][int(result.at - started)].append(result)
    # One colour per version, the same in every panel.
    every = sorted({*buckets, *seen, *agreed, *versions.values()})
    colour = {version: f"C{i % 10}" for i, version in enumerate(every)}
    figure, (share, errors, analysis, latency, agreement) = plt.subplots(
        5, 1, figsize=(10, 14), sharex=True, gridspec_kw={"height_ratios": [3, 2, 2, 2, 1.5]})
    totals: dict[int, int] = defaultdict(int)
    for per_second in buckets.values():
        for second, items in per_second.items():
            totals[second] += len(items)
    for version in sorted(buckets):
        seconds = sorted(buckets[version])
        share.plot(seconds, [100 * len(buckets[version][s]) / totals[s] for s in seconds], ".", ms=3,
                   color=colour[version], label=f"{version}: served share")
        errors.plot(*_gaps([(s, sum(r.status != 200 for r in buckets[version][s]) / len(buckets[version][s]))
                            for s in seconds]), color=colour[version], label=version)
        latency.plot(*_gaps([(s, 1000 * _p99([r.seconds for r in buckets[version][s]])) for s in seconds]),
                     color=colour[version], label=f"{version} p99")
    times = [s.at - started for s in samples]
    share.step(times, [s.candidate_weight for s in samples], where="post", color="black", lw=1,
               label="candidate weight set by the operator")
    for version, points in sorted(seen.items()):
        analysis.plot(*_gaps(points), color=colour[version], label=version)
    analysis.axhline(limits.error_rate_max, color="red", ls="--", lw=1, label="analysis threshold (max)")
    for version, points in sorted(agreed.items()):
        agreement.plot(*_gaps(points), color=colour[version], label=f"{version} shadow agreement")
    agreement.axhline(limits.agreement_min, color="red", ls="--", lw=1,
                      label="shadow-agreement threshold (min)")
    agreement.set_ylabel(f"shadow agreement over {limits.interval_seconds} s\n(Prometheus, gateway metrics)")
    agreement.set_ylim(-0.05, 1.05)
    share.set_ylabel("% of requests")
    share.set_ylim(-5, 105)
    errors.set_ylabel("error ratio (clients)")
    analysis.set_ylabel(f"error rate over {limits.interval_seconds} s\n(Prometheus, gateway metrics)")
    latency.set_ylabel("client latency p99 (ms)")
    agreement.set_xlabel("seconds since the demo started")
    for axis in (share, errors, analysis, latency, agreement):
        axis.grid(alpha=0.3)
        _guard_marks(axis, samples, started, labelled=axis is share)
        for at, what in moments:
            axis.axvline(at - started, color="grey", ls="--", lw=1)
            if axis is share:
                axis.text(at - started + 0.3, 92, what, fontsize=8, color="grey")
        axis.legend(loc="upper left", fontsize=8)
    _strategy_spans(share, samples, started)
    share.set_title("modelrollout demo: shadow, canary, blue-green and the guard, as clients saw them")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _gaps(points: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """x and y with a break wherever more than a second and a half has no point: a version that
    served nothing for a while is not drawn as if it had."""
    xs: list[float] = []
    ys: list[float] = []
    for x, y in points:
        if xs and x - xs[-1] > 1.5:
            xs.append(xs[-1] + 1)
            ys.append(float("nan"))
        xs.append(x)
        ys.append(y)
    return xs, ys


def _guard_marks(axis, samples: list[Sample], started: float, labelled: bool) -> None:
    """A line where the guard sent all traffic to the fallback, and one where it came back."""
    before = False
    for sample in samples:
        if sample.fallback_active != before:
            fired = sample.fallback_active
            axis.axvline(sample.at - started, color="red" if fired else "green", ls=":", lw=1.5,
                         label=(("guard fired: fallback serves" if fired else "recovered")
                                if labelled else None))
            before = fired


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
