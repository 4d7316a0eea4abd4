"""What operators see of a real `modelrollout serve`: metrics, JSON logs, prediction logs
and the command line's help."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from modelrollout.serving.contract import metric_names as names

from tests.support.models import binary_request, fp32_request, metric, reference, scrape, tiny_mlp
from tests.support.processes import MODELROLLOUT, wait_for

SERVER_METRICS = sorted(
    value for key, value in vars(names).items() if key.startswith("SERVER_")
)
LABELS = {"model": "tiny", "version": "3", "revision": "r7"}


def tiny_args(model: Path, *extra: str) -> list[str]:
    return ["--model-uri", str(model), "--model-name", "tiny", "--model-version", "3", *extra]


def infer(server, body: dict, request_id: str | None = None, path: str = "tiny"):
    headers = {"X-Request-ID": request_id} if request_id else {}
    return httpx.post(f"{server.url}/v2/models/{path}/infer", json=body, headers=headers)


def send_traffic(server) -> dict[str, int]:
    """Good JSON and binary requests, one malformed, one for an unknown model."""
    rows = 0
    for i in range(5):
        x = np.full((1 + i % 2, 4), i, dtype=np.float32)
        assert infer(server, fp32_request(x)).status_code == 200
        rows += len(x)
    body, headers = binary_request(
        {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4],
                     "parameters": {"binary_data_size": 16}}]},
        np.ones((1, 4), dtype="<f4").tobytes(),
    )
    response = httpx.post(f"{server.url}/v2/models/tiny/infer", content=body, headers=headers)
    assert response.status_code == 200
    assert infer(server, {"inputs": "nope"}, "bad-req-42").status_code == 400
    assert infer(server, fp32_request(np.ones((1, 4), np.float32)), path="other").status_code == 404
    return {"good": 6, "rows": rows + 1, "bad": 2}


def families(url: str) -> set[str]:
    from prometheus_client.parser import text_string_to_metric_families

    return {f.name for f in text_string_to_metric_families(httpx.get(url + "/metrics").text)}


def test_metrics_cover_the_contract_with_plausible_values(start_server, tiny_model: Path):
    server = start_server(tiny_args(tiny_model, "--max-batch-size", "4",
                                    "--max-queue-delay-us", "1000", "--revision", "r7"))
    sent = send_traffic(server)
    total = sent["good"] + sent["bad"]
    missing = set(SERVER_METRICS) - families(server.url)
    assert not missing, f"metrics named in the contract but not exported: {missing}"
    s = scrape(server.url)
    assert metric(s, names.SERVER_REQUESTS + "_total", code="200", **LABELS) == sent["good"]
    assert metric(s, names.SERVER_REQUESTS + "_total", code="400", **LABELS) == 1
    assert metric(s, names.SERVER_REQUESTS + "_total", code="404", **LABELS) == 1
    duration = names.SERVER_REQUEST_DURATION
    assert metric(s, duration + "_count", **LABELS) == total
    assert 0 < metric(s, duration + "_sum") < 10 * total
    assert metric(s, duration + "_bucket", le="+Inf") == total
    for stage in names.STAGES:  # observed once per request that got that far
        stage_sum = metric(s, names.SERVER_STAGE_DURATION + "_sum", stage=stage, **LABELS)
        assert metric(s, names.SERVER_STAGE_DURATION + "_count", stage=stage) == sent["good"]
        assert 0 <= stage_sum < metric(s, duration + "_sum"), stage
    assert metric(s, names.SERVER_BATCH_SIZE + "_sum", **LABELS) == sent["rows"]
    assert metric(s, names.SERVER_QUEUE_DEPTH, **LABELS) == 0
    assert metric(s, names.SERVER_INFLIGHT, **LABELS) == 0
    digest = hashlib.sha256(tiny_model.read_bytes()).hexdigest()
    assert metric(s, names.SERVER_MODEL_INFO, sha256=digest, opset="17",
                  provider="CPUExecutionProvider", **LABELS) == 1
    assert metric(s, names.SERVER_MODEL_READY, **LABELS) == 1
    assert 0 < metric(s, names.SERVER_MODEL_LOAD_DURATION, **LABELS) < 60
    for reason in names.FAILURE_REASONS:  # exported from the start, so rate() works
        want = sent["bad"] if reason == "bad_request" else 0
        assert metric(s, names.SERVER_FAILURES + "_total", reason=reason, **LABELS) == want
    assert metric(s, names.SERVER_PREDICTION_LOG_DROPPED + "_total", **LABELS) == 0
    label_names = {key for _, labels, _ in s for key in labels}
    assert not label_names & {"request_id", "id", "user"}, "high-cardinality label"


def json_records(text: str) -> list[dict]:
    records = []
    for line in text.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
    return records


def test_logs_are_json_lines_naming_refused_requests(start_server, tiny_model: Path):
    server = start_server(tiny_args(tiny_model))
    send_traffic(server)
    records = json_records(server.logs())
    refused = [r for r in records if r.get("request_id") == "bad-req-42"]
    assert len(refused) == 1, records
    assert refused[0]["message"] == "inference request refused"
    assert refused[0]["status"] == 400 and "inputs" in refused[0]["error"]
    assert {"time", "level", "logger", "message"} <= set(refused[0])
    # Prediction logging is off by default: no record carries inputs or outputs.
    assert not [r for r in records if "inputs" in r or "outputs" in r]


def read_lines(path: Path, count: int, timeout: float = 5.0) -> list[dict]:
    """The prediction log's lines once it holds ``count`` of them (a thread writes it)."""
    def written() -> list[bytes]:
        lines = path.read_bytes().splitlines() if path.exists() else []
        return lines if len(lines) >= count else []

    return [json.loads(line) for line in wait_for(written, timeout, f"{path} to hold {count} lines")]


def test_prediction_log_writes_one_json_line_per_request(start_server, tiny_model, tmp_path):
    log_path = tmp_path / "predictions.jsonl"
    server = start_server(tiny_args(tiny_model, "--prediction-log", str(log_path),
                                    "--prediction-log-sample-rate", "1.0"))
    rng = np.random.default_rng(7)
    sent = {}
    for i in range(3):
        x = rng.normal(size=(2, 4)).astype(np.float32)
        response = infer(server, fp32_request(x), f"pred-{i}")
        assert response.status_code == 200
        sent[f"pred-{i}"] = (x, response.json()["outputs"][0]["data"])
    assert infer(server, {"inputs": []}, "refused-1").status_code == 400
    before_stop = time.time()
    read_lines(log_path, 3)  # wait for the writer thread
    assert server.stop() == 0  # flushes and closes the log: nothing else may appear
    lines = [json.loads(line) for line in log_path.read_bytes().splitlines()]
    assert sorted(line["request_id"] for line in lines) == sorted(sent), "one line per 200"
    for line in lines:
        x, answer = sent[line["request_id"]]
        assert line["model"] == "tiny" and line["version"] == "3"
        assert before_stop - 60 < line["time"] <= before_stop
        np.testing.assert_allclose(line["inputs"]["input"], x, rtol=1e-6)
        np.testing.assert_allclose(np.ravel(line["outputs"]["probabilities"]), answer,
                                   rtol=1e-6)
        np.testing.assert_allclose(line["outputs"]["probabilities"],
                                   reference(tiny_mlp(), {"input": x})[0], rtol=1e-5)


def test_prediction_log_sample_rate_zero_writes_nothing(start_server, tiny_model, tmp_path):
    log_path = tmp_path / "predictions.jsonl"
    server = start_server(tiny_args(tiny_model, "--prediction-log", str(log_path),
                                    "--prediction-log-sample-rate", "0"))
    for _ in range(20):
        assert infer(server, fp32_request(np.ones((1, 4), np.float32))).status_code == 200
    assert server.stop() == 0  # the writer has drained and closed the file
    assert log_path.read_bytes() == b""


def test_serve_help_lists_every_environment_variable():
    from modelrollout.cli import serve

    result = subprocess.run([MODELROLLOUT, "serve", "--help"], capture_output=True, text=True,
                            timeout=30, env={"COLUMNS": "100", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    envvars = [p.envvar for p in serve.params if p.envvar]
    assert "MODELROLLOUT_MODEL_URI" in envvars and len(envvars) >= 20
    for envvar in envvars:
        assert envvar in result.stdout, f"{envvar} missing from --help"
