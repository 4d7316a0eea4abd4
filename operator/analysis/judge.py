"""Measurements and verdicts of analysis metrics. Pure.

A measurement is one query result: Successful (inside thresholdRange), Failed (outside),
Inconclusive (fewer samples than minSamples behind it: an idle canary proves nothing),
or Error (Prometheus could not answer). A metric's verdict over its measurements comes
from a closed set, never a bool:

- Failed       more failed measurements than failureLimit
- Inconclusive more inconclusive measurements than inconclusiveLimit (measuring goes on until
               then: the first interval of a step often comes before the candidate's traffic
               is scraped), or consecutiveErrorLimit errors in a row
- Successful   ``count`` successful measurements and not failed
- Running      none of the above yet: measure again at the next interval

Nothing but Successful lets a rollout move on.
"""

from __future__ import annotations

from ..api.v1alpha1 import MEASUREMENT_PHASES
from ..spec import Metric
from ..status import Measurement

SUCCESSFUL, FAILED, INCONCLUSIVE, ERROR = MEASUREMENT_PHASES  # a measurement's, and a verdict's
RUNNING = "Running"  # a verdict's only: measure again


def measurement_of(
    metric: Metric, at: str, value: float | None, samples: int, error: str | None = None
) -> Measurement:
    """One query result judged against the metric's thresholds."""
    def taken(value: float | None, phase: str, message: str) -> Measurement:
        return Measurement(metric=metric.name, at=at, value=value, phase=phase, message=message)

    if error is not None:
        return taken(None, ERROR, error)
    if value is None or samples < metric.min_samples:
        return taken(value, INCONCLUSIVE, f"{samples} samples, fewer than minSamples {metric.min_samples}")
    if value != value:  # NaN: a ratio over no requests
        return taken(None, INCONCLUSIVE, "no data (NaN)")
    low, high = metric.threshold_range.min, metric.threshold_range.max
    if (low is not None and value < low) or (high is not None and value > high):
        return taken(value, FAILED, f"{value:g} outside {_range(metric)}")
    return taken(value, SUCCESSFUL, f"{value:g} inside {_range(metric)}")


def verdict(metric: Metric, measurements: tuple[Measurement, ...], error_limit: int) -> str:
    """The metric's verdict over its measurements, in the order they were taken."""
    mine = [m for m in measurements if m.metric == metric.name]
    if sum(m.phase == FAILED for m in mine) > metric.failure_limit:
        return FAILED
    if sum(m.phase == INCONCLUSIVE for m in mine) > metric.inconclusive_limit:
        return INCONCLUSIVE
    errors_in_a_row = 0
    for m in reversed(mine):
        if m.phase != ERROR:
            break
        errors_in_a_row += 1
    if errors_in_a_row >= error_limit:
        return INCONCLUSIVE
    if sum(m.phase == SUCCESSFUL for m in mine) >= metric.count:
        return SUCCESSFUL
    return RUNNING


def _range(metric: Metric) -> str:
    bounds = metric.threshold_range
    low = "-inf" if bounds.min is None else f"{bounds.min:g}"
    high = "+inf" if bounds.max is None else f"{bounds.max:g}"
    return f"[{low}, {high}]"
