"""The rollout engine: decide(spec, status, observations, now) -> Decision. Pure.

No I/O and no clock of its own: the shell gathers Observations once per reconcile,
calls decide(), carries out the actions and writes the returned status in one patch.

Where a rollout step is decided: lifecycle.py holds what every strategy shares (a new
candidate, the gate, fast revert), outcomes.py how a rollout ends (promote, abort,
history), measuring.py the analysis inside a step; canary.py, blue_green.py and
shadow.py each decide only their own steps, as strategy.py's Strategy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..actions import Action
from ..api.v1alpha1 import COMMANDS
from ..spec import Spec
from ..status import (
    INVALID_SPEC,
    SPEC_INVALID,
    Condition,
    RolloutStatus,
    deadline,
    format_time,
    phase_of,
    set_condition,
)
from . import blue_green, canary, guard, lifecycle, measuring, shadow
from .golden import GoldenResult
from .guard import fallback_of, routing_measured
from .observations import Observations
from .revisions import buildable, revision_of
from .strategy import Strategy
from .tick import Tick

STRATEGIES: dict[str, Strategy] = {canary.KIND: canary, blue_green.KIND: blue_green, shadow.KIND: shadow}


@dataclass(frozen=True)
class Decision:
    status: RolloutStatus
    actions: tuple[Action, ...]


def decide(spec: Spec, status: RolloutStatus, observations: Observations, now: datetime) -> Decision:
    tick = Tick(spec, revision_of(spec), observations, now, format_time(now), STRATEGIES[spec.strategy.kind])
    status, actions = lifecycle.decide(tick, status)
    return Decision(status, tuple(actions))


def due_metrics(spec: Spec, status: RolloutStatus, now: datetime) -> tuple[str, ...]:
    """Metrics due a measurement now: the current step's while a rollout runs, the guard's
    trigger metrics on the stable revision after it (guard.py)."""
    if status.candidate_revision is None:
        return guard.due_metrics(spec, status, now)
    return measuring.due_metrics(spec, status, now, STRATEGIES[spec.strategy.kind])


def candidate_replicas(spec: Spec, status: RolloutStatus) -> int:
    """Replicas the candidate runs with now: the gate waits for that many (a blue-green
    preview runs previewReplicas)."""
    return STRATEGIES[spec.strategy.kind].candidate_replicas(spec, status)


def comparisons_due(spec: Spec, status: RolloutStatus, now: datetime) -> bool:
    """Whether the shell should count the shadow's compared answers this reconcile: once
    every analysis interval while a shadow runs."""
    if spec.strategy.kind != shadow.KIND or not shadow.counts_comparisons(spec, status):
        return False
    counted = shadow.comparisons_counted_at(status)
    return counted is None or now >= deadline(counted, spec.analysis.interval_seconds)


def comparisons_since(status: RolloutStatus) -> str | None:
    """When the shadow whose comparisons are counted began."""
    return shadow.shadowing_since(status)


def reject_spec(status: RolloutStatus, problem: str, generation: int, now: datetime) -> RolloutStatus:
    """The status for a spec that cannot be parsed: say what to fix, change nothing else.
    Traffic and revisions stay as they are: a typo must not move or drop traffic."""
    at = format_time(now)
    invalid = Condition(type=INVALID_SPEC, status="True", reason=SPEC_INVALID, message=problem,
                        observed_generation=generation)
    conditions, _ = set_condition(status.conditions, invalid, at)
    status = status.with_(reason=SPEC_INVALID, message=f"invalid spec: {problem}", conditions=conditions,
                          observed_generation=generation)
    return status.with_(phase=phase_of(status, 0))


__all__ = ["COMMANDS", "STRATEGIES", "Decision", "GoldenResult", "Observations", "buildable",
           "candidate_replicas", "comparisons_due", "comparisons_since", "decide", "due_metrics",
           "fallback_of", "reject_spec", "revision_of", "routing_measured"]
