"""--execution-provider: CPU by default; CUDA without onnxruntime-gpu is a clear failure."""


import httpx
import onnxruntime as ort
import pytest

from tests.support.processes import wait_for


def test_cpu_provider_is_the_default_and_is_reported(tiny_server):
    metrics = httpx.get(f"{tiny_server.url}/metrics").text
    assert 'provider="CPUExecutionProvider"' in metrics


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="has CUDA")
def test_cuda_without_onnxruntime_gpu_stays_unready_and_says_why(start_server, tiny_model):
    server = start_server(
        ["--model-uri", str(tiny_model), "--model-name", "tiny", "--execution-provider", "cuda"],
        ready=False,
    )
    def failed() -> httpx.Response | None:
        answer = httpx.get(f"{server.url}/v2/health/ready")
        return answer if "failed" in answer.json().get("error", "") else None

    ready = wait_for(failed, 5, "the load to fail")
    assert ready.status_code == 503
    assert "onnxruntime-gpu" in ready.json()["error"]
    metrics = httpx.get(f"{server.url}/metrics").text
    labels = 'model="tiny",reason="load",revision="",version="1"'
    assert f"modelrollout_server_failures_total{{{labels}}} 1.0" in metrics
    assert server.proc.poll() is None  # still up, answering probes
