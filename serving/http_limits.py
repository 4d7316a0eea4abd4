"""What a client may send before its request is answered: limits both HTTP front ends
enforce, the gateway's (gateway/frontend.py) and the model server's under uvicorn
(server/http_protocol.py), and the checks that measure a request head as httptools
(llhttp) reports it. Pure: no I/O, no clock; the front ends keep the deadlines.

The checks cost a few calls per request, not per header: the request target is checked
as it arrives, a read that ends inside a head is measured from its raw bytes (which also
bounds what httptools holds of an unfinished line), and the complete head once.

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

from modelrollout.settings_fields import check_bounds, setting


@dataclass(frozen=True)
class HttpLimits:
    """Embedded in the server's and the gateway's settings: both take the same five flags."""

    max_line_bytes: int = setting(
        8 * 1024, flag="--max-header-line-bytes", at_least=64,
        help="Longest request line (else 414) or header line (else 431); nginx: 8k.")
    max_head_bytes: int = setting(
        32 * 1024, flag="--max-header-bytes", at_least=64,
        help="Longest request line plus headers, else 431; nginx: 4 x 8k.")
    max_headers: int = setting(100, at_least=1, help="Most header lines in a request, else 431.")
    header_timeout_seconds: float = setting(
        60.0, above=0, help="Time for a request's line and headers, from their first byte, else 408.")
    body_timeout_seconds: float = setting(
        60.0, above=0, help="Time for a whole request body, from the end of its headers, else 408.")

    def __post_init__(self) -> None:
        check_bounds(self)
        if self.max_line_bytes > self.max_head_bytes:
            raise ValueError(f"a header line ({self.max_line_bytes} bytes) cannot be allowed more than "
                             f"the whole head ({self.max_head_bytes} bytes)")

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


def check_url(limits: HttpLimits, size: int) -> None:
    """The request target so far (httptools reports it piece by piece as it arrives)."""
    if size > limits.max_line_bytes:
        raise Refused(414, f"request target over {limits.max_line_bytes} bytes")


def check_partial_head(limits: HttpLimits, data: bytes, after_message: bool, received: int,
                       partial: int) -> tuple[int, int]:
    """After a read that ended inside a head, what httptools holds of it, from the raw
    bytes (it keeps an unfinished header line to itself until the line ends):
    ``received``, the bytes of this head in reads that ended inside it so far, and
    ``partial``, those of its unfinished line, both updated and returned.

    ``after_message``: another request ended earlier in the same read, so which of its
    bytes are this head's is unknown: they are left uncounted for this read (what
    httptools holds stays bounded by the limit plus one read), and ``received`` is marked
    over the line limit so that check_head measures the head exactly.
    """
    if after_message:
        return max(received, limits.max_line_bytes + 1), 0
    received += len(data)
    newline = data.rfind(b"\n")
    partial = partial + len(data) if newline < 0 else len(data) - newline - 1
    # The slack covers what the raw bytes hold and check_head does not count: a request
    # line's method and version, line ends, and whitespace around values.
    if partial > limits.max_line_bytes + 64:
        raise Refused(431, f"a header line over {limits.max_line_bytes} bytes")
    if received > limits.max_head_bytes + limits.max_line_bytes:
        raise Refused(431, f"request line and headers over {limits.max_head_bytes} bytes")
    return received, partial


def check_head(limits: HttpLimits, headers: list[tuple[bytes, bytes]], url_bytes: int, hosts: int,
               http_version: str, bound: int) -> None:
    """The head is complete (``headers``: lower-case names; ``hosts``: how many were Host).
    Raises Refused over a limit, or unless a strict reading of its framing is certain.

    ``bound``: at least the bytes of the head (the front end's raw count): when it is
    within one line's limit, no line and no block can be over theirs, and the head is
    not measured header by header (the usual case: a whole request in one read).
    """
    if len(headers) > limits.max_headers:
        raise Refused(431, f"more than {limits.max_headers} header lines")
    if bound > limits.max_line_bytes:
        line = limits.max_line_bytes
        sizes = [len(name) + len(value) + 2 for name, value in headers]  # "name: value"
        if sizes and max(sizes) > line:
            raise Refused(431, f"a header line over {line} bytes")
        if url_bytes + sum(sizes) > limits.max_head_bytes:
            raise Refused(431, f"request line and headers over {limits.max_head_bytes} bytes")
    if http_version != "1.1":
        if http_version != "1.0":
            raise Refused(505, f"HTTP/{http_version} is not supported: use HTTP/1.1")
        if any(name == b"transfer-encoding" for name, _ in headers):
            raise Refused(400, "Transfer-Encoding in an HTTP/1.0 request: its framing cannot be trusted")
    if hosts != 1 and (hosts > 1 or http_version == "1.1"):
        raise Refused(400, "more than one Host header" if hosts else "HTTP/1.1 request without a Host header")
