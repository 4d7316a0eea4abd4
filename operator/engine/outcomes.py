"""How a rollout ends, what it leaves in history, and the revisions kept warm after. Pure.

    promote   the candidate becomes stable at 100% in one write; the old stable goes to 0,
              or is kept warm for the strategy's scaleDownDelaySeconds
    abort     100% stable in one write, then the candidate goes (at once, or kept a while
              for a look where the strategy says so); Degraded until the spec changes or a
              person retries
"""

from __future__ import annotations

from ..actions import EnsureRevision, RecordEvent, ScaleRevision, SetTraffic
from ..status import (
    ABORTED,
    PROMOTED,
    HistoryEntry,
    RolloutStatus,
    ScaleDown,
    Traffic,
    parse_time,
)
from .tick import Result, Tick


def promote(tick: Tick, status: RolloutStatus, why: str, reason: str = PROMOTED,
            warm_from: str | None = None) -> Result:
    """The candidate becomes stable at 100%, in one write; then the old stable goes, at
    once or after the strategy's keep-warm time from ``warm_from`` (default now)."""
    spec = tick.spec
    old, new = status.stable_revision, status.candidate_revision
    status = record(tick, status, new, PROMOTED, reason)
    actions = [EnsureRevision(new, spec.replicas), SetTraffic(new, None, 100, 0)]
    scale_downs, message = status.scale_downs, f"{new} promoted: {why}"
    keep_seconds = tick.strategy.keep_warm_seconds(spec)
    if keep_seconds > 0:
        until = tick.later(keep_seconds, since=warm_from)
        scale_downs += (ScaleDown(revision=old, replicas=spec.replicas, at=until),)
        actions.append(EnsureRevision(old, spec.replicas))
        message = f"{message}; {old} kept at full size until {until}"
    else:
        actions.append(ScaleRevision(old, 0))
    status = reset(tick, status).with_(stable_revision=new, candidate_revision=None, traffic=Traffic(),
                                           reason=reason, scale_downs=scale_downs, message=message)
    return status, actions + [RecordEvent("Normal", reason, f"{new} promoted ({why})")]


def abort(tick: Tick, status: RolloutStatus, reason: str, why: str, replicas: int) -> Result:
    """All traffic to stable in one write, first; then the candidate goes, at once or, where
    the strategy says (blue-green's abortScaleDownDelaySeconds), kept at its ``replicas``
    a while for a look at what failed."""
    spec = tick.spec
    stable, candidate = status.stable_revision, status.candidate_revision
    status = record(tick, status, candidate, ABORTED, reason)
    actions = [SetTraffic(stable, None, 100, 0)]
    scale_downs = status.scale_downs
    keep_seconds = tick.strategy.keep_aborted_seconds(spec)
    if keep_seconds > 0:
        until = tick.later(keep_seconds)
        scale_downs += (ScaleDown(revision=candidate, replicas=replicas, at=until),)
        actions.append(EnsureRevision(candidate, replicas))
    else:
        actions.append(ScaleRevision(candidate, 0))
    status = reset(tick, status).with_(candidate_revision=None, aborted_revision=candidate, abort_reason=why,
                                           traffic=Traffic(), reason=reason, scale_downs=scale_downs,
                                           message=f"rollout of {candidate} aborted: {why}")
    return status, actions + [EnsureRevision(stable, spec.replicas),
                              RecordEvent("Warning", reason, f"rollout of {candidate} aborted: {why}")]


def reset(tick: Tick, status: RolloutStatus) -> RolloutStatus:
    """What a rollout remembers of its steps, cleared (a new candidate, a promotion, an abort)."""
    status = status.with_(candidate_since=None, gate_passed=False, analysis=(), paused=False,
                          paused_by_user=False, fast_revert=False)
    return tick.strategy.reset(status)


def record(tick: Tick, status: RolloutStatus, revision: str, result: str, reason: str) -> RolloutStatus:
    """A history entry for ``revision`` (a candidate), with who asked when a person did."""
    spec = tick.spec
    version = status.revision_versions.get(revision, spec.model.version)
    by = tick.obs.command_by if tick.obs.command else None
    sha256 = spec.model.sha256 if revision == tick.desired else None
    entry = HistoryEntry(revision=revision, model_version=version, sha256=sha256, result=result, at=tick.at,
                         started_at=status.candidate_since, reason=reason, by=by)
    return status.with_(history=bounded(status.history + (entry,), spec.revision_history_limit))


def keep_warm(tick: Tick, status: RolloutStatus, actions: list) -> Result:
    """Revisions in a keep-warm window stay at their size until it ends, then go to 0."""
    kept, more = [], []
    in_service = (status.stable_revision, status.candidate_revision)
    for down in status.scale_downs:
        if down.revision in in_service:
            continue  # wanted again (a revert to it, a retry): no longer ours to scale down
        if parse_time(down.at) > tick.now:
            kept.append(down)
            if not any(getattr(a, "revision", None) == down.revision for a in actions):
                more.append(EnsureRevision(down.revision, down.replicas))
        else:
            more.append(ScaleRevision(down.revision, 0))
    return status.with_(scale_downs=tuple(kept)), actions + more


def bounded(history: tuple, limit: int) -> tuple:
    return history[-limit:] if limit else ()
