from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.e2e import cluster, models  # noqa: F401 - fixtures for every test module
from tests.support.gateway_fixtures import start_gateway  # noqa: F401 - a fixture for every test module
from tests.support.models import tiny_mlp, write
from tests.support.processes import ServerProcess


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """Workers for `pytest -n auto` (docs/development.md): at least four, at most eight. Most
    of the suite waits on the processes it starts (servers, the operator, Prometheus,
    kubectl), so more workers than cores pays: on this project's 2-core machine, four took
    the suite from about 30 to about 16 minutes."""
    return min(8, max(4, os.cpu_count() or 1))


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start `modelrollout serve` processes; all are stopped (SIGTERM, then kill) at teardown.

    ``start_server(args, ready=True)`` returns once /v2/health/ready is 200 (or only
    live, with ready=False).
    """
    started: list[ServerProcess] = []

    def start(args: list[str], ready: bool = True, env: dict[str, str] | None = None,
              command: list[str] | None = None, port: int | None = None) -> ServerProcess:
        server = ServerProcess(args, tmp_path / f"server-{len(started)}.log", env, command, port)
        started.append(server)
        if ready:
            server.wait_ready()
        else:
            server.wait_live()
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    return write(tmp_path / "tiny" / "model.onnx", tiny_mlp())


@pytest.fixture
def tiny_server(start_server, tiny_model: Path) -> ServerProcess:
    return start_server(["--model-uri", str(tiny_model), "--model-name", "tiny", "--model-version", "1"])
