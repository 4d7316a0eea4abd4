"""What the rollout engine may ask the shell to do. Pure values, no behaviour.

The shell (kube/apply.py) carries them out in order and writes the new status once,
after all of them succeeded: a failed action leaves the stored status as it was, so the
next reconcile decides again from the same facts.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EnsureRevision:
    """A Deployment and Service for this revision exist, with this many replicas."""

    revision: str
    replicas: int


@dataclass(frozen=True)
class ScaleRevision:
    """Scale an existing revision (to 0 after promotion or abort)."""

    revision: str
    replicas: int


@dataclass(frozen=True)
class RequestFallback:
    """Per request, the router answers from this revision when the one chosen fails the
    request (spec.fallback.perRequest)."""

    revision: str
    deadline_ms: int | None = None  # ask the fallback when no answer came by then


@dataclass(frozen=True)
class SetTraffic:
    """Route traffic: every part spelled out, in one write to the router."""

    stable_revision: str
    candidate_revision: str | None
    stable_weight: int
    candidate_weight: int
    mirror_percent: int = 0  # copies of requests sent to the candidate, answers compared
    fallback: RequestFallback | None = None


@dataclass(frozen=True)
class RecordEvent:
    type: str  # "Normal" or "Warning"
    reason: str
    message: str


Action = EnsureRevision | ScaleRevision | SetTraffic | RecordEvent
