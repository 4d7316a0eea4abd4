"""What every strategy shares: one rollout from a new spec to promoted or aborted. Pure.

    first revision    -> stable at 100%
    new spec          -> a candidate next to stable (stable keeps full capacity); a
                         candidate still in flight is Superseded, and says so in history
    gate              -> the candidate's replicas ready and a smoke inference answered
    strategy          -> canary.py, blue_green.py or shadow.py decide their own steps
    promote           -> the candidate becomes stable at 100% in one write; the old stable
                         goes to 0, or is kept warm for the strategy's scaleDownDelaySeconds
    abort             -> 100% stable in one write, then the candidate goes (at once or after
                         a delay), phase Degraded until the spec changes or a person retries
    fast revert       -> a revision promoted within spec.rollbackWindow skips the steps
    spec back         -> the spec names what stable serves: any rollout is called off

Read it as a checklist: each function returns a finished (status, actions) or None to go
on to the next. A strategy module provides:

    candidate_replicas(spec, status) -> int      replicas the candidate runs with now
    progress(tick, status, keep) -> Result       its steps, once the gate has passed
    promote_now(tick, status, why) -> Result     a person's promote-full
    metrics_now(spec, status) -> names           analysis metrics measured in this step
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from ..actions import EnsureRevision, RecordEvent, ScaleRevision, SetTraffic
from ..analysis.judge import FAILED, INCONCLUSIVE, RUNNING, SUCCESSFUL, verdict
from ..spec import Spec
from ..status import (
    ABORTED,
    ABORTED_BY_USER,
    ANALYSIS_FAILED,
    ANALYSIS_INCONCLUSIVE,
    ANALYSIS_RUNNING,
    CANDIDATE_CRASH_LOOP,
    CANDIDATE_NOT_READY,
    CANDIDATE_READY,
    DEGRADED,
    DEPLOYED,
    FAST_REVERT,
    GOLDEN_SET_FAILED,
    HEALTHY,
    NEW_REVISION,
    PAUSED,
    PAUSED_BY_USER,
    PROGRESS_DEADLINE_EXCEEDED,
    PROGRESSING,
    PROMOTED,
    SCALE_DOWN_DELAY,
    SMOKE_TEST_FAILED,
    STABLE_READY,
    SUPERSEDED,
    HistoryEntry,
    Measurement,
    RolloutStatus,
    ScaleDown,
    Traffic,
    format_time,
    parse_time,
)
from . import golden
from .conditions import with_conditions

Result = tuple[RolloutStatus, list]
MEASUREMENTS_KEPT = 20  # per metric: a long shadow measures for hours; status stays small


@dataclass(frozen=True)
class Tick:
    """One reconcile's fixed inputs."""

    spec: Spec
    desired: str  # the revision the spec describes (revision_of)
    obs: object  # Observations (engine/__init__.py)
    now: datetime
    at: str  # now, as written in status

    def by(self) -> str:
        """", by <who>" when a person's command is being carried out."""
        return f", by {self.obs.command_by}" if self.obs.command and self.obs.command_by else ""


def decide(tick: Tick, status: RolloutStatus, strategy) -> Result:
    before = status
    spec = tick.spec
    status = replace(status, observed_generation=tick.obs.generation, strategy=spec.strategy.kind,
                     revision_versions={**status.revision_versions, tick.desired: spec.model.version})
    for step in (_first_revision, _spec_back_to_stable, _aborted, _new_candidate):
        result = step(tick, status, strategy)
        if result is not None:
            break
    else:
        result = _progress(tick, status, strategy)
    status, actions = _keep_warm(tick, *result)
    return with_conditions(status, tick.at), actions + _transition_event(before, status, actions)


# --- which revision is wanted ----------------------------------------------------


def _first_revision(tick: Tick, status: RolloutStatus, strategy) -> Result | None:
    if status.stable_revision is not None:
        return None
    spec, desired = tick.spec, tick.desired
    entry = HistoryEntry(desired, spec.model.version, spec.model.sha256, DEPLOYED, tick.at,
                         started_at=tick.at)
    # Just created: not ready yet, whatever a missing stable reads as. The next reconcile sees its pods.
    status = replace(status, stable_revision=desired, traffic=Traffic(100, 0), reason=STABLE_READY,
                     phase=PROGRESSING,
                     history=bounded(status.history + (entry,), spec.revision_history_limit),
                     message=f"serving {spec.model.version}")
    return status, [EnsureRevision(desired, spec.replicas), SetTraffic(desired, None, 100, 0)]


def _spec_back_to_stable(tick: Tick, status: RolloutStatus, strategy) -> Result | None:
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
        status = _record(tick, status, candidate, SUPERSEDED, "spec back to the stable revision")
    warm = [d for d in status.scale_downs if d.revision != desired and parse_time(d.at) > tick.now]
    phase = HEALTHY if tick.obs.stable_ready else PROGRESSING
    reason, message = STABLE_READY, f"serving {status.revision_versions.get(desired, '')}".strip()
    if warm and phase == HEALTHY and status.aborted_revision is None:
        phase, reason = PROGRESSING, SCALE_DOWN_DELAY
        message += "; " + ", ".join(f"{d.revision} kept at {d.replicas} replicas until {d.at}" for d in warm)
    status = replace(_reset(status), reason=reason, candidate_revision=None, aborted_revision=None,
                     abort_reason=None, traffic=Traffic(100, 0), phase=phase, message=message)
    return status, actions


def _aborted(tick: Tick, status: RolloutStatus, strategy) -> Result | None:
    desired = tick.desired
    if desired != status.aborted_revision:
        return None
    stable = status.stable_revision
    if tick.obs.command == "retry":
        status = replace(status, aborted_revision=None, abort_reason=None)
        return start_candidate(tick, status, strategy, f"retry of an aborted rollout{tick.by()}")
    status = replace(status, phase=DEGRADED, traffic=Traffic(100, 0),
                     message=f"rollout of {desired} aborted: {status.abort_reason}; "
                             "stable serves all traffic (change the spec, or retry)")
    actions = [EnsureRevision(stable, tick.spec.replicas), SetTraffic(stable, None, 100, 0)]
    if not any(d.revision == desired for d in status.scale_downs):
        actions.append(ScaleRevision(desired, 0))
    return status, actions


def _new_candidate(tick: Tick, status: RolloutStatus, strategy) -> Result | None:
    desired = tick.desired
    if desired == status.candidate_revision:
        return None
    actions = []
    if status.candidate_revision is not None:
        # A newer spec replaces the candidate in flight: it gets no more traffic.
        old = status.candidate_revision
        actions += [SetTraffic(status.stable_revision, None, 100, 0), ScaleRevision(old, 0),
                    RecordEvent("Normal", SUPERSEDED, f"candidate {old} superseded by {desired}")]
        status = _record(tick, status, old, SUPERSEDED, f"superseded by {desired}")
    status = replace(status, aborted_revision=None, abort_reason=None)
    status, more = start_candidate(tick, status, strategy, "new spec")
    return status, actions + more


def start_candidate(tick: Tick, status: RolloutStatus, strategy, why: str) -> Result:
    spec, desired = tick.spec, tick.desired
    fast = revert_within_window(spec, status, desired)
    if fast:
        why += (f"; it served production within the last {spec.rollback_window} revision(s), so "
                "rollbackWindow skips the steps after the gate")
    status = replace(_reset(status), candidate_revision=desired, candidate_since=tick.at, fast_revert=fast,
                     golden_set=None,
                     traffic=Traffic(100, 0), phase=PROGRESSING, reason=NEW_REVISION,
                     scale_downs=tuple(d for d in status.scale_downs if d.revision != desired),
                     message=f"candidate {desired} ({spec.model.version}) starting: {why}")
    actions = [EnsureRevision(status.stable_revision, spec.replicas),
               EnsureRevision(desired, strategy.candidate_replicas(spec, status)),
               SetTraffic(status.stable_revision, desired, 100, 0),
               RecordEvent("Normal", FAST_REVERT if fast else NEW_REVISION,
                           f"candidate {desired} for model version {spec.model.version} ({why})")]
    return status, actions


def revert_within_window(spec: Spec, status: RolloutStatus, revision: str) -> bool:
    """True when ``revision`` was stable within the last spec.rollbackWindow revisions
    before the current stable one (Argo Rollouts' rollbackWindow)."""
    if not spec.rollback_window:
        return False
    served: list[str] = []
    for entry in reversed(status.history):
        if entry.result in (PROMOTED, DEPLOYED) and entry.revision not in served:
            served.append(entry.revision)
    earlier = [r for r in served if r != status.stable_revision]
    return revision in earlier[:spec.rollback_window]


# --- a rollout in progress ------------------------------------------------------


def _progress(tick: Tick, status: RolloutStatus, strategy) -> Result:
    obs = tick.obs
    replicas = strategy.candidate_replicas(tick.spec, status)
    keep = hold(tick, status, replicas)
    if obs.command == "abort":
        return abort(tick, status, ABORTED_BY_USER, f"aborted by a person{tick.by()}", replicas)
    if obs.candidate_crash_looping:
        return abort(tick, status, CANDIDATE_CRASH_LOOP, "candidate pods are crash-looping", replicas)
    if obs.command == "pause":
        status = replace(status, paused_by_user=True)
    elif obs.command == "resume" and status.paused_by_user:
        status = replace(status, paused_by_user=False)
        tick = replace(tick, obs=replace(obs, command=None))
    if not status.gate_passed:
        return _gate(tick, status, strategy, keep)
    if status.fast_revert:
        return promote(tick, status, "fast revert: served production before (rollbackWindow)",
                       reason=FAST_REVERT,
                       keep_warm_seconds=getattr(tick.spec.strategy, "scale_down_delay_seconds", 0.0))
    if obs.command == "promote-full":
        return strategy.promote_now(tick, status, f"promoted in full by a person{tick.by()}")
    if status.paused_by_user:
        return replace(status, phase=PAUSED, reason=PAUSED_BY_USER,
                       message="paused by a person (resume to go on)"), keep
    return strategy.progress(tick, status, keep)


def hold(tick: Tick, status: RolloutStatus, candidate_replicas: int) -> list:
    """The actions that keep things as they are: both revisions at their size, the split."""
    split = status.traffic
    return [EnsureRevision(status.stable_revision, tick.spec.replicas),
            EnsureRevision(status.candidate_revision, candidate_replicas),
            SetTraffic(status.stable_revision, status.candidate_revision, split.stable, split.candidate,
                       split.mirror)]


def _gate(tick: Tick, status: RolloutStatus, strategy, keep: list) -> Result:
    spec, obs = tick.spec, tick.obs
    wanted = strategy.candidate_replicas(spec, status)
    if obs.candidate_ready_replicas < wanted:
        deadline = parse_time(status.candidate_since) + timedelta(seconds=spec.progress_deadline_seconds)
        why = f"; {obs.candidate_problem}" if obs.candidate_problem else ""
        if tick.now >= deadline:
            return abort(tick, status, PROGRESS_DEADLINE_EXCEEDED,
                         f"candidate not ready within progressDeadlineSeconds "
                         f"({spec.progress_deadline_seconds}): {obs.candidate_ready_replicas} of "
                         f"{wanted} replicas ready{why}", wanted)
        return replace(status, phase=PROGRESSING, reason=CANDIDATE_NOT_READY,
                       message=f"waiting for the candidate: {obs.candidate_ready_replicas} of "
                               f"{wanted} replicas ready{why}"), keep
    if obs.smoke_test is None:
        return replace(status, phase=PROGRESSING, reason=CANDIDATE_READY,
                       message="candidate ready; smoke test pending"), keep
    if obs.smoke_test is not True:
        return abort(tick, status, SMOKE_TEST_FAILED, f"smoke test failed: {obs.smoke_test}", wanted)
    passed = "candidate ready and smoke test passed"
    if spec.golden_set is not None:
        if obs.golden_set is None:
            return replace(status, phase=PROGRESSING, reason=CANDIDATE_READY,
                           message="candidate ready; golden set being replayed"), keep
        if isinstance(obs.golden_set, str):
            return abort(tick, status, GOLDEN_SET_FAILED, f"golden set: {obs.golden_set}", wanted)
        status = replace(status, golden_set=golden.summary(obs.golden_set))
        problem = golden.judge(spec.golden_set, obs.golden_set)
        if problem is not None:
            return abort(tick, status, GOLDEN_SET_FAILED, f"{problem} ({golden.describe(obs.golden_set)})",
                         wanted)
        passed += f"; {golden.describe(obs.golden_set)}"
    status = replace(status, gate_passed=True, step_started_at=tick.at, phase=PROGRESSING,
                     reason=CANDIDATE_READY, message="candidate ready and answering: starting the steps")
    return status, keep + [RecordEvent("Normal", CANDIDATE_READY, passed)]


def run_analysis(tick: Tick, status: RolloutStatus, names: tuple[str, ...]) -> tuple[RolloutStatus, str, str]:
    """Take this reconcile's measurements into status and judge ``names`` over them:
    (status, verdict, what failed or is inconclusive). A resume after an inconclusive
    pause measures afresh."""
    spec, obs = tick.spec, tick.obs
    if obs.command == "resume":
        status = replace(status, analysis=(), consecutive_errors=0)
    status = replace(status, analysis=_kept(status.analysis + tuple(obs.measurements)))
    metrics = [spec.analysis.metric(name) for name in names]
    verdicts = {m.name: verdict(m, status.analysis, spec.analysis.consecutive_error_limit) for m in metrics}
    failed = [name for name, v in verdicts.items() if v == FAILED]
    if failed:
        detail = "; ".join(m.message for m in status.analysis if m.metric in failed and m.phase == FAILED)
        return status, FAILED, f"{', '.join(failed)} ({detail})"
    inconclusive = [name for name, v in verdicts.items() if v == INCONCLUSIVE]
    if inconclusive:
        return status, INCONCLUSIVE, ", ".join(inconclusive)
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
    running = f"{label} running: {detail}"
    return replace(status, phase=PROGRESSING, reason=ANALYSIS_RUNNING, message=running), keep


def inconclusive(status: RolloutStatus, names: str, keep: list) -> Result:
    return replace(status, phase=PAUSED, reason=ANALYSIS_INCONCLUSIVE,
                   message=f"analysis inconclusive for {names}: not promoting "
                           "(resume to measure again, promote to skip, abort to roll back)"), keep


def analysis_failed(tick: Tick, status: RolloutStatus, detail: str, replicas: int) -> Result:
    return abort(tick, status, ANALYSIS_FAILED, f"analysis failed: {detail}", replicas)


def promote(tick: Tick, status: RolloutStatus, why: str, reason: str = PROMOTED,
            keep_warm_seconds: float = 0.0, warm_from: str | None = None) -> Result:
    """The candidate becomes stable at 100%, in one write; then the old stable goes, at
    once or after ``keep_warm_seconds`` from ``warm_from`` (default now)."""
    spec = tick.spec
    old, new = status.stable_revision, status.candidate_revision
    status = _record(tick, status, new, PROMOTED, reason)
    actions = [EnsureRevision(new, spec.replicas), SetTraffic(new, None, 100, 0)]
    scale_downs, phase, message = status.scale_downs, HEALTHY, f"{new} promoted: {why}"
    if keep_warm_seconds > 0:
        start = parse_time(warm_from) if warm_from else tick.now
        until = format_time(max(start + timedelta(seconds=keep_warm_seconds), tick.now))
        scale_downs += (ScaleDown(old, spec.replicas, until),)
        actions.append(EnsureRevision(old, spec.replicas))
        phase, message = PROGRESSING, f"{message}; {old} kept at full size until {until}"
    else:
        actions.append(ScaleRevision(old, 0))
    status = replace(_reset(status), stable_revision=new, candidate_revision=None, traffic=Traffic(100, 0),
                     phase=phase, reason=reason, scale_downs=scale_downs, message=message)
    return status, actions + [RecordEvent("Normal", reason, f"{new} promoted ({why})")]


def abort(tick: Tick, status: RolloutStatus, reason: str, why: str, replicas: int) -> Result:
    """All traffic to stable in one write, first; then the candidate goes, at once or, where
    the strategy says (blue-green's abortScaleDownDelaySeconds), kept at its ``replicas``
    a while for a look at what failed."""
    spec = tick.spec
    stable, candidate = status.stable_revision, status.candidate_revision
    status = _record(tick, status, candidate, ABORTED, reason)
    actions = [SetTraffic(stable, None, 100, 0)]
    scale_downs = status.scale_downs
    keep_seconds = getattr(spec.strategy, "abort_scale_down_delay_seconds", 0.0)
    if keep_seconds > 0:
        until = format_time(tick.now + timedelta(seconds=keep_seconds))
        scale_downs += (ScaleDown(candidate, replicas, until),)
        actions.append(EnsureRevision(candidate, replicas))
    else:
        actions.append(ScaleRevision(candidate, 0))
    status = replace(_reset(status), candidate_revision=None, aborted_revision=candidate, abort_reason=why,
                     traffic=Traffic(100, 0), phase=DEGRADED, reason=reason, scale_downs=scale_downs,
                     message=f"rollout of {candidate} aborted: {why}")
    return status, actions + [EnsureRevision(stable, spec.replicas),
                              RecordEvent("Warning", reason, f"rollout of {candidate} aborted: {why}")]


def next_step(status: RolloutStatus, at: str, keep: list, why: str, reason: str) -> Result:
    status = replace(status, current_step=status.current_step + 1, step_started_at=at, analysis=(),
                     consecutive_errors=0, phase=PROGRESSING, reason=reason, message=why)
    return status, keep


# --- what to measure ----------------------------------------------------------------


def due_metrics(spec: Spec, status: RolloutStatus, now: datetime, strategy) -> tuple[str, ...]:
    """Metrics of the current step that are due a measurement now."""
    if status.candidate_revision is None or not status.gate_passed or status.paused_by_user:
        return ()
    if status.phase == PAUSED:
        return ()
    due = []
    for name in strategy.metrics_now(spec, status):
        metric = spec.analysis.metric(name)
        interval = metric.interval_seconds or spec.analysis.interval_seconds
        taken = [m.at for m in status.analysis if m.metric == name]
        # The first measurement waits one interval too: the candidate needs traffic first.
        since = parse_time(taken[-1] if taken else status.step_started_at)
        if now >= since + timedelta(seconds=interval):
            due.append(name)
    return tuple(due)


# --- helpers -------------------------------------------------------------------------


def _keep_warm(tick: Tick, status: RolloutStatus, actions: list) -> Result:
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
    return replace(status, scale_downs=tuple(kept)), actions + more


def _record(tick: Tick, status: RolloutStatus, revision: str, result: str, reason: str) -> RolloutStatus:
    """A history entry for ``revision`` (a candidate), with who asked when a person did."""
    spec = tick.spec
    version = status.revision_versions.get(revision, spec.model.version)
    by = tick.obs.command_by if tick.obs.command else None
    sha256 = spec.model.sha256 if revision == tick.desired else None
    entry = HistoryEntry(revision, version, sha256, result, tick.at, started_at=status.candidate_since,
                         reason=reason, by=by)
    return replace(status, history=bounded(status.history + (entry,), spec.revision_history_limit))


def _reset(status: RolloutStatus) -> RolloutStatus:
    """What a rollout remembers of its steps, cleared (a new candidate, a promotion, an abort)."""
    return replace(status, current_step=0, step_started_at=None, candidate_since=None, gate_passed=False,
                   analysis=(), consecutive_errors=0, paused_by_user=False, fast_revert=False,
                   promote_full=False, switched_at=None, comparisons=0, comparisons_at=None)


def _kept(measurements: tuple[Measurement, ...]) -> tuple[Measurement, ...]:
    """The last MEASUREMENTS_KEPT measurements of each metric, in the order taken."""
    counts: dict[str, int] = {}
    kept = []
    for m in reversed(measurements):
        counts[m.metric] = counts.get(m.metric, 0) + 1
        if counts[m.metric] <= MEASUREMENTS_KEPT:
            kept.append(m)
    return tuple(reversed(kept))


def _transition_event(before: RolloutStatus, after: RolloutStatus, actions: list) -> list:
    """An Event for every transition (a new phase or reason), where the step that made it
    did not already record one: paused by a person, inconclusive, waiting for the candidate..."""
    if (before.phase, before.reason) == (after.phase, after.reason):
        return []
    if any(isinstance(action, RecordEvent) for action in actions):
        return []
    kind = "Warning" if after.reason == ANALYSIS_INCONCLUSIVE else "Normal"
    return [RecordEvent(kind, after.reason, after.message)]


def bounded(history: tuple, limit: int) -> tuple:
    return history[-limit:] if limit else ()


__all__ = ["Result", "Tick", "abort", "analysis_failed", "analysis_step", "decide", "due_metrics", "hold",
           "inconclusive", "next_step", "promote", "run_analysis", "start_candidate"]
