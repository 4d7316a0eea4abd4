"""The rollout engine: decide(spec, status, observations, now) -> Decision. Pure.

No I/O and no clock of its own: the shell gathers Observations once per reconcile,
calls decide(), carries out the actions and writes the returned status in one patch.
Where a rollout step is decided: canary.py.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime

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
    set_condition,
)
from .canary import decide_canary, due_metrics

COMMANDS = ("promote", "promote-full", "abort", "pause", "resume", "retry")


@dataclass(frozen=True)
class Observations:
    """What the shell saw for one ModelDeployment, gathered once per reconcile."""

    generation: int = 0
    stable_ready: bool = True  # every replica of the stable revision is ready
    stable_ready_replicas: int = 0
    candidate_ready_replicas: int = 0
    candidate_crash_looping: bool = False  # a candidate container restarted repeatedly
    # The smoke inference against the candidate, run by the shell while the gate is
    # closed and the candidate is ready: None (not run), True (answered correctly), or
    # the failure message.
    smoke_test: bool | str | None = None
    measurements: tuple[Measurement, ...] = ()  # taken this reconcile, for due_metrics()
    command: str | None = None  # a manual action (see COMMANDS), once


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
    status, actions = decide_canary(spec, revision_of(spec), status, observations, now)
    versions = status.revision_versions
    status = status.with_(stable_version=versions.get(status.stable_revision),
                          candidate_version=versions.get(status.candidate_revision),
                          ready_replicas=observations.stable_ready_replicas)
    return Decision(status, tuple(actions))


def reject_spec(status: RolloutStatus, problem: str, generation: int, now: datetime) -> RolloutStatus:
    """The status for a spec that cannot be parsed: say what to fix, change nothing else.
    Traffic and revisions stay as they are: a typo must not move or drop traffic."""
    at = format_time(now)
    conditions, _ = set_condition(status.conditions, Condition(
        INVALID_SPEC, "True", SPEC_INVALID, problem, "", generation), at)
    return status.with_(phase=DEGRADED, reason=SPEC_INVALID, message=f"invalid spec: {problem}",
                        conditions=conditions, observed_generation=generation)


__all__ = ["COMMANDS", "Decision", "Observations", "decide", "due_metrics", "reject_spec", "revision_of"]
