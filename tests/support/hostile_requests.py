"""Requests a hostile client sends to an HTTP/1.1 front end, each with the answer a strict
one gives: request smuggling (framing two parsers could read differently), obsolete line
folding, bad chunk sizes, oversized or too many headers, and heads that RFC 9112 says to
refuse. Both front ends are tested with them: the gateway's (test_gateway_hostile.py)
and the model server's (test_server_limits.py).

Every body that a lenient parser could take for a request, or a smuggled request inside
one, is a valid inference request: if anything got through, the model server behind it
would count an answered inference.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.raw_http import Client, trickle

INPUT = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}
DOC = json.dumps(INPUT, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Hostile:
    label: str
    raw: bytes
    status: int  # what a strict front end answers (then it closes the connection)
    keyword: str  # in the answer's {"error": ...}


def head(path: str, *lines: str, method: str = "POST", version: str = "HTTP/1.1") -> bytes:
    return (f"{method} {path} {version}\r\n" + "".join(line + "\r\n" for line in lines) + "\r\n").encode()


def chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)


def smuggled(path: str) -> bytes:
    """A whole second request, for a body or a chunk to carry."""
    return head(path, "Host: x", f"Content-Length: {len(DOC)}") + DOC


def framing(path: str) -> list[Hostile]:
    """Ambiguous or broken message framing: 400 from llhttp (or from our Host/version checks)."""
    inner = smuggled(path)
    body = chunked(DOC)
    return [
        Hostile("CL.TE: Content-Length, then Transfer-Encoding",
                head(path, "Host: x", f"Content-Length: {len(body)}", "Transfer-Encoding: chunked")
                + body + inner, 400, "Transfer-Encoding can't be present with Content-Length"),
        Hostile("TE.CL: Transfer-Encoding, then Content-Length",
                head(path, "Host: x", "Transfer-Encoding: chunked", "Content-Length: 4") + body + inner,
                400, "Content-Length can't be present with Transfer-Encoding"),
        Hostile("two equal Content-Lengths",
                head(path, "Host: x", f"Content-Length: {len(DOC)}", f"Content-Length: {len(DOC)}") + DOC,
                400, "Duplicate Content-Length"),
        Hostile("two different Content-Lengths",
                head(path, "Host: x", "Content-Length: 4", f"Content-Length: {len(DOC)}") + DOC,
                400, "Duplicate Content-Length"),
        Hostile("Content-Length as a list",
                head(path, "Host: x", f"Content-Length: {len(DOC)}, {len(DOC)}") + DOC,
                400, "Content-Length"),
        Hostile("Content-Length with a sign",
                head(path, "Host: x", f"Content-Length: +{len(DOC)}") + DOC, 400, "Content-Length"),
        Hostile("Transfer-Encoding: xchunked",
                head(path, "Host: x", "Transfer-Encoding: xchunked") + body, 400, "Transfer-Encoding"),
        Hostile("Transfer-Encoding with a space before the colon",
                head(path, "Host: x", "Transfer-Encoding : chunked") + body, 400, "header"),
        Hostile("Transfer-Encoding: chunked, identity",
                head(path, "Host: x", "Transfer-Encoding: chunked, identity") + body, 400,
                "Transfer-Encoding"),
        Hostile("Transfer-Encoding twice",
                head(path, "Host: x", "Transfer-Encoding: chunked", "Transfer-Encoding: chunked") + body,
                400, "Transfer-Encoding"),
        Hostile("Transfer-Encoding folded onto a second line (obs-fold)",
                head(path, "Host: x", "Transfer-Encoding:", " chunked") + body, 400, "header value"),
        Hostile("obsolete line folding",
                head(path, "Host: x", "X-Note: a", "\tb", f"Content-Length: {len(DOC)}") + DOC,
                400, "whitespace"),
        Hostile("negative chunk size", head(path, "Host: x", "Transfer-Encoding: chunked")
                + b"-5\r\nhello\r\n0\r\n\r\n", 400, "chunk size"),
        Hostile("chunk size in 0x notation", head(path, "Host: x", "Transfer-Encoding: chunked")
                + b"0x5\r\nhello\r\n0\r\n\r\n", 400, "chunk size"),
        Hostile("chunk size overflowing 64 bits", head(path, "Host: x", "Transfer-Encoding: chunked")
                + b"10000000000000005\r\nhello\r\n0\r\n\r\n", 400, "Chunk size overflow"),
        Hostile("chunk data longer than its size", head(path, "Host: x", "Transfer-Encoding: chunked")
                + b"5\r\nhello, world\r\n0\r\n\r\n", 400, "chunk"),
        Hostile("bare LF line ends", head(path, "Host: x").replace(b"\r\n", b"\n"), 400, "malformed"),
        Hostile("NUL in a header value", head(path, "Host: x", "X-Note: a\0b", "Content-Length: 0"),
                400, "header value char"),
        Hostile("HTTP/1.0 with Transfer-Encoding", head(path, "Host: x", "Transfer-Encoding: chunked",
                                                         version="HTTP/1.0") + body, 400, "HTTP/1.0"),
        Hostile("HTTP/1.1 without Host", head(path, f"Content-Length: {len(DOC)}") + DOC,
                400, "without a Host header"),
        Hostile("two Host headers", head(path, "Host: x", "Host: y", f"Content-Length: {len(DOC)}") + DOC,
                400, "more than one Host header"),
        Hostile("HTTP/2.0 in an HTTP/1 request line",
                head(path, "Host: x", f"Content-Length: {len(DOC)}", version="HTTP/2.0") + DOC,
                505, "HTTP/2.0 is not supported"),
        Hostile("HTTP/1.2", head(path, "Host: x", f"Content-Length: {len(DOC)}", version="HTTP/1.2") + DOC,
                400, "Invalid HTTP version"),
        Hostile("not HTTP at all", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32)), 400,
                "malformed"),
    ]


def oversized(path: str, line: int = 8192, block: int = 32768, count: int = 100) -> list[Hostile]:
    """Heads over the limits (the defaults: nginx's 8 KiB lines and 4 x 8 KiB head, 100 headers)."""
    return [
        Hostile("request target over the line limit", head(path + "?" + "q" * line, "Host: x"),
                414, f"request target over {line} bytes"),
        Hostile("one header line over the line limit", head(path, "Host: x", "X-Big: " + "a" * line),
                431, f"a header line over {line} bytes"),
        Hostile("a header line over the limit, sent without its end",
                head(path, "Host: x")[:-2] + b"X-Big: " + b"a" * (8 * line), 431, f"over {line} bytes"),
        Hostile("more headers than allowed",
                head(path, "Host: x", *(f"X-H{i}: {i}" for i in range(count))), 431,
                f"more than {count} header lines"),
        Hostile("a head over the block limit",
                head(path, "Host: x", *(f"X-H{i}: " + "a" * (line // 2) for i in range(2 * block // line))),
                431, f"request line and headers over {block} bytes"),
    ]


def under_limits(path: str, line: int = 8192, block: int = 32768,
                 count: int = 100) -> list[tuple[str, bytes]]:
    """Heads just under each limit: valid inference requests, to be served."""
    def with_body(*lines: str) -> bytes:
        return head(path, "Host: x", *lines, f"Content-Length: {len(DOC)}") + DOC

    return [
        ("header line at the limit", with_body("X-Big: " + "a" * (line - len("X-Big") - 2))),
        ("as many headers as allowed", with_body(*(f"X-H{i}: {i}" for i in range(count - 2)))),
        ("a head near the block limit",
         with_body(*(f"X-H{i}: " + "a" * (line // 2) for i in range(2 * block // line - 2)))),
    ]


def is_refusal(status: int) -> bool:
    return 400 <= status < 500 or status == 505


@settings(max_examples=60, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(raw=st.binary(min_size=1, max_size=300))
def fuzz_raw_bytes(port: int, raw: bytes) -> None:
    """Whatever bytes arrive, the answer is a 4xx/505 refusal with an error body, or the
    connection closes with nothing sent (bytes that begin no request); never a 5xx."""
    with Client(port) as client:
        try:
            client.send(raw)
            answer = client.answer()
        except (EOFError, OSError):
            return
        assert is_refusal(answer.status), (raw, answer)
        assert answer.json()["error"]


def garbled_heads(port: int, good: bytes, seed: int = 13, count: int = 30) -> None:
    """The start of a good request, random bytes, the end of a head: refused or closed."""
    rng = random.Random(seed)
    for _ in range(count):
        raw = good[:rng.randrange(10, 60)] + rng.randbytes(rng.randrange(1, 200)) + b"\r\n\r\n"
        with Client(port) as client:
            client.send(raw)
            try:
                answer = client.answer()
            except (EOFError, OSError):
                continue
            assert is_refusal(answer.status), (raw, answer)


def slow_senders(port: int, path: str, deadline_seconds: float, pause: float,
                 assert_served: Callable[[int], None],
                 assert_refused: Callable[[Client, int, str], None]) -> int:
    """Clients that stall in the head, in the body, a slowloris crowd each mid-head, and ones
    that trickle a byte at a time: each gets a 408 when its deadline runs out (bytes that keep
    coming do not move it), while others are served meanwhile. How many were served."""
    started = time.monotonic()
    framed = head(path, "Host: x", f"Content-Length: {len(DOC)}")
    stalled_head = Client(port)
    stalled_head.send(framed[:-2])
    stalled_body = Client(port)
    stalled_body.send(framed + DOC[:10])
    crowd = [Client(port) for _ in range(20)]
    for client in crowd:
        client.send(b"POST " + path.encode())
    served = 0
    while time.monotonic() - started < deadline_seconds - 0.5:
        assert_served(port)
        served += 1
    within = f"within {deadline_seconds:g} s"
    with stalled_head:
        assert_refused(stalled_head, 408, f"request line and headers not received {within}")
    assert time.monotonic() - started >= deadline_seconds, "a deadline ran out early"
    with stalled_body:
        assert_refused(stalled_body, 408, f"request body not received {within}")
    for client in crowd:
        with client:
            assert_refused(client, 408, f"request line and headers not received {within}")
    with Client(port) as client:  # the head a byte at a time
        trickle(client, framed + DOC, pause)
        assert_refused(client, 408, f"not received {within}")
    with Client(port) as client:  # the head at once, then the body a byte at a time
        client.send(framed)
        trickle(client, DOC, pause)
        assert_refused(client, 408, f"not received {within}")
    return served
