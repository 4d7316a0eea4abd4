"""Faults the harness's API server injects on request: answers of 500, 409 or 429 (or any
status) to the calls that match, for a number of calls or a while, as an overloaded,
restarting or contended API server gives them.

    fault = kube.inject(Fault(status=500, verbs={"patch"}, resource="modeldeployments/status",
                              identity="modelrollout-operator", count=5))
    ... fault.hits ...     # how many calls it answered; fault.refused: when, and which
    kube.clear_faults()

A fault matches a call (audit.Call) when every field it sets matches; it answers with
the API server's Status body for that code (429 with a Retry-After header) and the call
does nothing else: no write happens, no watcher is told. ``count`` ends it after that many
answers, ``seconds`` after that long from its injection; with neither it lasts until
cleared. Faults are checked in the order injected; the first that matches answers.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

from .audit import Call
from .requests import Refused

_REASONS = {
    409: ("Conflict", "Operation cannot be fulfilled: the object has been modified; please apply your "
                      "changes to the latest version and try again (injected by the harness)"),
    429: ("TooManyRequests", "the server has received too many requests and has asked us to try again later "
                             "(injected by the harness)"),
    500: ("InternalError", "Internal error occurred: the server was unable to handle the request "
                           "(injected by the harness)"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request "
                                "(injected by the harness)"),
    504: ("Timeout", "the server was unable to return a response in the time allotted "
                     "(injected by the harness)"),
}
_IDS = itertools.count(1)


@dataclass
class Fault:
    status: int
    verbs: frozenset[str] | set[str] | None = None  # None: every verb
    resource: str | None = None  # plural, with "/status" for the subresource; None: every resource
    group: str | None = None
    identity: str | None = None  # the caller (its bearer token); None: everybody
    namespace: str | None = None
    count: int | None = None  # answers to give, then the fault ends
    seconds: float | None = None  # how long it lasts from its injection
    retry_after_seconds: int = 1  # 429 only
    hits: int = 0
    refused: list[tuple[float, Call]] = field(default_factory=list)  # (time.monotonic(), call) of each answer
    id: int = field(default_factory=lambda: next(_IDS))
    _started: float = field(default_factory=time.monotonic, repr=False)

    def is_over(self, now: float) -> bool:
        return (self.count is not None and self.hits >= self.count) or \
            (self.seconds is not None and now - self._started >= self.seconds)

    def matches(self, call: Call) -> bool:
        if call.resource is None:  # discovery and OpenAPI are never refused: clients need them to start
            return False
        return (self.verbs is None or call.verb in self.verbs) and \
            (self.resource is None or call.resource == self.resource) and \
            (self.group is None or call.group == self.group) and \
            (self.identity is None or call.identity == self.identity) and \
            (self.namespace is None or call.namespace == self.namespace)

    def refusal(self) -> Refused:
        reason, message = _REASONS.get(self.status, ("InternalError", "injected by the harness"))
        refused = Refused(self.status, reason, message,
                          {"retryAfterSeconds": self.retry_after_seconds} if self.status == 429 else {})
        if self.status == 429:
            refused.headers = {"Retry-After": str(self.retry_after_seconds)}
        return refused


class Faults:
    def __init__(self) -> None:
        self.active: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        fault._started = time.monotonic()
        self.active.append(fault)
        return fault

    def clear(self) -> None:
        self.active.clear()

    def answer(self, call: Call) -> Refused | None:
        """The refusal for ``call``, when a fault takes it."""
        if not self.active:
            return None
        now = time.monotonic()
        self.active = [f for f in self.active if not f.is_over(now)]
        for fault in self.active:
            if fault.matches(call):
                fault.hits += 1
                fault.refused.append((now, call))
                return fault.refusal()
        return None
