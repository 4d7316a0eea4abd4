"""The canary strategy: one reconcile moves a rollout at most one step. Pure.

    new spec          -> a candidate revision next to stable (stable keeps full capacity)
    gate              -> every candidate replica ready and a smoke inference answered
    setWeight N       -> traffic N% candidate, next step
    pause             -> wait its duration, or for a person (resume / promote)
    analysis          -> measure every interval; Successful: next step, Failed: abort,
                         Inconclusive (no data, Prometheus down): pause, never promote
    after last step   -> promote: the candidate becomes stable at 100%, old stable to 0
    abort             -> 100% stable in one write, candidate to 0, phase Degraded

Read it as a checklist: each reconcile_* returns a finished (status, actions) or None
to go on to the next.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from ..actions import EnsureRevision, RecordEvent, ScaleRevision, SetTraffic
from ..analysis.judge import FAILED, INCONCLUSIVE, SUCCESSFUL, verdict
from ..spec import Spec, Step
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
    HEALTHY,
    MIRROR_SET,
    NEW_REVISION,
    PAUSED,
    PAUSED_BY_STEP,
    PAUSED_BY_USER,
    PROGRESS_DEADLINE_EXCEEDED,
    PROGRESSING,
    PROMOTED,
    SMOKE_TEST_FAILED,
    STABLE_READY,
    STEP_DONE,
    WEIGHT_SET,
    HistoryEntry,
    RolloutStatus,
    Traffic,
    format_time,
    parse_time,
)
from .conditions import with_conditions

Result = tuple[RolloutStatus, list]


def decide_canary(spec: Spec, desired: str, status: RolloutStatus, obs, now: datetime) -> Result:
    at = format_time(now)
    before = status
    status = replace(status, observed_generation=obs.generation)
    status = replace(status, revision_versions={**status.revision_versions, desired: spec.model.version})
    for step in (_first_revision, _spec_back_to_stable, _aborted, _new_candidate):
        result = step(spec, desired, status, obs, at)
        if result is not None:
            return _finish(before, *result, at)
    return _finish(before, *_progress(spec, status, obs, now, at), at)


# --- which revision is wanted ----------------------------------------------------


def _first_revision(spec, desired, status, obs, at) -> Result | None:
    if status.stable_revision is not None:
        return None
    entry = HistoryEntry(desired, spec.model.version, spec.model.sha256, DEPLOYED, at, started_at=at)
    status = replace(status, stable_revision=desired, traffic=Traffic(100, 0), reason=STABLE_READY,
                     phase=HEALTHY if obs.stable_ready else PROGRESSING,
                     history=_bounded(status.history + (entry,), spec.revision_history_limit),
                     message=f"serving {spec.model.version}")
    return status, [EnsureRevision(desired, spec.replicas), SetTraffic(desired, None, 100, 0)]


def _spec_back_to_stable(spec, desired, status, obs, at) -> Result | None:
    if desired != status.stable_revision:
        return None
    actions = [EnsureRevision(desired, spec.replicas), SetTraffic(desired, None, 100, 0)]
    if status.candidate_revision is not None:
        # The spec went back to what stable serves: the rollout is called off.
        actions += [ScaleRevision(status.candidate_revision, 0),
                    RecordEvent("Normal", STABLE_READY,
                                f"spec is back to the stable revision {desired}; candidate "
                                f"{status.candidate_revision} scaled down")]
    status = replace(status, reason=STABLE_READY, candidate_revision=None, aborted_revision=None,
                     abort_reason=None, traffic=Traffic(100, 0), current_step=0, step_started_at=None,
                     candidate_since=None, gate_passed=False, analysis=(), consecutive_errors=0,
                     paused_by_user=False, phase=HEALTHY if obs.stable_ready else PROGRESSING,
                     message=f"serving {status.revision_versions.get(desired, '')}".strip())
    return status, actions


def _aborted(spec, desired, status, obs, at) -> Result | None:
    if desired != status.aborted_revision:
        return None
    stable = status.stable_revision
    if obs.command == "retry":
        status = replace(status, aborted_revision=None, abort_reason=None)
        return _start_candidate(spec, desired, status, at, "retry of an aborted rollout")
    status = replace(status, phase=DEGRADED, traffic=Traffic(100, 0),
                     message=f"rollout of {desired} aborted: {status.abort_reason}; "
                             "stable serves all traffic (change the spec, or retry)")
    return status, [EnsureRevision(stable, spec.replicas), SetTraffic(stable, None, 100, 0),
                    ScaleRevision(desired, 0)]


def _new_candidate(spec, desired, status, obs, at) -> Result | None:
    if desired == status.candidate_revision:
        return None
    actions = []
    if status.candidate_revision is not None:
        # A newer spec replaces the candidate in flight: it gets no more traffic.
        actions += [SetTraffic(status.stable_revision, None, 100, 0),
                    ScaleRevision(status.candidate_revision, 0)]
    status = replace(status, aborted_revision=None, abort_reason=None)
    status, more = _start_candidate(spec, desired, status, at, "new spec")
    return status, actions + more


def _start_candidate(spec, desired, status, at, why) -> Result:
    status = replace(status, candidate_revision=desired, current_step=0, step_started_at=None,
                     candidate_since=at, gate_passed=False, analysis=(), consecutive_errors=0,
                     paused_by_user=False, traffic=Traffic(100, 0), phase=PROGRESSING,
                     reason=NEW_REVISION,
                     message=f"candidate {desired} ({spec.model.version}) starting: {why}")
    return status, [EnsureRevision(status.stable_revision, spec.replicas),
                    EnsureRevision(desired, spec.replicas),
                    SetTraffic(status.stable_revision, desired, 100, 0),
                    RecordEvent("Normal", NEW_REVISION,
                                f"candidate {desired} for model version {spec.model.version} ({why})")]


# --- a rollout in progress ------------------------------------------------------


def _progress(spec: Spec, status: RolloutStatus, obs, now: datetime, at: str) -> Result:
    stable, candidate = status.stable_revision, status.candidate_revision
    traffic = status.traffic
    keep = [EnsureRevision(stable, spec.replicas), EnsureRevision(candidate, spec.replicas),
            SetTraffic(stable, candidate, traffic.stable, traffic.candidate, traffic.mirror)]
    if obs.command == "abort":
        return _abort(spec, status, at, ABORTED_BY_USER, "aborted by a person")
    if obs.candidate_crash_looping:
        return _abort(spec, status, at, CANDIDATE_CRASH_LOOP, "candidate pods are crash-looping")
    if obs.command == "pause":
        status = replace(status, paused_by_user=True)
    elif obs.command == "resume" and status.paused_by_user:
        status = replace(status, paused_by_user=False)
        obs = replace(obs, command=None)
    if not status.gate_passed:
        return _gate(spec, status, obs, now, at, keep)
    if obs.command == "promote-full":
        return _promote(spec, status, at, "promoted in full by a person")
    if status.paused_by_user:
        return replace(status, phase=PAUSED, reason=PAUSED_BY_USER,
                       message="paused by a person (resume to go on)"), keep
    if status.current_step >= len(spec.steps):
        return _promote(spec, status, at, "every step passed")
    step = spec.steps[status.current_step]
    if obs.command == "promote":
        return _next_step(spec, status, at, keep, "step skipped by a person")
    if step.kind == "setWeight":
        return _set_weight(spec, status, step, at)
    if step.kind == "setMirror":
        return _set_mirror(spec, status, step, at)
    if step.kind == "pause":
        return _pause(spec, status, step, obs, now, at, keep)
    return _analysis(spec, status, step, obs, at, keep)


def _gate(spec, status, obs, now, at, keep) -> Result:
    ready = obs.candidate_ready_replicas >= spec.replicas
    if not ready:
        deadline = parse_time(status.candidate_since) + timedelta(seconds=spec.progress_deadline_seconds)
        if now >= deadline:
            return _abort(spec, status, at, PROGRESS_DEADLINE_EXCEEDED,
                          f"candidate not ready within progressDeadlineSeconds "
                          f"({spec.progress_deadline_seconds}): {obs.candidate_ready_replicas} of "
                          f"{spec.replicas} replicas ready")
        return replace(status, phase=PROGRESSING, reason=CANDIDATE_NOT_READY,
                       message=f"waiting for the candidate: {obs.candidate_ready_replicas} of "
                               f"{spec.replicas} replicas ready"), keep
    if obs.smoke_test is None:
        return replace(status, phase=PROGRESSING, reason=CANDIDATE_READY,
                       message="candidate ready; smoke test pending"), keep
    if obs.smoke_test is not True:
        return _abort(spec, status, at, SMOKE_TEST_FAILED, f"smoke test failed: {obs.smoke_test}")
    status = replace(status, gate_passed=True, step_started_at=at, phase=PROGRESSING,
                     reason=CANDIDATE_READY, message="candidate ready and answering: starting the steps")
    return status, keep + [RecordEvent("Normal", CANDIDATE_READY, "candidate ready and smoke test passed")]


def _set_weight(spec, status, step: Step, at) -> Result:
    weight, mirror = step.weight, status.traffic.mirror
    status = replace(status, traffic=Traffic(100 - weight, weight, mirror),
                     current_step=status.current_step + 1, step_started_at=at, analysis=(),
                     consecutive_errors=0, phase=PROGRESSING, reason=WEIGHT_SET,
                     message=f"candidate at {weight}%")
    return status, [EnsureRevision(status.stable_revision, spec.replicas),
                    EnsureRevision(status.candidate_revision, spec.replicas),
                    SetTraffic(status.stable_revision, status.candidate_revision, 100 - weight, weight,
                               mirror),
                    RecordEvent("Normal", WEIGHT_SET, f"candidate {status.candidate_revision} at {weight}%")]


def _set_mirror(spec, status, step: Step, at) -> Result:
    percent, traffic = step.mirror_percent, status.traffic
    status = replace(status, traffic=Traffic(traffic.stable, traffic.candidate, percent),
                     current_step=status.current_step + 1, step_started_at=at, analysis=(),
                     consecutive_errors=0, phase=PROGRESSING, reason=MIRROR_SET,
                     message=f"{percent}% of requests mirrored to the candidate")
    return status, [EnsureRevision(status.stable_revision, spec.replicas),
                    EnsureRevision(status.candidate_revision, spec.replicas),
                    SetTraffic(status.stable_revision, status.candidate_revision, traffic.stable,
                               traffic.candidate, percent),
                    RecordEvent("Normal", MIRROR_SET,
                                f"{percent}% of requests mirrored to candidate {status.candidate_revision}")]


def _pause(spec, status, step: Step, obs, now, at, keep) -> Result:
    if step.pause_seconds is None:
        if obs.command == "resume":
            return _next_step(spec, status, at, keep, "resumed by a person")
        message = f"paused at step {status.current_step} until a person resumes or promotes"
        return replace(status, phase=PAUSED, reason=PAUSED_BY_STEP, message=message), keep
    ends = parse_time(status.step_started_at) + timedelta(seconds=step.pause_seconds)
    if now >= ends:
        return _next_step(spec, status, at, keep, "pause over")
    left = (ends - now).total_seconds()
    return replace(status, phase=PROGRESSING, reason=PAUSED_BY_STEP,
                   message=f"pausing for {left:.0f} s more"), keep


def _analysis(spec, status, step: Step, obs, at, keep) -> Result:
    metrics = [spec.analysis.metric(name) for name in step.metrics]
    if obs.command == "resume":  # after an inconclusive pause: measure afresh
        status = replace(status, analysis=(), consecutive_errors=0)
    status = replace(status, analysis=status.analysis + tuple(obs.measurements))
    verdicts = {m.name: verdict(m, status.analysis, spec.analysis.consecutive_error_limit) for m in metrics}
    failed = [name for name, v in verdicts.items() if v == FAILED]
    if failed:
        detail = "; ".join(m.message for m in status.analysis if m.metric in failed and m.phase == FAILED)
        return _abort(spec, status, at, ANALYSIS_FAILED, f"analysis failed: {', '.join(failed)} ({detail})")
    inconclusive = [name for name, v in verdicts.items() if v == INCONCLUSIVE]
    if inconclusive:
        return replace(status, phase=PAUSED, reason=ANALYSIS_INCONCLUSIVE,
                       message=f"analysis inconclusive for {', '.join(inconclusive)}: not promoting "
                               "(resume to measure again, promote to skip, abort to roll back)"), keep
    if all(v == SUCCESSFUL for v in verdicts.values()):
        return _next_step(spec, status, at, keep, "analysis successful")
    running = ", ".join(name for name, v in verdicts.items() if v != SUCCESSFUL)
    return replace(status, phase=PROGRESSING, reason=ANALYSIS_RUNNING,
                   message=f"analysis running: {running}"), keep


def _next_step(spec, status, at, keep, why) -> Result:
    status = replace(status, current_step=status.current_step + 1, step_started_at=at, analysis=(),
                     consecutive_errors=0, phase=PROGRESSING, reason=STEP_DONE, message=why)
    return status, keep


def _promote(spec, status, at, why) -> Result:
    old, new = status.stable_revision, status.candidate_revision
    entry = HistoryEntry(new, status.revision_versions.get(new, spec.model.version), spec.model.sha256,
                         PROMOTED, at, started_at=status.candidate_since)
    status = replace(status, stable_revision=new, candidate_revision=None, traffic=Traffic(100, 0),
                     current_step=0, step_started_at=None, candidate_since=None, gate_passed=False,
                     analysis=(), consecutive_errors=0, paused_by_user=False, phase=HEALTHY,
                     reason=PROMOTED,
                     history=_bounded(status.history + (entry,), spec.revision_history_limit),
                     message=f"{new} promoted: {why}")
    return status, [EnsureRevision(new, spec.replicas), SetTraffic(new, None, 100, 0),
                    ScaleRevision(old, 0), RecordEvent("Normal", PROMOTED, f"{new} promoted ({why})")]


def _abort(spec, status, at, reason: str, why: str) -> Result:
    stable, candidate = status.stable_revision, status.candidate_revision
    entry = HistoryEntry(candidate, status.revision_versions.get(candidate, spec.model.version),
                         spec.model.sha256, ABORTED, at, started_at=status.candidate_since)
    status = replace(status, candidate_revision=None, aborted_revision=candidate, abort_reason=why,
                     traffic=Traffic(100, 0), current_step=0, step_started_at=None, gate_passed=False,
                     paused_by_user=False, phase=DEGRADED, reason=reason,
                     history=_bounded(status.history + (entry,), spec.revision_history_limit),
                     message=f"rollout of {candidate} aborted: {why}")
    # Traffic first, in one write; then the candidate goes.
    return status, [SetTraffic(stable, None, 100, 0), ScaleRevision(candidate, 0),
                    EnsureRevision(stable, spec.replicas),
                    RecordEvent("Warning", reason, f"rollout of {candidate} aborted: {why}")]


# --- what to measure ----------------------------------------------------------------


def due_metrics(spec: Spec, status: RolloutStatus, now: datetime) -> tuple[str, ...]:
    """Metrics of the current analysis step that are due a measurement now."""
    if status.candidate_revision is None or not status.gate_passed or status.paused_by_user:
        return ()
    if status.current_step >= len(spec.steps) or status.phase == PAUSED:
        return ()
    step = spec.steps[status.current_step]
    if step.kind != "analysis":
        return ()
    due = []
    for name in step.metrics:
        metric = spec.analysis.metric(name)
        interval = metric.interval_seconds or spec.analysis.interval_seconds
        taken = [m.at for m in status.analysis if m.metric == name]
        # The first measurement waits one interval too: the candidate needs traffic first.
        since = parse_time(taken[-1] if taken else status.step_started_at)
        if now >= since + timedelta(seconds=interval):
            due.append(name)
    return tuple(due)


# --- helpers -------------------------------------------------------------------------


def _finish(before: RolloutStatus, status: RolloutStatus, actions: list, at: str) -> Result:
    return with_conditions(status, at), actions + _transition_event(before, status, actions)


def _transition_event(before: RolloutStatus, after: RolloutStatus, actions: list) -> list:
    """An Event for every transition (a new phase or reason), where the step that made it
    did not already record one: paused by a person, inconclusive, waiting for the candidate..."""
    if (before.phase, before.reason) == (after.phase, after.reason):
        return []
    if any(isinstance(action, RecordEvent) for action in actions):
        return []
    kind = "Warning" if after.reason == ANALYSIS_INCONCLUSIVE else "Normal"
    return [RecordEvent(kind, after.reason, after.message)]


def _bounded(history: tuple, limit: int) -> tuple:
    return history[-limit:] if limit else ()
