"""Analysis inside a step: what is due a measurement, and the verdict over what was measured. Pure.

Failed aborts, Inconclusive pauses for a person (never promotes), Successful lets the step
go on, anything else measures again at the next interval. The judging of one metric is
analysis/judge.py's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from ..analysis.judge import FAILED, INCONCLUSIVE, RUNNING, SUCCESSFUL, verdict
from ..spec import Spec
from ..status import (
    ANALYSIS_FAILED,
    ANALYSIS_INCONCLUSIVE,
    ANALYSIS_RUNNING,
    Measurement,
    RolloutStatus,
    deadline,
)
from .outcomes import abort
from .strategy import Strategy
from .tick import Result, Tick

MEASUREMENTS_KEPT = 20  # per metric: a long shadow measures for hours; status stays small


def due_metrics(spec: Spec, status: RolloutStatus, now: datetime, strategy: Strategy) -> tuple[str, ...]:
    """Metrics of the current step that are due a measurement now."""
    if status.candidate_revision is None or not status.gate_passed or status.paused_by_user:
        return ()
    if status.paused and status.reason == ANALYSIS_INCONCLUSIVE:  # measured afresh when a person resumes
        return ()
    started = strategy.step_started_at(status)
    if started is None:
        return ()
    due = []
    for name in strategy.metrics_now(spec, status):
        metric = spec.analysis.metric(name)
        interval = metric.interval_seconds or spec.analysis.interval_seconds
        taken = [m.at for m in status.analysis if m.metric == name]
        # The first measurement waits one interval too: the candidate needs traffic first.
        if now >= deadline(taken[-1] if taken else started, interval):
            due.append(name)
    return tuple(due)


def run_analysis(tick: Tick, status: RolloutStatus, names: tuple[str, ...]) -> tuple[RolloutStatus, str, str]:
    """Take this reconcile's measurements into status and judge ``names`` over them:
    (status, verdict, what failed or is inconclusive). A resume after an inconclusive
    pause measures afresh."""
    spec, obs = tick.spec, tick.obs
    if obs.command == "resume":
        status = status.with_(analysis=())
    status = status.with_(analysis=kept(status.analysis + tuple(obs.measurements)))
    metrics = [spec.analysis.metric(name) for name in names]
    verdicts = {m.name: verdict(m, status.analysis, spec.analysis.consecutive_error_limit) for m in metrics}
    failed = [name for name, v in verdicts.items() if v == FAILED]
    if failed:
        detail = "; ".join(m.message for m in status.analysis if m.metric in failed and m.phase == FAILED)
        return status, FAILED, f"{', '.join(failed)} ({detail})"
    inconclusive_ = [name for name, v in verdicts.items() if v == INCONCLUSIVE]
    if inconclusive_:
        return status, INCONCLUSIVE, ", ".join(inconclusive_)
    if all(v == SUCCESSFUL for v in verdicts.values()):
        return status, SUCCESSFUL, ""
    return status, RUNNING, ", ".join(name for name, v in verdicts.items() if v != SUCCESSFUL)


def analysis_step(tick: Tick, status: RolloutStatus, names: tuple[str, ...], keep: list, replicas: int,
                  label: str, passed: Callable[[RolloutStatus], Result]) -> Result:
    """An analysis that gates one step: Failed aborts, Inconclusive pauses, Successful goes on
    with ``passed(status)``, anything else measures again next interval. ``label`` names the
    analysis in messages ("pre-promotion analysis", say)."""
    status, outcome, detail = run_analysis(tick, status, names)
    if outcome == FAILED:
        prefix = label.removesuffix("analysis").strip()
        return analysis_failed(tick, status, f"{prefix} {detail}".strip(), replicas)
    if outcome == INCONCLUSIVE:
        return inconclusive(status, detail, keep)
    if outcome == SUCCESSFUL:
        return passed(status)
    return status.with_(reason=ANALYSIS_RUNNING, message=f"{label} running: {detail}"), keep


def while_waiting(tick: Tick, status: RolloutStatus, names: tuple[str, ...], replicas: int, label: str,
                  waiting: Callable[[RolloutStatus], Result]) -> Result:
    """Analysis goes on while the rollout waits to be promoted (a person, or a countdown): a
    failure aborts, as one before the wait does; anything else keeps waiting (``waiting``)."""
    if not names:
        return waiting(status)
    status, outcome, detail = run_analysis(tick, status, names)
    if outcome == FAILED:
        return analysis_failed(tick, status, f"{label} while waiting for promotion: {detail}", replicas)
    return waiting(status)


def inconclusive(status: RolloutStatus, names: str, keep: list) -> Result:
    return status.with_(paused=True, reason=ANALYSIS_INCONCLUSIVE,
                        message=f"analysis inconclusive for {names}: not promoting "
                                "(resume to measure again, promote to skip, abort to roll back)"), keep


def analysis_failed(tick: Tick, status: RolloutStatus, detail: str, replicas: int) -> Result:
    return abort(tick, status, ANALYSIS_FAILED, f"analysis failed: {detail}", replicas)


def kept(measurements: tuple[Measurement, ...]) -> tuple[Measurement, ...]:
    """The last MEASUREMENTS_KEPT measurements of each metric, in the order taken."""
    counts: dict[str, int] = {}
    kept = []
    for m in reversed(measurements):
        counts[m.metric] = counts.get(m.metric, 0) + 1
        if counts[m.metric] <= MEASUREMENTS_KEPT:
            kept.append(m)
    return tuple(reversed(kept))
