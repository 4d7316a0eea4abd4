"""Helpers for the end-to-end tests: models, ModelDeployments, and client traffic."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from modelrollout.serving.examples import build_faulty_mlp, build_mlp


def write_models(folder: Path) -> dict[str, Path]:
    """v1 and v2: good models with different weights; v3: fails on half the real inputs."""
    folder.mkdir(parents=True, exist_ok=True)
    models = {"1.0.0": build_mlp([4, 16, 3], seed=0), "2.0.0": build_mlp([4, 16, 3], seed=1),
              "3.0.0": build_faulty_mlp([4, 16, 3], seed=2)}
    paths = {}
    for version, data in models.items():
        path = folder / f"model-{version}.onnx"
        path.write_bytes(data)
        paths[version] = path
    return paths


def model_deployment(name: str, model: Path, version: str, prometheus_url: str, steps: list,
                     interval: str = "3s", **analysis) -> dict:
    return {
        "apiVersion": "modelrollout.io/v1alpha1", "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"uri": model.as_uri(), "version": version},
            "replicas": 1,
            "server": {"image": "modelrollout-server:local"},
            "trafficRouting": {"builtin": {}},
            "strategy": {"canary": {"steps": steps}},
            "analysis": {
                "interval": interval,
                "prometheus": {"address": prometheus_url},
                "metrics": [{"name": "error-rate", "thresholdRange": {"max": 0.05}, "minSamples": 10}],
                **analysis,
            },
            "progressDeadlineSeconds": 120,
        },
    }


def wait_serving(url: str, model: str, timeout: float = 30.0) -> None:
    """Until the gateway answers for ``model``: it learns of new endpoints from its watch,
    a moment after the operator sees them ready."""
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [0.0] * 4}]}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.post(f"{url}/v2/models/{model}/infer", json=body, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the gateway did not serve {model} within {timeout}s")


@dataclass
class Traffic:
    """Client requests through the gateway from a thread, bounded in count and time."""

    url: str
    model: str
    rate_per_second: float = 40.0
    max_requests: int = 20_000
    max_seconds: float = 240.0
    results: list[tuple[float, int, str | None]] = field(default_factory=list)  # (time, status, revision)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Traffic:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[tuple[float, int, str | None]]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        return self.results

    def _run(self) -> None:
        rng = random.Random(0)
        started = time.monotonic()
        with httpx.Client(timeout=10.0) as client:
            while not self._stop.is_set() and len(self.results) < self.max_requests:
                if time.monotonic() - started > self.max_seconds:
                    break
                row = [round(rng.random(), 3) for _ in range(4)]
                body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": row}]}
                try:
                    response = client.post(f"{self.url}/v2/models/{self.model}/infer", json=body)
                    self.results.append((time.monotonic(), response.status_code,
                                         response.headers.get("x-modelrollout-revision")))
                except httpx.HTTPError:
                    self.results.append((time.monotonic(), 0, None))
                time.sleep(1.0 / self.rate_per_second)
