"""A client-side rate limit on API calls, with urgent calls served first.

A token bucket, as client-go's (``QPS`` and ``Burst``): ``burst`` calls at once, then
``qps`` a second. The API server's Priority and Fairness throttles a chatty client; this
keeps the operator from being one, and decides itself what goes first when it must wait:
a call made while ``URGENT`` is set (an abort, a rollback: traffic moving back to a model
known to work) takes the next token before every ordinary call already waiting.

    limiter = RateLimiter(qps=50, burst=100)
    limiter.acquire()            # blocks the calling thread until a token is free
    with urgent():               # in this context (and threads started from it by
        ...                      # asyncio.to_thread, which copies the context)

Thread-safe: the API client's calls run in worker threads.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Callable, Iterator

URGENT: contextvars.ContextVar[bool] = contextvars.ContextVar("modelrollout_urgent_api_call", default=False)


@contextlib.contextmanager
def urgent() -> Iterator[None]:
    """API calls made in this context go before ordinary ones waiting for the rate limit."""
    token = URGENT.set(True)
    try:
        yield
    finally:
        URGENT.reset(token)


class RateLimiter:
    def __init__(self, qps: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError(f"a rate limit needs qps > 0 and burst >= 1 (got {qps}, {burst})")
        self.qps, self.burst = float(qps), int(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()
        self._urgent_waiting = 0
        self._changed = threading.Condition()

    def acquire(self, is_urgent: bool | None = None) -> float:
        """Take a token, waiting for one as long as needed; seconds waited. ``is_urgent``
        defaults to the caller's context (``urgent()``)."""
        if is_urgent is None:
            is_urgent = URGENT.get()
        started = self._clock()
        with self._changed:
            if is_urgent:
                self._urgent_waiting += 1
            try:
                while True:
                    self._refill()
                    if self._tokens >= 1 and (is_urgent or not self._urgent_waiting):
                        self._tokens -= 1
                        break
                    shortfall = max(1 - self._tokens, 0.0) / self.qps
                    self._changed.wait(timeout=max(shortfall, 0.001))
            finally:
                if is_urgent:
                    self._urgent_waiting -= 1
                self._changed.notify_all()
        return self._clock() - started

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.qps)
        self._at = now
