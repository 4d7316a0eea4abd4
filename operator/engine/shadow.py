"""The shadow strategy: the candidate answers copies of live requests, never a client. Pure.

Past the gate the gateway mirrors mirrorPercent of requests to the candidate and compares
each answer with the one stable gave the client; the candidate's weight stays 0 the whole
time. Its stages, in ``status.shadow.stage``:

    Shadowing          at least ``duration`` and ``minComparisons`` compared answers, the
                       analysis metrics (shadow-agreement, shadow-latency-ratio,
                       shadow-error-rate...) measured every interval the whole time.
                       Failed: mirroring stops, the candidate goes, Degraded.
    AwaitingPromotion  passed with ``then: manual``: a person promotes; mirroring, the
                       comparisons' count and the analysis go on, and a failure aborts
    ScalingUp          promoted: the candidate, with the mirror's share of the pods until
                       now, grows to every replica before it takes the traffic

On pass (``then: promote``) or a person's promote, all traffic switches to the candidate
in one write and the old stable is kept warm scaleDownDelaySeconds, as blue-green does.
"""

from __future__ import annotations

from ..actions import RecordEvent
from ..analysis.judge import FAILED, INCONCLUSIVE, SUCCESSFUL
from ..api.v1alpha1 import SHADOW_STAGES
from ..spec import Shadow, Spec
from ..status import SHADOWING, STEP_DONE, WAITING_FOR_PROMOTION, RolloutStatus, ShadowStatus, Traffic
from .measuring import analysis_failed, inconclusive, run_analysis, while_waiting
from .outcomes import promote
from .sizing import grown, share
from .tick import Result, Tick, entered, hold

KIND = "shadow"
STAGES = SHADOW_STAGES
SHADOWING_STAGE, AWAITING, SCALING = STAGES


def _spec(spec: Spec) -> Shadow:
    return spec.strategy.shadow


def _record(status: RolloutStatus) -> ShadowStatus:
    return status.shadow or ShadowStatus()


def _stage(status: RolloutStatus) -> str:
    return _record(status).stage or SHADOWING_STAGE


def candidate_replicas(spec: Spec, status: RolloutStatus) -> int:
    """The mirror's share of the pods (sizing.py): a 100% mirror is as much work as the live
    traffic; every replica before promotion."""
    if status.fast_revert or _stage(status) == SCALING:
        return spec.replicas
    return share(spec.replicas, _spec(spec).mirror_percent)


def metrics_now(spec: Spec, status: RolloutStatus) -> tuple[str, ...]:
    analysis = _spec(spec).analysis
    return tuple(analysis.metrics) if analysis is not None else ()


def step_started_at(status: RolloutStatus) -> str | None:
    return _record(status).stage_started_at


def begin(status: RolloutStatus, at: str) -> RolloutStatus:
    return status.with_(shadow=ShadowStatus(stage=SHADOWING_STAGE, stage_started_at=at))


def reset(status: RolloutStatus) -> RolloutStatus:
    return status.with_(shadow=ShadowStatus())


def keep_warm_seconds(spec: Spec) -> float:
    return float(_spec(spec).scale_down_delay_seconds)


def keep_aborted_seconds(spec: Spec) -> float:
    return 0.0


def shown(spec: Spec, status: RolloutStatus) -> RolloutStatus:
    agreement = [m.value for m in status.analysis if m.metric == "shadow-agreement" and m.value is not None]
    record = _record(status).with_(mirror_percent=status.traffic.mirror,
                                   agreement=agreement[-1] if agreement else None)
    index = STAGES.index(record.stage) if status.candidate_revision and record.stage else 0
    return status.with_(shadow=record, current_step=index)


def counts_comparisons(spec: Spec, status: RolloutStatus) -> bool:
    """Whether compared answers are being counted now (for minComparisons)."""
    return status.gate_passed and status.traffic.mirror > 0


def comparisons_counted_at(status: RolloutStatus) -> str | None:
    return _record(status).comparisons_at


def shadowing_since(status: RolloutStatus) -> str | None:
    """When the mirror started: the comparisons are counted from then, waiting included."""
    return _record(status).since or step_started_at(status)


def promote_now(tick: Tick, status: RolloutStatus, why: str) -> Result:
    """All traffic to the candidate once it has every replica; until then it grows, mirrored."""
    record = _record(status).with_(stage=SCALING, stage_started_at=tick.at, promotion=why)
    return _scaling(tick, status.with_(shadow=record))


def _scaling(tick: Tick, status: RolloutStatus) -> Result:
    record = _record(status)
    return grown(tick, status, tick.spec.replicas, record.stage_started_at, "before promotion",
                 lambda: promote(tick, status, record.promotion or "shadow passed"))


def progress(tick: Tick, status: RolloutStatus, keep: list) -> Result:
    shadow = _spec(tick.spec)
    if _stage(status) == SCALING:
        return _scaling(tick, status)
    if tick.obs.command == "promote":
        return promote_now(tick, status, f"promoted by a person{tick.by()}")
    if status.traffic.mirror != shadow.mirror_percent:
        return _start_mirror(tick, status, shadow)
    if tick.obs.shadow_comparisons is not None:
        status = status.with_(shadow=_record(status).with_(comparisons=tick.obs.shadow_comparisons,
                                                           comparisons_at=tick.at))
    if _stage(status) == AWAITING:
        return _awaiting(tick, status, keep)
    outcome, detail = SUCCESSFUL, ""
    if shadow.analysis is not None and shadow.analysis.metrics:
        status, outcome, detail = run_analysis(tick, status, tuple(shadow.analysis.metrics))
    if outcome == FAILED:  # the abort's one write stops the mirror too
        return analysis_failed(tick, status, detail, candidate_replicas(tick.spec, status))
    if outcome == INCONCLUSIVE:
        return inconclusive(status, detail, keep)
    started, comparisons = step_started_at(status), _record(status).comparisons
    waiting = []
    if not tick.reached(started, shadow.duration_seconds):
        waiting.append(f"{tick.seconds_left(started, shadow.duration_seconds):.0f} s of the duration left")
    if comparisons < shadow.min_comparisons:
        waiting.append(f"{comparisons} of {shadow.min_comparisons} comparisons")
    if outcome != SUCCESSFUL:
        waiting.append(f"analysis running: {detail}")
    if waiting:
        message = f"shadowing {shadow.mirror_percent}% of requests: " + "; ".join(waiting)
        return status.with_(reason=SHADOWING, message=message), keep
    if shadow.then == "promote":
        return promote_now(tick, status, "shadow passed")
    record = _record(status).with_(stage=AWAITING, stage_started_at=tick.at)
    return entered(status, STEP_DONE, "shadow passed; waiting for a person to promote", shadow=record), keep


def _awaiting(tick: Tick, status: RolloutStatus, keep: list) -> Result:
    def waiting(measured: RolloutStatus) -> Result:
        message = (f"shadow of {measured.candidate_revision} passed: `kubectl modelrollout promote` switches "
                   "all traffic to it")
        return measured.with_(paused=True, reason=WAITING_FOR_PROMOTION, message=message), keep

    return while_waiting(tick, status, metrics_now(tick.spec, status), candidate_replicas(tick.spec, status),
                         "shadow analysis", waiting)


def _start_mirror(tick: Tick, status: RolloutStatus, shadow: Shadow) -> Result:
    record = _record(status).with_(stage=SHADOWING_STAGE, stage_started_at=tick.at, since=tick.at,
                                   comparisons=0, comparisons_at=None)
    status = entered(status, SHADOWING, f"shadowing {shadow.mirror_percent}% of requests to the candidate",
                     shadow=record, traffic=Traffic(mirror=shadow.mirror_percent))
    event = RecordEvent("Normal", SHADOWING, f"{shadow.mirror_percent}% of requests mirrored to candidate "
                                             f"{status.candidate_revision}; clients are answered by stable")
    return status, hold(tick, status, candidate_replicas(tick.spec, status)) + [event]
