"""The blue-green strategy: a preview beside the active revision, then one switch. Pure.

The candidate starts at previewReplicas beside the untouched active (stable) revision and
passes the gate. Weights are only ever 0 or 100. Its stages, in ``status.current_step``:

    0 preview         pre-promotion analysis on the preview's own traffic (requests that
                      ask for it by header or through the preview Service); skipped
                      when it names no metrics
    1 awaiting        autoPromotionSeconds, or a person's `kubectl modelrollout promote`
    2 scaling up      the preview grows to full size; the switch waits for every replica
    3 switched        100% to the candidate in one write; the old revision stays at full
                      size while post-promotion analysis runs. Failed: switched back in
                      one write, Degraded. Then promoted, and the old revision is kept
                      warm scaleDownDelaySeconds from the switch before it goes to 0.

``promote`` moves to the next stage now (skipping a wait or an analysis); ``promote-full``
scales up, switches and promotes without post-promotion analysis. An abort at any stage
moves all traffic to the active revision in one write and keeps
the preview abortScaleDownDelaySeconds for a look at what failed.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from ..actions import RecordEvent
from ..spec import BlueGreen, Spec
from ..status import (
    PAUSED,
    PROGRESS_DEADLINE_EXCEEDED,
    PROGRESSING,
    SCALING_UP,
    STEP_DONE,
    SWITCHED,
    WAITING_FOR_PROMOTION,
    RolloutStatus,
    Traffic,
    parse_time,
)
from .lifecycle import (
    Result,
    Tick,
    abort,
    analysis_step,
    hold,
    next_step,
    promote,
)

PREVIEW, AWAITING, SCALING, SWITCHED_STAGE = 0, 1, 2, 3


def candidate_replicas(spec: Spec, status: RolloutStatus) -> int:
    strategy: BlueGreen = spec.strategy
    if status.fast_revert or status.current_step >= SCALING or strategy.preview_replicas is None:
        return spec.replicas
    return strategy.preview_replicas


def metrics_now(spec: Spec, status: RolloutStatus) -> tuple[str, ...]:
    strategy: BlueGreen = spec.strategy
    if status.current_step == PREVIEW:
        return strategy.pre_promotion_metrics
    if status.current_step == SWITCHED_STAGE:
        return strategy.post_promotion_metrics
    return ()


def promote_now(tick: Tick, status: RolloutStatus, why: str) -> Result:
    """promote-full: scale up, switch, and promote without post-promotion analysis."""
    if status.current_step == SWITCHED_STAGE:
        return _promote(tick, status, why)
    status = replace(status, promote_full=True)
    if status.current_step == SCALING:
        return _scaling(tick, status, hold(tick, status, tick.spec.replicas))
    return _scale_up(tick, status, why)


def progress(tick: Tick, status: RolloutStatus, keep: list) -> Result:
    stage, command = status.current_step, tick.obs.command
    if command == "promote":  # the next stage, now
        why = f"promoted by a person{tick.by()}"
        return _promote(tick, status, why) if stage == SWITCHED_STAGE else _scale_up(tick, status, why)
    if stage == PREVIEW:
        return _preview(tick, status, keep)
    if stage == AWAITING:
        return _awaiting(tick, status, keep)
    if stage == SCALING:
        return _scaling(tick, status, keep)
    return _switched(tick, status, keep)


def _preview(tick: Tick, status: RolloutStatus, keep: list) -> Result:
    metrics = tick.spec.strategy.pre_promotion_metrics
    if not metrics:
        return next_step(status, tick.at, keep, "preview ready (no pre-promotion analysis)", STEP_DONE)
    return analysis_step(
        tick, status, metrics, keep, candidate_replicas(tick.spec, status), "pre-promotion analysis",
        lambda passed: next_step(passed, tick.at, keep, "pre-promotion analysis successful", STEP_DONE))


def _awaiting(tick: Tick, status: RolloutStatus, keep: list) -> Result:
    auto = tick.spec.strategy.auto_promotion_seconds
    if auto is None:
        return replace(status, phase=PAUSED, reason=WAITING_FOR_PROMOTION,
                       message=f"preview of {status.candidate_revision} ready: "
                               "`kubectl modelrollout promote` switches all traffic to it"), keep
    switch_at = parse_time(status.step_started_at) + timedelta(seconds=auto)
    if tick.now >= switch_at:
        return _scale_up(tick, status, f"autoPromotionSeconds ({auto:g}) passed")
    left = (switch_at - tick.now).total_seconds()
    return replace(status, phase=PROGRESSING, reason=WAITING_FOR_PROMOTION,
                   message=f"preview ready: switching in {left:.0f} s (autoPromotionSeconds), "
                           "or promote now"), keep


def _scale_up(tick: Tick, status: RolloutStatus, why: str) -> Result:
    status = replace(status, current_step=SCALING, step_started_at=tick.at, analysis=(), consecutive_errors=0,
                     phase=PROGRESSING, reason=SCALING_UP,
                     message=f"{why}: scaling the preview to {tick.spec.replicas} replicas before the switch")
    return _scaling(tick, status, hold(tick, status, tick.spec.replicas))


def _scaling(tick: Tick, status: RolloutStatus, keep: list) -> Result:
    spec, ready = tick.spec, tick.obs.candidate_ready_replicas
    if ready >= spec.replicas:
        return _switch(tick, status)
    deadline = parse_time(status.step_started_at) + timedelta(seconds=spec.progress_deadline_seconds)
    if tick.now >= deadline:
        return abort(tick, status, PROGRESS_DEADLINE_EXCEEDED,
                     f"preview not scaled to {spec.replicas} replicas within progressDeadlineSeconds "
                     f"({spec.progress_deadline_seconds}): {ready} ready", spec.replicas)
    return replace(status, phase=PROGRESSING, reason=SCALING_UP,
                   message=f"scaling the preview before the switch: {ready} of {spec.replicas} ready"), keep


def _switch(tick: Tick, status: RolloutStatus) -> Result:
    """All traffic to the candidate in one write; the old revision stays at full size."""
    status = replace(status, traffic=Traffic(0, 100), current_step=SWITCHED_STAGE, step_started_at=tick.at,
                     switched_at=tick.at, analysis=(), consecutive_errors=0, phase=PROGRESSING,
                     reason=SWITCHED,
                     message=f"all traffic switched to {status.candidate_revision}; "
                             f"{status.stable_revision} kept at full size")
    if status.promote_full:  # the promotion is the same one write
        return _promote(tick, status, "promoted in full by a person")
    event = RecordEvent("Normal", SWITCHED,
                        f"all traffic switched to {status.candidate_revision} in one write")
    return status, hold(tick, status, tick.spec.replicas) + [event]


def _switched(tick: Tick, status: RolloutStatus, keep: list) -> Result:
    metrics = tick.spec.strategy.post_promotion_metrics
    if not metrics:
        return _promote(tick, status, "switched (no post-promotion analysis)")
    # A failure aborts, and the abort moves every request back to the old revision in one write.
    return analysis_step(tick, status, metrics, keep, tick.spec.replicas, "post-promotion analysis",
                         lambda passed: _promote(tick, passed, "post-promotion analysis successful"))


def _promote(tick: Tick, status: RolloutStatus, why: str) -> Result:
    delay = tick.spec.strategy.scale_down_delay_seconds
    return promote(tick, status, why, keep_warm_seconds=delay, warm_from=status.switched_at)
