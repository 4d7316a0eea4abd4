"""The gateway's own HTTP/1.1 front end (serving/gateway/frontend.py), on raw sockets against a
real `modelrollout gateway` process: pipelining, chunked bodies, 100-continue, HTTP/1.0,
refusals (400, 413, 431), keep-alive, client disconnects, start-up failure, and shutdown on
SIGTERM and SIGINT."""

from __future__ import annotations

import json
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support.processes import wait_for
from tests.support.raw_http import Client, request

BODY = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}
OTHER = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [0.1, 0.2, 0.3, 0.4]}]}
INFLIGHT = "modelrollout_server_inflight_requests"


def encoded(doc: dict) -> bytes:
    return json.dumps(doc).encode()


def routes(**servers) -> dict:
    """One model per keyword (name=server), each with one stable revision v1."""
    return {"models": {name: {"revisions": [
        {"name": "v1", "role": "stable", "weight": 100, "endpoints": [f"127.0.0.1:{server.port}"]}]}
        for name, server in servers.items()}}


def infer(model: str, doc: dict, *headers: tuple[str, str]) -> bytes:
    return request("POST", f"/v2/models/{model}/infer", encoded(doc),
                   (("Content-Type", "application/json"), *headers))


def answer_of(server, doc: dict) -> list:
    return httpx.post(f"{server.url}/v2/models/tiny/infer", json=doc).json()["outputs"]


def metric(url: str, name: str) -> float:
    lines = httpx.get(f"{url}/metrics").text.splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(name))


def log_records(process) -> list[dict]:
    return [json.loads(line) for line in process.logs().splitlines() if line.startswith("{")]


def slow(start_server, model, seconds: float):
    """The tiny model, named 'slow', behind a batcher that holds a lone request ``seconds``."""
    return start_server(["--model-uri", str(model), "--model-name", "slow",
                         "--max-batch-size", "8", "--max-queue-delay-us", str(int(seconds * 1e6))])


@pytest.fixture
def slow_server(start_server, tiny_model):
    return slow(start_server, tiny_model, 3)


@pytest.fixture
def slower_server(start_server, tiny_model):
    return slow(start_server, tiny_model, 6)


@pytest.fixture
def gateway(start_gateway, tiny_server):
    return start_gateway(routes(tiny=tiny_server), args=["--max-body-bytes", "2000"])


# --- keep-alive, pipelining, HTTP/1.0


def test_keep_alive_serves_many_requests_on_one_connection(gateway, tiny_server):
    expected = answer_of(tiny_server, BODY)
    with Client(gateway.port) as client:
        for i in range(20):
            client.send(infer("tiny", BODY, ("X-Request-ID", f"ka-{i}")))
            answer = client.answer()
            assert answer.status == 200 and answer.json()["outputs"] == expected
            assert answer.header("x-request-id") == f"ka-{i}"
            assert answer.header("x-modelrollout-revision") == "v1"
            assert answer.header("connection") is None
        client.send(request("GET", "/v2/health/live"))
        assert client.answer().json() == {"live": True}


def test_pipelined_requests_are_answered_in_order(start_gateway, slow_server, tiny_server):
    # The first request waits 3 s in the slow server's batcher; the ones behind it would be
    # answered at once if the gateway worked on them concurrently.
    gateway = start_gateway(routes(slow=slow_server, tiny=tiny_server))
    expected = {"p1": answer_of(tiny_server, BODY), "p2": answer_of(tiny_server, OTHER)}
    with Client(gateway.port) as client:
        client.send(infer("slow", BODY, ("X-Request-ID", "p0"))
                    + infer("tiny", BODY, ("X-Request-ID", "p1"))
                    + request("GET", "/v2/health/live")
                    + infer("tiny", OTHER, ("X-Request-ID", "p2"))
                    + request("GET", "/v2/models/nope", headers=(("X-Request-ID", "p3"),)))
        answers = [client.answer() for _ in range(5)]
    assert [a.status for a in answers] == [200, 200, 200, 200, 404]
    assert [answers[i].header("x-request-id") for i in (0, 1, 3, 4)] == ["p0", "p1", "p2", "p3"]
    assert answers[0].json()["outputs"] == expected["p1"]  # same model and input as p1
    assert answers[1].json()["outputs"] == expected["p1"]
    assert answers[2].json() == {"live": True}
    assert answers[3].json()["outputs"] == expected["p2"]
    assert "nope" in answers[4].json()["error"]


def test_http10_closes_unless_asked_to_keep_alive(gateway, tiny_server):
    expected = answer_of(tiny_server, BODY)
    body = encoded(BODY)
    with Client(gateway.port) as client:
        client.send(request("POST", "/v2/models/tiny/infer", body, version="HTTP/1.0"))
        answer = client.answer()
        assert answer.status == 200 and answer.json()["outputs"] == expected
        assert answer.header("connection") == "close"
        assert client.closed_by_gateway()
    with Client(gateway.port) as client:
        for _ in range(3):
            client.send(request("POST", "/v2/models/tiny/infer", body, (("Connection", "keep-alive"),),
                                version="HTTP/1.0"))
            answer = client.answer()
            assert answer.status == 200 and answer.header("connection") == "keep-alive"


def test_connection_close_is_honoured_and_what_follows_is_ignored(gateway):
    with Client(gateway.port) as client:
        client.send(request("GET", "/v2/health/live", headers=(("Connection", "close"),))
                    + request("GET", "/v2/health/ready"))
        answer = client.answer()
        assert answer.status == 200 and answer.header("connection") == "close"
        assert client.closed_by_gateway()


@pytest.mark.slow
def test_idle_keep_alive_connections_are_closed_after_a_while(gateway):
    with Client(gateway.port) as client:
        client.send(request("GET", "/v2/health/live"))
        assert client.answer().status == 200
        assert not client.closed_by_gateway(within=3.0)  # still open 3 s later
        assert client.closed_by_gateway(within=6.0)  # closed between 5 and 6 s idle


# --- request bodies


def test_chunked_request_body_is_read_whole(gateway, tiny_server):
    body = encoded(BODY)
    pieces = [body[:10], body[10:50], body[50:]]
    with Client(gateway.port) as client:
        client.send(b"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: gateway\r\n"
                    b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        for piece in pieces:
            client.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            time.sleep(0.05)  # separate reads at the gateway
        client.send(b"0\r\n\r\n")
        answer = client.answer()
    assert answer.status == 200, answer.body
    assert answer.json()["outputs"] == answer_of(tiny_server, BODY)


def test_chunked_body_over_the_limit_is_413(gateway):
    with Client(gateway.port) as client:
        client.send(b"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: gateway\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n")
        for _ in range(3):  # 3 x 1000 bytes against a limit of 2000
            client.send(b"3e8\r\n" + b"x" * 1000 + b"\r\n")
        answer = client.answer()
        assert answer.status == 413 and "2000 bytes" in answer.json()["error"]
        assert answer.header("connection") == "close"
        assert client.closed_by_gateway()


def test_declared_body_over_the_limit_is_413_before_the_body_is_sent(gateway):
    # 10 MB declared, 100 bytes sent: the answer comes without waiting for the rest.
    with Client(gateway.port) as client:
        client.send(b"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: gateway\r\nX-Request-ID: big-1\r\n"
                    b"Content-Length: 10000000\r\n\r\n" + b"x" * 100)
        answer = client.answer()
        assert answer.status == 413
        assert answer.json() == {"error": "request body of 10000000 bytes is over the limit of 2000 bytes"}
        assert answer.header("x-request-id") == "big-1"
        assert answer.header("content-type") == "application/json"
        client.send(b"x" * 100_000)  # the client goes on sending: dropped, no reset before the answer
        assert client.closed_by_gateway()
    assert metric(gateway.url, "modelrollout_gateway_requests_total") == 0


def test_expect_100_continue(gateway, tiny_server):
    body = encoded(BODY)
    with Client(gateway.port) as client:
        client.send(b"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: gateway\r\nExpect: 100-continue\r\n"
                    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
        interim = client.answer()  # sent before any of the body
        assert (interim.status, interim.body) == (100, b"")
        client.send(body)
        answer = client.answer()
        assert answer.status == 200 and answer.json()["outputs"] == answer_of(tiny_server, BODY)
        # Over the limit: refused at once, never invited to send.
        client.send(b"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: gateway\r\nExpect: 100-continue\r\n"
                    b"Content-Length: 5000\r\n\r\n")
        refused = client.answer()
        assert refused.status == 413 and "limit" in refused.json()["error"]
        assert client.closed_by_gateway()


# --- malformed requests, clients that leave


@pytest.mark.parametrize("raw", [
    b"NOT-HTTP\r\n\r\n",
    b"GET /v2/health/live HTTP/1.1\r\nHost: gateway\r\nbroken header line\r\n\r\n",
    b"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: gateway\r\nContent-Length: 12x\r\n\r\n",
    b"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: gateway\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
])
def test_malformed_request_is_400_and_closes(gateway, raw):
    with Client(gateway.port) as client:
        client.send(raw)
        answer = client.answer()
        assert answer.status == 400 and "malformed" in answer.json()["error"]
        assert answer.header("connection") == "close"
        assert client.closed_by_gateway()
    assert httpx.get(f"{gateway.url}/v2/health/live").status_code == 200  # still serving


def test_header_line_over_8_kib_is_431(gateway):
    # The default limits (serving/http_limits.py; tests/serving/gateway/test_gateway_hostile.py has the rest).
    with Client(gateway.port) as client:
        client.send(b"GET /v2/health/live HTTP/1.1\r\nHost: gateway\r\nX-Big: " + b"a" * (2 << 20)
                    + b"\r\n\r\n")
        answer = client.answer()
        assert answer.status == 431 and answer.json() == {"error": "a header line over 8192 bytes"}
        assert client.closed_by_gateway()
    with Client(gateway.port) as client:  # large, but under the limit: served
        client.send(request("GET", "/v2/health/live", headers=(("X-Big", "a" * 8000),)))
        assert client.answer().status == 200


def test_malformed_request_behind_a_good_one_is_answered_in_turn(gateway):
    with Client(gateway.port) as client:
        client.send(request("GET", "/v2/health/live") + b"BROKEN\r\n\r\n")
        assert client.answer().json() == {"live": True}
        assert client.answer().status == 400
        assert client.closed_by_gateway()


def test_clients_leaving_mid_request_cancel_quietly(start_gateway, slow_server, tiny_server):
    gateway = start_gateway(routes(slow=slow_server, tiny=tiny_server))
    for i in range(5):
        with Client(gateway.port) as client:
            client.send(infer("slow", BODY, ("X-Request-ID", f"gone-{i}")))
            if i == 0:
                wait_for(lambda: metric(slow_server.url, INFLIGHT) == 1, 5, "the request upstream")
        with Client(gateway.port) as client:  # half a request, then gone
            client.send(infer("tiny", BODY)[:60])
    # The server answers the abandoned requests once its batch runs; by then the gateway
    # has cancelled them (a gateway still waiting would count them as answered 200).
    wait_for(lambda: metric(slow_server.url, INFLIGHT) == 0, 6, "the slow server's batch")
    assert httpx.post(f"{gateway.url}/v2/models/tiny/infer", json=BODY).status_code == 200
    assert metric(gateway.url, 'modelrollout_gateway_requests_total{code="200",model="slow"') == 0
    problems = [r for r in log_records(gateway) if r["level"] in ("WARNING", "ERROR", "CRITICAL")]
    assert problems == []
    assert "Traceback" not in gateway.logs()


# --- start-up and shutdown


def test_invalid_routes_at_start_up_exit_3_with_the_reason(start_gateway):
    gateway = start_gateway({"models": {"iris": {"revisions": [{"name": "v1", "weight": 70}]}}}, ready=False)
    assert gateway.proc.wait(timeout=20) == 3
    messages = [r["message"] for r in log_records(gateway)]
    assert any(m.startswith("gateway start-up failed: ") and "add up to 100" in m for m in messages), messages


def test_sigterm_drains_then_finishes_in_flight_requests_and_exits_0(start_gateway, slower_server):
    gateway = start_gateway(routes(slow=slower_server), args=["--drain-seconds", "2"])
    idle = Client(gateway.port)
    idle.send(request("GET", "/v2/health/live"))
    assert idle.answer().status == 200
    with ThreadPoolExecutor(1) as pool, idle:
        slow = pool.submit(httpx.post, f"{gateway.url}/v2/models/slow/infer", json=BODY, timeout=30)
        wait_for(lambda: metric(slower_server.url, INFLIGHT) == 1, 5, "the slow request upstream")
        gateway.terminate()
        # Draining: still accepting, but unready.
        wait_for(lambda: httpx.get(f"{gateway.url}/v2/health/ready").status_code == 503, 1.5,
                 "readiness to turn false")
        assert httpx.get(f"{gateway.url}/v2/health/ready").json()["error"] == "shutting down"
        assert idle.closed_by_gateway(within=3.0)  # idle keep-alive connections close with the listener
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", gateway.port), timeout=1).close()
        assert not slow.done() and gateway.proc.poll() is None, "closed the listener, kept working"
        response = slow.result(timeout=10)
    assert response.status_code == 200 and response.headers["x-modelrollout-revision"] == "v1"
    assert response.headers["connection"] == "close"
    assert gateway.proc.wait(timeout=10) == 0
    messages = [r["message"] for r in log_records(gateway)]
    assert "shutdown requested: unready now, draining" in messages
    assert "gateway stopped" in messages


def test_grace_seconds_bound_the_wait_for_requests_in_flight(start_gateway, slower_server):
    gateway = start_gateway(routes(slow=slower_server), args=["--grace-seconds", "0.5"])
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(httpx.post, f"{gateway.url}/v2/models/slow/infer", json=BODY, timeout=30)
        wait_for(lambda: metric(slower_server.url, INFLIGHT) == 1, 5, "the slow request upstream")
        started = time.monotonic()
        gateway.terminate()
        assert gateway.proc.wait(timeout=10) == 0
        assert time.monotonic() - started < 3, "waited past --grace-seconds"
        response = slow.result(timeout=10)
    assert response.status_code == 503 and "shut down" in response.json()["error"]


def test_sigint_twice_skips_the_grace_period(start_gateway, slower_server):
    gateway = start_gateway(routes(slow=slower_server), args=["--grace-seconds", "30"])
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(httpx.post, f"{gateway.url}/v2/models/slow/infer", json=BODY, timeout=30)
        wait_for(lambda: metric(slower_server.url, INFLIGHT) == 1, 5, "the slow request upstream")
        started = time.monotonic()
        gateway.proc.send_signal(signal.SIGINT)
        time.sleep(0.2)
        assert gateway.proc.poll() is None  # one SIGINT: waiting for the request
        gateway.proc.send_signal(signal.SIGINT)
        assert gateway.proc.wait(timeout=5) == 0
        assert time.monotonic() - started < 3  # the request would have taken 6 s
        assert slow.result(timeout=10).status_code == 503
