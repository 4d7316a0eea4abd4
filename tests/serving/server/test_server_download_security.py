"""Model download hardening (serving/server/download_policy.py, loading.py): which URIs and
addresses the server fetches from, the size cap, the timeouts, --require-sha256, and no
credentials in logs, readiness answers or metrics.

The policy's pure functions are tested directly; the rest against real `modelrollout
serve` processes and a model host on 127.0.0.1 that records every request it gets.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import numpy as np
import pytest
from modelrollout.serving.server.download_policy import RefusedURI, blocked_address, check, redact, scrub

from tests.support.models import fp32_request, metric, reference, scrape, tiny_mlp
from tests.support.processes import MODELROLLOUT, wait_for

FAILURES = "modelrollout_server_failures_total"
X = np.array([[0.5, -1.0, 2.0, 0.25]], dtype=np.float32)
MODEL = tiny_mlp(seed=5)
SECRETS = ("s3cr3t-pass", "t0ken-in-query", "sig-0123456789")


# --- the policy, pure


@pytest.mark.parametrize("uri", [
    "https://models.example.com/m.onnx",
    "http://127.0.0.1:8000/m.onnx",
    "http://127.5.6.7/m.onnx",
    "http://[::1]:8000/m.onnx",
    "http://localhost/m.onnx",
    "http://LOCALHOST./m.onnx",
])
def test_allowed_uris(uri):
    check(uri, allow_http=False)


@pytest.mark.parametrize(("uri", "allow_http", "why"), [
    ("http://models.example.com/m.onnx", False, "--allow-http-models"),
    ("http://10.0.0.7/m.onnx", False, "--allow-http-models"),
    ("http://127.1/m.onnx", False, "--allow-http-models"),  # a name to us, whatever it resolves to
    ("ftp://models.example.com/m.onnx", True, "only https"),
    ("https:///m.onnx", True, "no host"),
    ("http://169.254.169.254/latest/meta-data/", True, "169.254.0.0/16"),
    ("https://169.254.10.1/m.onnx", True, "link-local"),
    ("http://[fd00:ec2::254]/latest/meta-data/", True, "fd00:ec2::254"),
    ("http://[::ffff:169.254.169.254]/", True, "169.254.0.0/16"),
    ("http://[fe80::1%25eth0]/m.onnx", True, "fe80::/10"),
    ("http://100.100.100.200/latest/meta-data/", True, "100.100.100.200"),
    ("https://metadata.google.internal/computeMetadata/v1/", True, "cloud-metadata host"),
    ("https://METADATA.google.internal./computeMetadata/v1/", True, "cloud-metadata host"),
    ("https://user:pw@127.0.0.1@169.254.169.254/", True, "169.254.0.0/16"),
])
def test_refused_uris(uri, allow_http, why):
    with pytest.raises(RefusedURI) as refused:
        check(uri, allow_http)
    assert why in str(refused.value)
    assert "pw@" not in str(refused.value)


def test_blocked_addresses():
    assert blocked_address("169.254.169.254") and blocked_address("fd00:ec2::254")
    assert blocked_address("fe80::1%eth0") and blocked_address("::ffff:169.254.0.1")
    assert blocked_address("127.0.0.1") is None and blocked_address("10.1.2.3") is None
    assert blocked_address("fd00:ec2::253") is None and blocked_address("not-an-ip") is None


def test_redact_and_scrub_hide_credentials_and_query():
    uri = "https://alice:s3cr3t-pass@models.example.com/a/m.onnx?X-Amz-Signature=sig-0123456789"
    assert redact(uri) == "https://***@models.example.com/a/m.onnx?***"
    assert redact("/models/m.onnx") == "/models/m.onnx"
    assert redact("http://[broken/m.onnx") == "<unparsable URI>"
    message = f"GET {uri} failed; auth alice:s3cr3t-pass; X-Amz-Signature=sig-0123456789"
    scrubbed = scrub(message, uri)
    assert "s3cr3t-pass" not in scrubbed and "sig-0123456789" not in scrubbed, scrubbed
    assert "models.example.com/a/m.onnx" in scrubbed


# --- a model host that records what it gets


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    location: str | None = None  # a redirect
    chunked: bool = False  # no Content-Length up front
    stall_seconds: float = 0.0  # after the first 100 bytes
    trickle_seconds: float = 0.0  # between 100-byte pieces


class ModelHost:
    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = routes
        self.hits: list[tuple[str, dict[str, str]]] = []  # path, headers
        host = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                host.hits.append((self.path, dict(self.headers)))
                route = host.routes.get(self.path.split("?")[0], Route(status=404))
                self.send_response(route.status)
                if route.location:
                    self.send_header("Location", route.location)
                if route.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the server gave up on us, as some tests want
                    host.send_body(self.wfile, route)

            def log_message(self, *args) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @staticmethod
    def send_body(out, route: Route) -> None:
        pieces = [route.body[i:i + 100] for i in range(0, len(route.body), 100)]
        for i, piece in enumerate(pieces):
            out.write(b"%x\r\n%s\r\n" % (len(piece), piece) if route.chunked else piece)
            out.flush()
            if i == 0 and route.stall_seconds:
                time.sleep(route.stall_seconds)
            if route.trickle_seconds:
                time.sleep(route.trickle_seconds)
        if route.chunked:
            out.write(b"0\r\n\r\n")

    def url(self, path: str, userinfo: str = "", host: str = "127.0.0.1") -> str:
        return f"http://{userinfo}{host}:{self._httpd.server_address[1]}{path}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def model_host() -> Iterator[Callable[[dict[str, Route]], ModelHost]]:
    hosts: list[ModelHost] = []

    def start(routes: dict[str, Route]) -> ModelHost:
        hosts.append(ModelHost(routes))
        return hosts[-1]

    yield start
    for host in hosts:
        host.stop()


def serve_args(uri: str, *extra: str) -> list[str]:
    return ["--model-uri", uri, "--model-name", "m", *extra]


def failure_count(server, reason: str) -> float | None:
    return metric(scrape(server.url), FAILURES, reason=reason)


def unready_reason(server, reason: str = "download") -> str:
    """The server is live, unready, counted the failure once; what its readiness says."""
    wait_for(lambda: failure_count(server, reason) == 1, 60, f"failure reason {reason}")
    ready = httpx.get(server.url + "/v2/health/ready")
    assert ready.status_code == 503 and ready.json()["ready"] is False
    assert httpx.get(server.url + "/v2/health/live").status_code == 200
    return ready.json()["error"]


def assert_serves(server) -> None:
    response = httpx.post(f"{server.url}/v2/models/m/infer", json=fp32_request(X))
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json()["outputs"][0]["data"],
                               reference(MODEL, {"input": X})[0].ravel(), rtol=1e-5)


def assert_no_secrets(server, *texts: str) -> None:
    seen = "\n".join([server.logs(), httpx.get(server.url + "/metrics").text,
                      httpx.get(server.url + "/v2/health/ready").text, *texts])
    for secret in SECRETS:
        assert secret not in seen, f"{secret} leaked"


DEBUG = {"MODELROLLOUT_LOG_LEVEL": "DEBUG"}  # everything any library logs, httpx and httpcore included


# --- http only from loopback, never a metadata address


def test_plain_http_to_a_host_that_is_not_loopback_is_refused(start_server, model_host, tmp_path):
    host = model_host({"/m.onnx": Route(MODEL)})
    # 127.1 reaches the host, but only a resolver knows that: to the policy it is a name.
    server = start_server(serve_args(host.url("/m.onnx", host="127.1"), "--cache-dir", str(tmp_path)),
                          ready=False)
    reason = unready_reason(server)
    assert "plain http" in reason and "--allow-http-models" in reason
    assert host.hits == [], "refused before connecting"
    allowed = start_server(serve_args(host.url("/m.onnx", host="127.1"), "--allow-http-models",
                                      "--cache-dir", str(tmp_path)))
    assert_serves(allowed)
    assert [path for path, _ in host.hits] == ["/m.onnx"]


@pytest.mark.parametrize(("uri", "why"), [
    ("http://169.254.169.254/latest/meta-data/iam/security-credentials/", "169.254.0.0/16"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "fd00:ec2::254"),
    ("https://metadata.google.internal/computeMetadata/v1/instance/", "cloud-metadata host"),
    # Numeric host forms a resolver turns into 169.254.169.254: read as the address they are,
    # before any lookup (a name that resolves there is refused once resolved).
    ("http://0xa9fea9fe/latest/meta-data/", "169.254.169.254 is a link-local"),
    ("http://2852039166/latest/meta-data/", "169.254.169.254 is a link-local"),
])
def test_metadata_and_link_local_addresses_are_refused_even_with_http_allowed(start_server, uri, why,
                                                                               tmp_path):
    started = time.monotonic()
    server = start_server(serve_args(uri, "--allow-http-models", "--download-retries", "3",
                                     "--cache-dir", str(tmp_path)), ready=False)
    reason = unready_reason(server)
    assert why in reason, reason
    # No attempt, no retry: the refusal comes at once (a connection to a blackholed
    # 169.254.169.254 would wait for the 10 s connect timeout, then retry).
    assert time.monotonic() - started < 20
    assert not [r for r in records(server) if r["message"] == "model download failed"]


def test_a_redirect_to_a_metadata_address_is_refused(start_server, model_host, tmp_path):
    host = model_host({"/m.onnx": Route(status=302, location="http://169.254.169.254/latest/meta-data/"),
                       "/down.onnx": Route(status=302, location="http://127.1:1/m.onnx")})
    server = start_server(serve_args(host.url("/m.onnx"), "--allow-http-models", "--cache-dir",
                                     str(tmp_path)), ready=False)
    assert "169.254.0.0/16" in unready_reason(server)
    assert [path for path, _ in host.hits] == ["/m.onnx"]
    # https or loopback only: a redirect to plain http elsewhere is refused too.
    second = start_server(serve_args(host.url("/down.onnx"), "--cache-dir", str(tmp_path)), ready=False)
    assert "plain http" in unready_reason(second)


# --- size cap and timeouts


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_model_over_the_size_cap_is_refused_without_retry(start_server, model_host, tmp_path, chunked):
    host = model_host({"/m.onnx": Route(MODEL, chunked=chunked)})
    cache = tmp_path / "cache"
    server = start_server(serve_args(host.url("/m.onnx"), "--max-model-bytes", str(len(MODEL) - 1),
                                     "--cache-dir", str(cache)), ready=False)
    reason = unready_reason(server)
    assert f"over the limit of {len(MODEL) - 1}" in reason and "--max-model-bytes" in reason
    assert len(host.hits) == 1
    assert [p.name for p in cache.iterdir()] == [], "no model, no partial file left behind"
    fits = start_server(serve_args(host.url("/m.onnx"), "--max-model-bytes", str(len(MODEL)),
                                   "--cache-dir", str(cache)))
    assert_serves(fits)


def test_a_stalled_download_times_out_and_is_retried(start_server, model_host, tmp_path):
    host = model_host({"/m.onnx": Route(MODEL, stall_seconds=30)})
    server = start_server(serve_args(host.url("/m.onnx"), "--download-timeout-seconds", "1",
                                     "--download-retries", "1", "--cache-dir", str(tmp_path)), ready=False)
    assert "ReadTimeout" in unready_reason(server)
    assert len(host.hits) == 2


def test_a_trickling_download_is_cut_at_its_deadline(start_server, model_host, tmp_path):
    # A byte stream that never stalls long enough for the read timeout, but never ends either.
    host = model_host({"/m.onnx": Route(MODEL, trickle_seconds=0.3)})
    started = time.monotonic()
    server = start_server(serve_args(host.url("/m.onnx"), "--download-deadline-seconds", "2",
                                     "--download-timeout-seconds", "5", "--cache-dir", str(tmp_path)),
                          ready=False)
    assert "not downloaded within 2 s" in unready_reason(server)
    assert len(host.hits) == 1
    assert time.monotonic() - started < 30


# --- sha256


def run_serve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([MODELROLLOUT, "serve", *args], capture_output=True, text=True, timeout=60)


def test_require_sha256_refuses_to_start_without_one(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(MODEL)
    result = run_serve(*serve_args(str(model), "--require-sha256"))
    assert result.returncode == 2
    assert "--require-sha256 is set and no --sha256 is given" in result.stderr
    result = run_serve(*serve_args(str(model), "--sha256", "12ab"))
    assert result.returncode == 2 and "64 hexadecimal digits" in result.stderr


def test_require_sha256_from_the_environment_serves_a_verified_model(start_server, model_host, tmp_path):
    host = model_host({"/m.onnx": Route(MODEL)})
    server = start_server(serve_args(host.url("/m.onnx"), "--sha256", hashlib.sha256(MODEL).hexdigest(),
                                     "--cache-dir", str(tmp_path)),
                          env={"MODELROLLOUT_REQUIRE_SHA256": "true"})
    assert_serves(server)


# --- no credentials anywhere


def records(server) -> list[dict]:
    return [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]


def test_credentials_in_a_model_uri_never_show(start_server, model_host, tmp_path):
    signed = "/signed/m.onnx?X-Amz-Signature=sig-0123456789"
    host = model_host({"/signed/m.onnx": Route(MODEL), "/flaky.onnx": Route(status=503)})
    host.routes["/m.onnx"] = Route(status=302, location=host.url(signed))  # now that it has a port
    secret_uri = host.url("/m.onnx?token=t0ken-in-query", userinfo="alice:s3cr3t-pass@")
    server = start_server(serve_args(secret_uri, "--cache-dir", str(tmp_path)), env=DEBUG)
    assert_serves(server)
    assert host.hits[0][1]["Authorization"].startswith("Basic ")  # the credentials were used...
    assert_no_secrets(server)  # ...and shown nowhere
    downloaded = [r for r in records(server) if r["message"] == "model downloaded"]
    assert [r["uri"] for r in downloaded] == [redact(secret_uri)]

    # Failures: retried 503s, then an unreachable host; each error message goes out too.
    flaky = host.url("/flaky.onnx?token=t0ken-in-query", userinfo="alice:s3cr3t-pass@")
    gone = "http://alice:s3cr3t-pass@127.0.0.1:9/m.onnx?token=t0ken-in-query"
    for uri in (flaky, gone):
        failing = start_server(serve_args(uri, "--download-retries", "1", "--cache-dir", str(tmp_path)),
                               ready=False, env=DEBUG)
        reason = unready_reason(failing)
        assert "***" in reason, reason
        assert len([r for r in records(failing) if r["message"] == "model download failed"]) == 2
        assert_no_secrets(failing)


def test_a_bad_uri_scheme_is_shown_without_its_credentials(start_server):
    server = start_server(serve_args("s3://AKIAEXAMPLE:s3cr3t-pass@bucket/m.onnx?token=t0ken-in-query"),
                          ready=False, env=DEBUG)
    reason = unready_reason(server)
    assert "unsupported model URI scheme 's3'" in reason and "bucket/m.onnx" in reason
    assert_no_secrets(server)
