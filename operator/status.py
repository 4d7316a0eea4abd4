"""ModelDeployment status: phases, conditions, reasons, times, and the codec. Pure.

Everything the operator decides lives in status, so a restarted operator resumes from the
status alone. The record types are the API's (api/v1alpha1.py): a part every strategy
shares, and each strategy's own record under its own key (status.canary, .blueGreen,
.shadow). The phase is derived from the rest (phase_of), written for people and tools,
and never read back. Condition types and reasons are constants here, and no reason's
value ends in "Reason".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from .api.v1alpha1 import (
    BLUE_GREEN_STAGES,
    HISTORY_RESULTS,
    PHASES,
    SHADOW_STAGES,
    BlueGreenStatus,
    CanaryStatus,
    Condition,
    FallbackStatus,
    GuardStatus,
    HistoryEntry,
    Measurement,
    RolloutStatus,
    ScaleDown,
    ShadowStatus,
    Traffic,
)

__all__ = ["BlueGreenStatus", "CanaryStatus", "Condition", "FallbackStatus", "GuardStatus", "HistoryEntry",
           "Measurement", "RolloutStatus", "ScaleDown", "ShadowStatus", "Traffic"]  # and the vocabulary below

# Every time written in status: UTC, microseconds.
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_time(now: datetime) -> str:
    return now.strftime(TIME_FORMAT)


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)


def deadline(since: str, seconds: float) -> datetime:
    """When ``seconds`` after ``since`` (a time written in status) is."""
    return parse_time(since) + timedelta(seconds=seconds)


# Phases
HEALTHY, PROGRESSING, PAUSED, DEGRADED = PHASES

# Condition types
AVAILABLE = "Available"
PROGRESSING_CONDITION = "Progressing"
PAUSED_CONDITION = "Paused"
HEALTHY_CONDITION = "Healthy"
INVALID_SPEC = "InvalidSpec"

# Reasons (CamelCase facts)
NEW_REVISION = "NewRevision"
CANDIDATE_NOT_READY = "CandidateNotReady"
CANDIDATE_READY = "CandidateReady"
STEP_DONE = "StepDone"
SMOKE_TEST_FAILED = "SmokeTestFailed"
WEIGHT_SET = "WeightSet"
MIRROR_SET = "MirrorSet"
PAUSED_BY_STEP = "PausedByStep"
PAUSED_BY_USER = "PausedByUser"
ANALYSIS_RUNNING = "AnalysisRunning"
ANALYSIS_INCONCLUSIVE = "AnalysisInconclusive"
ANALYSIS_FAILED = "AnalysisFailed"
PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
CANDIDATE_CRASH_LOOP = "CandidateCrashLoop"
ABORTED_BY_USER = "AbortedByUser"
# History results: Deployed (a ModelDeployment's first revision), Promoted (also a reason),
# Aborted (a rollout called off; the reason says why), Superseded (a candidate replaced by a
# newer spec before promotion).
DEPLOYED, PROMOTED, ABORTED, SUPERSEDED = HISTORY_RESULTS
FAST_REVERT = "FastRevert"  # a revision promoted within spec.rollbackWindow comes back without steps
DRIFT_REPAIRED = "DriftRepaired"  # a child object changed outside the operator was put back
GOLDEN_SET_FAILED = "GoldenSetFailed"  # the candidate did worse than asked on the model's golden set
STABLE_READY = "StableReady"
SCALE_DOWN_DELAY = "ScaleDownDelay"  # promoted; the previous revision kept at full size a while
WAITING_FOR_PROMOTION = "WaitingForPromotion"  # blue-green preview or passed shadow: a person promotes
SCALING_UP = "ScalingUp"  # the candidate grows to the pods it needs: for a weight, a promotion, a switch
SWITCHED = "Switched"  # all traffic moved to the candidate in one write (blue-green, shadow)
SHADOWING = "Shadowing"  # shadow: the candidate answers mirrored copies only
SPEC_INVALID = "SpecInvalid"
SPEC_VALID = "SpecValid"
# After the rollout (spec.guard, spec.fallback; engine/guard.py)
GUARD_FIRED = "GuardFired"  # a trigger fired on the promoted revision (Event; reason when nothing to fall to)
FALLBACK_ACTIVE = "FallbackActive"  # the fallback serves all traffic; the spec is unchanged
FALLBACK_NOT_READY = "FallbackNotReady"  # the guard fired, but the fallback is not ready: no traffic moves
RECOVERED = "Recovered"  # traffic back to the guarded revision (a person, or healthy long enough)
GUARD_ENDED = "GuardEnded"  # the guard's window is over (Event)

# The reasons a rollout is called off for, and the one an unusable spec gets: Degraded.
ABORT_REASONS = (ABORTED_BY_USER, CANDIDATE_CRASH_LOOP, PROGRESS_DEADLINE_EXCEEDED, SMOKE_TEST_FAILED,
                 GOLDEN_SET_FAILED, ANALYSIS_FAILED)
# The guard fired on the promoted revision: Degraded until it recovers.
GUARD_REASONS = (GUARD_FIRED, FALLBACK_ACTIVE, FALLBACK_NOT_READY)


def rolls_back(before: RolloutStatus, after: RolloutStatus) -> bool:
    """The decision sends traffic back to a model known to work: an abort (a canary's, a
    preview's or a shadow's, after a switch too) or a fast revert. Its API calls go first."""
    newly_aborted = after.aborted_revision is not None and after.aborted_revision != before.aborted_revision
    return newly_aborted or (after.fast_revert and after.candidate_revision is not None)


def phase_of(status: RolloutStatus, replicas: int) -> str:
    """The phase, from the rest of the status (Argo Rollouts' CalculateRolloutPhase):
    Degraded after an abort, while the guard has fired, or for an unusable spec, Paused while
    it waits for a person, Progressing while a candidate is in flight, a previous stable is
    kept warm or stable is not at its ``replicas`` yet, Healthy otherwise."""
    if status.reason in ABORT_REASONS or status.reason in GUARD_REASONS or status.reason == SPEC_INVALID:
        return DEGRADED
    if status.paused or status.paused_by_user:
        return PAUSED
    if status.candidate_revision is not None or status.ready_replicas < replicas or warm_previous(status):
        return PROGRESSING
    return HEALTHY


def warm_previous(status: RolloutStatus) -> list[ScaleDown]:
    """Keep-warm windows of revisions that served (a previous stable), not of an aborted
    candidate kept for a look."""
    last = {entry.revision: entry.result for entry in status.history}
    return [down for down in status.scale_downs if last.get(down.revision) != ABORTED]


def set_condition(
    conditions: tuple[Condition, ...], new: Condition, now: str
) -> tuple[tuple[Condition, ...], bool]:
    """Conditions with ``new`` in place; True when anything changed. lastTransitionTime
    moves only when the status flips (Kubernetes semantics)."""
    for i, old in enumerate(conditions):
        if old.type != new.type:
            continue
        if (old.status, old.reason, old.message, old.observed_generation) == (
            new.status, new.reason, new.message, new.observed_generation
        ):
            return conditions, False
        at = old.last_transition_time if old.status == new.status else now
        updated = new.with_(last_transition_time=at)
        return conditions[:i] + (updated,) + conditions[i + 1:], True
    return conditions + (new.with_(last_transition_time=now),), True


# --- the codec ---------------------------------------------------------------------------

# Keys an earlier operator wrote that no field holds any more: the status writer nulls them.
RETIRED_KEYS = ("stepStartedAt", "switchedAt", "promoteFull", "comparisons", "comparisonsAt",
                "consecutiveErrors")
_STAGES = {"blueGreen": BLUE_GREEN_STAGES, "shadow": SHADOW_STAGES}


def status_to_doc(status: RolloutStatus) -> dict:
    """The status as the CRD stores it (camelCase), every field the operator owns spelled
    out (null included, so a merge patch clears what is gone)."""
    return status.model_dump(by_alias=True, mode="json")


def status_from_doc(doc: dict | None) -> RolloutStatus:
    """Read back what status_to_doc wrote (or an earlier operator did); unknown or missing
    fields take defaults."""
    return RolloutStatus.model_validate(_upgraded(doc or {}))


def _upgraded(doc: dict) -> dict:
    """A status written before each strategy had a record of its own (currentStep holding
    stages, their times at the top) in today's shape, so a rollout under way carries on."""
    kind = doc.get("strategy")
    if "paused" in doc or kind not in ("canary", "blueGreen", "shadow"):  # this operator always writes paused
        return doc
    step, started = int(doc.get("currentStep") or 0), doc.get("stepStartedAt")
    rollout = doc.get("candidateRevision") is not None
    old = dict(doc.get(kind) or {})
    if kind == "canary":
        record = {"step": step, "stepStartedAt": started}
    elif kind == "blueGreen":
        record = {**old, "stage": _STAGES[kind][min(step, 3)] if rollout else None, "stageStartedAt": started,
                  "switchedAt": doc.get("switchedAt"), "promoteFull": bool(doc.get("promoteFull"))}
    else:
        record = {**old, "stage": _STAGES[kind][min(step, 1)] if rollout else None, "stageStartedAt": started,
                  "comparisons": int(doc.get("comparisons") or 0), "comparisonsAt": doc.get("comparisonsAt")}
    waiting = doc.get("phase") == PAUSED and not doc.get("pausedByUser")
    return {**doc, kind: record, "paused": waiting}
