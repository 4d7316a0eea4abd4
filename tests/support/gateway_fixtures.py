"""`modelrollout gateway` as a real process for the tests, with its route file.

conftest.py imports the ``start_gateway`` fixture, so every test module can ask for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from tests.support.processes import MODELROLLOUT, ServerProcess, free_port


class GatewayProcess(ServerProcess):
    """One `modelrollout gateway --routes FILE` process; logs go to a file the test can read."""

    def __init__(self, routes: dict, folder: Path, args: list[str], env: dict[str, str] | None = None,
                 port: int | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        # A folder of its own: the gateway watches the route file's whole folder.
        self.routes_path = folder / "routes.json"
        self.write_routes(routes)
        port = port or free_port()
        command = [MODELROLLOUT, "gateway", "--host", "127.0.0.1", "--port", str(port),
                   "--routes", str(self.routes_path)]
        super().__init__(args, folder / "gateway.log", env, command, port)

    def write_routes(self, routes: dict) -> None:
        """Replace the route file in one rename, so the gateway never reads half a file."""
        partial = self.routes_path.with_name(self.routes_path.name + ".partial")
        partial.write_bytes(orjson.dumps(routes))
        partial.replace(self.routes_path)


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
