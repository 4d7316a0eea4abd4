"""Keep-alive HTTP/1.1 connections to upstream model servers, built for the proxy's hot path.

A proxied request costs one write and one parse here: httptools (the parser uvicorn
uses) reads the response, and nothing else sits between the socket and the gateway.
General-purpose clients (httpx, aiohttp) spend several times the CPU per request on
features a proxy to our own servers on a cluster network does not use (redirects,
cookies, auth, proxies, TLS, decompression).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

import httptools


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


class _Connection(asyncio.Protocol):
    """One connection, one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.is_open = False
        self._loop = asyncio.get_running_loop()  # made by loop.create_connection
        self._parser = httptools.HttpResponseParser(self)
        self._future: asyncio.Future | None = None
        self._timer: asyncio.TimerHandle | None = None
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
            self._fail(f"bad response from upstream: {exc}", sent=True)
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.is_open = False
        self._fail(
            f"upstream closed the connection{': ' + str(exc) if exc else ''}",
            sent=self._got_bytes or not self.reused,
        )

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        future, self._future = self._future, None
        if not self._parser.should_keep_alive():
            self.close()
        if future is not None and not future.done():
            body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
            future.set_result(UpstreamResponse(self._parser.get_status_code(), self._headers, body))

    # ours
    def send(self, data: bytes, timeout_seconds: float) -> asyncio.Future:
        """The answer, or TimeoutError after ``timeout_seconds``; call stop_timer() after it.

        A timer on the connection rather than asyncio.timeout() around the await: the same
        deadline for a fifth of the CPU (no Timeout object, no task lookups).
        """
        self._future = future = self._loop.create_future()
        self._headers, self._body, self._got_bytes = [], [], False
        self._timer = self._loop.call_later(timeout_seconds, self._time_out)
        self.transport.write(data)
        return future

    def stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _time_out(self) -> None:
        self._timer = None
        future, self._future = self._future, None
        if future is not None and not future.done():
            future.set_exception(TimeoutError())
        self.close()  # a late answer must not be read as the next request's

    def close(self) -> None:
        self.is_open = False
        if self.transport is not None:
            self.transport.close()

    def _fail(self, message: str, sent: bool) -> None:
        future, self._future = self._future, None
        if future is not None and not future.done():
            future.set_exception(UpstreamError(message, sent=sent))


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

    async def request(
        self,
        method: bytes,
        path: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        timeout_seconds: float,
    ) -> UpstreamResponse:
        """Send one request; UpstreamError if no answer came, TimeoutError past the timeout."""
        head = [method, b" ", path, b" HTTP/1.1\r\nhost: ", self._host_header,
                b"\r\ncontent-length: ", str(len(body)).encode(), b"\r\n"]
        for name, value in headers:
            head += (name, b": ", value, b"\r\n")
        head += (b"\r\n", body)
        data = b"".join(head)
        self.outstanding += 1
        try:
            connection = self._idle_connection()
            remaining = timeout_seconds
            if connection is None:  # connecting counts against the same timeout
                loop = asyncio.get_running_loop()
                started = loop.time()
                async with asyncio.timeout(timeout_seconds):
                    connection = await self._connect()
                remaining -= loop.time() - started
            try:
                response = await connection.send(data, remaining)
            except BaseException:
                connection.close()
                raise
            finally:
                connection.stop_timer()
            if connection.is_open and len(self._idle) < self._max_idle:
                connection.idle_since = time.monotonic()
                self._idle.append(connection)
            return response
        finally:
            self.outstanding -= 1

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
                _Connection, self.host, self.port
            )
        except OSError as exc:
            raise UpstreamError(f"cannot connect to {self.host}:{self.port}: {exc}", sent=False) from None
        return connection

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
