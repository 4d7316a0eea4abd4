"""The rollout engine: decide(spec, status, observations, now) -> Decision. Pure.

No I/O and no clock of its own: the shell gathers Observations once per reconcile,
calls decide(), carries out the actions and writes the returned status in one patch.

Where a rollout step is decided: lifecycle.py holds what every strategy shares (a new
candidate, the gate, promote, abort, retry, fast revert, history); canary.py,
blue_green.py and shadow.py each decide only their own steps.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from ..actions import Action
from ..spec import Spec
from ..status import (
    DEGRADED,
    INVALID_SPEC,
    SPEC_INVALID,
    Condition,
    Measurement,
    RolloutStatus,
    format_time,
    parse_time,
    set_condition,
)
from . import blue_green, canary, lifecycle, shadow
from .golden import GoldenResult

COMMANDS = ("promote", "promote-full", "abort", "pause", "resume", "retry")
STRATEGIES = {"canary": canary, "blueGreen": blue_green, "shadow": shadow}


@dataclass(frozen=True)
class Observations:
    """What the shell saw for one ModelDeployment, gathered once per reconcile."""

    generation: int = 0
    stable_ready: bool = True  # every replica of the stable revision is ready
    stable_ready_replicas: int = 0
    candidate_ready_replicas: int = 0
    candidate_crash_looping: bool = False  # a candidate container restarted repeatedly
    # Why candidate pods that are not ready say they are not (their readiness answer, e.g.
    # "model failed to load: sha256 mismatch"), when the shell could ask them; None otherwise.
    candidate_problem: str | None = None
    # The smoke inference against the candidate, run by the shell while the gate is
    # closed and the candidate is ready: None (not run), True (answered correctly), or
    # the failure message.
    smoke_test: bool | str | None = None
    measurements: tuple[Measurement, ...] = ()  # taken this reconcile, for due_metrics()
    command: str | None = None  # a manual action (see COMMANDS), once
    command_by: str | None = None  # who asked for it (the kubectl plugin's requestedBy)
    shadow_comparisons: int | None = None  # compared answers since the shadow began, when counted
    # The golden set replayed by the shell once the smoke test passed (spec.goldenSet): the
    # scores, or why it cannot be replayed; None while not run (or not reachable yet).
    golden_set: GoldenResult | str | None = None


@dataclass(frozen=True)
class Decision:
    status: RolloutStatus
    actions: tuple[Action, ...]


def revision_of(spec: Spec) -> str:
    """The revision of the serving pods: a hash of the model and the pod template.
    Replicas, routing and steps are left out: changing them starts no new rollout."""
    identity = {"model": asdict(spec.model), "server": asdict(spec.server)}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]


def decide(spec: Spec, status: RolloutStatus, observations: Observations, now: datetime) -> Decision:
    tick = lifecycle.Tick(spec, revision_of(spec), observations, now, format_time(now))
    status, actions = lifecycle.decide(tick, status, STRATEGIES[spec.strategy.kind])
    versions = status.revision_versions
    status = status.with_(stable_version=versions.get(status.stable_revision),
                          candidate_version=versions.get(status.candidate_revision),
                          ready_replicas=observations.stable_ready_replicas,
                          blue_green=_blue_green_view(spec, status), shadow=_shadow_view(spec, status))
    return Decision(status, tuple(actions))


def due_metrics(spec: Spec, status: RolloutStatus, now: datetime) -> tuple[str, ...]:
    """Metrics of the current step that are due a measurement now."""
    return lifecycle.due_metrics(spec, status, now, STRATEGIES[spec.strategy.kind])


def candidate_replicas(spec: Spec, status: RolloutStatus) -> int:
    """Replicas the candidate runs with now: the gate waits for that many (a blue-green
    preview runs previewReplicas)."""
    return STRATEGIES[spec.strategy.kind].candidate_replicas(spec, status)


def comparisons_due(spec: Spec, status: RolloutStatus, now: datetime) -> bool:
    """Whether the shell should count the shadow's compared answers this reconcile: once
    every analysis interval while a shadow runs."""
    if spec.strategy.kind != "shadow" or not shadow.counts_comparisons(spec, status):
        return False
    if status.comparisons_at is None:
        return True
    return now >= parse_time(status.comparisons_at) + timedelta(seconds=spec.analysis.interval_seconds)


def reject_spec(status: RolloutStatus, problem: str, generation: int, now: datetime) -> RolloutStatus:
    """The status for a spec that cannot be parsed: say what to fix, change nothing else.
    Traffic and revisions stay as they are: a typo must not move or drop traffic."""
    at = format_time(now)
    conditions, _ = set_condition(status.conditions, Condition(
        INVALID_SPEC, "True", SPEC_INVALID, problem, "", generation), at)
    return status.with_(phase=DEGRADED, reason=SPEC_INVALID, message=f"invalid spec: {problem}",
                        conditions=conditions, observed_generation=generation)


def _blue_green_view(spec: Spec, status: RolloutStatus) -> dict | None:
    if spec.strategy.kind != "blueGreen":
        return None
    switched = status.candidate_revision is not None and status.current_step == blue_green.SWITCHED_STAGE
    warm = [d.at for d in status.scale_downs if d.revision != status.aborted_revision]
    return {"activeRevision": status.candidate_revision if switched else status.stable_revision,
            "previewRevision": None if switched else status.candidate_revision,
            "switchedAt": status.switched_at, "scaleDownAt": min(warm) if warm else None}


def _shadow_view(spec: Spec, status: RolloutStatus) -> dict | None:
    if spec.strategy.kind != "shadow":
        return None
    agreement = [m.value for m in status.analysis if m.metric == "shadow-agreement" and m.value is not None]
    return {"mirrorPercent": status.traffic.mirror, "comparisons": status.comparisons,
            "agreement": agreement[-1] if agreement else None}


__all__ = ["COMMANDS", "STRATEGIES", "Decision", "GoldenResult", "Observations", "candidate_replicas",
           "comparisons_due", "decide", "due_metrics", "reject_spec", "revision_of"]
