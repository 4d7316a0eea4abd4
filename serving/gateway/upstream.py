"""Keep-alive HTTP/1.1 connections to upstream model servers, built for the proxy's hot path.

A proxied request costs one write and one parse here: httptools (the parser uvicorn
uses) reads the response, and nothing else sits between the socket and the gateway.
General-purpose clients (httpx, aiohttp) spend several times the CPU per request on
features a proxy to our own servers on a cluster network does not use (redirects,
cookies, auth, proxies, TLS, decompression).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import httptools

log = logging.getLogger("modelrollout.gateway")

# Timers fire up to a millisecond early (libuv counts milliseconds): a deadline that close
# counts as reached, so a sweep never re-arms itself for a fraction of a millisecond.
_TIMER_SLACK_SECONDS = 0.001


class UpstreamError(Exception):
    """The upstream could not give an answer. ``sent`` is False when the request surely did
    not reach it (connection refused), or when a kept-alive connection turned out to be
    closed before any answer (the race with the server's idle timeout): a retry is safe."""

    def __init__(self, message: str, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: list[tuple[bytes, bytes]]  # lower-case names
    body: bytes


# What a request's sender is told, once: (the answer, None) or (None, the error).
Answered = Callable[[UpstreamResponse | None, BaseException | None], None]


class _Connection(asyncio.Protocol):
    """One connection, one request at a time.

    ``send`` hands the answer to a callback rather than to a future: the gateway's fast
    path (app.py, proxy.py) answers its client from that callback, with no task and no
    await per request. ``EndpointPool.request`` wraps the same call in a future.
    """

    def __init__(self, pool: EndpointPool) -> None:
        self.transport: asyncio.Transport | None = None
        self.is_open = False
        self._pool = pool
        self._parser = httptools.HttpResponseParser(self)
        self._done: Answered | None = None
        self._answer: UpstreamResponse | None = None
        self.deadline = 0.0  # of the request in flight (loop time), see EndpointPool._sweep
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._got_bytes = False
        self.reused = False  # taken from the idle pool rather than freshly connected
        self.idle_since = 0.0

    # asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.is_open = True

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.close()
            self._finish(None, UpstreamError(f"bad response from upstream: {exc}", sent=True))
            return
        answer = self._answer
        if answer is not None:  # delivered here, not inside the parser's callback
            self._answer = None
            self._finish(answer, None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.is_open = False
        self._finish(None, UpstreamError(
            f"upstream closed the connection{': ' + str(exc) if exc else ''}",
            sent=self._got_bytes or not self.reused,
        ))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if not self._parser.should_keep_alive():
            self.close()
        if self._done is not None:
            body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
            self._answer = UpstreamResponse(self._parser.get_status_code(), self._headers, body)

    # ours
    def send(self, data: bytes, timeout_seconds: float, done: Answered) -> None:
        """Write one request; ``done(response, None)`` with the answer, or ``done(None, error)``
        (UpstreamError, or TimeoutError after ``timeout_seconds``), once, unless cancel()
        comes first.

        The deadline is kept by the pool (``EndpointPool._sweep``), not by a timer per request.
        """
        self._done = done
        self._headers, self._body, self._got_bytes = [], [], False
        self._pool.watch(self, timeout_seconds)
        self.transport.write(data)

    def cancel(self) -> None:
        """Give up on the request in flight (its client left): ``done`` is not called, and the
        connection is closed, since its answer may still arrive."""
        if self._done is not None:
            self._done = None
            self._pool.unwatch(self)
        self.close()

    def _finish(self, answer: UpstreamResponse | None, error: BaseException | None) -> None:
        done, self._done = self._done, None
        if done is None:
            return
        pool = self._pool
        pool.outstanding -= 1  # pool.unwatch(self), inline: this runs once per request
        pool._in_flight.discard(self)
        if error is None:
            pool.put_back(self)
        try:
            done(answer, error)
        except Exception:
            log.exception("handling an upstream answer failed")

    def time_out(self) -> None:
        self.close()  # a late answer must not be read as the next request's
        self._finish(None, TimeoutError())

    def close(self) -> None:
        self.is_open = False
        if self.transport is not None:
            self.transport.close()


class EndpointPool:
    """Idle keep-alive connections to one host:port, and the count of requests in flight."""

    def __init__(self, host: str, port: int, max_idle: int = 64, max_idle_seconds: float = 4.0) -> None:
        self.host = host
        self.port = port
        self.outstanding = 0
        self._idle: deque[_Connection] = deque()
        self._max_idle = max_idle
        # Below uvicorn's 5 s keep-alive timeout, so the server rarely closes a connection
        # just as it is reused.
        self._max_idle_seconds = max_idle_seconds
        self._host_header = f"{host}:{port}".encode()
        self._loop: asyncio.AbstractEventLoop | None = None  # the one of the first request
        # Deadlines: one timer per pool for the earliest deadline of the requests in flight,
        # instead of a timer armed and cancelled per request.
        self._in_flight: set[_Connection] = set()
        self._sweep_timer: asyncio.TimerHandle | None = None
        self._sweep_at = math.inf

    def start(self, method: bytes, path: bytes, headers: list[tuple[bytes, bytes]], body: bytes,
              timeout_seconds: float, done: Answered) -> _Connection | None:
        """Send on an idle kept-alive connection, without a coroutine: the connection, whose
        ``cancel()`` gives up on the request, and ``done`` gets the answer (see
        ``_Connection.send``). None when no connection is idle: nothing was sent (use
        ``request``, which connects)."""
        connection = self._idle_connection()
        if connection is None:
            return None
        connection.send(self._encode(method, path, headers, body), timeout_seconds, done)
        return connection

    async def request(
        self,
        method: bytes,
        path: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        timeout_seconds: float,
    ) -> UpstreamResponse:
        """Send one request; UpstreamError if no answer came, TimeoutError past the timeout."""
        data = self._encode(method, path, headers, body)
        connection = self._idle_connection()
        remaining = timeout_seconds
        loop = asyncio.get_running_loop()
        if connection is None:  # connecting counts against the same timeout
            started = loop.time()
            self.outstanding += 1
            try:
                async with asyncio.timeout(timeout_seconds):
                    connection = await self._connect()
            finally:
                self.outstanding -= 1
            remaining -= loop.time() - started
        future = loop.create_future()
        connection.send(data, remaining, functools.partial(_settle, future))
        try:
            return await future
        except asyncio.CancelledError:
            connection.cancel()
            raise

    def watch(self, connection: _Connection, timeout_seconds: float) -> None:
        """A request is in flight on ``connection``: count it, and time it out after
        ``timeout_seconds`` (``connection.time_out()``) unless ``unwatch`` comes first."""
        self.outstanding += 1
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        deadline = connection.deadline = loop.time() + timeout_seconds
        self._in_flight.add(connection)
        if deadline < self._sweep_at:
            if self._sweep_timer is not None:
                self._sweep_timer.cancel()
            self._sweep_at = deadline
            self._sweep_timer = loop.call_at(deadline, self._sweep)

    def unwatch(self, connection: _Connection) -> None:
        self.outstanding -= 1
        self._in_flight.discard(connection)

    def _sweep(self) -> None:
        """Time out the requests past their deadline; wait for the next earliest one."""
        self._sweep_timer, self._sweep_at = None, math.inf
        now = self._loop.time() + _TIMER_SLACK_SECONDS
        late = [c for c in self._in_flight if c.deadline <= now]
        for connection in late:
            connection.time_out()
        if self._in_flight:
            self._sweep_at = min(c.deadline for c in self._in_flight)
            self._sweep_timer = self._loop.call_at(self._sweep_at, self._sweep)

    def put_back(self, connection: _Connection) -> None:
        if connection.is_open and len(self._idle) < self._max_idle:
            connection.idle_since = time.monotonic()
            self._idle.append(connection)

    def _encode(self, method: bytes, path: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
        head = [method, b" ", path, b" HTTP/1.1\r\nhost: ", self._host_header,
                b"\r\ncontent-length: ", b"%d" % len(body), b"\r\n"]
        for name, value in headers:
            head += (name, b": ", value, b"\r\n")
        head += (b"\r\n", body)
        return b"".join(head)

    def _idle_connection(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if connection.is_open and now - connection.idle_since < self._max_idle_seconds:
                connection.reused = True
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        try:
            _, connection = await asyncio.get_running_loop().create_connection(
                functools.partial(_Connection, self), self.host, self.port
            )
        except OSError as exc:
            raise UpstreamError(f"cannot connect to {self.host}:{self.port}: {exc}", sent=False) from None
        return connection

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
            self._sweep_timer, self._sweep_at = None, math.inf


def _settle(future: asyncio.Future, answer: UpstreamResponse | None, error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(answer)
    else:
        future.set_exception(error)
