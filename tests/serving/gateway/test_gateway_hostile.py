"""The gateway's HTTP/1.1 front end against hostile clients, on raw sockets, with a real
upstream process (tests/support/recording_upstream.py: h11, a strict parser of its own) that
records every request the gateway forwards.

Each hostile request (tests/support/hostile_requests.py) gets its 4xx and a closed connection,
nothing of it reaches the upstream (no request smuggling: the upstream's record holds
exactly the good requests, framed by Content-Length alone), and the gateway goes on
serving other clients during and after.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.support.hostile_requests import (
    DOC,
    chunked,
    framing,
    fuzz_raw_bytes,
    garbled_heads,
    head,
    oversized,
    slow_senders,
    smuggled,
    under_limits,
)
from tests.support.processes import free_port
from tests.support.raw_http import Client

PATH = "/v2/models/rec/infer"
DEADLINE_SECONDS = 2  # the head and body deadlines of the gateway under test
UPSTREAM = Path(__file__).resolve().parents[2] / "support" / "recording_upstream.py"


class Upstream:
    def __init__(self, process, record: Path) -> None:
        self.process = process
        self.record = record

    def requests(self) -> list[dict]:
        """What reached the upstream: inference requests (the start-up probes aside) and
        framing errors h11 found."""
        lines = [json.loads(line) for line in self.record.read_text().splitlines()]
        return [r for r in lines if "error" in r or r["target"] != "/v2/health/live"]

    def bodies(self) -> list[bytes]:
        return [r["body"].encode("latin-1") for r in self.requests()]


@pytest.fixture
def upstream(start_server, tmp_path) -> Upstream:
    port = free_port()
    record = tmp_path / "upstream.jsonl"
    process = start_server([], ready=False, port=port,
                           command=[sys.executable, str(UPSTREAM), str(port), str(record)])
    return Upstream(process, record)


def routes_to(upstream: Upstream) -> dict:
    endpoint = f"127.0.0.1:{upstream.process.port}"
    return {"models": {"rec": {"revisions": [
        {"name": "v1", "role": "stable", "weight": 100, "endpoints": [endpoint]}]}}}


@pytest.fixture
def gateway(start_gateway, upstream):
    return start_gateway(routes_to(upstream), args=[
        "--header-timeout-seconds", str(DEADLINE_SECONDS), "--body-timeout-seconds", str(DEADLINE_SECONDS)])


def good(*lines: str) -> bytes:
    return head(PATH, "Host: x", *lines, f"Content-Length: {len(DOC)}") + DOC


def assert_refused(client: Client, status: int, keyword: str) -> None:
    answer = client.answer()
    assert answer.status == status, answer.body
    assert answer.header("content-type") == "application/json"
    assert keyword in answer.json()["error"], answer.json()
    assert answer.header("connection") == "close"
    assert client.closed()


def assert_served(port: int, raw: bytes = b"") -> None:
    with Client(port) as client:
        client.send(raw or good())
        answer = client.answer()
        assert answer.status == 200, answer.body
        assert answer.json()["model_name"] == "rec"


def test_hostile_requests_are_refused_and_never_forwarded(gateway, upstream, subtests):
    for hostile in framing(PATH) + oversized(PATH):
        with subtests.test(msg=hostile.label), Client(gateway.port) as client:
            client.send(hostile.raw)
            assert_refused(client, hostile.status, hostile.keyword)
    assert upstream.requests() == []
    assert_served(gateway.port)
    (forwarded,) = upstream.requests()
    assert forwarded["body"].encode() == DOC
    headers = [(k.lower(), v) for k, v in forwarded["headers"]]
    assert [v for k, v in headers if k == "content-length"] == [str(len(DOC))]
    assert not [k for k, _ in headers if k == "transfer-encoding"]


def test_requests_just_under_the_limits_are_forwarded(gateway, upstream, subtests):
    cases = under_limits(PATH)
    for label, raw in cases:
        with subtests.test(msg=label):
            assert_served(gateway.port, raw)
    assert upstream.bodies() == [DOC] * len(cases)


def test_limits_come_from_the_flags_environment_twins(start_gateway, upstream, subtests):
    env = {"MODELROLLOUT_MAX_HEADER_LINE_BYTES": "1024", "MODELROLLOUT_MAX_HEADER_BYTES": "4096",
           "MODELROLLOUT_MAX_HEADERS": "20"}
    gateway = start_gateway(routes_to(upstream), env=env)
    for hostile in oversized(PATH, line=1024, block=4096, count=20):
        with subtests.test(msg=hostile.label), Client(gateway.port) as client:
            client.send(hostile.raw)
            assert_refused(client, hostile.status, hostile.keyword)
    for label, raw in under_limits(PATH, line=1024, block=4096, count=20):
        with subtests.test(msg=label):
            assert_served(gateway.port, raw)
    assert upstream.bodies() == [DOC] * 3


def test_requests_inside_bodies_stay_bodies(gateway, upstream):
    """A request hidden in a body (whole, or split across chunks) reaches the upstream as
    the body of one request, framed by Content-Length, never as a request of its own."""
    inner = smuggled(PATH)
    split = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (10, inner[:10], len(inner) - 10, inner[10:])
    with Client(gateway.port) as client:
        client.send(head(PATH, "Host: x", f"Content-Length: {len(inner)}") + inner)
        assert client.answer().status == 200
        client.send(head(PATH, "Host: x", "Transfer-Encoding: chunked") + chunked(inner))
        assert client.answer().status == 200
        client.send(head(PATH, "Host: x", "Transfer-Encoding: chunked") + split)
        assert client.answer().status == 200
    assert upstream.bodies() == [inner] * 3
    for forwarded in upstream.requests():
        names = [k.lower() for k, _ in forwarded["headers"]]
        assert names.count("content-length") == 1 and "transfer-encoding" not in names


def test_pipelined_garbage_ends_the_connection_after_the_good_answers(gateway, upstream):
    with Client(gateway.port) as client:
        client.send(good() + good() + b"GARBAGE / HTTP/1.1\r\n\r\n" + good())
        assert [client.answer().status for _ in range(2)] == [200, 200]
        assert_refused(client, 400, "malformed HTTP request")
    with Client(gateway.port) as client:  # a smuggling attempt behind a good request
        client.send(good() + framing(PATH)[0].raw)
        assert client.answer().status == 200
        assert_refused(client, 400, "Content-Length")
    with Client(gateway.port) as client:  # what follows Connection: close is never read
        client.send(good("Connection: close") + good())
        answer = client.answer()
        assert answer.status == 200 and answer.header("connection") == "close"
        assert client.closed()
    assert upstream.bodies() == [DOC] * 4


def test_slow_senders_get_408_while_other_clients_are_served(gateway, upstream):
    served = slow_senders(gateway.port, PATH, DEADLINE_SECONDS, 0.25, assert_served, assert_refused)
    assert_served(gateway.port)
    assert upstream.bodies() == [DOC] * (served + 1)


def test_blank_lines_do_not_keep_a_connection_open(gateway):
    # llhttp skips CRLFs between requests: they begin no request, so no deadline runs, and
    # the keep-alive timeout (5 s from the connection's start) closes the connection.
    with Client(gateway.port) as client:
        for _ in range(30):
            try:
                client.send(b"\r\n")
            except OSError:
                break
            if client.closed(within=0.5):
                break
        else:
            pytest.fail("still open after 15 s of blank lines")


def test_random_bytes_get_a_refusal_and_the_gateway_keeps_serving(gateway, upstream):
    fuzz_raw_bytes(gateway.port)
    garbled_heads(gateway.port, good())
    assert_served(gateway.port)
    assert upstream.bodies() == [DOC]
