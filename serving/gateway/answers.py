"""Which endpoint answered a request id, and which shadow endpoint got its mirrored copy:
what the gateway needs to send a label (POST .../feedback) to the server process that made
the prediction, since each keeps its own predictions. Pure: the caller passes the clock.

Bounded: at most ``capacity`` ids, each for at most ``ttl_seconds``; the oldest go first.
Both kinds of eviction are counted (``evicted``), and an id asked for after its TTL counts
as expired then. Recording is on the gateway's hot path (once per answered request), so
it is an OrderedDict insert and, once full, one pop: no scan.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    """Where one request went. Endpoints are (host, port)."""

    at: float
    model: str
    revision: str
    endpoint: tuple[str, int]
    shadow_revision: str | None = None
    shadow_endpoint: tuple[str, int] | None = None


class AnsweredBy:
    def __init__(self, capacity: int, ttl_seconds: float) -> None:
        self.capacity = capacity
        self.ttl_seconds = ttl_seconds
        # id -> (at, model, revision, host, port): tuples of plain values, which the garbage
        # collector stops tracking, so 100 000 of them cost it nothing.
        self._answers: OrderedDict[bytes, tuple] = OrderedDict()
        self._shadows: dict[bytes, tuple] = {}  # id -> (revision, host, port), for mirrored ids
        self.evicted = {"capacity": 0, "expired": 0}

    def __len__(self) -> int:
        return len(self._answers)

    def record(self, request_id: bytes, model: str, revision: str, host: str, port: int, now: float) -> None:
        answers = self._answers
        if request_id in answers:  # a reused id: the newest answer is the one labels are for
            del answers[request_id]
            self._shadows.pop(request_id, None)
        answers[request_id] = (now, model, revision, host, port)
        if len(answers) > self.capacity:
            oldest_id, oldest = answers.popitem(last=False)
            if self._shadows:
                self._shadows.pop(oldest_id, None)
            self.evicted["expired" if now - oldest[0] > self.ttl_seconds else "capacity"] += 1

    def record_shadow(self, request_id: bytes, revision: str, host: str, port: int) -> None:
        if request_id in self._answers:
            self._shadows[request_id] = (revision, host, port)

    def get(self, request_id: bytes, now: float) -> Answer | None:
        found = self._answers.get(request_id)
        if found is None:
            return None
        at, model, revision, host, port = found
        if now - at > self.ttl_seconds:
            self._forget(request_id)
            self.evicted["expired"] += 1
            return None
        shadow = self._shadows.get(request_id)
        if shadow is None:
            return Answer(at, model, revision, (host, port))
        return Answer(at, model, revision, (host, port), shadow[0], (shadow[1], shadow[2]))

    def expire(self, now: float) -> None:
        """Drop the ids past their TTL (oldest first; stops at the first one still valid)."""
        answers = self._answers
        while answers:
            request_id, oldest = next(iter(answers.items()))
            if now - oldest[0] <= self.ttl_seconds:
                return
            self._forget(request_id)
            self.evicted["expired"] += 1

    def _forget(self, request_id: bytes) -> None:
        del self._answers[request_id]
        self._shadows.pop(request_id, None)
