"""Leader election over a coordination.k8s.io/v1 Lease: the rules, without I/O. Pure.

Several operator replicas share one Lease. The one named in ``spec.holderIdentity`` leads
and renews ``spec.renewTime`` every retry period; the others read the Lease as often and
take it over once it has not changed for ``leaseDurationSeconds``, as client-go's
leaderelection does (Argo Rollouts and controller-runtime run on it):

- time is measured on the reader's own clock, from when it last *saw the record change*
  (``Observed.at``), never from the times written in the Lease: replicas' clocks may
  differ, their rates are assumed not to;
- every write carries the resourceVersion it read: of two replicas that both find the
  Lease expired, the API server lets one write and answers 409 Conflict to the other;
- a leader that could not renew for ``renew_deadline_seconds`` (shorter than the lease
  duration) stops acting before anyone else may take over.

kube/leader.py does the reading and writing, and tells the reconcile loops when to start
and stop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ElectionTiming:
    lease_duration_seconds: float = 15.0  # a follower waits this long after the last change seen
    renew_deadline_seconds: float = 10.0  # a leader that could not renew this long stops
    retry_seconds: float = 2.0  # how often leaders renew and followers look

    def check(self) -> None:
        """client-go's constraints: the leader gives up before a follower may take over."""
        if not 0 < self.retry_seconds < self.renew_deadline_seconds < self.lease_duration_seconds:
            raise ValueError("leader election needs 0 < retry < renew deadline < lease duration, got "
                             f"{self.retry_seconds:g} / {self.renew_deadline_seconds:g} / "
                             f"{self.lease_duration_seconds:g} s")

    @property
    def takeover_bound_seconds(self) -> float:
        """Longest time from a leader's last renewal to a follower holding the Lease."""
        return self.lease_duration_seconds + self.retry_seconds


@dataclass(frozen=True)
class Observed:
    """The Lease as this replica last saw it change, and when (its own monotonic clock)."""

    holder: str
    spec: dict  # the Lease's spec as read
    at: float


def holder_of(lease: dict | None) -> str:
    return ((lease or {}).get("spec") or {}).get("holderIdentity") or ""


def observe(previous: Observed | None, lease: dict, now: float) -> Observed:
    """The observation after reading ``lease``: its clock restarts only when the record changed."""
    spec = dict(lease.get("spec") or {})
    if previous is not None and previous.spec == spec:
        return previous
    return Observed(holder_of(lease), spec, now)


def may_take(observed: Observed, identity: str, timing: ElectionTiming, now: float) -> bool:
    """Whether ``identity`` may write itself into the Lease now: it is free (no holder), it
    is ours already, or its holder has not renewed for a whole lease duration."""
    if not observed.holder or observed.holder == identity:
        return True
    return now >= observed.at + timing.lease_duration_seconds


def claimed(lease: dict | None, identity: str, timing: ElectionTiming, now_text: str) -> dict:
    """The Lease written by ``identity`` taking or renewing it; resourceVersion kept for the
    precondition. acquireTime and leaseTransitions move only when the holder changes."""
    spec = dict((lease or {}).get("spec") or {})
    renewing = spec.get("holderIdentity") == identity
    spec.update({
        "holderIdentity": identity,
        "leaseDurationSeconds": max(1, round(timing.lease_duration_seconds)),
        "renewTime": now_text,
    })
    if not renewing:
        spec["acquireTime"] = now_text
        spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if lease else 0)
    return {**(lease or {}), "spec": spec}


def released(lease: dict, now_text: str) -> dict:
    """What a leader that stops on purpose writes: no holder, so a follower takes over at
    its next look instead of waiting out the lease (client-go's ReleaseOnCancel)."""
    spec = dict(lease.get("spec") or {})
    spec.update({"holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": now_text})
    return {**lease, "spec": spec}


def micro_time(now: datetime) -> str:
    """A Lease's MicroTime: RFC 3339 with microseconds, UTC."""
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
