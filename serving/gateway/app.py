"""The gateway's request handler: the proxy hot path, health, metrics.

Per request: read the route table once, choose a revision (split.py), forward
(proxy.py), answer, and hand a copy to the mirror when the route asks for one. The
request arrives whole from the HTTP front end (frontend.py), which also enforces the body
limit; the route sources (a file, the Kubernetes API) run as tasks from start() to stop().
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import time
from collections.abc import Callable
from http.cookies import CookieError, SimpleCookie
from importlib.metadata import version as package_version
from typing import Protocol
from urllib.parse import unquote

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..contract.feedback import SUFFIX as FEEDBACK_SUFFIX
from ..contract.routes import REVISION_HEADER, ModelRoute, RouteTable
from ..hosting import is_sane_request_id
from .answers import AnsweredBy
from .balancer import Balancer
from .feedback import FeedbackRouter
from .frontend import Headers, Pending, Response
from .metrics import AnsweredIdsCollector, GatewayMetrics
from .mirror import Mirror
from .proxy import Outcome, Proxy
from .settings import GatewaySettings
from .split import Choice, choose
from .state import RouteState

log = logging.getLogger("modelrollout.gateway")

_PREFIX = b"/v2/models/"
_PREFIX_LENGTH = len(_PREFIX)
_FEEDBACK = FEEDBACK_SUFFIX.encode()
# Hop-by-hop headers (RFC 9110 7.6.1) and the ones the gateway sets itself.
_NOT_FORWARDED = {
    b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"te", b"trailer",
    b"upgrade", b"host", b"content-length", b"x-request-id", b"expect",
}
_NOT_RETURNED = {
    b"connection", b"keep-alive", b"transfer-encoding", b"trailer", b"upgrade", b"content-length",
    b"date", b"server", b"x-request-id", REVISION_HEADER.encode(),
}
_JSON = (b"content-type", b"application/json")


class RouteSource(Protocol):
    """Where route tables come from: route_file.RouteFile, watch.KubernetesRoutes."""

    name: str

    async def load(self) -> RouteTable:
        """The first table; raising here fails the gateway's start-up."""

    async def follow(self, state: RouteState) -> None:
        """Apply every later change to ``state`` until cancelled."""


class GatewayApp:
    """A frontend.Handler."""

    def __init__(self, settings: GatewaySettings, sources: list[RouteSource]) -> None:
        self.settings = settings
        self.metrics = GatewayMetrics()
        self.balancer = Balancer(
            settings.load_balancing, settings.eject_after_failures, settings.ejection_seconds
        )
        self.routes = RouteState(self.balancer, self.metrics)
        self.proxy = Proxy(self.balancer, self.metrics, settings.upstream_timeout_seconds)
        # Request id -> the endpoint that answered it (and the shadow's), for feedback.
        self.answers = None
        if settings.feedback_ids > 0:
            self.answers = AnsweredBy(settings.feedback_ids, settings.feedback_ttl_seconds)
            self.metrics.registry.register(AnsweredIdsCollector(self.answers))
        self.feedback = FeedbackRouter(self.balancer, self.answers, self.metrics,
                                       settings.upstream_timeout_seconds)
        self.mirror = Mirror(
            self.proxy, self.metrics, settings.mirror_queue_size, settings.mirror_concurrency,
            settings.shadow_atol, settings.shadow_rtol, self.answers,
        )
        self._sources = sources
        self._tasks: list[asyncio.Task] = []
        self.draining = False
        self._plans: dict[bytes, tuple[str, ModelRoute | None, Choice | None]] = {}
        self._planned_table: RouteTable | None = None

    def begin(self, method: bytes, path: bytes, query: bytes, headers: Headers, body: bytes,
              reply: Callable[[Response], None]) -> Response | Pending:
        """What the front end calls per request (frontend.Handler.begin): the proxy path is
        this method's body, the rest is ``_local``. (One call less per request matters here:
        at concurrency 1 every Python call on the path costs about a microsecond.)"""
        if not path.startswith(_PREFIX):
            return self._local(path)
        if path.endswith(_FEEDBACK) and method == b"POST":
            return self._feedback(path, headers, body, reply)
        started = time.perf_counter()
        raw_model = path[_PREFIX_LENGTH:]
        slash = raw_model.find(b"/")
        if slash >= 0:
            raw_model = raw_model[:slash]
        plan = self._plans.get(raw_model) if self.routes.table is self._planned_table else None
        model, route, choice = plan or self._plan(raw_model)
        # Header names and values are decoded only when the route's rules read them.
        wants_headers = route is not None and choice is None and bool(route.match or route.sticky)
        decoded: dict[str, str] = {}
        forwarded: Headers = []
        given_id = None
        for name, value in headers:
            if name not in _NOT_FORWARDED:
                forwarded.append((name, value))
            elif name == b"x-request-id":
                given_id = value
            if wants_headers:
                decoded[name.decode("latin-1")] = value.decode("latin-1")
        if given_id is None or not is_sane_request_id(given_id.decode("latin-1")):
            request_id = b"%s%016x" % (_ID_PREFIX, next(_ID_COUNTER))  # _new_request_id()
        else:
            request_id = given_id
        if route is None:
            return _response(404, _error(f"unknown model '{model}'"), request_id)
        forwarded.append((b"x-request-id", request_id))
        if choice is None:
            cookies = _cookies(decoded) if route.sticky and route.sticky.cookie else None
            choice = choose(route, decoded, cookies)
        target = path + b"?" + query if query else path
        answers = self.answers

        def done(outcome: Outcome) -> None:  # the upstream's answer, or why there is none
            revision = outcome.revision
            upstream = outcome.response
            try:
                if upstream is None:
                    response = _response(outcome.status, _error(outcome.message), request_id, revision.name)
                else:
                    out = [(k, v) for k, v in upstream.headers if k not in _NOT_RETURNED]
                    out.append((b"x-request-id", request_id))
                    out.append(_revision_header(revision.name))
                    response = Response(upstream.status, out, upstream.body)  # as _response() would
            except Exception:
                log.exception("answering failed", extra={"model": model})
                response = _response(500, _error("internal error in the gateway"), request_id)

            def after() -> None:  # once the answer is on its way to the client
                seconds = time.perf_counter() - started
                pool = outcome.pool
                if answers is not None and pool is not None and outcome.status < 300 and method == b"POST":
                    answers.record(request_id, model, revision.name, pool.host, pool.port, started)
                if route.mirror is not None and method == b"POST":
                    self.mirror.offer(model, route, target, forwarded, body, outcome, seconds)
                self.metrics.count(model, revision.name, revision.role, outcome.status, seconds)

            response.after = after
            reply(response)

        # On an idle kept-alive connection the request goes out now, and done() runs from the
        # upstream connection's callback: no task, future or await per request.
        forwarding = self.proxy.begin(model, route, choice, method, target, forwarded, body, done)
        if forwarding is not None:
            return forwarding
        # No endpoint to try: forward() answers for it (fallback, or 503).
        return asyncio.get_running_loop().create_task(
            self._forward(model, route, choice, method, target, forwarded, body, done))

    async def handle(self, method: bytes, path: bytes, query: bytes, headers: Headers,
                     body: bytes) -> Response:
        """``begin`` as a coroutine (tools and tests that want one answer)."""
        future = asyncio.get_running_loop().create_future()
        started = self.begin(method, path, query, headers, body, future.set_result)
        if isinstance(started, Response):
            return started
        try:
            return await future
        except asyncio.CancelledError:
            started.cancel()
            raise

    def _feedback(self, path: bytes, headers: Headers, body: bytes,
                  reply: Callable[[Response], None]) -> Response | Pending:
        """POST .../feedback: to the process that made each prediction (feedback.py)."""
        given = next((v for k, v in headers if k == b"x-request-id"), None)
        request_id = given if given is not None and is_sane_request_id(given.decode("latin-1")) \
            else _new_request_id()
        raw_model = path[_PREFIX_LENGTH : -len(_FEEDBACK)]
        slash = raw_model.find(b"/")  # .../versions/{v}/feedback
        model = _text(raw_model if slash < 0 else raw_model[:slash])
        route = self.routes.table.models.get(model)
        if route is None:
            return _response(404, _error(f"unknown model '{model}'"), request_id)
        if self.answers is not None:
            self.answers.expire(time.perf_counter())

        async def answer() -> None:
            try:
                status, doc = await self.feedback.handle(model, route, headers, body, request_id,
                                                         time.perf_counter())
                response = _response(status, orjson.dumps(doc), request_id)
            except Exception:
                log.exception("feedback failed", extra={"model": model})
                response = _response(500, _error("internal error in the gateway"), request_id)
            reply(response)

        return asyncio.get_running_loop().create_task(answer())

    def error_response(self, status: int, message: str, headers: Headers) -> Response:
        """The front end's own refusals (malformed request, body over the limit, ...)."""
        given = next((v.decode("latin-1") for k, v in headers if k == b"x-request-id"), None)
        request_id = given.encode("latin-1") if is_sane_request_id(given) else _new_request_id()
        return _response(status, _error(message), request_id)

    def _plan(self, raw_model: bytes) -> tuple[str, ModelRoute | None, Choice | None]:
        """The model named in the path, its route, and the choice when it cannot depend on the
        request (no rules, one served revision); cached per route table (``begin`` reads the
        cache itself)."""
        table = self.routes.table  # one read: updates never split a request
        if table is not self._planned_table:
            self._plans, self._planned_table = {}, table
        model = _text(raw_model)
        route = table.models.get(model)
        fixed = None
        if route is not None and not route.match and not route.sticky and len(route.served) == 1:
            fixed = choose(route, {})
        plan = (model, route, fixed)
        if route is not None and b"%" not in raw_model:  # bounded: one entry per model of the table
            self._plans[raw_model] = plan
        return plan

    async def _forward(self, model: str, route, choice, method: bytes, target: bytes, forwarded: Headers,
                       body: bytes, done: Callable[[Outcome], None]) -> None:
        try:
            outcome = await self.proxy.forward(model, route, choice, method, target, forwarded, body)
        except Exception:
            log.exception("forwarding failed", extra={"model": model})
            outcome = Outcome(choice.revision, None, 500, "internal error in the gateway")
        done(outcome)

    def _local(self, path: bytes) -> Response:
        request_id = _new_request_id()
        if path == b"/v2/health/live":
            return _response(200, b'{"live":true}', request_id)
        if path == b"/v2/health/ready":
            if self.routes.is_loaded and not self.draining:
                return _response(200, b'{"ready":true}', request_id)
            reason = "shutting down" if self.draining else "no route table loaded yet"
            return _response(503, orjson.dumps({"ready": False, "error": reason}), request_id)
        if path == b"/metrics":
            body = generate_latest(self.metrics.registry)
            return _response(200, body, request_id, headers=[(b"content-type", CONTENT_TYPE_LATEST.encode())])
        if path == b"/v2":
            doc = {"name": "modelrollout-gateway", "version": package_version("modelrollout"),
                   "extensions": [], "models": sorted(self.routes.table.models)}
            return _response(200, orjson.dumps(doc), request_id)
        return _response(404, _error(f"no route for {_text(path)}"), request_id)

    async def start(self) -> None:
        for source in self._sources:
            self.routes.update(await source.load(), source.name)
            self._tasks.append(asyncio.create_task(source.follow(self.routes), name=source.name))
        self.mirror.start()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.mirror.close()
        self.balancer.close()


def _response(
    status: int,
    body: bytes,
    request_id: bytes,
    revision: str | None = None,
    headers: Headers | None = None,
) -> Response:
    """The front end adds content-length, date and connection."""
    out = headers if headers is not None else [_JSON]
    out.append((b"x-request-id", request_id))
    if revision is not None:
        out.append(_revision_header(revision))
    return Response(status, out, body)


@functools.lru_cache(maxsize=1024)
def _revision_header(revision: str) -> tuple[bytes, bytes]:
    return REVISION_HEADER.encode(), revision.encode()


def _text(raw: bytes) -> str:
    """A path (segment) as sent, percent-decoded."""
    text = raw.decode("latin-1")
    return unquote(text) if "%" in text else text


# Request ids: a random prefix per process and a counter, 32 hex digits like a uuid4's
# hex, without a system call per request.
_ID_PREFIX = os.urandom(8).hex().encode()
_ID_COUNTER = itertools.count()


def _new_request_id() -> bytes:
    return b"%s%016x" % (_ID_PREFIX, next(_ID_COUNTER))


def _error(message: str) -> bytes:
    return orjson.dumps({"error": message})


def _cookies(headers: dict[str, str]) -> dict[str, str]:
    raw = headers.get("cookie")
    if not raw:
        return {}
    try:
        jar = SimpleCookie(raw)
    except CookieError:
        return {}
    return {key: morsel.value for key, morsel in jar.items()}
