"""Shadow traffic end to end: real `modelrollout serve` processes behind a real
`modelrollout gateway`, real requests, and the gateway's own /metrics as the verdict.

The client is always answered by the stable revision; a copy of each request goes to
the shadow revision, whose answer is compared with the stable one's and counted.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.support.models import (
    binary_body,
    fp32_request,
    metric,
    perturbed,
    read_response,
    reference,
    scrape,
    tiny_mlp,
    unary,
    write,
)
from tests.support.processes import free_port
from tests.support.processes import wait_for as poll

pytestmark = pytest.mark.slow

COMPARISONS = "modelrollout_shadow_comparisons_total"
MIRRORED = "modelrollout_gateway_mirrored_total"
MAX_ABS_DIFF = "modelrollout_shadow_max_abs_difference"
SHADOW_DURATION = "modelrollout_shadow_request_duration_seconds"
ATOL, RTOL = 1e-5, 1e-3  # the gateway's defaults


def route_table(stable_port: int, shadow_port: int | None, percent: int = 100, model: str = "tiny") -> dict:
    revisions = [{"name": "v1", "role": "stable", "weight": 100, "endpoints": [f"127.0.0.1:{stable_port}"]}]
    route: dict = {"revisions": revisions}
    if shadow_port is not None:
        revisions.append(
            {"name": "shadow", "role": "shadow", "weight": 0, "endpoints": [f"127.0.0.1:{shadow_port}"]}
        )
        route["mirror"] = {"revision": "shadow", "percent": percent}
    return {"models": {model: route}}


def serve(start_server, model: Path, version: str, *args: str, name: str = "tiny"):
    return start_server(
        ["--model-uri", str(model), "--model-name", name, "--model-version", version, *args]
    )


def inputs(count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(1 + i % 4, 4)).astype(np.float32) for i in range(count)]


def infer(client: httpx.Client, url: str, x: np.ndarray, i: int) -> np.ndarray:
    """One request through the gateway, in one of three encodings by ``i``; the answer must
    come from v1. Returns the probabilities."""
    if i % 3 == 0:
        response = client.post(url, json={"inputs": [
            {"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}
        ]})
    else:
        # Binary input; binary output on every other one of these.
        body, headers = binary_body({"input": ("FP32", x)},
                                    {"parameters": {"binary_data_output": i % 3 == 2}})
        response = client.post(url, content=body, headers=headers)
    assert response.status_code == 200, f"request {i}: {response.text}"
    assert response.headers["x-modelrollout-revision"] == "v1", f"request {i}"
    _, outputs = read_response(response.content, response.headers.get("inference-header-content-length"))
    return outputs["probabilities"]


def send_all(gateway, xs: list[np.ndarray], model: bytes) -> None:
    """Every request answered by v1, with the stable model's own answer."""
    with httpx.Client(timeout=30.0) as client:
        for i, x in enumerate(xs):
            got = infer(client, gateway.url + "/v2/models/tiny/infer", x, i)
            np.testing.assert_allclose(got, reference(model, {"input": x})[0], rtol=1e-5, atol=1e-6,
                                       err_msg=f"request {i}")


def wait_for(gateway, done: Callable[[list], bool], timeout: float = 30.0) -> list:
    """Scrape the gateway until ``done(samples)``; the mirror queue drains on its own time."""
    last: list = []

    def settled() -> tuple | None:
        last[:] = [scrape(gateway.url)]
        return (last[0],) if done(last[0]) else None

    def story() -> str:
        shown = [s for s in (last[0] if last else []) if "shadow" in s[0] or "mirrored" in s[0]]
        return f"the mirror to settle: {shown}\n{gateway.logs()}"

    return poll(settled, timeout, story, poll_seconds=0.1)[0]


def comparisons(samples: list, result: str) -> float:
    return metric(samples, COMPARISONS, model="tiny", result=result) or 0


def compared(samples: list) -> float:
    return sum(comparisons(samples, r) for r in ("agree", "disagree", "error"))


def test_a_shadow_running_the_same_model_agrees_on_every_request(
    start_server, start_gateway, tmp_path
):
    model = write(tmp_path / "model.onnx", tiny_mlp())
    stable = serve(start_server, model, "1")
    shadow = serve(start_server, model, "2")  # another version string: only outputs are compared
    gateway = start_gateway(route_table(stable.port, shadow.port))
    count, bad = 200, 5
    send_all(gateway, inputs(count, seed=1), model.read_bytes())
    # Requests the stable revision refuses are mirrored too, but there is nothing to compare.
    for _ in range(bad):
        five_features = fp32_request(np.ones((1, 5), np.float32))
        wrong = httpx.post(gateway.url + "/v2/models/tiny/infer", json=five_features)
        assert wrong.status_code == 400 and wrong.headers["x-modelrollout-revision"] == "v1"

    samples = wait_for(gateway, lambda s: (metric(s, MIRRORED, result="sent") or 0) >= count + bad)
    assert comparisons(samples, "agree") == count, gateway.logs()
    assert comparisons(samples, "disagree") == 0 and comparisons(samples, "error") == 0
    assert metric(samples, MIRRORED, result="sent") == count + bad
    assert metric(samples, MAX_ABS_DIFF + "_bucket", le="1e-05") == count
    # Every copy reached the shadow, and the copies were its only traffic.
    shadow_samples = scrape(shadow.url)
    assert metric(shadow_samples, "modelrollout_server_requests_total", code="200") == count
    assert metric(shadow_samples, "modelrollout_server_requests_total", code="400") == bad


def test_a_shadow_with_other_weights_disagrees_and_the_differences_show(
    start_server, start_gateway, tmp_path
):
    stable_bytes = tiny_mlp()
    shadow_bytes = perturbed(stable_bytes, scale=0.1)
    stable = serve(start_server, write(tmp_path / "stable.onnx", stable_bytes), "1")
    shadow = serve(start_server, write(tmp_path / "shadow.onnx", shadow_bytes), "2")
    gateway = start_gateway(route_table(stable.port, shadow.port))
    count = 100
    xs = inputs(count, seed=2)
    # What the two models answer, worked out here: the gateway must count the same.
    local = [np.abs(reference(shadow_bytes, {"input": x})[0] - reference(stable_bytes, {"input": x})[0]).max()
             for x in xs]
    assert min(local) > 0.02 and max(local) < 0.9, "the differences must sit well inside (0.01, 1]"
    send_all(gateway, xs, stable_bytes)

    samples = wait_for(gateway, lambda s: compared(s) >= count)
    assert comparisons(samples, "disagree") == count
    assert comparisons(samples, "agree") == 0 and comparisons(samples, "error") == 0
    # Every difference is far above the tolerance, and the gateway measured what we did.
    assert metric(samples, MAX_ABS_DIFF + "_count") == count
    assert metric(samples, MAX_ABS_DIFF + "_bucket", le="0.01") == 0
    assert metric(samples, MAX_ABS_DIFF + "_bucket", le="1.0") == count
    assert metric(samples, MAX_ABS_DIFF + "_sum") == pytest.approx(sum(local), rel=1e-4)
    assert '"message": "shadow answer differs"' in gateway.logs()
    assert "probabilities: " in gateway.logs()


def test_the_client_never_waits_for_a_slow_shadow_and_overflow_is_dropped(
    start_server, start_gateway, tmp_path
):
    model = write(tmp_path / "model.onnx", tiny_mlp())
    stable = serve(start_server, model, "1")
    # A lone request waits 0.3 s for a batch of 4 that never fills: a slow shadow.
    shadow = serve(start_server, model, "2", "--max-batch-size", "4", "--max-queue-delay-us", "300000")
    mirrored = start_gateway(route_table(stable.port, shadow.port),
                             ["--mirror-queue-size", "2", "--mirror-concurrency", "1"])
    plain = start_gateway(route_table(stable.port, None))
    count = 60
    xs = inputs(count, seed=3)
    latency: dict[str, list[float]] = {"mirrored": [], "plain": []}
    with httpx.Client(timeout=30.0) as client:
        # Alternate the two gateways so both see the same machine load.
        for i, x in enumerate(xs):
            for name, gateway in (("mirrored", mirrored), ("plain", plain)):
                started = time.perf_counter()
                infer(client, gateway.url + "/v2/models/tiny/infer", x, i)
                latency[name].append(time.perf_counter() - started)

    def settled(samples: list) -> bool:
        return sum(metric(samples, MIRRORED, result=r) or 0 for r in ("sent", "dropped", "failed")) >= count

    samples = wait_for(mirrored, settled)
    sent = metric(samples, MIRRORED, result="sent") or 0
    dropped = metric(samples, MIRRORED, result="dropped") or 0
    assert sent + dropped == count and not metric(samples, MIRRORED, result="failed")
    assert dropped > 0 and sent >= 3  # one in flight and two queued at least
    assert comparisons(samples, "agree") == sent  # what was sent was compared, and agreed
    median_mirrored = statistics.median(latency["mirrored"])
    median_plain = statistics.median(latency["plain"])
    shadow_mean = metric(samples, SHADOW_DURATION + "_sum") / metric(samples, SHADOW_DURATION + "_count")
    # The shadow really was slow, yet the mirrored gateway answered about as fast as the
    # plain one (a client waiting on the shadow would be at least 10 times slower).
    assert shadow_mean > 10 * median_mirrored, (shadow_mean, median_mirrored)
    assert median_mirrored < 3 * median_plain, (median_mirrored, median_plain)


def test_a_shadow_that_is_down_is_an_error_and_the_client_never_notices(
    start_server, start_gateway, tmp_path
):
    model = write(tmp_path / "model.onnx", tiny_mlp())
    stable = serve(start_server, model, "1")
    gateway = start_gateway(route_table(stable.port, free_port()))  # nothing listens there
    count = 50
    send_all(gateway, inputs(count, seed=4), model.read_bytes())

    samples = wait_for(gateway, lambda s: compared(s) >= count)
    assert comparisons(samples, "error") == count
    assert comparisons(samples, "agree") == 0 and comparisons(samples, "disagree") == 0
    assert metric(samples, MIRRORED, result="failed") == count
    failures = "modelrollout_gateway_upstream_failures_total"
    assert metric(samples, failures, revision="shadow", reason="connect") >= 1
    assert metric(samples, "modelrollout_gateway_requests_total", revision="v1", code="200") == count
    assert not metric(samples, "modelrollout_gateway_requests_total", revision="shadow")
    assert "shadow gave no answer" in gateway.logs()


def test_a_shadow_answering_nan_disagrees_without_flooding_the_log_or_the_histogram(
    start_server, start_gateway, tmp_path
):
    stable = serve(start_server, write(tmp_path / "identity.onnx", unary("Identity")), "1", name="m")
    # sqrt of a negative number is NaN: a difference no tolerance covers.
    shadow = serve(start_server, write(tmp_path / "sqrt.onnx", unary("Sqrt")), "2", name="m")
    gateway = start_gateway(route_table(stable.port, shadow.port, model="m"))
    count = 30
    x = -np.ones((1, 4), dtype=np.float32)
    started = time.monotonic()
    with httpx.Client(timeout=30.0) as client:
        for i in range(count):
            response = client.post(gateway.url + "/v2/models/m/infer", json=fp32_request(x, name="x"))
            assert response.status_code == 200, f"request {i}: {response.text}"
            assert response.json()["outputs"][0]["data"] == [-1.0] * 4
    samples = wait_for(gateway, lambda s: (metric(s, COMPARISONS, model="m") or 0) >= count)
    elapsed = time.monotonic() - started
    assert metric(samples, COMPARISONS, model="m", result="disagree") == count
    # An infinite difference lands past the last bucket, and the sum stays a number.
    assert metric(samples, MAX_ABS_DIFF + "_count", model="m") == count
    assert metric(samples, MAX_ABS_DIFF + "_bucket", model="m", le="100.0") == 0
    assert np.isfinite(metric(samples, MAX_ABS_DIFF + "_sum", model="m"))
    # One line a second at most, each saying how many it held back.
    lines = [line for line in gateway.logs().splitlines() if "shadow answer differs" in line]
    assert 1 <= len(lines) <= elapsed + 1, lines
    assert "max abs diff inf" in lines[0]
