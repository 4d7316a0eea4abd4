"""ModelDeployment status: phases, conditions and what a rollout remembers. Pure.

Everything the operator decides lives here, so a restarted operator resumes from the
status alone. Phases follow Argo Rollouts; condition types and reasons are constants
in this file, and no reason's value ends in "Reason".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime

# Every time written in status: UTC, microseconds.
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_time(now: datetime) -> str:
    return now.strftime(TIME_FORMAT)


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)


# Phases
HEALTHY = "Healthy"
PROGRESSING = "Progressing"
PAUSED = "Paused"
DEGRADED = "Degraded"
PHASES = (HEALTHY, PROGRESSING, PAUSED, DEGRADED)

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
ROLLOUT_ABORTED = "RolloutAborted"
ABORTED_BY_USER = "AbortedByUser"
PROMOTED = "Promoted"
DEPLOYED = "Deployed"  # history result of a ModelDeployment's first revision
ABORTED = "Aborted"  # history result of a rollout called off (the reason says why)
SUPERSEDED = "Superseded"  # history result of a candidate replaced by a newer spec before promotion
FAST_REVERT = "FastRevert"  # a revision promoted within spec.rollbackWindow comes back without steps
DRIFT_REPAIRED = "DriftRepaired"  # a child object changed outside the operator was put back
GOLDEN_SET_FAILED = "GoldenSetFailed"  # the candidate did worse than asked on the model's golden set
STABLE_READY = "StableReady"
SCALE_DOWN_DELAY = "ScaleDownDelay"  # promoted; the previous revision kept at full size a while
WAITING_FOR_PROMOTION = "WaitingForPromotion"  # blue-green preview or passed shadow: a person promotes
PREVIEW_READY = "PreviewReady"  # blue-green: the preview passed its gate; pre-promotion analysis next
SCALING_UP = "ScalingUp"  # blue-green: the preview grows to full size before the switch
SWITCHED = "Switched"  # all traffic moved to the candidate in one write (blue-green, shadow)
SHADOWING = "Shadowing"  # shadow: the candidate answers mirrored copies only
SPEC_INVALID = "SpecInvalid"
SPEC_VALID = "SpecValid"


@dataclass(frozen=True)
class Traffic:
    stable: int = 100
    candidate: int = 0
    mirror: int = 0

    def __post_init__(self) -> None:
        if self.stable + self.candidate != 100 or not (0 <= self.candidate <= 100) or not (
            0 <= self.mirror <= 100
        ):
            raise ValueError(f"weights must be 0..100 and add up to 100: {self}")


@dataclass(frozen=True)
class Condition:
    type: str
    status: str  # "True", "False", "Unknown"
    reason: str
    message: str = ""
    last_transition_time: str = ""
    observed_generation: int = 0


@dataclass(frozen=True)
class Measurement:
    """One analysis measurement of one metric."""

    metric: str
    at: str  # ISO time
    value: float | None  # None: no data or an error
    phase: str  # Successful, Failed, Inconclusive, Error
    message: str = ""


@dataclass(frozen=True)
class HistoryEntry:
    revision: str
    model_version: str
    sha256: str | None
    result: str  # DEPLOYED (the first revision), PROMOTED, ABORTED or SUPERSEDED
    at: str  # when the result came
    started_at: str | None = None  # when the revision was first deployed (a candidate: created)
    reason: str | None = None  # why, as a reason constant (AnalysisFailed, FastRevert, AbortedByUser...)
    by: str | None = None  # who asked, when a person did (the kubectl plugin's requestedBy)


@dataclass(frozen=True)
class ScaleDown:
    """A revision kept at ``replicas`` until ``at``, then scaled to 0 (keep-warm windows)."""

    revision: str
    replicas: int
    at: str


@dataclass(frozen=True)
class RolloutStatus:
    phase: str = PROGRESSING
    reason: str = ""  # why the phase is what it is (one of the reasons above)
    message: str = ""
    stable_revision: str | None = None
    candidate_revision: str | None = None
    current_step: int = 0  # index into spec steps of the step being worked on
    step_started_at: str | None = None  # when current_step began (pause and analysis timing)
    candidate_since: str | None = None  # when the candidate appeared (progress deadline)
    gate_passed: bool = False  # candidate fully ready and smoke test answered: traffic may move
    traffic: Traffic = Traffic()
    paused_by_user: bool = False
    aborted_revision: str | None = None  # candidate that was aborted; stays until spec changes
    abort_reason: str | None = None
    analysis: tuple[Measurement, ...] = ()  # measurements of the current analysis step
    consecutive_errors: int = 0  # analysis measurements in a row that could not be taken
    history: tuple[HistoryEntry, ...] = ()
    conditions: tuple[Condition, ...] = ()
    observed_generation: int = 0
    revision_versions: dict = field(default_factory=dict)  # revision -> model version
    handled_command: str | None = None  # id of the last manual command carried out (status.command)
    fast_revert: bool = False  # the candidate was promoted within spec.rollbackWindow: no steps
    promote_full: bool = False  # a person asked to skip every step left (blue-green: once switched)
    switched_at: str | None = None  # blue-green and shadow: when all traffic moved to the candidate
    scale_downs: tuple[ScaleDown, ...] = ()  # revisions kept warm, and until when
    comparisons: int = 0  # shadow: mirrored answers compared since the shadow began
    comparisons_at: str | None = None  # when they were last counted
    golden_set: dict | None = None  # the golden-set gate's scores for the candidate and stable
    # For people and printer columns; derived, never read back by the engine.
    strategy: str = ""  # canary, blueGreen or shadow
    stable_version: str | None = None
    candidate_version: str | None = None
    ready_replicas: int = 0  # ready replicas of the stable revision
    blue_green: dict | None = None  # {activeRevision, previewRevision, switchedAt, scaleDownAt}
    shadow: dict | None = None  # {mirrorPercent, comparisons, agreement}

    def with_(self, **changes) -> RolloutStatus:
        return replace(self, **changes)


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
        updated = replace(new, last_transition_time=at)
        return conditions[:i] + (updated,) + conditions[i + 1:], True
    return conditions + (replace(new, last_transition_time=now),), True


def status_to_doc(status: RolloutStatus) -> dict:
    """The status as the CRD stores it (camelCase)."""
    raw = asdict(status)
    return {_camel(k): _camel_deep(v) for k, v in raw.items()}


def status_from_doc(doc: dict | None) -> RolloutStatus:
    """Read back what status_to_doc wrote; unknown or missing fields take defaults."""
    if not doc:
        return RolloutStatus()
    plain = {_snake(k): v for k, v in doc.items()}
    traffic = plain.get("traffic") or {}
    return RolloutStatus(
        phase=plain.get("phase", PROGRESSING),
        reason=plain.get("reason", ""),
        message=plain.get("message", ""),
        stable_revision=plain.get("stable_revision"),
        candidate_revision=plain.get("candidate_revision"),
        current_step=int(plain.get("current_step", 0)),
        step_started_at=plain.get("step_started_at"),
        candidate_since=plain.get("candidate_since"),
        gate_passed=bool(plain.get("gate_passed", False)),
        traffic=Traffic(int(traffic.get("stable", 100)), int(traffic.get("candidate", 0)),
                        int(traffic.get("mirror", 0))),
        paused_by_user=bool(plain.get("paused_by_user", False)),
        aborted_revision=plain.get("aborted_revision"),
        abort_reason=plain.get("abort_reason"),
        # A null field may come back missing: an Argo CD action's patch carries status as Lua
        # saw it, and Lua has no null (docs/argocd.md). Missing reads as null.
        analysis=tuple(Measurement(**{"value": None, **{_snake(k): v for k, v in m.items()}})
                       for m in plain.get("analysis") or ()),
        consecutive_errors=int(plain.get("consecutive_errors", 0)),
        history=tuple(HistoryEntry(**{"sha256": None, **{_snake(k): v for k, v in h.items()}})
                      for h in plain.get("history") or ()),
        conditions=tuple(Condition(**{_snake(k): v for k, v in c.items()})
                         for c in plain.get("conditions") or ()),
        observed_generation=int(plain.get("observed_generation", 0)),
        revision_versions=dict(plain.get("revision_versions") or {}),
        handled_command=plain.get("handled_command"),
        fast_revert=bool(plain.get("fast_revert", False)),
        promote_full=bool(plain.get("promote_full", False)),
        switched_at=plain.get("switched_at"),
        scale_downs=tuple(ScaleDown(**{_snake(k): v for k, v in d.items()})
                          for d in plain.get("scale_downs") or ()),
        comparisons=int(plain.get("comparisons") or 0),
        comparisons_at=plain.get("comparisons_at"),
        golden_set=plain.get("golden_set"),
        strategy=plain.get("strategy") or "",
        stable_version=plain.get("stable_version"),
        candidate_version=plain.get("candidate_version"),
        ready_replicas=int(plain.get("ready_replicas") or 0),
        blue_green=plain.get("blue_green"),
        shadow=plain.get("shadow"),
    )


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def _camel_deep(value: object) -> object:
    if isinstance(value, dict):
        # Keys of plain dicts (revision names) stay as they are; only field names change.
        return {(_camel(k) if isinstance(k, str) and "_" in k else k): _camel_deep(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_camel_deep(v) for v in value]
    return value
