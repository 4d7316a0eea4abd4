"""The gateway routing real traffic between real `modelrollout serve` processes."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.support.models import tiny_mlp, write
from tests.support.processes import free_port, wait_for

BODY = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}
REVISION = "x-modelrollout-revision"


@pytest.fixture
def two_revisions(start_server, tmp_path):
    """v1 and v2 of model 'iris': different weights, so their answers differ too."""
    servers = {}
    for name, seed in (("v1", 0), ("v2", 1)):
        model = write(tmp_path / name / "model.onnx", tiny_mlp(seed=seed))
        servers[name] = start_server(["--model-uri", str(model), "--model-name", "iris"])
    return servers


def routes(servers, v2_weight: int, **extra) -> dict:
    revisions = [
        {"name": "v1", "role": "stable", "weight": 100 - v2_weight,
         "endpoints": [f"127.0.0.1:{servers['v1'].port}"]},
        {"name": "v2", "role": "candidate", "weight": v2_weight,
         "endpoints": [f"127.0.0.1:{servers['v2'].port}"]},
    ]
    return {"models": {"iris": {"revisions": revisions, **extra}}}


def infer(client: httpx.Client, headers: dict | None = None) -> httpx.Response:
    return client.post("/v2/models/iris/infer", json=BODY, headers=headers or {})


def metric(url: str, line_start: str) -> float:
    total = 0.0
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(line_start):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_split_follows_the_weights_and_answers_come_from_the_named_revision(two_revisions, start_gateway):
    gateway = start_gateway(routes(two_revisions, 20))
    direct = {
        name: httpx.post(f"{server.url}/v2/models/iris/infer", json=BODY).json()["outputs"]
        for name, server in two_revisions.items()
    }
    counts = {"v1": 0, "v2": 0}
    with httpx.Client(base_url=gateway.url) as client:
        for _ in range(1000):
            response = infer(client)
            assert response.status_code == 200
            revision = response.headers[REVISION]
            assert response.json()["outputs"] == direct[revision]
            counts[revision] += 1
    # Binomial(1000, 0.2): mean 200, sd 12.6; 5 sd either side.
    assert abs(counts["v2"] - 200) < 63, counts
    served_v2 = 'modelrollout_gateway_requests_total{code="200",model="iris",revision="v2"'
    assert metric(gateway.url, served_v2) == counts["v2"]
    assert metric(gateway.url, 'modelrollout_gateway_weight_percent{model="iris",revision="v2"') == 20


def test_sticky_users_stay_and_few_move_when_the_weight_rises(two_revisions, start_gateway):
    gateway = start_gateway(routes(two_revisions, 10, sticky={"header": "x-user-id"}))
    users = [f"user-{i}" for i in range(300)]
    with httpx.Client(base_url=gateway.url) as client:
        def assignment() -> dict[str, str]:
            return {u: infer(client, {"x-user-id": u}).headers[REVISION] for u in users}

        before = assignment()
        assert assignment() == before
        gateway.write_routes(routes(two_revisions, 40, sticky={"header": "x-user-id"}))
        wait_until(lambda: infer(client).status_code == 200 and metric(
            gateway.url, 'modelrollout_gateway_weight_percent{model="iris",revision="v2"') == 40)
        after = assignment()
    moved = [u for u in users if before[u] != after[u]]
    assert all(before[u] == "v1" and after[u] == "v2" for u in moved)
    # 30% of users should move (10% -> 40%): binomial sd ~8 of 300; 5 sd either side.
    assert 50 < len(moved) < 130, len(moved)


def test_header_rule_wins_over_weights(two_revisions, start_gateway):
    match = [{"header": "x-modelrollout-revision", "value": "v2", "revision": "v2"}]
    gateway = start_gateway(routes(two_revisions, 0, match=match))
    with httpx.Client(base_url=gateway.url) as client:
        preview = {"x-modelrollout-revision": "v2"}
        assert {infer(client, preview).headers[REVISION] for _ in range(20)} == {"v2"}
        assert {infer(client).headers[REVISION] for _ in range(20)} == {"v1"}


def test_revision_without_endpoints_falls_back_and_counts_against_itself(two_revisions, start_gateway):
    doc = routes(two_revisions, 50)
    dead = free_port()  # nothing listens: a crashed pod still in the table
    doc["models"]["iris"]["revisions"][1]["endpoints"] = [f"127.0.0.1:{dead}"]
    gateway = start_gateway(doc, args=["--eject-after-failures", "1000"])
    with httpx.Client(base_url=gateway.url) as client:
        responses = [infer(client) for _ in range(100)]
    assert all(r.status_code == 200 and r.headers[REVISION] == "v1" for r in responses)
    prefix = 'modelrollout_gateway_upstream_failures_total{model="iris",reason="connect",revision="v2"'
    assert 30 < metric(gateway.url, prefix) <= 100  # every request that drew v2 failed over
    assert metric(gateway.url, 'modelrollout_gateway_fallbacks_total{model="iris",revision="v2"') == (
        metric(gateway.url, prefix)
    )
    # No ready endpoint at all: the same, counted as no_endpoint.
    doc["models"]["iris"]["revisions"][1]["endpoints"] = [
        {"address": f"127.0.0.1:{two_revisions['v2'].port}", "ready": False}
    ]
    gateway.write_routes(doc)
    no_endpoint = (
        'modelrollout_gateway_upstream_failures_total{model="iris",reason="no_endpoint",revision="v2"'
    )
    with httpx.Client(base_url=gateway.url) as client:
        wait_until(lambda: infer(client).status_code == 200 and metric(gateway.url, no_endpoint) > 0)
        assert {infer(client).headers[REVISION] for _ in range(30)} == {"v1"}


def test_route_changes_under_load_fail_no_request(two_revisions, start_gateway):
    gateway = start_gateway(routes(two_revisions, 0))
    statuses: list[int] = []

    async def load(stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
            async def worker() -> None:
                while not stop.is_set() and len(statuses) < 20_000:
                    response = await client.post("/v2/models/iris/infer", json=BODY)
                    statuses.append(response.status_code)
            await asyncio.gather(*(worker() for _ in range(8)))

    async def scenario() -> None:
        stop = asyncio.Event()
        loader = asyncio.create_task(load(stop))
        for step in range(10):  # ten weight changes, 0.3 s apart
            await asyncio.sleep(0.3)
            gateway.write_routes(routes(two_revisions, (step + 1) * 10))
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.wait_for(loader, 30)

    asyncio.run(scenario())
    assert len(statuses) > 100 and set(statuses) == {200}
    with httpx.Client(base_url=gateway.url) as client:
        # The last table is 100% v2; it must be in force within a second.
        wait_until(lambda: infer(client).headers[REVISION] == "v2", seconds=1.0)
        assert {infer(client).headers[REVISION] for _ in range(20)} == {"v2"}


def test_errors_limits_and_request_ids(two_revisions, start_gateway):
    gateway = start_gateway(routes(two_revisions, 0), args=["--max-body-bytes", "2000"])
    with httpx.Client(base_url=gateway.url) as client:
        unknown = client.post("/v2/models/nope/infer", json=BODY)
        assert unknown.status_code == 404 and "nope" in unknown.json()["error"]
        big = client.post("/v2/models/iris/infer", content=b"x" * 5000)
        assert big.status_code == 413 and "limit" in big.json()["error"]
        given = infer(client, {"x-request-id": "trace-42"})
        assert given.headers["x-request-id"] == "trace-42"
        assert len(infer(client).headers["x-request-id"]) == 32
        # The upstream sees the same id: its refusal log line carries it.
        bad = client.post("/v2/models/iris/infer", json={"inputs": []},
                          headers={"x-request-id": "trace-43"})
        assert bad.status_code == 400 and bad.headers[REVISION] == "v1"
        assert '"request_id": "trace-43"' in two_revisions["v1"].logs()
        metadata = client.get("/v2/models/iris")
        assert metadata.status_code == 200 and metadata.json()["inputs"][0]["name"] == "input"


def test_invalid_route_update_is_refused_and_the_old_routes_stay(two_revisions, start_gateway):
    gateway = start_gateway(routes(two_revisions, 0))
    gateway.routes_path.write_text("models: {iris: {revisions: [{name: v1, weight: 70}]}}")
    rejected = 'modelrollout_gateway_route_updates_total{result="rejected"'
    wait_until(lambda: metric(gateway.url, rejected) >= 1)
    with httpx.Client(base_url=gateway.url) as client:
        assert {infer(client).headers[REVISION] for _ in range(10)} == {"v1"}
    assert "add up to 100" in gateway.logs()


def test_slow_upstream_is_answered_504(start_server, start_gateway, tiny_model):
    slow = start_server(["--model-uri", str(tiny_model), "--model-name", "iris",
                         "--max-batch-size", "4", "--max-queue-delay-us", "2000000"])
    doc = {"models": {"iris": {"revisions": [
        {"name": "v1", "role": "stable", "weight": 100, "endpoints": [f"127.0.0.1:{slow.port}"]}]}}}
    gateway = start_gateway(doc, args=["--upstream-timeout-seconds", "0.3"])
    started = time.monotonic()
    response = httpx.post(f"{gateway.url}/v2/models/iris/infer", json=BODY, timeout=10)
    assert response.status_code == 504 and "0.3" in response.json()["error"]
    assert time.monotonic() - started < 1.5
    timeouts = 'modelrollout_gateway_upstream_failures_total{model="iris",reason="timeout"'
    assert metric(gateway.url, timeouts) == 1


def test_sigterm_exits_zero(two_revisions, start_gateway):
    gateway = start_gateway(routes(two_revisions, 0))
    assert infer(httpx.Client(base_url=gateway.url)).status_code == 200
    assert gateway.stop() == 0


def wait_until(condition, seconds: float = 5.0) -> None:
    wait_for(condition, seconds, "the condition", poll_seconds=0.02)
