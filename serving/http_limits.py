"""What a client may send before its request is answered: limits both HTTP front ends
enforce, the gateway's (gateway/frontend.py) and the model server's under uvicorn
(server/http_protocol.py), with one meter that measures a request head as httptools
(llhttp) reports it. Pure: no I/O, no clock; the front ends keep the deadlines.

The defaults are nginx's, where nginx has one:

====================  =======  ==========================================================
limit                 default  as
====================  =======  ==========================================================
request line, and     8 KiB    nginx ``large_client_header_buffers 4 8k`` (a line must fit
each header line               one 8k buffer; Apache's LimitRequestLine/FieldSize: 8190)
request line plus     32 KiB   the four 8k buffers
all header lines
header lines          100      Apache's LimitRequestFields (nginx counts bytes only)
head deadline         60 s     nginx ``client_header_timeout``: the whole head, from its
                               first byte
body deadline         60 s     nginx ``client_body_timeout``, but for the whole body from
                               the end of the head: nginx times the gap between two reads,
                               so a sender that trickles a byte a minute holds a connection
                               as long as it likes
====================  =======  ==========================================================

A request over a line limit gets 414 (request line) or 431 (header line), over the count
or block limit 431, past a deadline 408. The head must also be one strict HTTP/1.x reading
leaves no doubt about (RFC 9112): exactly one Host header in HTTP/1.1 (at most one in 1.0),
no Transfer-Encoding in HTTP/1.0 (400), and no other version (505). llhttp, in its strict
default mode, already refuses the rest of the request-smuggling set (Content-Length with
Transfer-Encoding, duplicate Content-Length, obsolete line folding, bad chunk sizes).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HttpLimits:
    max_line_bytes: int = 8 * 1024
    max_head_bytes: int = 32 * 1024
    max_headers: int = 100
    header_timeout_seconds: float = 60.0
    body_timeout_seconds: float = 60.0

    def __post_init__(self) -> None:
        if min(self.max_line_bytes, self.max_head_bytes, self.max_headers) < 1:
            raise ValueError(f"HTTP limits must be positive: {self}")
        if self.max_line_bytes > self.max_head_bytes:
            raise ValueError(f"a header line ({self.max_line_bytes} bytes) cannot be allowed more than "
                             f"the whole head ({self.max_head_bytes} bytes)")
        if min(self.header_timeout_seconds, self.body_timeout_seconds) <= 0:
            raise ValueError(f"HTTP deadlines must be positive: {self}")

    def raw_body_cap(self, max_body_bytes: int) -> int:
        """Most bytes a request body may take on the wire, chunk framing and trailers
        included. httptools holds a trailer line whole until it ends; this bounds it."""
        return 2 * max_body_bytes + self.max_head_bytes

    def head_timeout_message(self) -> str:
        return f"request line and headers not received within {self.header_timeout_seconds:g} s"

    def body_timeout_message(self) -> str:
        return f"request body not received within {self.body_timeout_seconds:g} s"


class Refused(Exception):
    """The request must be answered ``status`` (raised from inside a parser callback)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class HeadMeter:
    """Measures one request head: call ``url`` and ``header`` from the parser's callbacks,
    ``pending`` after a read that ended inside the head, ``check_head`` when it is complete,
    and ``reset`` before the next request. Each raises Refused past a limit."""

    __slots__ = ("_line", "_head", "_count_limit", "head_bytes", "count", "partial", "hosts",
                 "transfer_encoding", "url_bytes", "_limits")

    def __init__(self, limits: HttpLimits) -> None:
        self._limits = limits
        self._line = limits.max_line_bytes
        self._head = limits.max_head_bytes
        self._count_limit = limits.max_headers
        self.reset()

    def reset(self) -> None:
        self.url_bytes = 0
        self.head_bytes = 0  # complete header lines (name, value and the ": " between)
        self.count = 0
        self.partial = 0  # bytes of the line the parser holds, not reported yet
        self.hosts = 0
        self.transfer_encoding = False

    def url(self, size: int) -> None:
        """The request target so far (httptools reports it piece by piece as it arrives)."""
        self.url_bytes = size
        if size > self._line:
            raise Refused(414, f"request target over {self._line} bytes")

    def header(self, name: bytes, value: bytes) -> None:
        """One complete header line; ``name`` lower-cased."""
        size = len(name) + len(value) + 2
        self.count += 1
        self.head_bytes += size
        if (size > self._line or self.count > self._count_limit
                or self.url_bytes + self.head_bytes > self._head):
            self._refuse_head(size)
        if name == b"host":
            self.hosts += 1
        elif name == b"transfer-encoding":
            self.transfer_encoding = True

    def pending(self, data: bytes, after_message: bool) -> None:
        """After a read that ended inside the head: httptools keeps the unfinished line to
        itself until its end arrives, so it is measured here, from the raw bytes.
        ``after_message``: another request ended earlier in the same read, so the bytes
        after the read's last newline may be partly that one's (its body): the unfinished
        line is then left unmeasured for this read, which bounds what httptools holds to
        the limit plus one read."""
        if after_message:
            self.partial = 0
            return
        newline = data.rfind(b"\n")
        self.partial = self.partial + len(data) if newline < 0 else len(data) - newline - 1
        # The slack covers the method and version around a request target that is itself
        # measured by url(), and a line's CRLF.
        if self.partial > self._line + 32:
            raise Refused(431, f"a header line over {self._line} bytes")
        if self.url_bytes + self.head_bytes + self.partial > self._head + 32:
            raise Refused(431, f"request line and headers over {self._head} bytes")

    def check_head(self, http_version: str) -> None:
        """The head is complete: one strict reading of its framing, or Refused."""
        self.partial = 0
        if http_version != "1.1":
            if http_version != "1.0":
                raise Refused(505, f"HTTP/{http_version} is not supported: use HTTP/1.1")
            if self.transfer_encoding:
                raise Refused(400, "Transfer-Encoding in an HTTP/1.0 request: its framing cannot be trusted")
        if self.hosts != 1 and (self.hosts > 1 or http_version == "1.1"):
            raise Refused(400, "more than one Host header" if self.hosts else
                          "HTTP/1.1 request without a Host header")

    def _refuse_head(self, size: int) -> None:
        if size > self._line:
            raise Refused(431, f"a header line over {self._line} bytes")
        if self.count > self._count_limit:
            raise Refused(431, f"more than {self._count_limit} header lines")
        raise Refused(431, f"request line and headers over {self._head} bytes")
