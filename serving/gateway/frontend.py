"""The gateway's HTTP/1.1 server: an ``asyncio.Protocol`` per connection, ``httptools`` to parse.

No ASGI server sits between the socket and the gateway: a request is parsed once
(httptools, the parser uvicorn uses), read whole (body included) into the arguments of
``Handler.begin``, and its answer leaves in one ``transport.write``: status line,
headers and body together. uvicorn cost the gateway about 50 µs of CPU per request and
wrote every answer in two writes (docs/benchmarks.md, "Gateway").

No task or coroutine per request either: ``begin`` returns the answer, or something to
cancel it with while the answer comes back through the ``reply`` callback (the gateway
calls it from its upstream connection's ``data_received``). Dropping the task per request
(create_task, a future, resuming the coroutines) took about 20 µs of CPU per request off
at concurrency 1 (docs/benchmarks.md, "Gateway").

HTTP semantics kept:

- keep-alive (HTTP/1.1 by default, HTTP/1.0 with ``Connection: keep-alive``), ``Connection:
  close``; a connection with nothing in flight and no request target begun is closed
  ``KEEP_ALIVE_SECONDS`` after it opened or after its last answer (bytes that begin no
  request, such as blank lines, do not keep it open); from the read in which a request
  target begins, the head deadline runs instead, then the body's;
- one request at a time per connection: pipelined requests wait in a queue (reading is
  paused while any do) and are answered in order;
- ``Content-Length`` and chunked request bodies; ``Expect: 100-continue`` is answered when
  the request's turn comes, unless its declared body is over the limit;
- the limits of serving/http_limits.py, checked from the parser callbacks: a request
  line over the line limit is 414; a header line over it, more headers than
  allowed or a head over the block limit 431; a head not complete within its deadline,
  or a body not complete within its own, 408 (deadlines are kept by the connection's
  once-a-second tick, so they end up to a second late); HTTP/1.1 without exactly one
  Host, HTTP/1.0 with Transfer-Encoding 400, other versions 505;
- a body over ``max_body_bytes`` is 413 and a request that does not parse 400 (llhttp is
  strict: Content-Length with Transfer-Encoding, duplicate Content-Length, obsolete line
  folding and bad chunk sizes do not parse). The rest of such a request is not read: the
  answer goes out with ``Connection: close``, the sending side is shut and whatever still
  arrives is dropped until the client closes (at most ``LINGER_SECONDS``), so the client
  sees the answer rather than a reset;
- a client that goes away cancels its request in flight (the upstream call with it).

Shutdown (the semantics of serving/hosting.py, which the model server runs under
uvicorn): on SIGTERM or SIGINT ``on_shutdown`` runs at once (the gateway turns unready),
after ``drain_seconds`` the listener closes and idle connections with it, requests in
flight get ``grace_seconds`` to finish (then they are answered 503 and closed), the
handler's ``stop()`` runs and the process exits 0. A second SIGINT skips the waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import Protocol

import httptools

from .. import hosting
from ..http_limits import HttpLimits, Refused, check_head, check_partial_head, check_url

log = logging.getLogger("modelrollout.gateway")

Headers = list[tuple[bytes, bytes]]  # lower-case names, as received

KEEP_ALIVE_SECONDS = 5  # as uvicorn's default, which the gateway ran under before
LINGER_SECONDS = 2  # after a refusal, how long to drop what the client still sends
_TICK_SECONDS = 1.0  # idle checks and the date header run once per tick
STARTUP_FAILED = 3  # exit code, as uvicorn's for a failed start-up
_DEFAULT_LIMITS = HttpLimits()


@dataclass(slots=True)
class Response:
    status: int
    headers: Headers  # without content-length, date or connection: the front end adds them
    body: bytes
    # Bookkeeping that need not delay the answer (metrics, mirroring): run right after the
    # answer is written, while the client reads it.
    after: Callable[[], None] | None = None


class Pending(Protocol):
    """A request being answered (an asyncio.Task will do)."""

    def cancel(self) -> object:
        """The client left, or the grace period ended: ``reply`` must not be called any more."""


class Handler(Protocol):
    """What the front end serves: serving/gateway/app.py's GatewayApp."""

    async def start(self) -> None:
        """Before the port opens; raising fails the start-up (the process exits non-zero)."""

    async def stop(self) -> None:
        """After the last request, or after a failed start()."""

    def begin(self, method: bytes, path: bytes, query: bytes, headers: Headers, body: bytes,
              reply: Callable[[Response], None]) -> Response | Pending:
        """One whole request. ``path`` is as sent (still percent-encoded), ``query`` without '?'.

        Returns the answer, or, when it comes later, something to cancel it with; then
        ``reply(answer)`` is called once, from a later loop callback (never from within
        ``begin``), unless ``cancel()`` came first. No coroutine, task or future per request
        is needed on this path: the gateway answers from its upstream connection's callback.
        """

    def error_response(self, status: int, message: str, headers: Headers) -> Response:
        """An answer the front end gives by itself (400, 413, 431, 500, 503); ``headers``
        are the request's as far as they were read."""


_STATUS_LINES = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_CLOSE = b"connection: close\r\n"
_KEEP_ALIVE = b"connection: keep-alive\r\n"


class _Starting:
    """What a connection's ``_task`` is while the handler's ``begin`` runs."""

    def cancel(self) -> None:
        return None


_STARTING = _Starting()


def _encode(response: Response, keep_alive: bool, http10: bool, head_only: bool, date: bytes) -> bytes:
    parts = [_STATUS_LINES.get(response.status) or b"HTTP/1.1 %d \r\n" % response.status]
    for name, value in response.headers:
        parts += (name, b": ", value, b"\r\n")
    body = response.body
    parts.append(b"content-length: %d\r\n" % len(body))
    parts.append(date)
    if not keep_alive:
        parts.append(_CLOSE)
    elif http10:
        parts.append(_KEEP_ALIVE)
    parts.append(b"\r\n")
    if not head_only:
        parts.append(body)
    return b"".join(parts)


def _date_header() -> bytes:
    return b"date: " + formatdate(usegmt=True).encode() + b"\r\n"


class _Connections:
    """What all connections share: the handler, the limits, the clock, the shutdown state."""

    def __init__(self, handler: Handler, max_body_bytes: int, limits: HttpLimits) -> None:
        self.handler = handler
        self.max_body_bytes = max_body_bytes
        self.limits = limits
        self.raw_body_cap = limits.raw_body_cap(max_body_bytes)
        self.max_line, self.max_headers = limits.max_line_bytes, limits.max_headers
        # Deadlines in ticks: a stage that began during tick T is late from tick T + n + 1
        # on (see on_tick), so it gets at least its seconds, and at most one more.
        self.head_ticks = math.ceil(limits.header_timeout_seconds)
        self.body_ticks = math.ceil(limits.body_timeout_seconds)
        self.open: set[_Connection] = set()
        self.shutting_down = False
        self.tick = 0
        self.date = _date_header()

    def __call__(self) -> _Connection:  # the protocol factory for loop.create_server
        return _Connection(self)

    async def keep_time(self) -> None:
        while True:
            await asyncio.sleep(_TICK_SECONDS)
            self.tick += 1
            self.date = _date_header()
            for connection in list(self.open):
                connection.on_tick(self.tick)

    def shut_down(self) -> None:
        """No new requests: close idle connections; busy ones close after their answer."""
        self.shutting_down = True
        for connection in list(self.open):
            if connection.is_idle():
                connection.close()

    def busy(self) -> int:
        return sum(1 for connection in self.open if not connection.is_idle())

    def abort(self) -> None:
        for connection in list(self.open):
            connection.abort("the gateway shut down before the request was answered")


class _Connection(asyncio.Protocol):
    def __init__(self, shared: _Connections) -> None:
        self._shared = shared
        self._handler = shared.handler
        self._limit = shared.max_body_bytes
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        # The request being parsed.
        self._url = b""
        self._headers: Headers = []
        self._body: list[bytes] = []
        self._size = 0
        self._declared: bytes | None = None  # its content-length
        self._expects_continue = False
        self._in_head = True
        self._limits = shared.limits
        self._hosts = 0  # its Host headers
        self._version = "1.1"  # its HTTP version, once its head is in
        self._deadline: int | None = None  # tick by which its head, then its body, must be in
        self._read_size = 0  # of the read being parsed
        self._head_received = 0  # bytes of its head in reads that ended inside it
        self._partial = 0  # bytes of the unfinished header line httptools holds
        self._body_bytes = 0  # of its body, framing included, counted per read that ended inside it
        self._completed_in_read = False
        # The request being answered, and those waiting behind it.
        self._task: Pending | None = None  # _STARTING while the handler's begin() runs
        self._answering: tuple | None = None  # that request
        self._queue: deque[tuple | Response] = deque()
        self._continue_owed = False  # a 100 Continue for the request being parsed, once it's its turn
        self._closing = False  # nothing more is read: answer what is queued, then close
        self._reading_paused = False
        self._writing_paused = False
        self._last_tick = shared.tick
        self._linger_since: int | None = None

    # --- asyncio.Protocol

    def connection_made(self, transport) -> None:
        self._transport = transport
        self._shared.open.add(self)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return  # lingering after a refusal, or past a request that closes the connection
        self._completed_in_read = False
        self._read_size = len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # The request asking for the upgrade was queued as a plain one; what follows it
            # speaks another protocol, so the connection ends with its answer.
            self._closing = True
            return
        except httptools.HttpParserCallbackError as exc:
            if self._closing:
                return
            refused = exc.__context__
            if isinstance(refused, Refused):
                self._refuse(refused.status, refused.message)
            else:
                log.error("HTTP parser callback failed", exc_info=refused or exc)
                self._refuse(500, "internal error in the gateway's HTTP front end")
            return
        except httptools.HttpParserError as exc:
            if not self._closing:  # after `Connection: close` llhttp refuses any more data: ignore it
                self._refuse(400, f"malformed HTTP request: {exc}")
            return
        if self._in_head:
            if self._url:  # this read ended inside a request's head
                self._head_read(data)
        elif not self._closing:  # inside a request's body
            self._body_bytes += len(data)
            if self._body_bytes > self._shared.raw_body_cap:
                self._refuse(413, f"request body over {self._shared.raw_body_cap} bytes on the wire")
            elif self._deadline is None:  # the body began in this read: its clock starts now
                self._deadline = self._shared.tick + self._shared.body_ticks

    def eof_received(self) -> None:
        # The client closed (or half-closed) its side. As nginx and uvicorn do, that ends the
        # connection, and with it the request in flight (connection_lost): a client that
        # gave up must not keep an upstream busy.
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._shared.open.discard(self)
        self._closing = True
        self._queue.clear()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()  # the client is gone: so is its request, upstream call included

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._task is None:
            self._next()

    # --- httptools callbacks

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._shared.max_line:
            check_url(self._limits, len(self._url))

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        self._headers.append((name, value))
        if name == b"content-length":
            self._declared = value
        elif name == b"host":
            self._hosts += 1
        elif name == b"expect":
            self._expects_continue = value.lower() == b"100-continue"

    def on_headers_complete(self) -> None:
        # get_http_version formats a string: once per request, kept for on_message_complete.
        self._version = version = self._parser.get_http_version()
        headers, shared = self._headers, self._shared
        bound = self._head_received + self._read_size  # at least the head's bytes
        # The usual head (one Host, HTTP/1.1, within one line's limit) passes without a call.
        if (bound > shared.max_line or version != "1.1" or self._hosts != 1
                or len(headers) > shared.max_headers):
            check_head(self._limits, headers, len(self._url), self._hosts, version, bound)
        self._in_head = False
        self._head_received = self._partial = self._body_bytes = 0
        self._deadline = None  # the body's starts with the first read that ends inside it
        declared = self._declared
        if declared is not None and declared.strip().isdigit() and int(declared) > self._limit:
            raise Refused(413, f"request body of {int(declared)} bytes is over the limit of "
                                f"{self._limit} bytes")
        if self._expects_continue:
            if self._task is None and not self._queue:
                self._transport.write(_CONTINUE)
            else:
                self._continue_owed = True

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._limit:  # chunked, or more than declared (llhttp stops at declared)
            raise Refused(413, f"request body is over the limit of {self._limit} bytes")
        self._body.append(body)

    def on_message_complete(self) -> None:
        parser = self._parser
        keep_alive = parser.should_keep_alive()
        path, _, query = self._url.partition(b"?")
        if path[:1] != b"/":
            path, query = _origin_form(self._url)
        body = self._body
        request = (
            parser.get_method(), path, query, self._headers,
            body[0] if len(body) == 1 else b"".join(body),
            keep_alive, keep_alive and self._version == "1.0",
        )
        self._url, self._headers, self._body, self._size = b"", [], [], 0
        self._declared, self._expects_continue, self._in_head = None, False, True
        self._deadline, self._completed_in_read, self._hosts = None, True, 0
        if not keep_alive:
            self._closing = True
        if self._task is None and not self._queue and not self._writing_paused:
            self._start(request)
        else:
            self._queue.append(request)
            if not self._reading_paused:
                self._reading_paused = True
                self._transport.pause_reading()

    # --- answering

    def _start(self, request: tuple) -> None:
        """Hand ``request`` to the handler; its answer comes back through ``_reply``."""
        self._answering = request
        self._task = _STARTING
        method, path, query, headers, body, _, _ = request
        handler = self._handler
        try:
            started = handler.begin(method, path, query, headers, body, self._reply)
        except Exception:
            log.exception("request failed", extra={"method": method.decode("latin-1"),
                                                    "path": path.decode("latin-1")})
            started = handler.error_response(500, "internal error in the gateway", headers)
        if isinstance(started, Response):
            self._reply(started)
        elif self._task is _STARTING:
            self._task = started

    def _reply(self, response: Response) -> None:
        transport = self._transport
        task = self._task
        if task is None or transport.is_closing():
            return  # the client left, or the shutdown gave up on this request and answered for it
        method, _, _, _, _, keep_alive, http10 = self._answering
        shared = self._shared
        keep_alive = keep_alive and not shared.shutting_down and (self._queue or not self._closing)
        transport.write(_encode(response, keep_alive, http10, method == b"HEAD", shared.date))
        self._task = None
        self._answering = None
        self._last_tick = shared.tick
        if response.after is not None:
            try:
                response.after()
            except Exception:
                log.exception("bookkeeping after the answer failed")
        if not keep_alive:
            self._queue.clear()
            transport.close()
        elif task is not _STARTING and (self._queue or self._reading_paused or self._continue_owed):
            self._next()  # answered from a callback: go on here (from _start, its caller goes on)

    def _next(self) -> None:
        """Between requests: start the ones waiting (while they are answered at once), or read on."""
        queue = self._queue
        while queue and self._task is None and not self._writing_paused:
            item = queue.popleft()
            if isinstance(item, Response):
                self._send_refusal(item)
                return
            self._start(item)
        if self._transport.is_closing():
            return
        if not queue:
            if self._reading_paused:
                self._reading_paused = False
                self._transport.resume_reading()
                self._restart_deadline()
            if self._continue_owed and self._task is None:
                self._continue_owed = False
                self._transport.write(_CONTINUE)
                self._restart_deadline()

    def _refuse(self, status: int, message: str) -> None:
        """Answer the request being parsed with ``status`` once its turn comes, and read no more."""
        self._closing = True
        self._deadline = None
        response = self._handler.error_response(status, message, self._headers)
        if self._task is None and not self._queue:
            self._send_refusal(response)
        else:
            self._queue.append(response)

    def _send_refusal(self, response: Response) -> None:
        transport = self._transport
        if transport.is_closing():
            return
        transport.write(_encode(response, False, False, False, self._shared.date))
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()  # to drop what still arrives, rather than leave it unread
        transport.write_eof()
        self._linger_since = self._shared.tick

    def _head_read(self, data: bytes) -> None:
        if self._deadline is None:  # the head began in this read: its clock starts now
            self._deadline = self._shared.tick + self._shared.head_ticks
        try:
            self._head_received, self._partial = check_partial_head(
                self._limits, data, self._completed_in_read, self._head_received, self._partial)
        except Refused as refused:
            self._refuse(refused.status, refused.message)

    def _restart_deadline(self) -> None:
        """Reading again, or the client told to send its body: it gets its whole time."""
        if self._deadline is not None:
            shared = self._shared
            self._deadline = shared.tick + (shared.head_ticks if self._in_head else shared.body_ticks)

    # --- the connection's life

    def is_idle(self) -> bool:
        """Nothing to answer, and no request half received (one being refused does not count)."""
        return self._task is None and not self._queue and (not self._url or self._closing)

    def on_tick(self, tick: int) -> None:
        if self._linger_since is not None:
            if tick - self._linger_since > LINGER_SECONDS:
                self.close()
        elif self._deadline is not None:  # a request being received
            # Not while the gateway is not reading, or owes the client its 100 Continue:
            # then the client cannot be late (its clock starts again when it may go on).
            if tick > self._deadline and not self._reading_paused and not self._continue_owed:
                limits = self._shared.limits
                self._refuse(408, limits.head_timeout_message() if self._in_head
                             else limits.body_timeout_message())
        elif self._task is None and not self._queue and tick - self._last_tick > KEEP_ALIVE_SECONDS:
            self.close()  # no request since it opened or since its last answer

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def abort(self, message: str) -> None:
        """At the end of the grace period: answer the request in flight 503 and close."""
        task, self._task = self._task, None
        transport = self._transport
        if task is not None:
            task.cancel()
            if not transport.is_closing():
                response = self._handler.error_response(503, message, [])
                transport.write(_encode(response, False, False, False, self._shared.date))
        transport.close()


def _origin_form(url: bytes) -> tuple[bytes, bytes]:
    """``http://host/path?q`` (absolute form) or ``*`` to (path, query)."""
    if url == b"*":
        return url, b""
    try:
        parsed = httptools.parse_url(url)
    except httptools.HttpParserInvalidURLError:
        return b"/", b""  # llhttp accepted it as a request target; nothing routes there
    return parsed.path or b"/", parsed.query or b""


# --------------------------------------------------------------------------- the process


class _Signals:
    """SIGTERM or SIGINT starts the shutdown; a second SIGINT skips its waits."""

    def __init__(self, on_shutdown, drain_seconds: float) -> None:
        self.requested = asyncio.Event()
        self.forced = asyncio.Event()
        self._on_shutdown = on_shutdown
        self._drain_seconds = drain_seconds
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._received, sig)

    def _received(self, sig: int) -> None:
        if self.requested.is_set():
            if sig == signal.SIGINT:
                self.forced.set()
            return
        self._on_shutdown()
        hosting.announce_shutdown(sig, self._drain_seconds)
        self.requested.set()

    async def wait_forced(self, seconds: float) -> None:
        """Sleep ``seconds``, less if the shutdown is forced."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):  # not wait_for: it can swallow a cancellation on 3.11
                await self.forced.wait()


async def serve(handler: Handler, host: str, port: int, *, max_body_bytes: int, grace_seconds: float,
                on_shutdown, drain_seconds: float = 0.0, limits: HttpLimits = _DEFAULT_LIMITS) -> int:
    """Start the handler, serve until a signal, shut down; the process's exit code."""
    signals = _Signals(on_shutdown, drain_seconds)
    starting = asyncio.ensure_future(handler.start())
    requested = asyncio.ensure_future(signals.requested.wait())
    await asyncio.wait({starting, requested}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():  # a signal while a route source still loads: nothing to drain
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await handler.stop()
        log.info("stopped during start-up")
        return 0
    if starting.exception() is not None:
        log.error(f"gateway start-up failed: {starting.exception()}")
        await handler.stop()
        return STARTUP_FAILED
    connections = _Connections(handler, max_body_bytes, limits)
    loop = asyncio.get_running_loop()
    try:
        listener = await loop.create_server(connections, host, port, backlog=2048)
    except OSError as exc:
        log.error(f"cannot listen on {host}:{port}: {exc}")
        await handler.stop()
        return 1
    clock = asyncio.create_task(connections.keep_time(), name="frontend-clock")
    log.info("gateway listening", extra={"address": f"http://{host}:{port}"})

    await requested
    await signals.wait_forced(drain_seconds)
    listener.close()
    connections.shut_down()
    deadline = loop.time() + grace_seconds
    while connections.busy() and not signals.forced.is_set() and loop.time() < deadline:
        await asyncio.sleep(min(0.05, max(0.0, deadline - loop.time())))
    if connections.busy():
        log.warning("grace period over: answering the requests still in flight 503",
                    extra={"requests": connections.busy(), "grace_seconds": grace_seconds})
    connections.abort()
    clock.cancel()
    await asyncio.sleep(0)  # let the cancelled requests unwind
    await handler.stop()
    log.info("gateway stopped")
    return 0


def run(handler: Handler, host: str, port: int, *, max_body_bytes: int, grace_seconds: float,
        on_shutdown, drain_seconds: float = 0.0, limits: HttpLimits = _DEFAULT_LIMITS) -> None:
    """Serve ``handler`` on host:port (uvloop when installed) until SIGTERM; exits non-zero
    when the start-up fails."""
    main = serve(handler, host, port, max_body_bytes=max_body_bytes, grace_seconds=grace_seconds,
                 on_shutdown=on_shutdown, drain_seconds=drain_seconds, limits=limits)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with the gateway's dependencies
        code = asyncio.run(main)
    else:
        code = uvloop.run(main)
    if code:
        raise SystemExit(code)
