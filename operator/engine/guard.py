"""After the rollout: the guard watches the promoted revision and falls back. Pure.

    promoted (or first deployed) -> Watching: its triggers measured every interval
    a trigger fires              -> Fired: all traffic to the fallback in one routing
                                    write, once the fallback is ready (never before)
    recover, or healthy for recovery.healthyFor -> traffic back; Watching again
    the window ends              -> Ended: a previousStable fallback goes to 0
    a new rollout                -> the guard rests; a fallback that serves keeps the
                                    stable's share until the candidate is promoted

It runs after the rollout has decided (lifecycle.py), on its result: it keeps the
fallback warm and, while the fallback serves, puts it in the stable's place in every
traffic write, with copies of the requests mirrored to the guarded revision so that its
metrics go on being measured. Activation and recovery are status transitions: the spec is
never edited, so GitOps sees no drift.
"""

from __future__ import annotations

from datetime import datetime

from ..actions import Action, EnsureRevision, RecordEvent, RequestFallback, SetTraffic
from ..analysis.judge import FAILED, SUCCESSFUL
from ..api.v1alpha1 import FALLBACK_KINDS, GUARD_STATES
from ..routing.capabilities import CAPABILITIES
from ..spec import Spec
from ..status import (
    DEPLOYED,
    FALLBACK_ACTIVE,
    FALLBACK_NOT_READY,
    GUARD_ENDED,
    GUARD_FIRED,
    PROMOTED,
    RECOVERED,
    FallbackStatus,
    GuardStatus,
    RolloutStatus,
    deadline,
    format_time,
    parse_time,
)
from .measuring import kept
from .revisions import fallback_spec, revision_of
from .tick import Result, Tick

WATCHING, FIRED, ENDED = GUARD_STATES
PREVIOUS_STABLE, MODEL = FALLBACK_KINDS


def fallback_of(spec: Spec, status: RolloutStatus) -> tuple[str, str, str | None] | None:
    """(revision, kind, model version) of the fallback; None when there is none to fall to:
    no spec.fallback, or previousStable with no revision before, or past the guard window."""
    if spec.fallback is None:
        return None
    if spec.fallback.model is not None:
        return revision_of(fallback_spec(spec)), MODEL, spec.fallback.model.version
    guard = status.guard
    if guard is None or guard.previous_stable is None or (guard.state == ENDED and not _serving(status)):
        return None
    return guard.previous_stable, PREVIOUS_STABLE, status.revision_versions.get(guard.previous_stable)


def due_metrics(spec: Spec, status: RolloutStatus, now: datetime) -> tuple[str, ...]:
    """The guard's trigger metrics due a measurement now (none while a rollout runs)."""
    return tuple(name for name, due in _due(spec, status).items() if now >= due)


def _due(spec: Spec, status: RolloutStatus) -> dict[str, datetime]:
    """When each trigger metric is due its next measurement: an interval after its last one
    (or after the watch began); nothing while the guard is not watching."""
    guard = status.guard
    if spec.guard is None or guard is None or not _watching(status):
        return {}
    due = {}
    for name in dict.fromkeys(trigger.metric for trigger in spec.guard.triggers):
        metric = spec.analysis.metric(name)
        taken = [m.at for m in guard.analysis if m.metric == name]
        due[name] = deadline(taken[-1] if taken else guard.since,
                             metric.interval_seconds or spec.analysis.interval_seconds)
    return due


def routing_measured(spec: Spec, status: RolloutStatus) -> str:
    """Whose metrics the guard's builtins read: while the fallback serves, the guarded
    revision answers mirrored copies only, which its own servers count (the gateway's
    request metrics do not); otherwise as the rollout's analysis reads them."""
    return "server" if _serving(status) else spec.traffic_routing.kind


def watch(tick: Tick, before: RolloutStatus, status: RolloutStatus, actions: list[Action]) -> Result:
    """The rollout's decision (``status``, ``actions``), with the guard's part added: its
    watch, the fallback kept warm, and traffic on the fallback while it serves."""
    spec, events = tick.spec, []
    if spec.guard is None and _serving(status):
        events.append(RecordEvent("Normal", RECOVERED, f"traffic back to {status.stable_revision}: "
                                                       "spec.guard was removed"))
        status = status.with_(fallback=status.fallback.with_(active=False, since=None, reason=None))
    if spec.guard is None and spec.fallback is None:
        return status.with_(guard=None, fallback=None), actions + events
    if status.candidate_revision is None and status.stable_revision is not None:
        status, begun = _begun(tick, before, status)
        events += begun
    status = _fallback_seen(tick, status)
    if tick.obs.command == "recover" and status.guard is not None and status.guard.state == FIRED:
        status, more = _recovered(tick, status, f"by a person{tick.by()}")
        events += more
    elif spec.guard is not None and _watching(status):
        status, more = _judged(tick, status)
        events += more
    if status.guard is not None:
        status = status.with_(guard=status.guard.with_(next_at=_next_at(spec, status)))
    if status.candidate_revision is not None and _serving(status):
        status = status.with_(message=f"{status.message}; fallback {_named(status.fallback)} serves the "
                                      f"stable share in place of {status.stable_revision} until "
                                      f"{status.candidate_revision} is promoted")
    return status, _routed(tick, status, _kept_warm(tick, status, actions)) + events


def _next_at(spec: Spec, status: RolloutStatus) -> str | None:
    """When the guard has something to do next on its own: a measurement, or the window's end."""
    times = list(_due(spec, status).values())
    guard = status.guard
    if times and guard.until is not None and guard.state == WATCHING:
        times.append(parse_time(guard.until))
    return format_time(min(times)) if times else None


def _watching(status: RolloutStatus) -> bool:
    guard = status.guard
    return (guard is not None and guard.state != ENDED and status.candidate_revision is None
            and guard.revision == status.stable_revision)


def _serving(status: RolloutStatus) -> bool:
    return status.fallback is not None and status.fallback.active


# --- the watch -------------------------------------------------------------------------


def _begun(tick: Tick, before: RolloutStatus, status: RolloutStatus) -> tuple[RolloutStatus, list]:
    """A revision newly stable (or spec.guard newly set) is watched from now; a fallback
    that served stops (the new revision replaces the one it stood in for)."""
    guard, stable, events = status.guard, status.stable_revision, []
    if tick.spec.guard is None:
        return status.with_(guard=None), events
    if guard is not None and guard.revision == stable:
        return status, events
    window = tick.spec.guard.window_seconds
    watched = GuardStatus(revision=stable, since=tick.at, previous_stable=_served_before(before, status),
                          until=tick.later(window) if window else None)
    status = status.with_(guard=watched)
    if _serving(status):
        fallback = status.fallback
        events.append(RecordEvent("Normal", RECOVERED, f"fallback {fallback.revision} no longer serves: "
                                                       f"{stable} replaces the revision it stood in for"))
        status = status.with_(fallback=fallback.with_(active=False, since=None, reason=None))
    return status, events


def _served_before(before: RolloutStatus, status: RolloutStatus) -> str | None:
    """The revision that served before the current stable: a fallback that was serving, the
    stable this reconcile replaced, or the last one history says served."""
    stable = status.stable_revision
    if _serving(before) and before.fallback.revision != stable:
        return before.fallback.revision
    if before.stable_revision not in (None, stable):
        return before.stable_revision
    for entry in reversed(status.history):
        if entry.result in (PROMOTED, DEPLOYED) and entry.revision != stable:
            return entry.revision
    return None


def _fallback_seen(tick: Tick, status: RolloutStatus) -> RolloutStatus:
    """The fallback as it is now: which revision, and how ready (what its pods say when not)."""
    found = fallback_of(tick.spec, status)
    if found is None:
        return status.with_(fallback=None)
    revision, kind, version = found
    old = status.fallback if status.fallback is not None else None
    ready = tick.obs.fallback_ready_replicas if tick.obs.fallback_revision == revision else 0
    problem = tick.obs.fallback_problem if ready < 1 and tick.obs.fallback_revision == revision else None
    if revision == status.stable_revision:
        ready, problem = 0, "the fallback is the guarded revision itself (the same model and server)"
    fallback = FallbackStatus(revision=revision, kind=kind, version=version, ready_replicas=ready,
                              problem=problem, active=bool(old and old.active),
                              since=old.since if old else None, reason=old.reason if old else None)
    versions = status.revision_versions
    if version is not None and versions.get(revision) != version:
        versions = {**versions, revision: version}
    return status.with_(fallback=fallback, revision_versions=versions)


def _judged(tick: Tick, status: RolloutStatus) -> tuple[RolloutStatus, list]:
    """This reconcile's measurements taken in; the window closed, a trigger fired, the
    fallback activated or recovery reached, as the case is."""
    spec, guard, events = tick.spec, status.guard, []
    guard = guard.with_(analysis=kept(guard.analysis + tuple(tick.obs.measurements)))
    status = status.with_(guard=guard)
    if guard.state == WATCHING:
        if guard.until is not None and tick.reached(guard.until, 0):
            events.append(RecordEvent("Normal", GUARD_ENDED, f"guard window over: {guard.revision} watched "
                                                             f"since {guard.since} and no trigger fired"))
            return status.with_(guard=guard.with_(state=ENDED)), events
        fired = _fired(spec, guard, tick.now)
        if fired is None:
            return status, events
        guard = guard.with_(state=FIRED, fired_at=tick.at, trigger=fired)
        status = status.with_(guard=guard)
        events.append(RecordEvent("Warning", GUARD_FIRED, f"guard fired on {guard.revision}: {fired}"))
    fallback = status.fallback
    if fallback is None:
        return status.with_(reason=GUARD_FIRED,
                            message=f"guard fired on {guard.revision}: {guard.trigger}; there is no fallback "
                                    "to send traffic to (spec.fallback)"), events
    if not fallback.active:
        if fallback.ready_replicas < 1:
            why = f": {fallback.problem}" if fallback.problem else ""
            return status.with_(reason=FALLBACK_NOT_READY,
                                message=f"guard fired on {guard.revision}: {guard.trigger}; fallback "
                                        f"{_named(fallback)} is not ready{why}: traffic stays on "
                                        f"{guard.revision}"), events
        fallback = fallback.with_(active=True, since=tick.at, reason=guard.trigger)
        status = status.with_(fallback=fallback)
        told = f"all traffic to fallback {_named(fallback)}: guard fired on {guard.revision}: {guard.trigger}"
        events.append(RecordEvent("Warning", FALLBACK_ACTIVE, told))
    recovery = spec.guard.recovery
    if recovery.automatic:
        healthy = _healthy(spec, guard)
        guard = guard.with_(healthy_since=(guard.healthy_since or tick.at) if healthy else None)
        status = status.with_(guard=guard)
        if healthy and tick.reached(guard.healthy_since, recovery.healthy_for_seconds):
            status, more = _recovered(tick, status,
                                      f"every trigger's metric healthy since {guard.healthy_since}")
            return status, events + more
    how = ("on its own once every trigger's metric is healthy for recovery.healthyFor" if recovery.automatic
           else "with `kubectl modelrollout recover`")
    return status.with_(reason=FALLBACK_ACTIVE,
                        message=f"fallback {_named(fallback)} serves all traffic since {fallback.since}: "
                                f"guard fired on {guard.revision}: {guard.trigger}; traffic goes back "
                                f"{how}"), events


def _fired(spec: Spec, guard: GuardStatus, now: datetime) -> str | None:
    """What fired, when a trigger's metric has failed more than failureLimit times in a row
    for at least its ``for`` (Successful ends a run; Inconclusive and Error do not count)."""
    for trigger in spec.guard.triggers:
        run = []
        for measurement in reversed([m for m in guard.analysis if m.metric == trigger.metric]):
            if measurement.phase == SUCCESSFUL:
                break
            if measurement.phase == FAILED:
                run.append(measurement)
        if len(run) > trigger.failure_limit and now >= deadline(run[-1].at, trigger.for_seconds):
            return (f"{trigger.metric} failed {len(run)} times in a row since {run[-1].at} "
                    f"(last: {run[0].message})")
    return None


def _healthy(spec: Spec, guard: GuardStatus) -> bool:
    """Every trigger's metric measured since the guard fired, and Successful the last time."""
    for trigger in spec.guard.triggers:
        since = [m for m in guard.analysis if m.metric == trigger.metric and m.at > (guard.fired_at or "")]
        if not since or since[-1].phase != SUCCESSFUL:
            return False
    return True


def _recovered(tick: Tick, status: RolloutStatus, how: str) -> tuple[RolloutStatus, list]:
    """Traffic back to the guarded revision, which is watched afresh from now."""
    guard = status.guard
    status = status.with_(guard=GuardStatus(revision=guard.revision, since=tick.at, until=guard.until,
                                            previous_stable=guard.previous_stable))
    if status.fallback is not None:
        status = status.with_(fallback=status.fallback.with_(active=False, since=None, reason=None))
    return status, [RecordEvent("Normal", RECOVERED, f"traffic back to {guard.revision}: {how}")]


def _named(fallback: FallbackStatus) -> str:
    return f"{fallback.revision} ({fallback.version})" if fallback.version else fallback.revision


# --- what the shell is asked to do -------------------------------------------------------


def _kept_warm(tick: Tick, status: RolloutStatus, actions: list[Action]) -> list[Action]:
    """The fallback at fallback.replicas while it waits, at spec.replicas while it serves;
    a keep-warm window or a scale-down of it by the rollout gives way to that."""
    fallback = status.fallback
    if fallback is None or fallback.revision in (status.stable_revision, status.candidate_revision):
        return actions
    wanted = tick.spec.replicas if fallback.active else tick.spec.fallback.replicas
    mine = [a for a in actions
            if not isinstance(a, SetTraffic) and getattr(a, "revision", None) == fallback.revision]
    warm = max([a.replicas for a in mine if isinstance(a, EnsureRevision)] + [wanted])
    return [a for a in actions if a not in mine] + [EnsureRevision(fallback.revision, warm)]


def _routed(tick: Tick, status: RolloutStatus, actions: list[Action]) -> list[Action]:
    """Traffic writes as the fallback changes them: in the stable's place while it serves;
    named per request (spec.fallback.perRequest) while it waits ready."""
    fallback, spec = status.fallback, tick.spec
    if fallback is None:
        return actions
    if fallback.active:
        return [_instead(a, status.stable_revision, fallback.revision, spec) if isinstance(a, SetTraffic)
                else a for a in actions]
    per_request = spec.fallback.per_request
    if per_request is None or fallback.ready_replicas < 1 or fallback.revision == status.candidate_revision:
        return actions
    deadline_ms = round(per_request.deadline_seconds * 1000) if per_request.deadline_seconds else None
    named = RequestFallback(fallback.revision, deadline_ms)
    return [SetTraffic(a.stable_revision, a.candidate_revision, a.stable_weight, a.candidate_weight,
                       a.mirror_percent, named) if isinstance(a, SetTraffic) else a for a in actions]


def _instead(traffic: SetTraffic, guarded: str, fallback: str, spec: Spec) -> SetTraffic:
    """The split with the fallback in the guarded revision's place. With no candidate, the
    guarded revision gets mirrored copies (where the router can send them) so that its
    metrics go on; a candidate that is the fallback itself takes everything."""
    if traffic.stable_revision != guarded:
        return traffic
    candidate = traffic.candidate_revision
    if candidate == fallback:
        return SetTraffic(fallback, None, 100, 0)
    if candidate is None:
        mirror = 100 if CAPABILITIES[spec.traffic_routing.kind].mirroring else 0
        return SetTraffic(fallback, guarded, 100, 0, mirror)
    return SetTraffic(fallback, candidate, traffic.stable_weight, traffic.candidate_weight,
                      traffic.mirror_percent)
