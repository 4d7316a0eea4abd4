"""The canary strategy: traffic moved step by step. Pure.

    setWeight N       -> traffic N% candidate, next step
    setMirror N       -> N% of requests copied to the candidate, answers compared
    pause             -> wait its duration, or for a person (resume / promote)
    analysis          -> measure every interval; Successful: next step, Failed: abort,
                         Inconclusive (no data, Prometheus down): pause, never promote
    after last step   -> promote: the candidate becomes stable at 100%, old stable to 0

What every strategy shares (gate, promote, abort, history) is in lifecycle.py. One
reconcile moves a rollout at most one step.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from ..actions import RecordEvent
from ..spec import Spec, Step
from ..status import (
    MIRROR_SET,
    PAUSED,
    PAUSED_BY_STEP,
    PROGRESSING,
    STEP_DONE,
    WEIGHT_SET,
    RolloutStatus,
    Traffic,
    parse_time,
)
from .lifecycle import Result, Tick, analysis_step, hold, next_step, promote


def candidate_replicas(spec: Spec, status: RolloutStatus) -> int:
    return spec.replicas


def metrics_now(spec: Spec, status: RolloutStatus) -> tuple[str, ...]:
    step = _step(spec, status)
    return step.metrics if step is not None and step.kind == "analysis" else ()


def promote_now(tick: Tick, status: RolloutStatus, why: str) -> Result:
    return promote(tick, status, why)


def progress(tick: Tick, status: RolloutStatus, keep: list) -> Result:
    spec = tick.spec
    step = _step(spec, status)
    if step is None:
        return promote(tick, status, "every step passed")
    if tick.obs.command == "promote":
        return next_step(status, tick.at, keep, "step skipped by a person", STEP_DONE)
    if step.kind == "setWeight":
        return _set_traffic(tick, status, Traffic(100 - step.weight, step.weight, status.traffic.mirror),
                            WEIGHT_SET, f"candidate at {step.weight}%",
                            f"candidate {status.candidate_revision} at {step.weight}%")
    if step.kind == "setMirror":
        split = status.traffic
        return _set_traffic(tick, status, Traffic(split.stable, split.candidate, step.mirror_percent),
                            MIRROR_SET, f"{step.mirror_percent}% of requests mirrored to the candidate",
                            f"{step.mirror_percent}% of requests mirrored to candidate "
                            f"{status.candidate_revision}")
    if step.kind == "pause":
        return _pause(tick, status, step, keep)
    return _analysis(tick, status, step, keep)


def _step(spec: Spec, status: RolloutStatus) -> Step | None:
    return spec.steps[status.current_step] if status.current_step < len(spec.steps) else None


def _set_traffic(tick: Tick, status: RolloutStatus, split: Traffic, reason: str, message: str,
                 event: str) -> Result:
    spec = tick.spec
    status = replace(status, traffic=split, current_step=status.current_step + 1, step_started_at=tick.at,
                     analysis=(), consecutive_errors=0, phase=PROGRESSING, reason=reason, message=message)
    keep = hold(tick, status, candidate_replicas(spec, status))
    return status, keep + [RecordEvent("Normal", reason, event)]


def _pause(tick: Tick, status: RolloutStatus, step: Step, keep: list) -> Result:
    if step.pause_seconds is None:
        if tick.obs.command == "resume":
            return next_step(status, tick.at, keep, "resumed by a person", STEP_DONE)
        message = f"paused at step {status.current_step} until a person resumes or promotes"
        return replace(status, phase=PAUSED, reason=PAUSED_BY_STEP, message=message), keep
    ends = parse_time(status.step_started_at) + timedelta(seconds=step.pause_seconds)
    if tick.now >= ends:
        return next_step(status, tick.at, keep, "pause over", STEP_DONE)
    left = (ends - tick.now).total_seconds()
    return replace(status, phase=PROGRESSING, reason=PAUSED_BY_STEP,
                   message=f"pausing for {left:.0f} s more"), keep


def _analysis(tick: Tick, status: RolloutStatus, step: Step, keep: list) -> Result:
    return analysis_step(tick, status, step.metrics, keep, candidate_replicas(tick.spec, status), "analysis",
                         lambda passed: next_step(passed, tick.at, keep, "analysis successful", STEP_DONE))
