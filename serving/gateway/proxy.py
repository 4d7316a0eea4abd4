"""Forward one request to the revision the split chose, with retry and fallback.

- A connection that fails before the request was sent is retried once on another
  endpoint of the same revision; when the revision has nothing left to try, the
  request goes to another revision (the route's fallback revision first) and the failure
  is counted against the revision that could not serve.
- A failure after sending (the upstream may have acted) is answered 502, a timeout 504.
- A route that names a fallback revision (``Guarded``): when the chosen revision answers
  5xx, ends 502/503/504, or has not answered within the route's deadline (then its call
  is cancelled), the fallback revision answers instead, once; not for a request sent
  with ``x-modelrollout-idempotent: false``. The failure counts against the chosen
  revision (upstream failures, fallbacks), the answer under the fallback revision.

Two ways in, one set of rules (``judge``): ``forward`` is a coroutine; ``begin`` sends on
an idle kept-alive connection at once and hands the outcome to a callback, with no task
or await per request (the gateway's hot path). ``begin`` takes a task only for what is
rare: connecting first, and going on as ``forward`` when the first attempt failed
before sending.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..contract.routes import ModelRoute, Revision
from .balancer import Balancer
from .metrics import GatewayMetrics
from .split import Choice, fallback_for, stand_in
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
    ) -> Forwarding | Guarded | None:
        """``forward`` without a coroutine per request: None when the chosen revision has no
        endpoint to try (nothing was done; call ``forward``, which answers for that).
        Otherwise the request is on its way (at once on an idle kept-alive connection, else
        from a task that connects first) and ``done(outcome)`` will be called once, unless
        the returned object's ``cancel()`` comes first."""
        endpoints = choice.revision.ready_endpoints
        pool = self.balancer.pool(endpoints[0]) if len(endpoints) == 1 else self.balancer.pick(endpoints)
        if pool is None:
            return None
        guard = None
        if route.fallback is not None:  # the only cost of fallbacks to routes without one
            fallback = fallback_for(route, choice.revision, headers)
            if fallback is not None:
                guard = Guarded(self, model, choice.revision, fallback, method, path, headers, body, done)
                done = guard.answered
        forwarding = Forwarding(self, model, route, choice, method, path, headers, body, pool, done,
                                guard is None)
        call = pool.start(method, path, headers, body, self.timeout_seconds, forwarding.answered)
        if call is None:  # no idle connection to this endpoint: connect to it, in a task
            forwarding.connect_first()
        else:
            forwarding.call = call
        if choice.revision is not choice.wanted:  # choice.is_fallback, without the property call
            self._could_not_serve(model, choice.wanted, "no_endpoint")
        if guard is not None:
            guard.watch(forwarding, route.fallback.deadline_ms)
            return guard
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
    ) -> Outcome:
        """The request's outcome, as ``begin`` would give it, from a coroutine."""
        if choice.is_fallback:
            self._could_not_serve(model, choice.wanted, "no_endpoint")
        revision = choice.revision
        fallback = None if route.fallback is None else fallback_for(route, revision, headers)
        if fallback is None:
            return await self.attempt(model, route, revision, method, path, headers, body)
        deadline_ms = route.fallback.deadline_ms
        try:
            async with asyncio.timeout(None if deadline_ms is None else deadline_ms / 1000):
                outcome = await self.attempt(model, None, revision, method, path, headers, body)
        except TimeoutError:  # the deadline: send() turns upstream timeouts into 504 outcomes
            reason = "deadline"
        else:
            if not needs_fallback(outcome):
                return outcome
            reason = _reason(outcome)
        self.replaced(model, revision, reason)
        return await self.send(model, fallback, method, path, headers, body)

    async def attempt(
        self,
        model: str,
        route: ModelRoute | None,
        revision: Revision,
        method: bytes,
        path: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        tried: EndpointPool | None = None,
    ) -> Outcome:
        """``revision``, or, when nothing reached it, the revision that stands in for it on
        ``route`` (None: no stand-in, the 503 outcome is returned). ``tried``: an endpoint of
        ``revision`` that already failed before sending (``begin``'s attempt)."""
        outcome = await self.send(model, revision, method, path, headers, body, tried)
        if route is not None and outcome.response is None and outcome.status == 503:
            other = stand_in(route, revision)
            if other is not None:
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

    def replaced(self, model: str, revision: Revision, reason: str | None) -> None:
        """``revision`` failed a request that its route's fallback revision will answer: count
        it against ``revision``. ``reason`` None: the failure was counted as it happened
        (timeout, broken, connect, no_endpoint)."""
        if reason is not None:
            self.metrics.fail(model, revision.name, revision.role, reason)
        self.metrics.fallbacks.labels(model, revision.name, revision.role).inc()


def needs_fallback(outcome: Outcome) -> bool:
    """A 5xx answer, or an attempt that broke (502), timed out (504) or reached no endpoint
    (503); not the gateway's own 500, which another revision would not cure."""
    if outcome.response is not None:
        return outcome.status >= 500
    return outcome.status in (502, 503, 504)


def _reason(outcome: Outcome) -> str | None:
    """The upstream failure reason still to count for a failed outcome (see ``replaced``)."""
    return "error_status" if outcome.response is not None else None


class Forwarding:
    """A request ``Proxy.begin`` sent: on the wire, or (after a failure before sending)
    continuing as an ``attempt`` task."""

    __slots__ = ("_proxy", "_model", "_route", "_choice", "_method", "_path", "_headers", "_body",
                 "_pool", "_done", "call", "_task")

    def __init__(self, proxy: Proxy, model: str, route: ModelRoute, choice: Choice, method: bytes,
                 path: bytes, headers: list[tuple[bytes, bytes]], body: bytes, pool: EndpointPool,
                 done: Callable[[Outcome], None], reroute: bool = True) -> None:
        """``reroute``: False under a Guarded, which sends a request nothing reached to its
        route's fallback revision itself."""
        self._proxy = proxy
        self._model = model
        self._route = route if reroute else None  # None: attempt() has no stand-in to use
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
        # Not sent (a kept-alive connection the server had closed): on as attempt() would go.
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
        outcome = await _or_internal_error(
            self._proxy.attempt(self._model, self._route, self._choice.revision, self._method, self._path,
                                self._headers, self._body, tried=self._pool),
            self._choice.revision, "forwarding failed")
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


class Guarded:
    """A request whose route names a fallback revision: the attempt on the chosen revision
    (its Forwarding), then, when that fails or the deadline passes first, one attempt on
    the fallback revision, from a task (failures are the rare path). The deadline is one
    ``call_later`` timer, armed only for routes that set ``deadlineMs``."""

    __slots__ = ("_proxy", "_model", "_revision", "_fallback", "_method", "_path", "_headers", "_body",
                 "_done", "_primary", "_timer", "_task")

    def __init__(self, proxy: Proxy, model: str, revision: Revision, fallback: Revision, method: bytes,
                 path: bytes, headers: list[tuple[bytes, bytes]], body: bytes,
                 done: Callable[[Outcome], None]) -> None:
        self._proxy = proxy
        self._model = model
        self._revision = revision  # the chosen one
        self._fallback = fallback
        self._method = method
        self._path = path
        self._headers = headers
        self._body = body
        self._done = done
        self._primary: Forwarding | None = None  # while the chosen revision has the request
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task | None = None  # the fallback's attempt

    def watch(self, primary: Forwarding, deadline_ms: int | None) -> None:
        self._primary = primary
        if deadline_ms is not None:
            self._timer = asyncio.get_running_loop().call_later(deadline_ms / 1000, self._deadline_passed)

    def answered(self, outcome: Outcome) -> None:
        """The chosen revision's outcome (the Forwarding's ``done``)."""
        self._primary = None
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        if needs_fallback(outcome):
            self._fall_back(_reason(outcome))
        else:
            self._done(outcome)

    def _deadline_passed(self) -> None:
        self._timer = None
        primary, self._primary = self._primary, None
        if primary is not None:
            primary.cancel()  # its connection is closed: a late answer must not be read as another's
            self._fall_back("deadline")

    def _fall_back(self, reason: str | None) -> None:
        self._proxy.replaced(self._model, self._revision, reason)
        self._task = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        outcome = await _or_internal_error(
            self._proxy.send(self._model, self._fallback, self._method, self._path, self._headers,
                             self._body),
            self._fallback, "forwarding to the fallback revision failed")
        self._task = None
        self._done(outcome)

    def cancel(self) -> None:
        """The client left: drop the timer and whichever attempt is under way."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        primary, self._primary = self._primary, None
        if primary is not None:
            primary.cancel()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()


async def _or_internal_error(attempt: Awaitable[Outcome], revision: Revision, what: str) -> Outcome:
    """``attempt``'s outcome; the gateway's own 500 (logged as ``what``) if it raised."""
    try:
        return await attempt
    except Exception:
        log.exception(what)
        return _internal_error(revision)


def _internal_error(revision: Revision) -> Outcome:
    return Outcome(revision, None, 500, "internal error in the gateway")
