"""uvicorn's httptools protocol with the limits of serving/http_limits.py.

What uvicorn (0.55, as installed) offers is not enough: ``h11_max_incomplete_event_size``
bounds the head under the h11 parser only (16 KiB by default; the server runs httptools,
llhttp in C, where h11 is pure Python); ``timeout_keep_alive`` runs only between requests, after a first
answer, and any byte cancels it; ``limit_concurrency`` answers 503 past a number of
connections, whatever they do; httptools itself has no limit. So under httptools a
client could send a head of any size, any number of headers, or keep a connection whose
head (or body) never finishes open for ever. This subclass adds, with as little of its
own as it can:

- the checks of serving/http_limits.py (line, block and count limits: 414/431; Host,
  version and HTTP/1.0 Transfer-Encoding: 400/505), a few calls per request;
- one deadline per request stage (head, then body: 408), kept by one timer per connection
  that is armed only when a read ends inside a request, and left to run out rather than
  disarmed: a request that arrives in one read, the usual case, reads no clock and arms
  no timer;
- keep-alive from the moment the connection opens, and not cancelled by bytes that begin
  no request (a client sending CRLFs for ever);
- refusals in the server's error format (``{"error": ...}``, JSON), after the answers to
  the requests pipelined before them, with ``Connection: close``; the sending side is then
  shut and what still arrives is dropped for ``LINGER_SECONDS``, so the client reads the
  answer rather than a reset.
"""

from __future__ import annotations

import functools
import logging
import uuid

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from ..hosting import is_sane_request_id
from ..http_limits import HttpLimits, Refused, check_head, check_partial_head, check_url

log = logging.getLogger("modelrollout.serve")

LINGER_SECONDS = 2.0  # after a refusal, how long to drop what the client still sends

# libuv counts milliseconds: a timer may fire up to one early, which counts as on time.
_TIMER_SLACK_SECONDS = 0.001
_IDLE, _HEAD, _BODY = 0, 1, 2  # what part of a request the connection is receiving


def protocol_for(limits: HttpLimits, max_body_bytes: int):
    """What uvicorn.Config(http=...) takes: a factory of LimitedHttpToolsProtocol."""
    return functools.partial(LimitedHttpToolsProtocol, limits=limits, max_body_bytes=max_body_bytes)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args, limits: HttpLimits, max_body_bytes: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits
        self._max_line, self._max_headers = limits.max_line_bytes, limits.max_headers
        self._raw_body_cap = limits.raw_body_cap(max_body_bytes)
        self._stage = _IDLE
        self._deadline = 0.0  # loop time by which the current stage must be over; 0: not set yet
        self._read_size = 0  # of the read being parsed
        self._head_received = 0  # bytes of this head in reads that ended inside it
        self._partial = 0  # bytes of the unfinished header line httptools holds
        self._hosts = 0  # Host headers of this head
        self._timer = None  # the deadline's timer, armed only once a read ends inside a request
        self._timer_at = 0.0
        self._body_bytes = 0  # of the current request, framing included, counted per read
        self._completed_in_read = False
        self._refused = False  # nothing more is read from this connection

    # --- asyncio.Protocol

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        # uvicorn arms its keep-alive timeout only after a first answer: a client that
        # connects and sends nothing would hold the connection for ever.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's, except that bytes alone do not cancel the keep-alive timeout (a request
        # beginning does: on_message_begin), and refusals are ours.
        if self._refused:
            return
        self._completed_in_read = False
        self._read_size = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            refused = exc.__context__
            if isinstance(refused, Refused):
                self._refuse(refused.status, refused.message)
            else:  # uvicorn's own callbacks raise on what they cannot decode (a non-ASCII path)
                self._refuse(400, f"malformed HTTP request: {type(refused).__name__}: {refused}")
            return
        except httptools.HttpParserUpgrade:
            self._stage = _IDLE
            self._cancel_timer()
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            self._refuse(400, f"malformed HTTP request: {exc}")
            return
        stage = self._stage
        if stage == _IDLE:
            return
        # The read ended inside a request.
        limits = self._limits
        try:
            if stage == _HEAD:
                self._head_received, self._partial = check_partial_head(
                    limits, data, self._completed_in_read, self._head_received, self._partial)
            else:
                self._body_bytes += len(data)
                if self._body_bytes > self._raw_body_cap:
                    raise Refused(413, f"request body over {self._raw_body_cap} bytes on the wire")
        except Refused as refused:
            self._refuse(refused.status, refused.message)
            return
        if not self._deadline:  # the stage began in this read: its clock starts now
            self._deadline = self.loop.time() + (limits.header_timeout_seconds if stage == _HEAD
                                                 else limits.body_timeout_seconds)
        if self._timer is None or self._timer_at > self._deadline:
            self._arm(self._deadline)

    # --- httptools callbacks

    # The parent's callbacks are called by name rather than through super(): this is the
    # path of every request, and super() costs a lookup each time.

    def on_message_begin(self) -> None:
        self._unset_keepalive_if_required()
        HttpToolsProtocol.on_message_begin(self)
        self._stage = _HEAD
        self._deadline = 0.0
        self._hosts = 0

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self._max_line:
            check_url(self._limits, len(self.url))

    def on_header(self, name: bytes, value: bytes) -> None:
        # uvicorn's, with Host counted.
        name = name.lower()
        value = value.rstrip(b" \t")
        if name == b"expect":
            if value.lower() == b"100-continue":
                self.expect_100_continue = True
        elif name == b"host":
            self._hosts += 1
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        headers, version = self.headers, self.parser.get_http_version()
        bound = self._head_received + self._read_size  # at least the head's bytes
        # The usual head (one Host, HTTP/1.1, within one line's limit) passes without a call.
        if (bound > self._max_line or version != "1.1" or self._hosts != 1
                or len(headers) > self._max_headers):
            check_head(self._limits, headers, len(self.url), self._hosts, version, bound)
        self._head_received = self._partial = self._body_bytes = 0
        self._stage = _BODY
        self._deadline = 0.0
        HttpToolsProtocol.on_headers_complete(self)

    def on_message_complete(self) -> None:
        HttpToolsProtocol.on_message_complete(self)
        # The deadline's timer, if armed, stays: it finds the connection idle when it fires
        # (or a later request's deadline to wait for), which costs less than disarming it.
        self._stage = _IDLE
        self._completed_in_read = True

    # --- uvicorn's hooks

    def timeout_keep_alive_handler(self) -> None:
        if self._stage == _IDLE:  # else the request's own deadline runs
            HttpToolsProtocol.timeout_keep_alive_handler(self)

    # --- ours

    def _check_deadline(self) -> None:
        self._timer = None
        if self._stage == _IDLE or self.transport.is_closing():
            return
        now = self.loop.time()
        if self.flow.read_paused:
            # Not reading (requests pipelined ahead, or the app not reading the body yet):
            # the client cannot be late; its clock starts again.
            limits = self._limits
            self._deadline = now + (limits.header_timeout_seconds if self._stage == _HEAD
                                    else limits.body_timeout_seconds)
        if now < self._deadline - _TIMER_SLACK_SECONDS:
            self._arm(self._deadline)
            return
        if self._stage == _HEAD:
            self._refuse(408, self._limits.head_timeout_message())
        else:
            self._refuse(408, self._limits.body_timeout_message())

    def _arm(self, at: float) -> None:
        self._cancel_timer()
        self._timer = self.loop.call_at(at, self._check_deadline)
        self._timer_at = at

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _refuse(self, status: int, message: str) -> None:
        """Answer the request being received with ``status`` once those before it are
        answered, and read nothing more."""
        stage, self._stage = self._stage, _IDLE
        self._refused = True
        self._cancel_timer()
        cycle = self.cycle
        if stage == _BODY and cycle is not None:  # its head is in; uvicorn made it a cycle
            for i, (waiting, _) in enumerate(self.pipeline):
                if waiting is cycle:  # behind another request: the refusal is its answer, in turn
                    async def refuse_in_turn(scope, receive, send) -> None:
                        cycle.disconnected = True  # answered here, past uvicorn's send
                        self._send_refusal(status, message)

                    self.pipeline[i] = (cycle, refuse_in_turn)
                    return
            if cycle.response_started:
                # The app answered without reading the whole body: that answer stands, and
                # the connection ends with it.
                cycle.keep_alive = False
                if cycle.response_complete:
                    self.transport.close()
                return
            else:
                # The app is waiting for the body: it gets http.disconnect and answers nothing.
                cycle.disconnected = True
                cycle.message_event.set()
                self._send_refusal(status, message)
                return
        if cycle is not None and not cycle.response_complete:
            # The refusal goes out after the answer to the newest request before it (those
            # pipelined ahead of that one are answered first).
            answered = cycle.on_response

            def then_refuse() -> None:
                answered()
                self._send_refusal(status, message)

            cycle.on_response = then_refuse
        else:
            self._send_refusal(status, message)

    def _send_refusal(self, status: int, message: str) -> None:
        transport = self.transport
        if transport.is_closing():
            return
        given = next((v for k, v in self.headers or () if k == b"x-request-id"), b"").decode("latin-1")
        request_id = given if is_sane_request_id(given) else uuid.uuid4().hex
        body = orjson.dumps({"error": message})
        transport.write(b"".join([
            STATUS_LINE[status],
            b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n"
            b"x-request-id: %s\r\n\r\n" % (len(body), request_id.encode()),
            body,
        ]))
        log.info("HTTP request refused", extra={"status": status, "error": message, "request_id": request_id})
        self._unset_keepalive_if_required()
        self.flow.resume_reading()  # to drop what still arrives, rather than leave it unread
        if transport.can_write_eof():
            transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, transport.close)
