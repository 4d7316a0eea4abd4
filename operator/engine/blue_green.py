"""The blue-green strategy: a preview beside the active revision, then one switch. Pure.

The candidate starts at previewReplicas beside the untouched active (stable) revision and
passes the gate. Weights are only ever 0 or 100. Its stages, in ``status.blueGreen.stage``:

    Preview            pre-promotion analysis on the preview's own traffic (requests that
                       ask for it by header or through the preview Service); skipped
                       when it names no metrics
    AwaitingPromotion  autoPromotionSeconds, or a person's `kubectl modelrollout promote`;
                       the pre-promotion analysis goes on meanwhile, and a failure aborts
    ScalingUp          the preview grows to full size; the switch waits for every replica
    Switched           100% to the candidate in one write; the old revision stays at full
                       size while post-promotion analysis runs. Failed: switched back in
                       one write, Degraded. Then promoted, and the old revision is kept
                       warm scaleDownDelaySeconds from the switch before it goes to 0.

``promote`` moves to the next stage now (skipping a wait or an analysis); ``promote-full``
scales up, switches and promotes without post-promotion analysis. An abort at any stage
moves all traffic to the active revision in one write and keeps the preview
abortScaleDownDelaySeconds for a look at what failed.
"""

from __future__ import annotations

from ..actions import RecordEvent
from ..api.v1alpha1 import BLUE_GREEN_STAGES
from ..spec import BlueGreen, Spec
from ..status import (
    SCALING_UP,
    STEP_DONE,
    SWITCHED,
    WAITING_FOR_PROMOTION,
    BlueGreenStatus,
    RolloutStatus,
    Traffic,
    warm_previous,
)
from .measuring import analysis_step, while_waiting
from .outcomes import promote
from .sizing import grown
from .tick import Result, Tick, entered, hold

KIND = "blueGreen"
STAGES = BLUE_GREEN_STAGES
PREVIEW, AWAITING, SCALING, SWITCHED_STAGE = STAGES


def _spec(spec: Spec) -> BlueGreen:
    return spec.strategy.blue_green


def _record(status: RolloutStatus) -> BlueGreenStatus:
    return status.blue_green or BlueGreenStatus()


def _stage(status: RolloutStatus) -> str:
    return _record(status).stage or PREVIEW


def candidate_replicas(spec: Spec, status: RolloutStatus) -> int:
    preview = _spec(spec).preview_replicas
    if status.fast_revert or _stage(status) in (SCALING, SWITCHED_STAGE) or preview is None:
        return spec.replicas
    return preview


def metrics_now(spec: Spec, status: RolloutStatus) -> tuple[str, ...]:
    strategy, stage = _spec(spec), _stage(status)
    blocks = {PREVIEW: strategy.pre_promotion_analysis, AWAITING: strategy.pre_promotion_analysis,
              SWITCHED_STAGE: strategy.post_promotion_analysis}
    block = blocks.get(stage)
    return tuple(block.metrics) if block is not None else ()


def step_started_at(status: RolloutStatus) -> str | None:
    return _record(status).stage_started_at


def begin(status: RolloutStatus, at: str) -> RolloutStatus:
    return status.with_(blue_green=BlueGreenStatus(stage=PREVIEW, stage_started_at=at))


def reset(status: RolloutStatus) -> RolloutStatus:
    return status.with_(blue_green=BlueGreenStatus())


def keep_warm_seconds(spec: Spec) -> float:
    return float(_spec(spec).scale_down_delay_seconds)


def keep_aborted_seconds(spec: Spec) -> float:
    return float(_spec(spec).abort_scale_down_delay_seconds)


def shown(spec: Spec, status: RolloutStatus) -> RolloutStatus:
    record = _record(status)
    switched = status.candidate_revision is not None and record.stage == SWITCHED_STAGE
    warm = [d.at for d in warm_previous(status)]
    record = record.with_(active_revision=status.candidate_revision if switched else status.stable_revision,
                          preview_revision=None if switched else status.candidate_revision,
                          scale_down_at=min(warm) if warm else None)
    index = STAGES.index(record.stage) if status.candidate_revision and record.stage else 0
    return status.with_(blue_green=record, current_step=index)


def promote_now(tick: Tick, status: RolloutStatus, why: str) -> Result:
    """promote-full: scale up, switch, and promote without post-promotion analysis."""
    if _stage(status) == SWITCHED_STAGE:
        return _promote(tick, status, why)
    status = status.with_(blue_green=_record(status).with_(promote_full=True))
    if _stage(status) == SCALING:
        return _scaling(tick, status)
    return _scale_up(tick, status, why)


def progress(tick: Tick, status: RolloutStatus, keep: list) -> Result:
    stage = _stage(status)
    if tick.obs.command == "promote":  # the next stage, now
        why = f"promoted by a person{tick.by()}"
        return _promote(tick, status, why) if stage == SWITCHED_STAGE else _scale_up(tick, status, why)
    if stage == PREVIEW:
        return _preview(tick, status, keep)
    if stage == AWAITING:
        return _awaiting(tick, status, keep)
    if stage == SCALING:
        return _scaling(tick, status)
    return _switched(tick, status, keep)


def _enter(status: RolloutStatus, stage: str, at: str, reason: str, message: str, **changes) -> RolloutStatus:
    record = _record(status).with_(stage=stage, stage_started_at=at)
    return entered(status, reason, message, blue_green=record, **changes)


def _preview(tick: Tick, status: RolloutStatus, keep: list) -> Result:
    block = _spec(tick.spec).pre_promotion_analysis
    if block is None or not block.metrics:
        return _enter(status, AWAITING, tick.at, STEP_DONE, "preview ready (no pre-promotion analysis)"), keep
    def passed(status: RolloutStatus) -> Result:
        return _enter(status, AWAITING, tick.at, STEP_DONE, "pre-promotion analysis successful"), keep

    return analysis_step(tick, status, tuple(block.metrics), keep, candidate_replicas(tick.spec, status),
                         "pre-promotion analysis", passed)


def _awaiting(tick: Tick, status: RolloutStatus, keep: list) -> Result:
    return while_waiting(tick, status, metrics_now(tick.spec, status), candidate_replicas(tick.spec, status),
                         "pre-promotion analysis", lambda measured: _wait(tick, measured, keep))


def _wait(tick: Tick, status: RolloutStatus, keep: list) -> Result:
    auto = _spec(tick.spec).auto_promotion_seconds
    if auto is None:
        return status.with_(paused=True, reason=WAITING_FOR_PROMOTION,
                            message=f"preview of {status.candidate_revision} ready: "
                                    "`kubectl modelrollout promote` switches all traffic to it"), keep
    started = step_started_at(status)
    if tick.reached(started, auto):
        return _scale_up(tick, status, f"autoPromotionSeconds ({auto:g}) passed")
    return status.with_(reason=WAITING_FOR_PROMOTION,
                        message=f"preview ready: switching in {tick.seconds_left(started, auto):.0f} s "
                                "(autoPromotionSeconds), or promote now"), keep


def _scale_up(tick: Tick, status: RolloutStatus, why: str) -> Result:
    status = _enter(status, SCALING, tick.at, SCALING_UP,
                    f"{why}: scaling the preview to {tick.spec.replicas} replicas before the switch")
    return _scaling(tick, status)


def _scaling(tick: Tick, status: RolloutStatus) -> Result:
    return grown(tick, status, tick.spec.replicas, step_started_at(status), "before the switch",
                 lambda: _switch(tick, status))


def _switch(tick: Tick, status: RolloutStatus) -> Result:
    """All traffic to the candidate in one write; the old revision stays at full size."""
    status = _enter(status, SWITCHED_STAGE, tick.at, SWITCHED,
                    f"all traffic switched to {status.candidate_revision}; {status.stable_revision} kept at "
                    "full size", traffic=Traffic(stable=0, candidate=100))
    status = status.with_(blue_green=_record(status).with_(switched_at=tick.at))
    if _record(status).promote_full:  # the promotion is the same one write
        return _promote(tick, status, "promoted in full by a person")
    event = RecordEvent("Normal", SWITCHED,
                        f"all traffic switched to {status.candidate_revision} in one write")
    return status, hold(tick, status, tick.spec.replicas) + [event]


def _switched(tick: Tick, status: RolloutStatus, keep: list) -> Result:
    block = _spec(tick.spec).post_promotion_analysis
    if block is None or not block.metrics:
        return _promote(tick, status, "switched (no post-promotion analysis)")
    # A failure aborts, and the abort moves every request back to the old revision in one write.
    return analysis_step(tick, status, tuple(block.metrics), keep, tick.spec.replicas,
                         "post-promotion analysis",
                         lambda passed: _promote(tick, passed, "post-promotion analysis successful"))


def _promote(tick: Tick, status: RolloutStatus, why: str) -> Result:
    return promote(tick, status, why, warm_from=_record(status).switched_at)
