"""`modelrollout gateway` as a real process for the tests, with its route file.

Use it from a test module with ``from tests.gateway_fixtures import start_gateway  # noqa: F401``;
ruff then also reads each test's ``start_gateway`` argument as a redefinition (F811, see
astral-sh/ruff#10662), so those lines carry ``# noqa: F811`` too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.processes import MODELROLLOUT, free_port


class GatewayProcess:
    """One `modelrollout gateway --routes FILE` process; logs go to a file the test can read."""

    def __init__(self, routes: dict, folder: Path, args: list[str], env: dict[str, str] | None = None,
                 port: int | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # A folder of its own: the gateway watches the route file's whole folder.
        self.routes_path = folder / "routes.json"
        self.log_path = folder / "gateway.log"
        self.write_routes(routes)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [MODELROLLOUT, "gateway", "--host", "127.0.0.1", "--port", str(self.port),
             "--routes", str(self.routes_path), *args],
            stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
        )

    def write_routes(self, routes: dict) -> None:
        """Replace the route file in one rename, so the gateway never reads half a file."""
        partial = self.routes_path.with_name(self.routes_path.name + ".partial")
        partial.write_bytes(orjson.dumps(routes))
        partial.replace(self.routes_path)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                if httpx.get(self.url + "/v2/health/ready", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.url}/v2/health/ready not 200 within {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then kill past ``timeout``; the exit code. Safe to call twice."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._log.close()
        return code


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    """Start `modelrollout gateway` processes; all are stopped (SIGTERM, then kill) at teardown.

    ``start_gateway(routes, args=[...])`` writes the route table ``routes`` (the dict of
    contract/routes.py) to a file, starts a gateway on a free port with ``args`` added,
    and returns once /v2/health/ready is 200 (``ready=False``: at once).
    """
    started: list[GatewayProcess] = []

    def start(routes: dict, args: list[str] | None = None, ready: bool = True,
              env: dict[str, str] | None = None, port: int | None = None) -> GatewayProcess:
        gateway = GatewayProcess(routes, tmp_path / f"gateway-{len(started)}", list(args or ()), env, port)
        started.append(gateway)
        if ready:
            gateway.wait_ready()
        return gateway

    yield start
    for gateway in started:
        gateway.stop()
