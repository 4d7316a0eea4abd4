"""Forward one request to the revision the split chose, with retry and fallback.

- A connection that fails before the request was sent is retried once on another
  endpoint of the same revision; when the revision has nothing left to try, the
  request goes to another served revision (fallback) and the failure is counted
  against the revision that could not serve.
- A failure after sending (the upstream may have acted) is answered 502, a timeout 504.

Two ways in, one set of rules (``judge``): ``forward`` is a coroutine; ``begin`` sends on
an idle kept-alive connection at once and hands the outcome to a callback, with no task
or await per request (the gateway's hot path). ``begin`` takes a task only for what is
rare: connecting first, and going on as ``forward`` when the first attempt failed
before sending.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from ..contract.routes import ModelRoute, Revision
from .balancer import Balancer
from .metrics import GatewayMetrics
from .split import Choice
from .upstream import EndpointPool, UpstreamError, UpstreamResponse

log = logging.getLogger("modelrollout.gateway")


@dataclass(slots=True)
class Outcome:
    revision: Revision  # the revision that answered (or failed to)
    response: UpstreamResponse | None  # None: status/message say what went wrong
    status: int = 200
    message: str = ""
    pool: EndpointPool | None = None  # the endpoint that answered (feedback goes back to it)


class Proxy:
    def __init__(self, balancer: Balancer, metrics: GatewayMetrics, timeout_seconds: float) -> None:
        self.balancer = balancer
        self.metrics = metrics
        self.timeout_seconds = timeout_seconds

    def begin(
        self,
        model: str,
        route: ModelRoute,
        choice: Choice,
        method: bytes,
        path: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        done: Callable[[Outcome], None],
    ) -> Forwarding | None:
        """``forward`` without a coroutine per request: None when the chosen revision has no
        endpoint to try (nothing was done; call ``forward``, which answers for that).
        Otherwise the request is on its way (at once on an idle kept-alive connection, else
        from a task that connects first) and ``done(outcome)`` will be called once, unless
        the returned Forwarding's ``cancel()`` comes first."""
        endpoints = choice.revision.ready_endpoints
        pool = self.balancer.pool(endpoints[0]) if len(endpoints) == 1 else self.balancer.pick(endpoints)
        if pool is None:
            return None
        forwarding = Forwarding(self, model, route, choice, method, path, headers, body, pool, done)
        call = pool.start(method, path, headers, body, self.timeout_seconds, forwarding.answered)
        if call is None:  # no idle connection to this endpoint: connect to it, in a task
            forwarding.connect_first()
        else:
            forwarding.call = call
        if choice.revision is not choice.wanted:  # choice.is_fallback, without the property call
            self._could_not_serve(model, choice.wanted, "no_endpoint")
        return forwarding

    async def forward(
        self,
        model: str,
        route: ModelRoute,
        choice: Choice,
        method: bytes,
        path: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        tried: EndpointPool | None = None,
    ) -> Outcome:
        """``tried``: an endpoint of the chosen revision that already failed before sending
        (``begin``'s attempt); the choice was counted then."""
        if tried is None and choice.is_fallback:
            self._could_not_serve(model, choice.wanted, "no_endpoint")
        revision = choice.revision
        outcome = await self.send(model, revision, method, path, headers, body, tried)
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
        tried: EndpointPool | None = None,
    ) -> Outcome:
        """One revision, at most two endpoints (``tried`` counts as one). 503 Outcome: the
        request was never sent."""
        for _ in range(2 if tried is None else 1):
            pool = self.balancer.pick(revision.ready_endpoints, exclude=tried)
            if pool is None:
                break
            tried = pool
            try:
                response = await pool.request(method, path, headers, body, self.timeout_seconds)
            except (UpstreamError, TimeoutError) as exc:
                outcome = self.judge(model, revision, pool, None, exc)
            else:
                outcome = self.judge(model, revision, pool, response, None)
            if outcome is not None:
                return outcome
        return self._unreachable(model, revision, tried)

    def judge(self, model: str, revision: Revision, pool: EndpointPool, response: UpstreamResponse | None,
              error: BaseException | None) -> Outcome | None:
        """The outcome of one attempt on ``pool``; None when it failed before sending (try on)."""
        if error is None:
            self.balancer.succeeded(pool)
            return Outcome(revision, response, response.status, "", pool)
        self._endpoint_failed(model, revision, pool)
        if isinstance(error, TimeoutError):
            self.metrics.fail(model, revision.name, revision.role, "timeout")
            return Outcome(
                revision, None, 504,
                f"revision '{revision.name}' did not answer within {self.timeout_seconds:g} s",
            )
        if not isinstance(error, UpstreamError):
            raise error
        if error.sent:
            self.metrics.fail(model, revision.name, revision.role, "broken")
            return Outcome(revision, None, 502, f"revision '{revision.name}' failed: {error}")
        self.metrics.fail(model, revision.name, revision.role, "connect")
        return None

    def _unreachable(self, model: str, revision: Revision, tried: EndpointPool | None) -> Outcome:
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


class Forwarding:
    """A request ``Proxy.begin`` sent: on the wire, or (after a failure before sending)
    continuing as a ``forward`` task."""

    __slots__ = ("_proxy", "_model", "_route", "_choice", "_method", "_path", "_headers", "_body",
                 "_pool", "_done", "call", "_task")

    def __init__(self, proxy: Proxy, model: str, route: ModelRoute, choice: Choice, method: bytes,
                 path: bytes, headers: list[tuple[bytes, bytes]], body: bytes, pool: EndpointPool,
                 done: Callable[[Outcome], None]) -> None:
        self._proxy = proxy
        self._model = model
        self._route = route
        self._choice = choice
        self._method = method
        self._path = path
        self._headers = headers
        self._body = body
        self._pool = pool
        self._done = done
        self.call = None  # the upstream connection the request is on
        self._task: asyncio.Task | None = None

    def answered(self, response: UpstreamResponse | None, error: BaseException | None) -> None:
        self.call = None
        if error is None:  # the common case, as judge() has it
            self._proxy.balancer.succeeded(self._pool)
            self._done(Outcome(self._choice.revision, response, response.status, "", self._pool))
            return
        try:
            outcome = self._proxy.judge(self._model, self._choice.revision, self._pool, response, error)
        except Exception:
            log.exception("judging an upstream answer failed")
            outcome = _internal_error(self._choice.revision)
        if outcome is not None:
            self._done(outcome)
            return
        # Not sent (a kept-alive connection the server had closed): on as forward() would go.
        self._task = asyncio.get_running_loop().create_task(self._continue())

    def connect_first(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._first())

    async def _first(self) -> None:
        """The first attempt when it has to connect (the same endpoint the balancer chose)."""
        proxy = self._proxy
        try:
            response = await self._pool.request(self._method, self._path, self._headers, self._body,
                                                proxy.timeout_seconds)
        except (UpstreamError, TimeoutError) as exc:
            self._task = None
            self.answered(None, exc)
        except Exception:
            log.exception("forwarding failed")
            self._task = None
            self._done(_internal_error(self._choice.revision))
        else:
            self._task = None
            self.answered(response, None)

    async def _continue(self) -> None:
        try:
            outcome = await self._proxy.forward(self._model, self._route, self._choice, self._method,
                                                self._path, self._headers, self._body, tried=self._pool)
        except Exception:
            log.exception("forwarding failed")
            outcome = _internal_error(self._choice.revision)
        self._task = None
        self._done(outcome)

    def cancel(self) -> None:
        """The client left: drop the upstream call (its connection closes) or the task."""
        call, self.call = self.call, None
        if call is not None:
            call.cancel()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()


def _internal_error(revision: Revision) -> Outcome:
    return Outcome(revision, None, 500, "internal error in the gateway")
