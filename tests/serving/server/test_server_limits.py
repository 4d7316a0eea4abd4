"""The model server's HTTP limits (serving/server/http_protocol.py, uvicorn's httptools
protocol with serving/http_limits.py) against a real `modelrollout serve`, on raw sockets.

The hostile requests of tests/support/hostile_requests.py each get their 4xx in the server's
error format and a closed connection, and never reach the app (its request counter
holds only the good requests); slow senders get 408 at their deadlines while other
clients are served; a connection that never sends a request is closed; the server
keeps serving throughout.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.support.hostile_requests import (
    DOC,
    framing,
    fuzz_raw_bytes,
    garbled_heads,
    head,
    oversized,
    slow_senders,
    under_limits,
)
from tests.support.models import metric, scrape
from tests.support.processes import MODELROLLOUT, wait_for
from tests.support.raw_http import Client

PATH = "/v2/models/tiny/infer"
DEADLINE_SECONDS = 1.5  # the head and body deadlines of the server under test
REQUESTS = "modelrollout_server_requests_total"


@pytest.fixture
def server(start_server, tiny_model):
    return start_server(["--model-uri", str(tiny_model), "--model-name", "tiny",
                         "--header-timeout-seconds", str(DEADLINE_SECONDS),
                         "--body-timeout-seconds", str(DEADLINE_SECONDS)])


def good(*lines: str) -> bytes:
    return head(PATH, "Host: x", *lines, f"Content-Length: {len(DOC)}") + DOC


def answered(server) -> float:
    """Inference requests the app answered, whatever the status."""
    return metric(scrape(server.url), REQUESTS) or 0


def assert_refused(client: Client, status: int, keyword: str) -> None:
    answer = client.answer()
    assert answer.status == status, answer.body
    assert answer.header("content-type") == "application/json"
    assert list(answer.json()) == ["error"] and keyword in answer.json()["error"], answer.json()
    assert answer.header("connection") == "close" and answer.header("x-request-id")
    assert client.closed()


def assert_served(port: int, raw: bytes = b"") -> None:
    with Client(port) as client:
        client.send(raw or good())
        answer = client.answer()
        assert answer.status == 200, answer.body
        assert answer.json()["model_name"] == "tiny"


def test_hostile_requests_are_refused_before_the_app(server, subtests):
    for hostile in framing(PATH) + oversized(PATH):
        with subtests.test(msg=hostile.label), Client(server.port) as client:
            client.send(hostile.raw)
            assert_refused(client, hostile.status, hostile.keyword)
    assert answered(server) == 0
    for label, raw in under_limits(PATH):
        with subtests.test(msg=label):
            assert_served(server.port, raw)
    assert answered(server) == 3


def test_limits_come_from_the_flags(start_server, tiny_model, subtests):
    server = start_server(["--model-uri", str(tiny_model), "--model-name", "tiny",
                           "--max-header-line-bytes", "1024", "--max-header-bytes", "4096",
                           "--max-headers", "20"])
    for hostile in oversized(PATH, line=1024, block=4096, count=20):
        with subtests.test(msg=hostile.label), Client(server.port) as client:
            client.send(hostile.raw)
            assert_refused(client, hostile.status, hostile.keyword)
    for label, raw in under_limits(PATH, line=1024, block=4096, count=20):
        with subtests.test(msg=label):
            assert_served(server.port, raw)
    assert answered(server) == 3


def test_contradicting_limits_are_a_usage_error(tiny_model):
    result = subprocess.run([MODELROLLOUT, "serve", "--model-uri", str(tiny_model), "--model-name", "tiny",
                             "--max-header-line-bytes", "9000", "--max-header-bytes", "4096"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert ("a header line (9000 bytes) cannot be allowed more than the whole head (4096 bytes)"
            in result.stderr)


def test_pipelined_requests_are_answered_before_the_refusal_behind_them(server):
    with Client(server.port) as client:
        client.send(good() + good() + b"GARBAGE / HTTP/1.1\r\n\r\n" + good())
        assert [client.answer().status for _ in range(2)] == [200, 200]
        assert_refused(client, 400, "Invalid method")
    with Client(server.port) as client:  # a smuggling attempt behind a good request
        client.send(good() + framing(PATH)[0].raw)
        assert client.answer().status == 200
        assert_refused(client, 400, "Content-Length")
    assert answered(server) == 3


def test_a_bad_chunk_while_the_app_waits_for_the_body_is_400(server):
    with Client(server.port) as client:
        client.send(head(PATH, "Host: x", "Transfer-Encoding: chunked") + b"5\r\n" + DOC[:5] + b"\r\n")
        wait_for(lambda: metric(scrape(server.url), "modelrollout_server_inflight_requests") == 1, 10,
                 "the app to wait for the rest of the body")
        client.send(b"zz\r\n")
        assert_refused(client, 400, "chunk size")
    # The app was told the client left: nothing in flight, nothing answered, no error.
    wait_for(lambda: metric(scrape(server.url), "modelrollout_server_inflight_requests") == 0, 10,
             "the request to end")
    assert answered(server) == 0
    assert "Traceback" not in server.logs() and '"level": "ERROR"' not in server.logs()
    assert_served(server.port)


def test_slow_senders_get_408_while_other_clients_are_served(server):
    served = slow_senders(server.port, PATH, DEADLINE_SECONDS, 0.2, assert_served, assert_refused)
    wait_for(lambda: metric(scrape(server.url), "modelrollout_server_inflight_requests") == 0, 10,
             "the waiting requests to end")
    assert answered(server) == served
    assert_served(server.port)


@pytest.mark.parametrize("sent", [b"", b"\r\n"], ids=["nothing", "blank lines"])
def test_a_connection_that_begins_no_request_is_closed(server, sent):
    # Before the limits, uvicorn kept such a connection open for ever: its keep-alive
    # timeout (5 s) ran only after a first answer, and any byte cancelled it.
    with Client(server.port, request_ids=False) as client:
        for _ in range(30):
            if sent:
                try:
                    client.send(sent)
                except OSError:
                    break
            if client.closed(within=0.5):
                break
        else:
            pytest.fail("still open after 15 s")


def test_random_bytes_get_a_refusal_and_the_server_keeps_serving(server):
    fuzz_raw_bytes(server.port)
    garbled_heads(server.port, good())
    assert_served(server.port)
    assert metric(scrape(server.url), "modelrollout_server_failures_total", reason="inference_error") == 0
    assert "Traceback" not in server.logs()
