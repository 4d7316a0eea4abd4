"""Client traffic from a thread, through the gateway or a Service (harness service_proxy):
bounded in count and time, every answer recorded (when, status, which revision and model
version served it, how long it took)."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

import httpx

from .process import wait_for


@dataclass(frozen=True)
class Result:
    at: float  # time.monotonic() when the answer came
    status: int  # HTTP status; 0 when the request failed without one
    revision: str | None  # X-Modelrollout-Revision (set by the gateway)
    seconds: float
    version: str | None = None  # model_version of a 200 answer


def wait_serving(url: str, model: str, timeout: float = 30.0) -> None:
    """Until the gateway answers for ``model``: it learns of new endpoints from its watch,
    a moment after the operator sees them ready."""
    def serves() -> bool:
        try:
            answer = httpx.post(f"{url}/v2/models/{model}/infer", json=_request([0.0] * 4), timeout=5)
            return answer.status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(serves, timeout, f"the gateway to serve {model}", poll_seconds=0.2)


@dataclass
class Traffic:
    url: str
    model: str
    rate_per_second: float = 50.0
    max_requests: int = 20_000
    max_seconds: float = 240.0
    # One TCP connection per request, so that a per-connection balancer (kube-proxy, the
    # harness's ServiceProxy) spreads requests as it would spread many clients.
    new_connection_per_request: bool = False
    headers: dict[str, str] = field(default_factory=dict)  # sent with every request (a preview header)
    # Added to every feature of the requests sent from now on: inputs from elsewhere than the
    # uniform [0, 1) the clients send otherwise (drifted traffic). Set it while it runs.
    offset: float = 0.0
    results: list[Result] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Traffic:
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)
        self._thread.start()
        return self

    def wait_results(self, count: int, since: float = 0.0, timeout: float = 60.0) -> list[Result]:
        """The answers that came after ``since`` (time.monotonic()), once there are at least
        ``count`` of them: assertions count what was sent, not what a time window held."""
        deadline = time.monotonic() + timeout
        while True:
            got = [r for r in list(self.results) if r.at > since]
            if len(got) >= count:
                return got
            if time.monotonic() > deadline or self._thread is None or not self._thread.is_alive():
                raise TimeoutError(f"{len(got)} of {count} answers after {since:.1f} within {timeout}s")
            time.sleep(0.05)

    def stop(self) -> list[Result]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        return self.results

    def _run(self) -> None:
        rng = random.Random(0)
        started = time.monotonic()
        pause = 1.0 / self.rate_per_second
        headers = {**self.headers, **({"Connection": "close"} if self.new_connection_per_request else {})}
        with httpx.Client(timeout=10.0, headers=headers) as client:
            while not self._stop.is_set() and len(self.results) < self.max_requests:
                if time.monotonic() - started > self.max_seconds:
                    break
                body = _request([round(rng.random() + self.offset, 3) for _ in range(4)])
                sent = time.monotonic()
                try:
                    response = client.post(f"{self.url}/v2/models/{self.model}/infer", json=body)
                    status, revision = response.status_code, response.headers.get("x-modelrollout-revision")
                    version = _model_version(response) if status == 200 else None
                except httpx.HTTPError:
                    status, revision, version = 0, None, None
                now = time.monotonic()
                self.results.append(Result(now, status, revision, now - sent, version))
                self._stop.wait(max(0.0, pause - (now - sent)))


def _model_version(response: httpx.Response) -> str | None:
    try:
        return response.json().get("model_version")
    except ValueError:
        return None


def _request(row: list[float]) -> dict:
    return {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": row}]}
