"""Dynamic batching and load shedding of a real `modelrollout serve`, under concurrency.

Every request carries its own input, so a batch that mixed up rows between requests
would hand someone else's answer back.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np
import pytest
from modelrollout.serving.contract import metric_names as names
from modelrollout.serving.examples import build_mlp

from tests.support.models import (
    embedding_lookup,
    fp32_request,
    identity,
    metric,
    reference,
    scrape,
    tiny_mlp,
    write,
)

BATCH_SIZE = names.SERVER_BATCH_SIZE
BATCH_FILL = names.SERVER_BATCH_FILL
THREADED_SIZES = [1024, 2048, 2048, 2048, 10]
TIMEOUT = httpx.Timeout(30.0)


async def post_all(url: str, bodies: list[dict], concurrency: int) -> list[httpx.Response]:
    """POST every body at once (at most ``concurrency`` connections); keep the order."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=TIMEOUT, limits=limits) as client:
        return await asyncio.gather(*(client.post(url, json=body) for body in bodies))


def fire(url: str, bodies: list[dict], concurrency: int = 16) -> list[httpx.Response]:
    return asyncio.run(post_all(url, bodies, concurrency))


def distinct_inputs(count: int, features: int, seed: int, max_rows: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        rng.normal(size=(int(rng.integers(1, max_rows + 1)), features)).astype(np.float32)
        for _ in range(count)
    ]


def assert_own_answers(responses, inputs, model: bytes, input_name: str = "input") -> None:
    for i, (response, x) in enumerate(zip(responses, inputs, strict=True)):
        assert response.status_code == 200, f"request {i}: {response.text}"
        (out,) = response.json()["outputs"]
        want = reference(model, {input_name: x})[0]
        assert out["shape"] == list(want.shape), f"request {i}"
        np.testing.assert_allclose(out["data"], want.ravel(), rtol=1e-5, atol=1e-6,
                                   err_msg=f"request {i} got another request's answer")


def test_concurrent_requests_share_batches_and_keep_their_own_answers(start_server,
                                                                      tiny_model: Path):
    server = start_server(["--model-uri", str(tiny_model), "--model-name", "tiny",
                           "--max-batch-size", "8", "--max-queue-delay-us", "20000"])
    url = f"{server.url}/v2/models/tiny/infer"
    inputs = distinct_inputs(16, 4, seed=1, max_rows=3)  # 1-3 rows each: uneven slicing
    responses = fire(url, [fp32_request(x) for x in inputs])
    assert_own_answers(responses, inputs, tiny_model.read_bytes())
    samples = scrape(server.url)
    runs = metric(samples, BATCH_SIZE + "_count")
    assert metric(samples, BATCH_SIZE + "_sum") == sum(len(x) for x in inputs)
    assert runs < len(inputs), "no two requests ever shared a run"
    assert metric(samples, BATCH_SIZE + "_bucket", le="8.0") == runs, "a run exceeded 8 rows"
    # The fill of each run, rows over the max batch size: the same runs, the same rows / 8.
    assert metric(samples, BATCH_FILL + "_count") == runs
    assert metric(samples, BATCH_FILL + "_sum") == pytest.approx(sum(len(x) for x in inputs) / 8)
    assert metric(samples, BATCH_FILL + "_bucket", le="1.0") == runs


def test_request_larger_than_max_batch_size_gets_400(start_server, tiny_model: Path):
    server = start_server(["--model-uri", str(tiny_model), "--model-name", "tiny",
                           "--max-batch-size", "8"])
    x = np.ones((9, 4), dtype=np.float32)
    response = httpx.post(f"{server.url}/v2/models/tiny/infer", json=fp32_request(x))
    assert response.status_code == 400
    assert "max batch size 8" in response.json()["error"]
    ok = httpx.post(f"{server.url}/v2/models/tiny/infer", json=fp32_request(x[:8]))
    assert ok.status_code == 200 and ok.json()["outputs"][0]["shape"] == [8, 3]


def test_requests_of_different_shapes_are_never_stacked(start_server, tmp_path: Path):
    model = identity("FP32", ["n", "m"])
    path = write(tmp_path / "id.onnx", model)
    server = start_server(["--model-uri", str(path), "--model-name", "id",
                           "--max-batch-size", "8", "--max-queue-delay-us", "20000"])
    rng = np.random.default_rng(2)
    inputs = [rng.normal(size=(1 + i % 2, 2 + i % 3)).astype(np.float32) for i in range(12)]
    responses = fire(f"{server.url}/v2/models/id/infer",
                     [fp32_request(x, name="x") for x in inputs])
    assert_own_answers(responses, inputs, model, input_name="x")


def test_full_queue_sheds_with_503_and_retry_after_and_loses_nothing(start_server,
                                                                     tiny_model: Path):
    # Admitted requests wait 1 s for company, so the queue stays full while the rest arrive.
    server = start_server(["--model-uri", str(tiny_model), "--model-name", "tiny",
                           "--max-batch-size", "8", "--max-queue-size", "2",
                           "--max-queue-delay-us", "1000000"])
    inputs = distinct_inputs(12, 4, seed=3)
    responses = fire(f"{server.url}/v2/models/tiny/infer", [fp32_request(x) for x in inputs])
    assert len(responses) == len(inputs)
    ok = [(r, x) for r, x in zip(responses, inputs, strict=True) if r.status_code == 200]
    shed = [r for r in responses if r.status_code == 503]
    assert len(ok) + len(shed) == len(inputs), [r.status_code for r in responses]
    assert len(ok) >= 2 and len(shed) >= 1
    for response in shed:
        assert int(response.headers["retry-after"]) >= 1
        assert "queue is full" in response.json()["error"]
    assert_own_answers([r for r, _ in ok], [x for _, x in ok], tiny_model.read_bytes())
    samples = scrape(server.url)
    assert metric(samples, "modelrollout_server_failures_total", reason="overloaded") == len(shed)
    assert metric(samples, "modelrollout_server_requests_total", code="503") == len(shed)
    assert metric(samples, "modelrollout_server_requests_total", code="200") == len(ok)


def test_without_batching_concurrent_requests_keep_their_own_answers(start_server,
                                                                     tmp_path: Path):
    # Big enough (40 MB of weights, ~1 ms a run) to run on worker threads rather than
    # inline on the event loop, which the server picks for runs under 100 us.
    model = build_mlp(THREADED_SIZES, seed=5)
    path = write(tmp_path / "mlp.onnx", model)
    server = start_server(["--model-uri", str(path), "--model-name", "mlp", "--workers", "2"])
    inputs = distinct_inputs(16, THREADED_SIZES[0], seed=4, max_rows=3)
    responses = fire(f"{server.url}/v2/models/mlp/infer", [fp32_request(x) for x in inputs])
    assert_own_answers(responses, inputs, model)
    samples = scrape(server.url)
    assert metric(samples, BATCH_SIZE + "_count") == len(inputs)  # one run per request
    assert metric(samples, BATCH_SIZE + "_bucket", le="1.0") == len(inputs)
    assert metric(samples, BATCH_FILL + "_count") == 0  # no batching, no fill
    assert '"inline": false' in server.logs(), "the model ran inline; pick a bigger one"


def test_tiny_model_inline_without_batching_keeps_answers_apart(start_server,
                                                                tiny_model: Path):
    server = start_server(["--model-uri", str(tiny_model), "--model-name", "tiny"])
    inputs = distinct_inputs(16, 4, seed=6, max_rows=2)
    responses = fire(f"{server.url}/v2/models/tiny/infer", [fp32_request(x) for x in inputs])
    assert_own_answers(responses, inputs, tiny_mlp())


def test_one_bad_request_does_not_fail_the_others_in_its_batch(start_server, tmp_path: Path):
    """An id outside the embedding table passes every check before the run and fails in
    onnxruntime: only its sender may get the error, not everyone batched with it."""
    model = embedding_lookup(vocabulary=10)
    path = write(tmp_path / "emb.onnx", model)
    server = start_server(["--model-uri", str(path), "--model-name", "emb",
                           "--max-batch-size", "8", "--max-queue-delay-us", "200000"])
    ids = [np.array([[i, 9 - i]], dtype=np.int64) for i in range(7)]
    bad = np.array([[3, 99]], dtype=np.int64)
    bodies = [{"inputs": [{"name": "ids", "datatype": "INT64", "shape": [1, 2],
                           "data": x.ravel().tolist()}]} for x in [*ids[:4], bad, *ids[4:]]]
    responses = fire(f"{server.url}/v2/models/emb/infer", bodies)
    refused = responses.pop(4)
    assert refused.status_code == 400 and "99" in refused.json()["error"]
    assert_own_answers(responses, ids, model, input_name="ids")
    samples = scrape(server.url)
    assert metric(samples, BATCH_SIZE + "_count") < len(bodies), "nothing was batched"
    assert metric(samples, "modelrollout_server_failures_total", reason="bad_request") == 1
