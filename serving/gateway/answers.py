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


class Answer:
    """Where one request went. Endpoints are (host, port)."""

    __slots__ = ("at", "model", "revision", "endpoint", "shadow_revision", "shadow_endpoint")

    def __init__(self, at: float, model: str, revision: str, endpoint: tuple[str, int]) -> None:
        self.at = at
        self.model = model
        self.revision = revision
        self.endpoint = endpoint
        self.shadow_revision: str | None = None
        self.shadow_endpoint: tuple[str, int] | None = None


class AnsweredBy:
    def __init__(self, capacity: int, ttl_seconds: float) -> None:
        self.capacity = capacity
        self.ttl_seconds = ttl_seconds
        self._answers: OrderedDict[bytes, Answer] = OrderedDict()
        self.evicted = {"capacity": 0, "expired": 0}

    def __len__(self) -> int:
        return len(self._answers)

    def record(self, request_id: bytes, model: str, revision: str, endpoint: tuple[str, int],
               now: float) -> None:
        answers = self._answers
        if request_id in answers:  # a reused id: the newest answer is the one labels are for
            del answers[request_id]
        answers[request_id] = Answer(now, model, revision, endpoint)
        if len(answers) > self.capacity:
            _, oldest = answers.popitem(last=False)
            self.evicted["expired" if now - oldest.at > self.ttl_seconds else "capacity"] += 1

    def record_shadow(self, request_id: bytes, revision: str, endpoint: tuple[str, int]) -> None:
        answer = self._answers.get(request_id)
        if answer is not None:
            answer.shadow_revision = revision
            answer.shadow_endpoint = endpoint

    def get(self, request_id: bytes, now: float) -> Answer | None:
        answer = self._answers.get(request_id)
        if answer is not None and now - answer.at > self.ttl_seconds:
            del self._answers[request_id]
            self.evicted["expired"] += 1
            return None
        return answer

    def expire(self, now: float) -> None:
        """Drop the ids past their TTL (oldest first; stops at the first one still valid)."""
        answers = self._answers
        while answers:
            request_id, oldest = next(iter(answers.items()))
            if now - oldest.at <= self.ttl_seconds:
                return
            del answers[request_id]
            self.evicted["expired"] += 1
