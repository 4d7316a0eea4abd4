"""How many pods each revision gets out of ``spec.replicas``, the total that `kubectl scale`,
an HPA or KEDA sets through the scale subresource. Pure.

    stable      the total, the whole rollout: an abort moves every request back at once,
                with no pod to wait for (Argo Rollouts' default, dynamicStableScale off)
    candidate   its share of the traffic it takes or the copies it answers:
                ceil(total x percent / 100), at least 1 while a rollout runs, at most the
                total; the full total before it takes all traffic (a promotion, a
                blue-green switch, a fast revert)

Rounding up means a candidate never has fewer pods per request than stable: 10 replicas at
5% is 1 pod, at 25% 3 pods, at 50% 5 pods. A weight goes up only once the candidate has
the pods for it (``grown``); a weight going down leaves it more than it needs until then.
"""

from __future__ import annotations

from collections.abc import Callable

from ..status import PROGRESS_DEADLINE_EXCEEDED, SCALING_UP, RolloutStatus
from .outcomes import abort
from .tick import Result, Tick, hold


def share(total: int, percent: int) -> int:
    """The candidate's pods for ``percent`` of ``total``'s traffic (0 when the total is 0)."""
    if total <= 0:
        return 0
    return min(total, max(1, -(-total * max(percent, 0) // 100)))


def grown(tick: Tick, status: RolloutStatus, wanted: int, since: str, what: str,
          then: Callable[[], Result]) -> Result:
    """``then()`` once ``wanted`` candidate replicas are ready. Until then the candidate grows
    to ``wanted`` and traffic stays as it is; at progressDeadlineSeconds after ``since``
    the rollout is aborted. ``what``: what the pods are for ("before the switch")."""
    spec, ready = tick.spec, tick.obs.candidate_ready_replicas
    if ready >= wanted:
        return then()
    if tick.reached(since, spec.progress_deadline_seconds):
        return abort(tick, status, PROGRESS_DEADLINE_EXCEEDED,
                     f"candidate not scaled to {wanted} replicas {what} within progressDeadlineSeconds "
                     f"({spec.progress_deadline_seconds}): {ready} ready", wanted)
    message = f"scaling the candidate to {wanted} replicas {what}: {ready} of {wanted} ready"
    return status.with_(reason=SCALING_UP, message=message), hold(tick, status, wanted)
