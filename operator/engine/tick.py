"""One reconcile's fixed inputs, and the few helpers every strategy's step uses. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from ..actions import Action, EnsureRevision, SetTraffic
from ..spec import Spec
from ..status import RolloutStatus, deadline, format_time
from .observations import Observations

if TYPE_CHECKING:
    from .strategy import Strategy

Result = tuple[RolloutStatus, list[Action]]


@dataclass(frozen=True)
class Tick:
    spec: Spec
    desired: str  # the revision the spec describes (revision_of)
    obs: Observations
    now: datetime
    at: str  # now, as written in status
    strategy: Strategy  # the spec's: canary.py, blue_green.py or shadow.py

    def by(self) -> str:
        """", by <who>" when a person's command is being carried out."""
        return f", by {self.obs.command_by}" if self.obs.command and self.obs.command_by else ""

    def reached(self, since: str, seconds: float) -> bool:
        """``seconds`` after ``since`` (a time in status) has come."""
        return self.now >= deadline(since, seconds)

    def seconds_left(self, since: str, seconds: float) -> float:
        return (deadline(since, seconds) - self.now).total_seconds()

    def later(self, seconds: float, since: str | None = None) -> str:
        """The time ``seconds`` after ``since`` (default now), never before now, as status writes it."""
        return format_time(max(deadline(since or self.at, seconds), self.now))


def hold(tick: Tick, status: RolloutStatus, candidate_replicas: int) -> list[Action]:
    """The actions that keep things as they are: both revisions at their size, the split."""
    split = status.traffic
    return [EnsureRevision(status.stable_revision, tick.spec.replicas),
            EnsureRevision(status.candidate_revision, candidate_replicas),
            SetTraffic(status.stable_revision, status.candidate_revision, split.stable, split.candidate,
                       split.mirror)]


def entered(status: RolloutStatus, reason: str, message: str, **changes) -> RolloutStatus:
    """A new step or stage begins (its record, in ``changes``, says which and since when):
    the last step's measurements go."""
    return status.with_(analysis=(), reason=reason, message=message, **changes)
