"""What lifecycle.py asks of a strategy: canary.py, blue_green.py and shadow.py each provide it."""

from __future__ import annotations

from typing import Protocol

from ..spec import Spec
from ..status import RolloutStatus
from .tick import Result, Tick


class Strategy(Protocol):
    KIND: str  # the key in spec.strategy, and the status key its own record is written under

    def candidate_replicas(self, spec: Spec, status: RolloutStatus) -> int:
        """Replicas the candidate runs with now (the gate waits for that many)."""

    def metrics_now(self, spec: Spec, status: RolloutStatus) -> tuple[str, ...]:
        """Analysis metrics measured in the step it is in."""

    def step_started_at(self, status: RolloutStatus) -> str | None:
        """When the step it is in began; None before its first one."""

    def begin(self, status: RolloutStatus, at: str) -> RolloutStatus:
        """The gate passed: its first step begins ``at``."""

    def reset(self, status: RolloutStatus) -> RolloutStatus:
        """Its record of a rollout, cleared (a new candidate, a promotion, an abort)."""

    def progress(self, tick: Tick, status: RolloutStatus, keep: list) -> Result:
        """Its steps, once the gate has passed; ``keep`` holds things as they are."""

    def promote_now(self, tick: Tick, status: RolloutStatus, why: str) -> Result:
        """A person's promote-full."""

    def keep_warm_seconds(self, spec: Spec) -> float:
        """How long the old stable stays at full size after a promotion."""

    def keep_aborted_seconds(self, spec: Spec) -> float:
        """How long an aborted candidate stays, for a look at what failed."""

    def shown(self, spec: Spec, status: RolloutStatus) -> RolloutStatus:
        """Its record's fields for people, and status.currentStep."""
