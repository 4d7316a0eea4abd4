"""What every strategy shares: one rollout from a new spec to promoted or aborted. Pure.

    first revision    -> stable at 100%
    new spec          -> a candidate next to stable (stable keeps full capacity); a
                         candidate still in flight is Superseded, and says so in history
    gate              -> the candidate's replicas ready and a smoke inference answered
    strategy          -> canary.py, blue_green.py or shadow.py decide their own steps
    promote, abort    -> outcomes.py
    fast revert       -> a revision promoted within spec.rollbackWindow skips the steps
    spec back         -> the spec names what stable serves: any rollout is called off
    after promotion   -> guard.py watches the stable revision, and falls back

Read it as a checklist: each function returns a finished (status, actions) or None to go
on to the next. What a strategy provides is strategy.py's Strategy.
"""

from __future__ import annotations

from dataclasses import replace

from ..actions import EnsureRevision, RecordEvent, ScaleRevision, SetTraffic
from ..spec import Spec
from ..status import (
    ABORTED_BY_USER,
    ANALYSIS_INCONCLUSIVE,
    CANDIDATE_CRASH_LOOP,
    CANDIDATE_NOT_READY,
    CANDIDATE_READY,
    DEPLOYED,
    FAST_REVERT,
    GOLDEN_SET_FAILED,
    NEW_REVISION,
    PAUSED_BY_USER,
    PROGRESS_DEADLINE_EXCEEDED,
    PROMOTED,
    SCALE_DOWN_DELAY,
    SMOKE_TEST_FAILED,
    STABLE_READY,
    SUPERSEDED,
    HistoryEntry,
    RolloutStatus,
    Traffic,
    parse_time,
    phase_of,
    warm_previous,
)
from . import golden, guard
from .conditions import with_conditions
from .outcomes import abort, bounded, keep_warm, promote, record, reset
from .tick import Result, Tick, hold


def decide(tick: Tick, status: RolloutStatus) -> Result:
    before, spec, strategy = status, tick.spec, tick.strategy
    # Whether it waits for a person is decided afresh every reconcile, as everything else.
    status = status.with_(observed_generation=tick.obs.generation, strategy=spec.strategy.kind, paused=False,
                          revision_versions={**status.revision_versions, tick.desired: spec.model.version})
    for step in (_first_revision, _spec_back_to_stable, _aborted, _new_candidate):
        result = step(tick, status)
        if result is not None:
            break
    else:
        result = _progress(tick, status)
    status, actions = guard.watch(tick, before, *keep_warm(tick, *result))
    status = strategy.shown(spec, _shown(tick, before, status))
    events = _transition_event(before, status, actions, spec.replicas)
    return with_conditions(status, tick.at), actions + events


def _shown(tick: Tick, before: RolloutStatus, status: RolloutStatus) -> RolloutStatus:
    """What people read off the status: versions, the stable's ready replicas, the phase; and
    the replicas an HPA reads."""
    obs, versions = tick.obs, status.revision_versions
    promoted = status.stable_revision is not None and status.stable_revision == before.candidate_revision
    ready = obs.candidate_ready_replicas if promoted else obs.stable_ready_replicas
    status = status.with_(stable_version=versions.get(status.stable_revision),
                          candidate_version=versions.get(status.candidate_revision), ready_replicas=ready,
                          replicas=obs.stable_ready_replicas + obs.candidate_ready_replicas)
    return status.with_(phase=phase_of(status, tick.spec.replicas))


# --- which revision is wanted ----------------------------------------------------


def _first_revision(tick: Tick, status: RolloutStatus) -> Result | None:
    if status.stable_revision is not None:
        return None
    spec, desired = tick.spec, tick.desired
    entry = HistoryEntry(revision=desired, model_version=spec.model.version, sha256=spec.model.sha256,
                         result=DEPLOYED, at=tick.at, started_at=tick.at)
    # Just created: not ready yet, whatever a missing stable reads as. The next reconcile sees its pods.
    status = status.with_(stable_revision=desired, traffic=Traffic(), reason=STABLE_READY,
                          history=bounded(status.history + (entry,), spec.revision_history_limit),
                          message=f"serving {spec.model.version}")
    return status, [EnsureRevision(desired, spec.replicas), SetTraffic(desired, None, 100, 0)]


def _spec_back_to_stable(tick: Tick, status: RolloutStatus) -> Result | None:
    """The spec names what stable serves: steady state, or a rollout called off."""
    desired, spec = tick.desired, tick.spec
    if desired != status.stable_revision:
        return None
    actions = [EnsureRevision(desired, spec.replicas), SetTraffic(desired, None, 100, 0)]
    if status.candidate_revision is not None:
        candidate = status.candidate_revision
        actions += [ScaleRevision(candidate, 0),
                    RecordEvent("Normal", SUPERSEDED, f"spec is back to the stable revision {desired}; "
                                                      f"candidate {candidate} scaled down")]
        status = record(tick, status, candidate, SUPERSEDED, "spec back to the stable revision")
    warm = [d for d in warm_previous(status) if d.revision != desired and parse_time(d.at) > tick.now]
    reason, message = STABLE_READY, f"serving {status.revision_versions.get(desired, '')}".strip()
    if warm and tick.obs.stable_ready_replicas >= spec.replicas and status.aborted_revision is None:
        reason = SCALE_DOWN_DELAY
        message += "; " + ", ".join(f"{d.revision} kept at {d.replicas} replicas until {d.at}" for d in warm)
    status = reset(tick, status).with_(reason=reason, candidate_revision=None, aborted_revision=None,
                                           abort_reason=None, traffic=Traffic(), message=message)
    return status, actions


def _aborted(tick: Tick, status: RolloutStatus) -> Result | None:
    desired = tick.desired
    if desired != status.aborted_revision:
        return None
    stable = status.stable_revision
    if tick.obs.command == "retry":
        status = status.with_(aborted_revision=None, abort_reason=None)
        return start_candidate(tick, status, f"retry of an aborted rollout{tick.by()}")
    status = status.with_(traffic=Traffic(), message=f"rollout of {desired} aborted: {status.abort_reason}; "
                                                     "stable serves all traffic (change the spec, or retry)")
    actions = [EnsureRevision(stable, tick.spec.replicas), SetTraffic(stable, None, 100, 0)]
    if not any(d.revision == desired for d in status.scale_downs):
        actions.append(ScaleRevision(desired, 0))
    return status, actions


def _new_candidate(tick: Tick, status: RolloutStatus) -> Result | None:
    desired = tick.desired
    if desired == status.candidate_revision:
        return None
    actions = []
    if status.candidate_revision is not None:
        # A newer spec replaces the candidate in flight: it gets no more traffic.
        old = status.candidate_revision
        actions += [SetTraffic(status.stable_revision, None, 100, 0), ScaleRevision(old, 0),
                    RecordEvent("Normal", SUPERSEDED, f"candidate {old} superseded by {desired}")]
        status = record(tick, status, old, SUPERSEDED, f"superseded by {desired}")
    status = status.with_(aborted_revision=None, abort_reason=None)
    status, more = start_candidate(tick, status, "new spec")
    return status, actions + more


def start_candidate(tick: Tick, status: RolloutStatus, why: str) -> Result:
    spec, desired = tick.spec, tick.desired
    fast = revert_within_window(spec, status, desired)
    if fast:
        why += (f"; it served production within the last {spec.rollback_window.revisions} revision(s), so "
                "rollbackWindow skips the steps after the gate")
    status = reset(tick, status).with_(
        candidate_revision=desired, candidate_since=tick.at, fast_revert=fast, golden_set=None,
        traffic=Traffic(),
        reason=NEW_REVISION, scale_downs=tuple(d for d in status.scale_downs if d.revision != desired),
        message=f"candidate {desired} ({spec.model.version}) starting: {why}")
    actions = [EnsureRevision(status.stable_revision, spec.replicas),
               EnsureRevision(desired, tick.strategy.candidate_replicas(spec, status)),
               SetTraffic(status.stable_revision, desired, 100, 0),
               RecordEvent("Normal", FAST_REVERT if fast else NEW_REVISION,
                           f"candidate {desired} for model version {spec.model.version} ({why})")]
    return status, actions


def revert_within_window(spec: Spec, status: RolloutStatus, revision: str) -> bool:
    """True when ``revision`` was stable within the last spec.rollbackWindow revisions
    before the current stable one (Argo Rollouts' rollbackWindow)."""
    if spec.rollback_window is None:
        return False
    served: list[str] = []
    for entry in reversed(status.history):
        if entry.result in (PROMOTED, DEPLOYED) and entry.revision not in served:
            served.append(entry.revision)
    earlier = [r for r in served if r != status.stable_revision]
    return revision in earlier[:spec.rollback_window.revisions]


# --- a rollout in progress ------------------------------------------------------


def _progress(tick: Tick, status: RolloutStatus) -> Result:
    obs, strategy = tick.obs, tick.strategy
    replicas = strategy.candidate_replicas(tick.spec, status)
    keep = hold(tick, status, replicas)
    if obs.command == "abort":
        return abort(tick, status, ABORTED_BY_USER, f"aborted by a person{tick.by()}", replicas)
    if obs.candidate_crash_looping:
        return abort(tick, status, CANDIDATE_CRASH_LOOP, "candidate pods are crash-looping", replicas)
    if obs.command == "pause":
        status = status.with_(paused_by_user=True)
    elif obs.command == "resume" and status.paused_by_user:
        status = status.with_(paused_by_user=False)
        tick = replace(tick, obs=replace(obs, command=None))
    if not status.gate_passed:
        return _gate(tick, status, keep)
    if strategy.step_started_at(status) is None:  # the strategy changed under a rollout: it starts over
        status = strategy.begin(status, tick.at)
    if status.fast_revert:
        return promote(tick, status, "fast revert: served production before (rollbackWindow)",
                       reason=FAST_REVERT)
    if obs.command == "promote-full":
        return strategy.promote_now(tick, status, f"promoted in full by a person{tick.by()}")
    if status.paused_by_user:
        return status.with_(reason=PAUSED_BY_USER, message="paused by a person (resume to go on)"), keep
    return strategy.progress(tick, status, keep)


def _gate(tick: Tick, status: RolloutStatus, keep: list) -> Result:
    spec, obs = tick.spec, tick.obs
    wanted = tick.strategy.candidate_replicas(spec, status)
    if obs.candidate_ready_replicas < wanted:
        why = f"; {obs.candidate_problem}" if obs.candidate_problem else ""
        if tick.reached(status.candidate_since, spec.progress_deadline_seconds):
            return abort(tick, status, PROGRESS_DEADLINE_EXCEEDED,
                         f"candidate not ready within progressDeadlineSeconds "
                         f"({spec.progress_deadline_seconds}): {obs.candidate_ready_replicas} of "
                         f"{wanted} replicas ready{why}", wanted)
        return status.with_(reason=CANDIDATE_NOT_READY,
                            message=f"waiting for the candidate: {obs.candidate_ready_replicas} of "
                                    f"{wanted} replicas ready{why}"), keep
    if obs.smoke_test is None:
        return status.with_(reason=CANDIDATE_READY, message="candidate ready; smoke test pending"), keep
    if obs.smoke_test is not True:
        return abort(tick, status, SMOKE_TEST_FAILED, f"smoke test failed: {obs.smoke_test}", wanted)
    passed = "candidate ready and smoke test passed"
    if spec.golden_set is not None:
        if obs.golden_set is None:
            return status.with_(reason=CANDIDATE_READY,
                                message="candidate ready; golden set being replayed"), keep
        if isinstance(obs.golden_set, str):
            return abort(tick, status, GOLDEN_SET_FAILED, f"golden set: {obs.golden_set}", wanted)
        status = status.with_(golden_set=golden.summary(obs.golden_set))
        problem = golden.judge(spec.golden_set, obs.golden_set)
        if problem is not None:
            return abort(tick, status, GOLDEN_SET_FAILED,
                         f"{problem} ({golden.describe(obs.golden_set)})", wanted)
        passed += f"; {golden.describe(obs.golden_set)}"
    status = tick.strategy.begin(status.with_(gate_passed=True), tick.at).with_(
        reason=CANDIDATE_READY, message="candidate ready and answering: starting the steps")
    return status, keep + [RecordEvent("Normal", CANDIDATE_READY, passed)]


def _transition_event(before: RolloutStatus, after: RolloutStatus, actions: list, replicas: int) -> list:
    """An Event for every transition (a new phase or reason), where the step that made it
    did not already record one: paused by a person, inconclusive, waiting for the candidate..."""
    if (phase_of(before, replicas), before.reason) == (after.phase, after.reason):
        return []
    if any(isinstance(action, RecordEvent) for action in actions):
        return []
    kind = "Warning" if after.reason == ANALYSIS_INCONCLUSIVE else "Normal"
    return [RecordEvent(kind, after.reason, after.message)]
