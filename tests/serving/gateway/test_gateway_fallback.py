"""Per-request fallback: a route's fallback revision answers what the chosen revision fails.

Real `modelrollout serve` processes throughout. The failing primary serves a model that
onnxruntime runs for one row and fails on for two (the server answers that 500); the slow
one batches with a 20 s queue delay, so a lone request waits 20 s for its batch.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import numpy as np
import onnx
import pytest
from modelrollout.serving.contract.routes import parse_route_table
from modelrollout.serving.gateway.balancer import Balancer
from modelrollout.serving.gateway.metrics import GatewayMetrics
from modelrollout.serving.gateway.proxy import Proxy
from modelrollout.serving.gateway.split import choose
from onnx import TensorProto, helper, numpy_helper

from tests.support.models import metric, scrape, tiny_mlp, write

ONE_ROW = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}
TWO_ROWS = {"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32",
                        "data": [5.1, 3.5, 1.4, 0.2, 6.2, 2.9, 4.3, 1.3]}]}
REVISION = "x-modelrollout-revision"
IDEMPOTENT = "x-modelrollout-idempotent"
REQUESTS = "modelrollout_gateway_requests_total"
FALLBACKS = "modelrollout_gateway_fallbacks_total"
FAILURES = "modelrollout_gateway_upstream_failures_total"
SERVER_REQUESTS = "modelrollout_server_requests_total"
SLOW_SECONDS = 20  # the slow primary's queue delay; deadlines are 200 ms


def one_row_only() -> bytes:
    """``input`` FP32 [n, 4] reshaped to [4]: one row runs, more rows fail inside onnxruntime
    (not as a rejected input, 400, but as a failed run, 500), after every input check passed."""
    shape = numpy_helper.from_array(np.array([4], dtype=np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["input", "shape"], ["output"])], "one_row_only",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [4])], [shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def serve(start_server, tmp_path, name: str, model: bytes, *args: str):
    path = write(tmp_path / name / "model.onnx", model)
    return start_server(["--model-uri", str(path), "--model-name", "iris", "--grace-seconds", "1", *args])


@pytest.fixture
def steady(start_server, tmp_path):
    """The fallback revision's server: answers everything."""
    return serve(start_server, tmp_path, "steady", tiny_mlp(seed=0))


@pytest.fixture
def broken(start_server, tmp_path):
    """Answers one row, 500 for two."""
    server = serve(start_server, tmp_path, "broken", one_row_only())
    assert httpx.post(f"{server.url}/v2/models/iris/infer", json=TWO_ROWS, timeout=10).status_code == 500
    return server


@pytest.fixture
def slow(start_server, tmp_path):
    """Answers a lone request after SLOW_SECONDS (it waits for a batch of 4 that never fills)."""
    return serve(start_server, tmp_path, "slow", tiny_mlp(seed=1), "--max-batch-size", "4",
                 "--max-queue-delay-us", str(SLOW_SECONDS * 1_000_000))


def routes(primary_port: int, fallback_port: int, fallback: dict | None) -> dict:
    """v2 takes all the traffic; v1, a fallback-role revision, takes none of it."""
    route = {"revisions": [
        {"name": "v2", "role": "stable", "weight": 100, "endpoints": [f"127.0.0.1:{primary_port}"]},
        {"name": "v1", "role": "fallback", "weight": 0, "endpoints": [f"127.0.0.1:{fallback_port}"]},
    ]}
    if fallback is not None:
        route["fallback"] = fallback
    return {"models": {"iris": route}}


def infer(client: httpx.Client, body: dict, headers: dict | None = None) -> httpx.Response:
    return client.post("/v2/models/iris/infer", json=body, headers=headers or {})


def served_by(server) -> float:
    """Inference requests a model server answered, whatever their status."""
    return metric(scrape(server.url), SERVER_REQUESTS) or 0.0


def test_5xx_answers_come_from_the_fallback_and_count_against_the_primary(broken, steady, start_gateway):
    gateway = start_gateway(routes(broken.port, steady.port, {"revision": "v1"}))
    direct = httpx.post(f"{steady.url}/v2/models/iris/infer", json=TWO_ROWS, timeout=10).json()["outputs"]
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        own = infer(client, ONE_ROW)  # what the primary answers well stays with it
        assert own.status_code == 200 and own.headers[REVISION] == "v2"
        answers = [infer(client, TWO_ROWS) for _ in range(20)]
    assert [(r.status_code, r.headers[REVISION]) for r in answers] == [(200, "v1")] * 20
    assert all(r.json()["outputs"] == direct for r in answers)
    samples = scrape(gateway.url)
    assert metric(samples, FALLBACKS, model="iris", revision="v2", role="stable") == 20
    assert metric(samples, FAILURES, revision="v2", reason="error_status") == 20
    # The client saw the fallback's answers only: the primary's 500s are not requests of v2.
    assert metric(samples, REQUESTS, revision="v2", code="500") is None
    assert metric(samples, REQUESTS, revision="v2", code="200") == 1
    assert metric(samples, REQUESTS, revision="v1", role="fallback", code="200") == 20
    assert metric(scrape(broken.url), SERVER_REQUESTS, code="500") == 21  # the fixture's own, and 20


def test_a_stopped_primary_is_answered_by_the_fallback(start_server, tmp_path, steady, start_gateway):
    gone = serve(start_server, tmp_path, "gone", tiny_mlp(seed=1))
    gone.stop()  # its port now refuses connections
    gateway = start_gateway(routes(gone.port, steady.port, {"revision": "v1", "deadlineMs": 5000}))
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        answers = [infer(client, ONE_ROW) for _ in range(10)]
    assert [(r.status_code, r.headers[REVISION]) for r in answers] == [(200, "v1")] * 10
    samples = scrape(gateway.url)
    assert metric(samples, FAILURES, revision="v2", reason="connect") == 10
    assert metric(samples, FALLBACKS, revision="v2") == 10


def test_the_deadline_sends_a_slow_request_to_the_fallback(slow, steady, start_gateway):
    gateway = start_gateway(routes(slow.port, steady.port, {"revision": "v1", "deadlineMs": 200}),
                            args=["--upstream-timeout-seconds", "2"])
    started = time.monotonic()
    response = httpx.post(f"{gateway.url}/v2/models/iris/infer", json=ONE_ROW, timeout=SLOW_SECONDS * 2)
    # A generous bound: the slow primary would have taken SLOW_SECONDS.
    assert time.monotonic() - started < SLOW_SECONDS / 2
    assert response.status_code == 200 and response.headers[REVISION] == "v1"
    samples = scrape(gateway.url)
    assert metric(samples, FAILURES, revision="v2", reason="deadline") == 1
    assert metric(samples, FALLBACKS, revision="v2") == 1
    assert metric(samples, REQUESTS, revision="v1", code="200") == 1

    # Not for a request that must not be sent twice: no deadline, the primary's own timeout (504).
    before = served_by(steady)
    refused = httpx.post(f"{gateway.url}/v2/models/iris/infer", json=ONE_ROW, timeout=SLOW_SECONDS * 2,
                         headers={IDEMPOTENT: "false"})
    assert refused.status_code == 504 and refused.headers[REVISION] == "v2"
    assert served_by(steady) == before
    samples = scrape(gateway.url)
    assert metric(samples, FAILURES, revision="v2", reason="timeout") == 1
    assert metric(samples, FALLBACKS, revision="v2") == 1  # still only the first request


def test_a_request_marked_non_idempotent_never_reaches_the_fallback(broken, steady, start_gateway):
    gateway = start_gateway(routes(broken.port, steady.port, {"revision": "v1"}))
    before = served_by(steady)
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        answers = [infer(client, TWO_ROWS, {IDEMPOTENT: value}) for value in ("false", "FALSE", "False")]
        assert [(r.status_code, r.headers[REVISION]) for r in answers] == [(500, "v2")] * 3
        assert "inference failed" in answers[0].json()["error"]  # the primary's own error
        # Any other value is no objection.
        assert infer(client, TWO_ROWS, {IDEMPOTENT: "true"}).headers[REVISION] == "v1"
    assert served_by(steady) == before + 1
    samples = scrape(gateway.url)
    assert metric(samples, REQUESTS, revision="v2", code="500") == 3
    assert metric(samples, FALLBACKS, revision="v2") == 1


def test_without_a_fallback_key_5xx_answers_pass_through(broken, steady, start_gateway):
    gateway = start_gateway(routes(broken.port, steady.port, None))
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        answers = [infer(client, TWO_ROWS) for _ in range(5)]
        own = [infer(client, ONE_ROW) for _ in range(5)]
    assert [(r.status_code, r.headers[REVISION]) for r in answers] == [(500, "v2")] * 5
    # A fallback-role revision takes no weighted traffic.
    assert [(r.status_code, r.headers[REVISION]) for r in own] == [(200, "v2")] * 5
    assert served_by(steady) == 0
    samples = scrape(gateway.url)
    assert metric(samples, REQUESTS, revision="v2", code="500") == 5
    assert metric(samples, FALLBACKS, revision="v2") == 0


def test_the_coroutine_path_falls_back_too(broken, slow, steady):
    """``Proxy.forward`` (the gateway's path when ``begin`` cannot send) in this process,
    against the same servers: a 5xx answer and a missed deadline both end at the fallback."""

    def route_to(primary_port: int, deadline_ms: int | None):
        fallback = {"revision": "v1"} | ({"deadlineMs": deadline_ms} if deadline_ms else {})
        return parse_route_table(routes(primary_port, steady.port, fallback)).models["iris"]

    async def scenario() -> list:
        metrics = GatewayMetrics()
        balancer = Balancer("least-outstanding", 3, 10.0)
        proxy = Proxy(balancer, metrics, 30.0)
        body = httpx.Request("POST", "http://x", json=TWO_ROWS).content
        headers = [(b"content-type", b"application/json")]
        results = []
        try:
            for route in (route_to(broken.port, None), route_to(slow.port, 200)):
                outcome = await asyncio.wait_for(proxy.forward(
                    "iris", route, choose(route, {}), b"POST", b"/v2/models/iris/infer", headers, body),
                    SLOW_SECONDS / 2)
                results.append((outcome.revision.name, outcome.status))
        finally:
            balancer.close()
        samples = [(s.name, s.labels, s.value)
                   for family in metrics.registry.collect() for s in family.samples]
        results.append(metric(samples, FAILURES, revision="v2", reason="error_status"))
        results.append(metric(samples, FAILURES, revision="v2", reason="deadline"))
        results.append(metric(samples, FALLBACKS, revision="v2"))
        return results

    assert asyncio.run(scenario()) == [("v1", 200), ("v1", 200), 1, 1, 2]
