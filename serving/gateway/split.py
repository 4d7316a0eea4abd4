"""Which revision serves a request: header rules, then sticky or random weights. Pure.

Weights map onto 10 000 buckets laid out in the fixed order of the route's revisions,
candidate first: raising the candidate's weight from 10 to 20 moves exactly the keys
in buckets [1000, 2000) from stable to candidate and no others, so a sticky user
changes revision only when the weights leave them no choice.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from ..contract.routes import IDEMPOTENT_HEADER, ModelRoute, Revision

BUCKETS = 10_000
_IDEMPOTENT = IDEMPOTENT_HEADER.encode()


@dataclass(frozen=True)
class Choice:
    revision: Revision
    wanted: Revision  # the revision the rules picked; differs when it had no ready endpoint
    reason: str  # "match", "sticky" or "weight"

    @property
    def is_fallback(self) -> bool:
        return self.revision is not self.wanted


def bucket_of(key: str) -> int:
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def choose(
    route: ModelRoute,
    headers: dict[str, str],
    cookies: dict[str, str] | None = None,
    draw: float | None = None,
) -> Choice:
    """Pick the serving revision. ``headers`` have lower-case names; ``draw`` in [0, 1)
    replaces the random draw (tests)."""
    for rule in route.match:
        if headers.get(rule.header) == rule.value:
            wanted = route.revision(rule.revision)
            if wanted is not None and wanted.role != "shadow":
                return _serve(route, wanted, "match")
    served = route.served
    if len(served) == 1:  # nothing to split: every bucket is this revision's
        return _serve(route, served[0], "sticky" if route.sticky else "weight")
    key = _sticky_key(route, headers, cookies or {})
    if key is not None:
        bucket, reason = bucket_of(key), "sticky"
    else:
        bucket, reason = int((random.random() if draw is None else draw) * BUCKETS), "weight"
    return _serve(route, _by_bucket(served, bucket), reason)


def _by_bucket(served: tuple[Revision, ...], bucket: int) -> Revision:
    upper = 0
    for revision in served:
        upper += revision.weight * (BUCKETS // 100)
        if bucket < upper:
            return revision
    return served[-1]


def _sticky_key(route: ModelRoute, headers: dict[str, str], cookies: dict[str, str]) -> str | None:
    sticky = route.sticky
    if sticky is None:
        return None
    if sticky.header:
        return headers.get(sticky.header) or None
    return cookies.get(sticky.cookie) or None


def _serve(route: ModelRoute, wanted: Revision, reason: str) -> Choice:
    """The wanted revision if it has a ready endpoint, else one that stands in for it."""
    if wanted.ready_endpoints:
        return Choice(wanted, wanted, reason)
    return Choice(stand_in(route, wanted) or wanted, wanted, reason)


def stand_in(route: ModelRoute, revision: Revision) -> Revision | None:
    """The revision with a ready endpoint that takes the requests ``revision`` cannot: the
    route's fallback revision if it has one, else another revision that is not a shadow."""
    preferred = route.fallback_revision
    if preferred is not None and preferred is not revision and preferred.ready_endpoints:
        return preferred
    for other in route.revisions:
        if other is not revision and other.role != "shadow" and other.ready_endpoints:
            return other
    return None


def fallback_for(route: ModelRoute, revision: Revision,
                 headers: list[tuple[bytes, bytes]]) -> Revision | None:
    """The revision that answers a request if ``revision`` fails it (``headers``: the
    request's, lower-case names): None when the route names none, names ``revision`` itself,
    the fallback has no ready endpoint (the client then gets ``revision``'s own answer), or
    the client said the request must not be sent twice."""
    fallback = route.fallback_revision
    if fallback is None or fallback is revision or not fallback.ready_endpoints:
        return None
    for name, value in headers:
        if name == _IDEMPOTENT and value.strip().lower() == b"false":
            return None
    return fallback
