"""What the shell saw of one ModelDeployment, gathered once per reconcile. Pure values."""

from __future__ import annotations

from dataclasses import dataclass

from ..status import Measurement
from .golden import GoldenResult


@dataclass(frozen=True)
class Observations:
    generation: int = 0
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
    # Taken this reconcile: for due_metrics() while a rollout runs, for the guard's
    # guard.due_metrics() once a revision is promoted.
    measurements: tuple[Measurement, ...] = ()
    command: str | None = None  # a manual action (see COMMANDS), once
    command_by: str | None = None  # who asked for it (the kubectl plugin's requestedBy)
    shadow_comparisons: int | None = None  # compared answers since the shadow began, when counted
    # The golden set replayed by the shell once the smoke test passed (spec.goldenSet): the
    # scores, or why it cannot be replayed; None while not run (or not reachable yet).
    golden_set: GoldenResult | str | None = None
    # The fallback revision (spec.fallback): its ready replicas, and why its pods that are
    # not ready say they are not (a sha256 mismatch, say) when the shell could ask them.
    fallback_revision: str | None = None  # whose readiness the two below are
    fallback_ready_replicas: int = 0
    fallback_problem: str | None = None
