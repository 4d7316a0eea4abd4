"""operator/analysis/judge.py: measurements and verdicts from a closed set."""

from __future__ import annotations

import pytest
from modelrollout.operator.analysis.judge import (
    ERROR,
    FAILED,
    INCONCLUSIVE,
    RUNNING,
    SUCCESSFUL,
    measurement_of,
    verdict,
)

from tests.support.operator_fixtures import metric

ERRORS = metric("error-rate", max=0.01, failure_limit=1, count=3, min_samples=10)


@pytest.mark.parametrize(
    ("value", "samples", "error", "phase"),
    [(0.001, 50, None, SUCCESSFUL), (0.01, 50, None, SUCCESSFUL), (0.02, 50, None, FAILED),
     (0.0, 5, None, INCONCLUSIVE), (None, 50, None, INCONCLUSIVE), (float("nan"), 50, None, INCONCLUSIVE),
     (None, 0, "timeout", ERROR)],
)
def test_one_measurement(value, samples, error, phase):
    assert measurement_of(ERRORS, "t", value, samples, error).phase == phase


def test_min_bound():
    traffic = metric("orders", query="q", min=1.0)
    assert measurement_of(traffic, "t", 0.5, 10).phase == FAILED
    assert measurement_of(traffic, "t", 1.5, 10).phase == SUCCESSFUL


def phases(*names: str):
    values = {SUCCESSFUL: (0.001, 50, None), FAILED: (0.5, 50, None), INCONCLUSIVE: (0.0, 1, None),
              ERROR: (None, 0, "down")}
    return tuple(measurement_of(ERRORS, f"t{i}", *values[n]) for i, n in enumerate(names))


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        ((), RUNNING),
        ((SUCCESSFUL, SUCCESSFUL), RUNNING),
        ((SUCCESSFUL, SUCCESSFUL, SUCCESSFUL), SUCCESSFUL),
        ((FAILED, SUCCESSFUL, SUCCESSFUL, SUCCESSFUL), SUCCESSFUL),  # failureLimit 1 tolerates one
        ((FAILED, FAILED), FAILED),
        ((SUCCESSFUL, INCONCLUSIVE, SUCCESSFUL, SUCCESSFUL), SUCCESSFUL),  # traffic arrived: measured again
        ((INCONCLUSIVE, INCONCLUSIVE), RUNNING),  # inconclusiveLimit 2: still measuring
        ((INCONCLUSIVE, INCONCLUSIVE, INCONCLUSIVE), INCONCLUSIVE),
        ((INCONCLUSIVE, SUCCESSFUL, INCONCLUSIVE, INCONCLUSIVE), INCONCLUSIVE),  # never a pass: count is 3
        ((ERROR, ERROR), RUNNING),
        ((ERROR, ERROR, ERROR), INCONCLUSIVE),  # consecutive-error limit 3
        ((ERROR, ERROR, SUCCESSFUL, ERROR), RUNNING),  # not in a row
        ((SUCCESSFUL, ERROR, SUCCESSFUL, SUCCESSFUL), SUCCESSFUL),
    ],
)
def test_verdicts(history, expected):
    assert verdict(ERRORS, phases(*history), error_limit=3) == expected


def test_other_metrics_do_not_count():
    other = metric("latency-p99", max=0.05)
    assert verdict(other, phases(FAILED, FAILED, FAILED), error_limit=3) == RUNNING
