"""The shadow strategy: the candidate answers copies of live requests, never a client. Pure.

Past the gate the gateway mirrors mirrorPercent of requests to the candidate and compares
each answer with the one stable gave the client; the candidate's weight stays 0 the whole
time. Its stages, in ``status.current_step``:

    0 shadowing       at least ``duration`` and ``minComparisons`` compared answers, the
                      analysis metrics (shadow-agreement, shadow-latency-ratio,
                      shadow-error-rate...) measured every interval the whole time.
                      Failed: mirroring stops, the candidate goes, Degraded.
    1 awaiting        passed with ``then: manual``: a person promotes (mirroring goes on)

On pass (``then: promote``) or a person's promote, all traffic switches to the candidate
in one write and the old stable is kept warm scaleDownDelaySeconds, as blue-green does.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from ..actions import RecordEvent
from ..analysis.judge import FAILED, INCONCLUSIVE, SUCCESSFUL
from ..spec import Shadow, Spec
from ..status import (
    PAUSED,
    PROGRESSING,
    SHADOWING,
    STEP_DONE,
    WAITING_FOR_PROMOTION,
    RolloutStatus,
    Traffic,
    parse_time,
)
from .lifecycle import Result, Tick, analysis_failed, hold, inconclusive, next_step, promote, run_analysis

SHADOWING_STAGE, AWAITING = 0, 1


def candidate_replicas(spec: Spec, status: RolloutStatus) -> int:
    return spec.replicas  # a 100% mirror is as much work as the live traffic


def metrics_now(spec: Spec, status: RolloutStatus) -> tuple[str, ...]:
    return spec.strategy.metrics if status.current_step == SHADOWING_STAGE else ()


def counts_comparisons(spec: Spec, status: RolloutStatus) -> bool:
    """Whether compared answers are being counted now (for minComparisons)."""
    return status.gate_passed and status.current_step == SHADOWING_STAGE and status.traffic.mirror > 0


def promote_now(tick: Tick, status: RolloutStatus, why: str) -> Result:
    return promote(tick, status, why, keep_warm_seconds=tick.spec.strategy.scale_down_delay_seconds)


def progress(tick: Tick, status: RolloutStatus, keep: list) -> Result:
    shadow: Shadow = tick.spec.strategy
    if tick.obs.command == "promote":
        return promote_now(tick, status, f"promoted by a person{tick.by()}")
    if status.traffic.mirror != shadow.mirror_percent:
        return _start_mirror(tick, status, shadow)
    if tick.obs.shadow_comparisons is not None:
        status = replace(status, comparisons=tick.obs.shadow_comparisons, comparisons_at=tick.at)
    if status.current_step == AWAITING:
        return replace(status, phase=PAUSED, reason=WAITING_FOR_PROMOTION,
                       message=f"shadow of {status.candidate_revision} passed: "
                               "`kubectl modelrollout promote` switches all traffic to it"), keep
    outcome, detail = SUCCESSFUL, ""
    if shadow.metrics:
        status, outcome, detail = run_analysis(tick, status, shadow.metrics)
    if outcome == FAILED:  # the abort's one write stops the mirror too
        return analysis_failed(tick, status, detail, candidate_replicas(tick.spec, status))
    if outcome == INCONCLUSIVE:
        return inconclusive(status, detail, keep)
    ends = parse_time(status.step_started_at) + timedelta(seconds=shadow.duration_seconds)
    waiting = []
    if tick.now < ends:
        waiting.append(f"{(ends - tick.now).total_seconds():.0f} s of the duration left")
    if status.comparisons < shadow.min_comparisons:
        waiting.append(f"{status.comparisons} of {shadow.min_comparisons} comparisons")
    if outcome != SUCCESSFUL:
        waiting.append(f"analysis running: {detail}")
    if waiting:
        return replace(status, phase=PROGRESSING, reason=SHADOWING,
                       message=f"shadowing {shadow.mirror_percent}% of requests: " + "; ".join(waiting)), keep
    if shadow.then == "promote":
        return promote_now(tick, status, "shadow passed")
    return next_step(status, tick.at, keep, "shadow passed; waiting for a person to promote", STEP_DONE)


def _start_mirror(tick: Tick, status: RolloutStatus, shadow: Shadow) -> Result:
    status = replace(status, traffic=Traffic(100, 0, shadow.mirror_percent), step_started_at=tick.at,
                     analysis=(), consecutive_errors=0, comparisons=0, comparisons_at=None,
                     phase=PROGRESSING, reason=SHADOWING,
                     message=f"shadowing {shadow.mirror_percent}% of requests to the candidate")
    event = RecordEvent("Normal", SHADOWING, f"{shadow.mirror_percent}% of requests mirrored to candidate "
                                             f"{status.candidate_revision}; clients are answered by stable")
    return status, hold(tick, status, tick.spec.replicas) + [event]
