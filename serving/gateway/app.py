"""The gateway's ASGI app: the proxy hot path, health, metrics.

Per request: read the route table once, choose a revision (split.py), forward
(proxy.py), answer, and hand a copy to the mirror when the route asks for one. The
route sources (a file, the Kubernetes API) run as tasks of the app's lifespan.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from http.cookies import CookieError, SimpleCookie
from importlib.metadata import version as package_version
from typing import Protocol

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..contract.routes import REVISION_HEADER, RouteTable
from ..hosting import BodyTooLarge, ClientGone, is_sane_request_id, read_body
from .balancer import Balancer
from .metrics import GatewayMetrics
from .mirror import Mirror
from .proxy import Proxy
from .settings import GatewaySettings
from .split import choose
from .state import RouteState

log = logging.getLogger("modelrollout.gateway")

_PREFIX = "/v2/models/"
# Hop-by-hop headers (RFC 9110 7.6.1) and the ones the gateway sets itself.
_NOT_FORWARDED = {
    b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"te", b"trailer",
    b"upgrade", b"host", b"content-length", b"x-request-id",
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
    def __init__(self, settings: GatewaySettings, sources: list[RouteSource]) -> None:
        self.settings = settings
        self.metrics = GatewayMetrics()
        self.balancer = Balancer(
            settings.load_balancing, settings.eject_after_failures, settings.ejection_seconds
        )
        self.routes = RouteState(self.balancer, self.metrics)
        self.proxy = Proxy(self.balancer, self.metrics, settings.upstream_timeout_seconds)
        self.mirror = Mirror(
            self.proxy, self.metrics, settings.mirror_queue_size, settings.mirror_concurrency,
            settings.shadow_atol, settings.shadow_rtol,
        )
        self._sources = sources
        self._tasks: list[asyncio.Task] = []
        self.draining = False

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            if path.startswith(_PREFIX):
                return await self._proxy(scope, receive, send, path)
            return await self._local(scope, send, path)
        if kind == "lifespan":
            return await self._lifespan(receive, send)

    async def _proxy(self, scope, receive, send, path: str) -> None:
        started = time.perf_counter()
        model = path[len(_PREFIX):].split("/", 1)[0]
        route = self.routes.table.models.get(model)  # one read: updates never split a request
        # Header names and values are decoded only when the route's rules read them.
        wants_headers = route is not None and bool(route.match or route.sticky)
        headers: dict[str, str] = {}
        forwarded: list[tuple[bytes, bytes]] = []
        given_id = content_length = None
        for name, value in scope["headers"]:
            if name not in _NOT_FORWARDED:
                forwarded.append((name, value))
            elif name == b"x-request-id":
                given_id = value.decode("latin-1")
            elif name == b"content-length":
                content_length = value.decode("latin-1")
            if wants_headers:
                headers[name.decode("latin-1")] = value.decode("latin-1")
        request_id = given_id if is_sane_request_id(given_id) else _new_request_id()
        if route is None:
            return await _answer(send, 404, _error(f"unknown model '{model}'"), request_id)
        try:
            body = await read_body(receive, content_length, self.settings.max_body_bytes)
        except BodyTooLarge as exc:
            return await _answer(send, 413, _error(str(exc)), request_id)
        except ClientGone:
            return
        forwarded.append((b"x-request-id", request_id.encode()))
        choice = choose(route, headers, _cookies(headers) if route.sticky and route.sticky.cookie else None)
        raw_path = scope.get("raw_path") or path.encode()
        if scope.get("query_string"):
            raw_path += b"?" + scope["query_string"]
        method = scope["method"].encode()
        outcome = await self.proxy.forward(model, route, choice, method, raw_path, forwarded, body)
        revision = outcome.revision
        if outcome.response is None:
            await _answer(send, outcome.status, _error(outcome.message), request_id, revision.name)
        else:
            response = outcome.response
            out_headers = [(k, v) for k, v in response.headers if k not in _NOT_RETURNED]
            await _answer(send, response.status, response.body, request_id, revision.name, out_headers)
            if route.mirror is not None and method == b"POST":
                self.mirror.offer(model, route, raw_path, forwarded, body, outcome)
        self.metrics.count(model, revision.name, revision.role, outcome.status, time.perf_counter() - started)

    async def _local(self, scope, send, path: str) -> None:
        request_id = _new_request_id()
        if path == "/v2/health/live":
            return await _answer(send, 200, b'{"live":true}', request_id)
        if path == "/v2/health/ready":
            if self.routes.is_loaded and not self.draining:
                return await _answer(send, 200, b'{"ready":true}', request_id)
            reason = "shutting down" if self.draining else "no route table loaded yet"
            return await _answer(send, 503, orjson.dumps({"ready": False, "error": reason}), request_id)
        if path == "/metrics":
            body = generate_latest(self.metrics.registry)
            return await _answer(send, 200, body, request_id,
                                 headers=[(b"content-type", CONTENT_TYPE_LATEST.encode())])
        if path == "/v2":
            doc = {"name": "modelrollout-gateway", "version": package_version("modelrollout"),
                   "extensions": [], "models": sorted(self.routes.table.models)}
            return await _answer(send, 200, orjson.dumps(doc), request_id)
        await _answer(send, 404, _error(f"no route for {path}"), request_id)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:  # noqa: BLE001 - reported to uvicorn, which exits
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

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


async def _answer(
    send,
    status: int,
    body: bytes,
    request_id: str,
    revision: str | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    out = headers if headers is not None else [_JSON]
    out.append((b"content-length", str(len(body)).encode()))
    out.append((b"x-request-id", request_id.encode()))
    if revision is not None:
        out.append((b"x-modelrollout-revision", revision.encode()))
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body})


# Request ids: a random prefix per process and a counter, 32 hex digits like a uuid4's
# hex, without a system call per request.
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count()


def _new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


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
