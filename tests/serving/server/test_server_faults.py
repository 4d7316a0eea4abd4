"""Faults around a real `modelrollout serve`: bad digests, model downloads that fail or
race, model folders, configuration from the environment, and shutdown on SIGTERM (drain,
grace, and a download that is still retrying).

Models travel over HTTP from a threaded http.server on 127.0.0.1 that each test starts
and stops itself.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from modelrollout.serving.examples import build_mlp

from tests.support.models import fp32_request, metric, reference, scrape, tiny_mlp, write
from tests.support.processes import wait_for

FAILURES = "modelrollout_server_failures_total"
X = np.array([[0.5, -1.0, 2.0, 0.25]], dtype=np.float32)


class ModelHost:
    """A tiny HTTP file server: streams files chunked, can fail the first requests, and
    can hold each download after its first chunk until ``overlap`` downloads are running."""

    def __init__(self, files: dict[str, bytes], fail_first: int = 0,
                 chunk: int = 64 * 1024, overlap: int = 1) -> None:
        self.files = files
        self.fail_first = fail_first
        self.chunk = chunk
        self.overlap = overlap
        self.hits: list[tuple[str, int]] = []  # (path, status) per request
        self.active = 0
        self.max_active = 0  # most downloads in progress at once
        self._lock = threading.Condition()
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{path}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _status_for(self, path: str) -> int:
        with self._lock:
            failing = self.fail_first > 0
            self.fail_first -= failing
            status = 500 if failing else 200 if path in self.files else 404
            self.hits.append((path, status))
            return status

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        host = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                status = host._status_for(self.path)
                if status != 200:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Transfer-Encoding", "chunked")  # streamed: no length up front
                self.end_headers()
                host._stream(self.wfile, host.files[self.path])

            def log_message(self, *args) -> None:
                pass

        return Handler

    def _stream(self, out, data: bytes) -> None:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self._lock.notify_all()
        try:
            for start in range(0, len(data), self.chunk):
                piece = data[start : start + self.chunk]
                out.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                out.flush()
                if start == 0:
                    self._wait_for_overlap()
            out.write(b"0\r\n\r\n")
        finally:
            with self._lock:
                self.active -= 1

    def _wait_for_overlap(self) -> None:
        with self._lock:
            self._lock.wait_for(lambda: self.max_active >= self.overlap, timeout=10)


@pytest.fixture
def model_host() -> Iterator[Callable[..., ModelHost]]:
    hosts: list[ModelHost] = []

    def start(files: dict[str, bytes], **kwargs) -> ModelHost:
        hosts.append(ModelHost(files, **kwargs))
        return hosts[-1]

    yield start
    for host in hosts:
        host.stop()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def serve_args(uri: str, *extra: str, name: str = "m") -> list[str]:
    return ["--model-uri", uri, "--model-name", name, *extra]


def log_records(server) -> list[dict]:
    records = []
    for line in server.logs().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"log line is not JSON: {line!r}")
    return records


def failure_count(server, reason: str) -> float | None:
    return metric(scrape(server.url), FAILURES, reason=reason)


def loaded_or_failed(server) -> bool:
    samples = scrape(server.url)
    return (metric(samples, "modelrollout_server_model_ready") == 1
            or (metric(samples, FAILURES) or 0) > 0)


def assert_unready(server, reason: str, keyword: str, name: str = "m") -> None:
    """Live, unready, refusing inference with a 503 that says why; counted once by reason."""
    wait_for(lambda: failure_count(server, reason) == 1, 30, f"failure reason {reason}")
    assert httpx.get(server.url + "/v2/health/live").status_code == 200
    ready = httpx.get(server.url + "/v2/health/ready")
    assert ready.status_code == 503
    assert ready.json()["ready"] is False and keyword in ready.json()["error"]
    infer = httpx.post(f"{server.url}/v2/models/{name}/infer", json=fp32_request(X))
    assert infer.status_code == 503
    assert "not ready" in infer.json()["error"] and keyword in infer.json()["error"]
    samples = scrape(server.url)
    assert metric(samples, "modelrollout_server_model_ready") == 0
    assert metric(samples, "modelrollout_server_model_info") is None
    assert server.proc.poll() is None


def assert_serves(server, model_bytes: bytes, model_path: str = "/v2/models/m") -> dict:
    response = httpx.post(f"{server.url}{model_path}/infer", json=fp32_request(X))
    assert response.status_code == 200, response.text
    (out,) = response.json()["outputs"]
    np.testing.assert_allclose(out["data"], reference(model_bytes, {"input": X})[0].ravel(),
                               rtol=1e-5)
    return response.json()


# --- Digests ---


def test_sha256_mismatch_stays_live_but_unready(start_server, tiny_model):
    wrong = "ab" * 32
    server = start_server(serve_args(str(tiny_model), "--sha256", wrong), ready=False)
    assert_unready(server, "sha256_mismatch", "sha256")
    (record,) = [r for r in log_records(server) if r.get("reason") == "sha256_mismatch"]
    assert record["level"] == "ERROR" and record["model"] == "m"
    assert "unready" in record["message"]
    assert wrong in record["error"] and sha256(tiny_model.read_bytes()) in record["error"]


def test_file_uri_with_the_right_sha256_serves(start_server, tiny_model):
    digest = sha256(tiny_model.read_bytes())
    server = start_server(serve_args(tiny_model.as_uri(), "--sha256", digest.upper()))
    assert_serves(server, tiny_model.read_bytes())
    assert metric(scrape(server.url), "modelrollout_server_model_info", sha256=digest) == 1


def test_model_folder_brings_metadata_and_labels(start_server, tmp_path):
    folder = tmp_path / "iris"
    model = write(folder / "model.onnx", tiny_mlp(seed=3))
    (folder / "metadata.json").write_text('{"owner": "team-ml", "trained": "2024-05-01"}')
    (folder / "labels.txt").write_text("setosa\nversicolor\n\nvirginica\n")
    server = start_server(serve_args(folder.as_uri()))
    assert_serves(server, model.read_bytes())
    parameters = httpx.get(server.url + "/v2/models/m").json()["parameters"]
    assert parameters["owner"] == "team-ml" and parameters["trained"] == "2024-05-01"
    assert parameters["labels"] == ["setosa", "versicolor", "virginica"]
    assert parameters["sha256"] == sha256(model.read_bytes())


# --- Downloads over HTTP ---


def test_http_model_is_streamed_into_the_cache(start_server, model_host, tmp_path):
    model = build_mlp([4, 256, 256, 3], seed=1)  # ~270 KB: several chunks
    host = model_host({"/models/big/model.onnx": model}, chunk=16 * 1024)
    cache = tmp_path / "cache"
    server = start_server(serve_args(host.url("/models/big/model.onnx"), "--sha256",
                                     sha256(model), "--cache-dir", str(cache)))
    assert_serves(server, model)
    assert host.hits == [("/models/big/model.onnx", 200)]
    cached = [p for p in cache.iterdir() if p.is_file()]
    assert [p.read_bytes() == model for p in cached] == [True], "one complete copy, no .part"


def test_http_download_retries_server_errors(start_server, model_host, tmp_path):
    model = tiny_mlp(seed=2)
    host = model_host({"/m.onnx": model}, fail_first=2)
    server = start_server(serve_args(host.url("/m.onnx"), "--download-retries", "3",
                                     "--cache-dir", str(tmp_path / "cache")))
    assert_serves(server, model)
    assert [status for _, status in host.hits] == [500, 500, 200]
    attempts = [r["attempt"] for r in log_records(server)
                if r["message"] == "model download failed"]
    assert attempts == [1, 2]
    assert failure_count(server, "download") == 0


def test_http_404_is_not_retried_and_leaves_the_server_unready(start_server, model_host,
                                                                tmp_path):
    host = model_host({})
    uri = host.url("/missing/model.onnx?token=secret")
    server = start_server(serve_args(uri, "--download-retries", "3", "--cache-dir",
                                     str(tmp_path / "cache")), ready=False)
    assert_unready(server, "download", "404")
    assert [status for _, status in host.hits] == [404]
    assert "secret" not in server.logs(), "signed-URL query strings must not be logged"


def test_concurrent_downloads_into_one_cache_both_serve(start_server, model_host, tmp_path):
    """Replicas on one machine share the default cache folder; their downloads overlap."""
    model = build_mlp([4, 256, 256, 3], seed=4)
    host = model_host({"/model.onnx": model}, chunk=8 * 1024, overlap=2)
    args = serve_args(host.url("/model.onnx"), "--cache-dir", str(tmp_path / "cache"))
    servers = [start_server(args, ready=False) for _ in range(2)]
    for server in servers:
        wait_for(lambda s=server: loaded_or_failed(s), 30, "the model to load or fail")
        assert_serves(server, model)
    assert host.max_active == 2, "the two downloads did not overlap; the test proves nothing"


# --- Configuration from the environment ---


def test_model_comes_from_environment_variables(start_server, tiny_model):
    env = {
        "MODELROLLOUT_MODEL_URI": str(tiny_model),
        "MODELROLLOUT_MODEL_NAME": "from-env",
        "MODELROLLOUT_MODEL_VERSION": "7",
    }
    server = start_server([], env=env)
    meta = httpx.get(server.url + "/v2/models/from-env/versions/7")
    assert meta.status_code == 200 and meta.json()["versions"] == ["7"]
    answer = assert_serves(server, tiny_model.read_bytes(), "/v2/models/from-env/versions/7")
    assert answer["model_name"] == "from-env" and answer["model_version"] == "7"
    assert httpx.get(server.url + "/v2/models/from-env/versions/1").status_code == 404


# --- Shutdown ---


def connection_refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except ConnectionRefusedError:
        return True
    return False


def test_sigterm_drains_then_finishes_in_flight_requests_and_exits_0(start_server, tiny_model):
    # The batcher holds a lone request for 4 s: long enough to watch the 2 s drain and
    # the closed listener around it, even on a busy machine.
    server = start_server(serve_args(str(tiny_model), "--max-batch-size", "8",
                                     "--max-queue-delay-us", "4000000", "--drain-seconds", "2"))
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(httpx.post, f"{server.url}/v2/models/m/infer",
                           json=fp32_request(X), timeout=30)
        wait_for(lambda: metric(scrape(server.url), "modelrollout_server_inflight_requests") == 1,
                 5, "the slow request to be in flight")
        server.terminate()
        wait_for(lambda: httpx.get(server.url + "/v2/health/ready").status_code == 503, 1.5,
                 "readiness to turn false")
        assert httpx.get(server.url + "/v2/health/ready").json()["error"] == "shutting down"
        # Unready, yet a request that still arrives (endpoints take a moment to hear of it) is
        # answered: the drain exists for exactly these.
        late = pool.submit(httpx.post, f"{server.url}/v2/models/m/infer", json=fp32_request(X), timeout=30)
        wait_for(lambda: metric(scrape(server.url), "modelrollout_server_inflight_requests") == 2,
                 1.5, "the late request to be taken in")
        wait_for(lambda: connection_refused(server.port), 3, "the listener to close")
        assert not slow.done() and server.proc.poll() is None, "closed the listener, kept working"
        response, late_response = slow.result(timeout=10), late.result(timeout=10)
    assert response.status_code == 200 and late_response.status_code == 200
    np.testing.assert_allclose(response.json()["outputs"][0]["data"],
                               reference(tiny_model.read_bytes(), {"input": X})[0].ravel(),
                               rtol=1e-5)
    assert server.proc.wait(timeout=10) == 0
    messages = [r["message"] for r in log_records(server)]
    assert "shutdown requested: unready now, draining" in messages


def test_sigterm_while_a_download_keeps_failing_exits_at_once(start_server, model_host,
                                                              tmp_path):
    # Five retries back off 1+2+4+8+16 s: a pod must not hang in Terminating for that.
    host = model_host({"/m.onnx": b"never served"}, fail_first=1000)
    server = start_server(serve_args(host.url("/m.onnx"), "--download-retries", "5",
                                     "--cache-dir", str(tmp_path / "cache")), ready=False)
    wait_for(lambda: len(host.hits) >= 1, 10, "the first download attempt")
    started = time.monotonic()
    server.terminate()
    assert server.proc.wait(timeout=10) == 0
    assert time.monotonic() - started < 3
    assert len(host.hits) <= 2


def test_grace_seconds_bound_the_wait_for_in_flight_requests(start_server, tiny_model):
    # The lone request would wait 6 s for company; half a second of grace cuts it short.
    server = start_server(serve_args(str(tiny_model), "--max-batch-size", "8",
                                     "--max-queue-delay-us", "6000000", "--grace-seconds", "0.5"))
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(httpx.post, f"{server.url}/v2/models/m/infer",
                           json=fp32_request(X), timeout=30)
        wait_for(lambda: metric(scrape(server.url), "modelrollout_server_inflight_requests") == 1,
                 5, "the slow request to be in flight")
        started = time.monotonic()
        server.terminate()
        assert server.proc.wait(timeout=10) == 0
        assert time.monotonic() - started < 3, "waited past --grace-seconds"
        try:
            status = slow.result(timeout=10).status_code
        except httpx.HTTPError:
            status = None  # the connection was cut: also fine
    # Cut short: uvicorn cancels the request (a plain-text 500), never a late answer.
    assert status is None or status >= 500
