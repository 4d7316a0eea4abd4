"""Forward one request to the revision the split chose, with retry and fallback.

- A connection that fails before the request was sent is retried once on another
  endpoint of the same revision; when the revision has nothing left to try, the
  request goes to another served revision (fallback) and the failure is counted
  against the revision that could not serve.
- A failure after sending (the upstream may have acted) is answered 502, a timeout 504.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..contract.routes import ModelRoute, Revision
from .balancer import Balancer
from .metrics import GatewayMetrics
from .split import Choice
from .upstream import EndpointPool, UpstreamError, UpstreamResponse


@dataclass(slots=True)
class Outcome:
    revision: Revision  # the revision that answered (or failed to)
    response: UpstreamResponse | None  # None: status/message say what went wrong
    status: int = 200
    message: str = ""
    seconds: float = 0.0  # time spent on the upstream call that answered


class Proxy:
    def __init__(self, balancer: Balancer, metrics: GatewayMetrics, timeout_seconds: float) -> None:
        self.balancer = balancer
        self.metrics = metrics
        self.timeout_seconds = timeout_seconds

    async def forward(
        self,
        model: str,
        route: ModelRoute,
        choice: Choice,
        method: bytes,
        path: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> Outcome:
        if choice.is_fallback:
            self._could_not_serve(model, choice.wanted, "no_endpoint")
        revision = choice.revision
        outcome = await self.send(model, revision, method, path, headers, body)
        if outcome.response is None and outcome.status == 503:
            # Nothing reached this revision: another served revision takes the request.
            for other in route.revisions:
                if other is revision or other.role == "shadow" or not other.ready_endpoints:
                    continue
                self.metrics.fallbacks.labels(model, revision.name, revision.role).inc()
                return await self.send(model, other, method, path, headers, body)
        return outcome

    async def send(
        self,
        model: str,
        revision: Revision,
        method: bytes,
        path: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> Outcome:
        """One revision, at most two endpoints. 503 Outcome: the request was never sent."""
        tried: EndpointPool | None = None
        for _ in range(2):
            pool = self.balancer.pick(revision.ready_endpoints, exclude=tried)
            if pool is None:
                break
            tried = pool
            started = time.perf_counter()
            try:
                response = await pool.request(method, path, headers, body, self.timeout_seconds)
            except UpstreamError as exc:
                self._endpoint_failed(model, revision, pool)
                if exc.sent:
                    self.metrics.fail(model, revision.name, revision.role, "broken")
                    return Outcome(revision, None, 502, f"revision '{revision.name}' failed: {exc}")
                self.metrics.fail(model, revision.name, revision.role, "connect")
                continue
            except TimeoutError:
                self._endpoint_failed(model, revision, pool)
                self.metrics.fail(model, revision.name, revision.role, "timeout")
                return Outcome(
                    revision, None, 504,
                    f"revision '{revision.name}' did not answer within {self.timeout_seconds:g} s",
                )
            self.balancer.succeeded(pool)
            return Outcome(revision, response, response.status, seconds=time.perf_counter() - started)
        if tried is None:
            self.metrics.fail(model, revision.name, revision.role, "no_endpoint")
        message = f"revision '{revision.name}' of model '{model}' has no reachable endpoint"
        return Outcome(revision, None, 503, message)

    def _endpoint_failed(self, model: str, revision: Revision, pool: EndpointPool) -> None:
        if self.balancer.failed(pool):
            self.metrics.ejections.labels(model, revision.name).inc()

    def _could_not_serve(self, model: str, revision: Revision, reason: str) -> None:
        self.metrics.fail(model, revision.name, revision.role, reason)
        self.metrics.fallbacks.labels(model, revision.name, revision.role).inc()
