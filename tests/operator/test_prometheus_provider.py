"""The Prometheus provider against a real Prometheus, and against none."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from modelrollout.operator.analysis.judge import ERROR, FAILED, INCONCLUSIVE, SUCCESSFUL
from modelrollout.operator.analysis.providers.prometheus import PrometheusError, PrometheusProvider
from modelrollout.serving.examples import build_faulty_mlp

from modelrollout.harness.prometheus import PrometheusProcess
from tests.support.models import TINY_SIZES, write
from tests.support.operator_fixtures import metric
from tests.support.processes import free_port, wait_for

BODY = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}
ERROR_RATE = metric("error-rate", max=0.05, min_samples=10)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def measure_all(address: str, metrics, revision: str, routing: str = "builtin"):
    async with httpx.AsyncClient() as client:
        provider = PrometheusProvider(address, client, timeout_seconds=2)
        online = await provider.is_online()
        results = [await provider.measure(m, routing, "tiny", "default", revision, 15, "t") for m in metrics]
        return online, results


async def range_of(address: str, promql: str) -> list[tuple[float, float]]:
    """The last 10 s of ``promql``, a point a second."""
    async with httpx.AsyncClient() as client:
        provider = PrometheusProvider(address, client, timeout_seconds=5)
        now = time.time()
        return await provider.query_range(promql, now - 10, now, 1)


def wait_scraped(prometheus: PrometheusProcess, promql: str, want: float) -> None:
    """Until a scrape after the last request is in: ``promql`` gives ``want``."""
    def seen() -> bool:
        result = prometheus.query(promql)
        return bool(result) and float(result[0]["value"][1]) == want

    wait_for(seen, 10, f"Prometheus to see {promql} == {want}")


def test_measurements_from_a_real_prometheus(tmp_path, tiny_server, start_gateway):
    routes = {"models": {"tiny": {"revisions": [
        {"name": "v1", "role": "stable", "weight": 50, "endpoints": [f"127.0.0.1:{tiny_server.port}"]},
        {"name": "v2", "role": "candidate", "weight": 50, "endpoints": [f"127.0.0.1:{free_port()}"]},
        {"name": "v3", "role": "shadow", "weight": 0, "endpoints": []},
    ]}}}
    gateway = start_gateway(routes, args=["--eject-after-failures", "100000"])
    prometheus = PrometheusProcess(tmp_path / "prometheus", [f"127.0.0.1:{gateway.port}"])
    try:
        wait_for(lambda: prometheus.query('up{job="modelrollout"} == 1'), 15, "the gateway scraped")
        with httpx.Client(base_url=gateway.url) as client:
            sent, until = 0, time.monotonic() + 4
            while time.monotonic() < until and sent < 5000:
                client.post("/v2/models/tiny/infer", json=BODY)
                sent += 1
        wait_scraped(prometheus, 'sum(modelrollout_gateway_requests_total{model="tiny",revision="v1"})', sent)
        latency = metric("latency-p99", max=1.0, min_samples=10)
        custom = metric("served", query='sum(modelrollout_gateway_requests_total{model="{{model}}"})',
                            min=1)
        online, (v1_errors, v1_latency, v1_custom) = run(measure_all(prometheus.url,
                                                                     [ERROR_RATE, latency, custom], "v1"))
        assert online
        assert v1_errors.phase == SUCCESSFUL and v1_errors.value == pytest.approx(0.0)
        assert v1_latency.phase == SUCCESSFUL and 0 < v1_latency.value < 0.25
        assert v1_custom.phase == SUCCESSFUL and v1_custom.value >= sent
        _, (v2_errors,) = run(measure_all(prometheus.url, [ERROR_RATE], "v2"))
        assert v2_errors.phase == FAILED and v2_errors.value == pytest.approx(1.0)
        _, (v3_errors,) = run(measure_all(prometheus.url, [ERROR_RATE], "v3"))  # no traffic
        assert v3_errors.phase == INCONCLUSIVE
        # Over time: the served count only grows, and ends at every request sent.
        points = run(range_of(prometheus.url, 'sum(modelrollout_gateway_requests_total{revision="v1"})'))
        values = [v for _, v in points]
        assert len(points) >= 5 and values == sorted(values) and values[-1] == sent
        assert all(b - a == pytest.approx(1.0) for (a, _), (b, _) in zip(points, points[1:], strict=False))
        nothing = 'sum(modelrollout_gateway_requests_total{revision="none"})'
        assert run(range_of(prometheus.url, nothing)) == []
        with pytest.raises(PrometheusError, match=r"\d+ series; aggregate"):
            buckets = 'sum by (le) (modelrollout_gateway_request_duration_seconds_bucket{revision="v1"})'
            run(range_of(prometheus.url, buckets))
    finally:
        prometheus.stop()


def test_builtins_read_the_servers_revision_label_without_a_gateway(tmp_path, start_server, tiny_model):
    """gatewayAPI and replicas routing: no gateway of ours sees the traffic, so error-rate
    and latency-p99 come from the servers, told apart by the revision label (--revision)."""
    faulty = write(tmp_path / "faulty" / "model.onnx", build_faulty_mlp(TINY_SIZES))
    good = start_server(["--model-uri", str(tiny_model), "--model-name", "tiny", "--revision", "good"])
    bad = start_server(["--model-uri", str(faulty), "--model-name", "tiny", "--revision", "bad"])
    prometheus = PrometheusProcess(tmp_path / "prometheus", [f"127.0.0.1:{good.port}",
                                                              f"127.0.0.1:{bad.port}"])
    try:
        up = 'up{job="modelrollout"} == 1'
        wait_for(lambda: len(prometheus.query(up)) == 2, 15, "both servers scraped")
        answers = {good.url: [], bad.url: []}
        until = time.monotonic() + 4
        with httpx.Client() as client:
            for i in range(4000):
                if time.monotonic() > until:
                    break
                first = 0.9 if i % 4 == 0 else 0.1  # the faulty model fails above 0.5: 1 in 4
                row = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                   "data": [first, 0.2, 0.3, 0.4]}]}
                for url, codes in answers.items():
                    codes.append(client.post(f"{url}/v2/models/tiny/infer", json=row).status_code)
        assert set(answers[good.url]) == {200} and answers[bad.url].count(500) > 0
        wait_scraped(prometheus, 'sum(modelrollout_server_requests_total{revision="bad"})',
                     len(answers[bad.url]))
        latency = metric("latency-p99", max=1.0, min_samples=10)
        _, (good_errors, good_latency) = run(measure_all(prometheus.url, [ERROR_RATE, latency], "good",
                                                         "gatewayAPI"))
        assert good_errors.phase == SUCCESSFUL and good_errors.value == pytest.approx(0.0)
        assert good_latency.phase == SUCCESSFUL and 0 < good_latency.value < 0.25
        _, (bad_errors,) = run(measure_all(prometheus.url, [ERROR_RATE], "bad", "replicas"))
        share = answers[bad.url].count(500) / len(answers[bad.url])
        assert bad_errors.phase == FAILED and bad_errors.value == pytest.approx(share, abs=0.05)
        _, (idle,) = run(measure_all(prometheus.url, [ERROR_RATE], "none", "gatewayAPI"))  # no traffic
        assert idle.phase == INCONCLUSIVE
    finally:
        prometheus.stop()


def test_unreachable_prometheus_is_an_error_measurement():
    online, (measurement,) = run(measure_all(f"http://127.0.0.1:{free_port()}", [ERROR_RATE], "v1"))
    assert not online
    assert measurement.phase == ERROR and "unreachable" in measurement.message


def test_a_query_that_prometheus_refuses_says_why(tmp_path):
    prometheus = PrometheusProcess(tmp_path / "prometheus", [])
    try:
        async def scenario():
            async with httpx.AsyncClient() as client:
                provider = PrometheusProvider(prometheus.url, client)
                with pytest.raises(PrometheusError, match="refused the query"):
                    await provider.query("sum(rate(x[")
                assert await provider.query("vector(1) / 0 * 0") is None  # NaN: no data
                assert await provider.query("vector(0.25)") == 0.25
        run(scenario())
    finally:
        prometheus.stop()
