"""The verdict of both HTTP front ends on a request does not depend on how its bytes are
cut into reads (serving/http_limits.py measures heads from the reads that end inside
them). In process: each front end's protocol object fed through a fake transport, the
same requests (tests/support/hostile_requests.py) whole and cut at random places, alone and
pipelined behind a good request.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modelrollout.serving import hosting
from modelrollout.serving.gateway import frontend
from modelrollout.serving.http_limits import HttpLimits, Refused, check_head, check_partial_head
from modelrollout.serving.server.http_protocol import protocol_for
from uvicorn.config import Config
from uvicorn.server import ServerState

from tests.support.hostile_requests import DOC, framing, head, oversized, under_limits

PATH = "/v2/models/m/infer"
LIMITS = HttpLimits()
GOOD = head(PATH, "Host: x", f"Content-Length: {len(DOC)}") + DOC
CASES = ([(h.label, h.raw, h.status) for h in framing(PATH) + oversized(PATH)]
         + [(label, raw, 200) for label, raw in under_limits(PATH)] + [("good", GOOD, 200)])
STATUS = re.compile(rb"HTTP/1\.1 (\d{3}) ")
UNFINISHED = "a header line over the limit, sent without its end"


class Transport:
    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def statuses(self) -> list[int]:
        return [int(code) for code in STATUS.findall(self.written)]

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default=None):
        return ("127.0.0.1", 8080) if name in ("sockname", "peername") else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass


class Handler:
    def begin(self, method, path, query, headers, body, reply):
        assert body == DOC
        return frontend.Response(200, [], b"{}")

    def error_response(self, status, message, headers):
        return frontend.Response(status, [], b'{"error": "%s"}' % message.encode())


async def app(scope, receive, send) -> None:
    body = await hosting.read_body(receive, None, 1 << 24)
    assert body == DOC
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}"})


async def gateway_statuses(reads: list[bytes]) -> list[int]:
    connection = frontend._Connections(Handler(), 1 << 24, LIMITS)()
    transport = Transport()
    connection.connection_made(transport)
    for data in reads:
        connection.data_received(data)
    return transport.statuses()


async def server_statuses(reads: list[bytes], answers: int) -> list[int]:
    config = Config(app, lifespan="off", log_config=None, access_log=False)
    protocol = protocol_for(LIMITS, 1 << 24)(config=config, server_state=ServerState(), app_state={})
    transport = Transport()
    protocol.connection_made(transport)
    for data in reads:
        protocol.data_received(data)
        await asyncio.sleep(0)
    for _ in range(100):  # the app's tasks run; refusals wait for the answers before them
        if len(transport.statuses()) >= answers:
            break
        await asyncio.sleep(0)
    protocol.connection_lost(None)
    return transport.statuses()


def cut(data: bytes, places: list[float]) -> list[bytes]:
    points = sorted({int(p * len(data)) for p in places} - {0, len(data)})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@pytest.mark.parametrize("front", ["gateway", "server"])
@pytest.mark.parametrize(("label", "raw", "status"), CASES, ids=[c[0] for c in CASES])
def test_verdict_whatever_the_reads(front, label, raw, status):
    @settings(max_examples=25, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(places=st.lists(st.floats(0, 1), max_size=6), behind_good=st.booleans())
    def verdict(places, behind_good):
        data = GOOD + raw if behind_good else raw
        expected = [200, status] if behind_good else [status]
        reads = cut(data, places)
        if front == "gateway":
            got = asyncio.run(gateway_statuses(reads))
        else:
            got = asyncio.run(server_statuses(reads, len(expected)))
        if got == expected[:-1] and label == UNFINISHED and behind_good:
            # The unfinished line came in the read that ended the request before it: such a
            # read is not measured (check_partial_head), the next one is, or the deadline
            # answers; what httptools holds meanwhile is bounded by one read.
            return
        assert got == expected, (label, [len(r) for r in reads])

    verdict()


def test_check_head_measures_exactly_when_the_bound_says_it_must():
    line = LIMITS.max_line_bytes
    big = [(b"host", b"x"), (b"x-big", b"a" * line)]
    check_head(LIMITS, big[:1], 1, 1, "1.1", bound=line)  # small: not measured, passes
    check_head(LIMITS, big, 1, 1, "1.1", bound=line)  # the bound says small: trusted
    with pytest.raises(Refused, match=f"a header line over {line} bytes"):
        check_head(LIMITS, big, 1, 1, "1.1", bound=line + 1)


def test_a_read_after_another_request_leaves_the_head_to_be_measured():
    received, partial = check_partial_head(LIMITS, b"x" * 50, True, 0, 0)
    assert (received, partial) == (LIMITS.max_line_bytes + 1, 0)  # over the bound: measured at the end
    data = b"GET / HTTP/1.1\r\nX-A: 1\r\nX-B: 12"
    received, partial = check_partial_head(LIMITS, data, False, 0, 0)
    assert (received, partial) == (len(data), len("X-B: 12"))
    with pytest.raises(Refused, match="a header line over"):
        check_partial_head(LIMITS, b"a" * (LIMITS.max_line_bytes + 65), False, received, partial)
