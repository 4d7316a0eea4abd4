"""The builtin analysis queries, run by a real Prometheus scraping a real gateway."""

from __future__ import annotations

import time

import httpx
import pytest
from modelrollout.operator.analysis.queries import BUILTIN, render

from modelrollout.harness.prometheus import PrometheusProcess
from tests.support.processes import free_port, wait_for

BODY = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}


@pytest.fixture
def prometheus_over_gateway(tmp_path, tiny_server, start_gateway):
    """v1 serves; v2 (candidate, 50%) has an endpoint where nothing listens, like a crashed
    pod; v3 is a shadow nobody sends anything to. Prometheus scrapes the gateway."""
    routes = {"models": {"iris": {"revisions": [
        {"name": "v1", "role": "stable", "weight": 50, "endpoints": [f"127.0.0.1:{tiny_server.port}"]},
        {"name": "v2", "role": "candidate", "weight": 50, "endpoints": [f"127.0.0.1:{free_port()}"]},
        {"name": "v3", "role": "shadow", "weight": 0, "endpoints": [f"127.0.0.1:{tiny_server.port}"]},
    ]}}}
    # The upstream server serves "tiny": the gateway's model name is only its routing key.
    routes["models"]["tiny"] = routes["models"].pop("iris")
    gateway = start_gateway(routes, args=["--eject-after-failures", "100000"])
    prometheus = PrometheusProcess(tmp_path / "prometheus", [f"127.0.0.1:{gateway.port}"])
    try:
        yield gateway, prometheus
    finally:
        prometheus.stop()


def value(prometheus: PrometheusProcess, template: str, revision: str) -> float | None:
    result = prometheus.query(render(template, "tiny", "default", revision, 15))
    return float(result[0]["value"][1]) if result else None


def test_error_rate_latency_and_samples_from_real_scrapes(prometheus_over_gateway):
    gateway, prometheus = prometheus_over_gateway
    # rate() needs two samples in its window: let the scrapes start before the traffic.
    wait_for(lambda: prometheus.query('up{job="modelrollout"} == 1'), 15, "Prometheus to scrape the gateway",
             poll_seconds=0.2)
    sent = 0
    deadline = time.monotonic() + 4  # traffic across several 1 s scrapes
    with httpx.Client(base_url=gateway.url) as client:
        while time.monotonic() < deadline and sent < 5000:
            assert client.post("/v2/models/tiny/infer", json=BODY).status_code == 200
            sent += 1
    error_rate, latency, samples = (BUILTIN["builtin"]["error-rate"], BUILTIN["builtin"]["latency-p99"],
                                    BUILTIN["builtin"]["error-rate"])
    served = 'sum(modelrollout_gateway_requests_total{model="tiny",revision="v1"})'
    def all_seen() -> bool:  # a scrape after the last request is in
        result = prometheus.query(served)
        return bool(result) and float(result[0]["value"][1]) == sent

    wait_for(all_seen, 10, lambda: f"Prometheus to see all {sent} requests: {prometheus.query(served)}",
             poll_seconds=0.2)
    v2_samples = value(prometheus, samples.samples, "v2")
    # Every request drawn to v2 fell back to v1: v2's error rate is 1, v1's is 0.
    assert value(prometheus, error_rate.value, "v2") == pytest.approx(1.0)
    assert value(prometheus, error_rate.value, "v1") == pytest.approx(0.0)
    # About half of the requests were drawn to each (increase() extrapolates a little).
    assert 0.3 * sent < v2_samples < 0.7 * sent
    assert 0 < value(prometheus, latency.value, "v1") < 0.25
    # No traffic at all: no data (0/0 is NaN; no buckets, no quantile) and zero samples,
    # which the judge turns into Inconclusive, never a pass.
    idle = value(prometheus, error_rate.value, "v3")
    assert idle is None or idle != idle
    assert value(prometheus, latency.value, "v3") is None
    assert value(prometheus, samples.samples, "v3") == 0


@pytest.fixture
def prometheus_over_a_mirror(tmp_path, tiny_server, tiny_model, start_server, start_gateway):
    """Two models served by stable v1 at 100%, each mirrored at 100% to a v2 at weight 0:
    "tiny"'s v2 runs the same model (its answers agree); "dead"'s v2 has nothing behind its
    endpoint (every copy fails)."""
    up = f"127.0.0.1:{tiny_server.port}"
    dead = start_server(["--model-uri", str(tiny_model), "--model-name", "dead", "--model-version", "1"])

    def mirrored(shadow_endpoint: str, stable_endpoint: str = up) -> dict:
        stable = {"name": "v1", "role": "stable", "weight": 100, "endpoints": [stable_endpoint]}
        shadow = {"name": "v2", "role": "candidate", "weight": 0, "endpoints": [shadow_endpoint]}
        return {"revisions": [stable, shadow], "mirror": {"revision": "v2", "percent": 100}}

    routes = {"models": {"tiny": mirrored(up),
                         "dead": mirrored(f"127.0.0.1:{free_port()}", f"127.0.0.1:{dead.port}")}}
    gateway = start_gateway(routes, args=["--eject-after-failures", "100000"])
    prometheus = PrometheusProcess(tmp_path / "prometheus", [f"127.0.0.1:{gateway.port}"])
    try:
        yield gateway, prometheus
    finally:
        prometheus.stop()


def test_shadow_agreement_error_rate_and_latency_ratio_from_real_scrapes(prometheus_over_a_mirror):
    gateway, prometheus = prometheus_over_a_mirror
    deadline = time.monotonic() + 15
    while not prometheus.query('up{job="modelrollout"} == 1'):
        assert time.monotonic() < deadline, "Prometheus did not scrape the gateway within 15 s"
        time.sleep(0.2)
    sent = 0
    deadline = time.monotonic() + 4
    with httpx.Client(base_url=gateway.url) as client:
        while time.monotonic() < deadline and sent < 3000:
            for model in ("tiny", "dead"):  # "dead" is served by v1 too: only its copies fail
                assert client.post(f"/v2/models/{model}/infer", json=BODY).status_code == 200
            sent += 1
    compared = 'sum(modelrollout_shadow_comparisons_total{revision="v2"}) by (model)'
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # every copy compared and scraped
        counts = {r["metric"]["model"]: float(r["value"][1]) for r in prometheus.query(compared)}
        if counts.get("tiny") == sent and counts.get("dead") == sent:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"Prometheus never saw all {sent} comparisons per model: {prometheus.query(compared)}")
    shadow = BUILTIN["builtin"]

    def of(model: str, template: str) -> float | None:
        result = prometheus.query(render(template, model, "default", "v2", 15, "v1"))
        return float(result[0]["value"][1]) if result else None

    assert of("tiny", shadow["shadow-agreement"].value) == pytest.approx(1.0)
    assert of("tiny", shadow["shadow-error-rate"].value) == pytest.approx(0.0)
    assert 0.3 * sent < of("tiny", shadow["shadow-agreement"].samples) <= 1.5 * sent
    assert 0.1 < of("tiny", shadow["shadow-latency-ratio"].value) < 10  # the same model, both sides
    assert of("dead", shadow["shadow-error-rate"].value) == pytest.approx(1.0)
    assert of("dead", shadow["shadow-agreement"].samples) == 0  # nothing compared: inconclusive
