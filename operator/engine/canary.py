"""The canary strategy: traffic moved step by step. Pure.

    setWeight N       -> traffic N% candidate, next step
    setMirror N       -> N% of requests copied to the candidate, answers compared
    pause             -> wait its duration, or for a person (resume / promote)
    analysis          -> measure every interval; Successful: next step, Failed: abort,
                         Inconclusive (no data, Prometheus down): pause, never promote
    after last step   -> promote: the candidate grows to every replica, then becomes
                         stable at 100%, old stable to 0

The candidate has its share of the pods (sizing.py): a step that raises its weight waits
until it has the pods for the new weight.

Its own record is status.canary: the step being worked on and when it began. What every
strategy shares (gate, promote, abort, history) is in lifecycle.py and outcomes.py. One
reconcile moves a rollout at most one step.
"""

from __future__ import annotations

from ..actions import RecordEvent
from ..spec import Spec, Step
from ..status import MIRROR_SET, PAUSED_BY_STEP, STEP_DONE, WEIGHT_SET, CanaryStatus, RolloutStatus, Traffic
from .measuring import analysis_step
from .outcomes import promote
from .sizing import grown, share
from .tick import Result, Tick, entered, hold

KIND = "canary"


def candidate_replicas(spec: Spec, status: RolloutStatus) -> int:
    """Its share of the traffic it answers or the copies it gets (sizing.py); every replica
    for a fast revert and once the steps are over (the promotion)."""
    if status.fast_revert or _step(spec, status) is None:
        return spec.replicas
    return _pods_for(spec, status.traffic)


def _pods_for(spec: Spec, split: Traffic) -> int:
    """The candidate's pods for the requests it answers or the copies it gets, whichever is more."""
    return share(spec.replicas, max(split.candidate, split.mirror))


def metrics_now(spec: Spec, status: RolloutStatus) -> tuple[str, ...]:
    step = _step(spec, status)
    return tuple(step.analysis.metrics) if step is not None and step.analysis is not None else ()


def step_started_at(status: RolloutStatus) -> str | None:
    return _record(status).step_started_at


def begin(status: RolloutStatus, at: str) -> RolloutStatus:
    return status.with_(canary=CanaryStatus(step=0, step_started_at=at))


def reset(status: RolloutStatus) -> RolloutStatus:
    return status.with_(canary=CanaryStatus())


def keep_warm_seconds(spec: Spec) -> float:
    return 0.0


def keep_aborted_seconds(spec: Spec) -> float:
    return 0.0


def shown(spec: Spec, status: RolloutStatus) -> RolloutStatus:
    return status.with_(canary=_record(status), current_step=_record(status).step)


def promote_now(tick: Tick, status: RolloutStatus, why: str) -> Result:
    """promote-full: past the steps left, then promoted once every replica is ready."""
    record = CanaryStatus(step=len(tick.spec.strategy.canary.steps), step_started_at=tick.at, promotion=why)
    return _promote(tick, status.with_(canary=record))


def progress(tick: Tick, status: RolloutStatus, keep: list) -> Result:
    spec = tick.spec
    step = _step(spec, status)
    if step is None:
        return _promote(tick, status)
    if tick.obs.command == "promote":
        return _next(status, tick.at, STEP_DONE, "step skipped by a person"), keep
    if step.set_weight is not None:
        weight = step.set_weight
        split = Traffic(stable=100 - weight, candidate=weight, mirror=status.traffic.mirror)
        return _set_traffic(tick, status, split, WEIGHT_SET, f"candidate at {weight}%",
                            f"candidate {status.candidate_revision} at {weight}%",
                            f"for {weight}% of traffic")
    if step.set_mirror is not None:
        split, percent = status.traffic, step.set_mirror.percent
        return _set_traffic(tick, status, split.with_(mirror=percent), MIRROR_SET,
                            f"{percent}% of requests mirrored to the candidate",
                            f"{percent}% of requests mirrored to candidate {status.candidate_revision}",
                            f"for {percent}% of requests mirrored")
    if step.pause is not None:
        return _pause(tick, status, step, keep)
    return analysis_step(tick, status, tuple(step.analysis.metrics), keep, candidate_replicas(spec, status),
                         "analysis",
                         lambda passed: (_next(passed, tick.at, STEP_DONE, "analysis successful"), keep))


def _record(status: RolloutStatus) -> CanaryStatus:
    return status.canary or CanaryStatus()


def _step(spec: Spec, status: RolloutStatus) -> Step | None:
    steps, index = spec.strategy.canary.steps, _record(status).step
    return steps[index] if index < len(steps) else None


def _next(status: RolloutStatus, at: str, reason: str, why: str, **changes) -> RolloutStatus:
    """The next step begins."""
    record = CanaryStatus(step=_record(status).step + 1, step_started_at=at)
    return entered(status, reason, why, canary=record, **changes)


def _set_traffic(tick: Tick, status: RolloutStatus, split: Traffic, reason: str, message: str,
                 event: str, purpose: str) -> Result:
    """The new split once the candidate has the pods for its share (sizing.py)."""
    def moved() -> Result:
        moved_on = _next(status, tick.at, reason, message, traffic=split)
        keep = hold(tick, moved_on, candidate_replicas(tick.spec, moved_on))
        return moved_on, keep + [RecordEvent("Normal", reason, event)]

    return grown(tick, status, _pods_for(tick.spec, split), step_started_at(status), purpose, moved)


def _promote(tick: Tick, status: RolloutStatus) -> Result:
    """Every step passed (or a person promoted in full): the candidate grows to every
    replica, then takes all traffic."""
    why = _record(status).promotion or "every step passed"
    return grown(tick, status, tick.spec.replicas, step_started_at(status), "before promotion",
                 lambda: promote(tick, status, why))


def _pause(tick: Tick, status: RolloutStatus, step: Step, keep: list) -> Result:
    seconds = step.pause.duration_seconds
    if seconds is None:
        if tick.obs.command == "resume":
            return _next(status, tick.at, STEP_DONE, "resumed by a person"), keep
        message = f"paused at step {_record(status).step} until a person resumes or promotes"
        return status.with_(paused=True, reason=PAUSED_BY_STEP, message=message), keep
    started = step_started_at(status)
    if tick.reached(started, seconds):
        return _next(status, tick.at, STEP_DONE, "pause over"), keep
    return status.with_(reason=PAUSED_BY_STEP,
                        message=f"pausing for {tick.seconds_left(started, seconds):.0f} s more"), keep
