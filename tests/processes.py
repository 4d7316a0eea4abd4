"""Real server processes on loopback for the tests: start, wait, stop, read logs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from modelrollout.harness.ports import free_port

MODELROLLOUT = shutil.which("modelrollout", path=os.path.dirname(sys.executable)) or "modelrollout"
T = TypeVar("T")
__all__ = ["MODELROLLOUT", "ServerProcess", "free_port", "wait_for"]


class ServerProcess:
    """One `modelrollout serve` process (or another command answering /v2/health/*);
    logs go to a file the test can read."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None,
                 command: list[str] | None = None, port: int | None = None) -> None:
        """``command`` replaces `modelrollout serve --host 127.0.0.1 --port P`; it must then
        listen on ``port`` by itself (through ``env``, say)."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        full_env = {**os.environ, **(env or {})}
        base = command or [MODELROLLOUT, "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [*base, *args],
            stdout=self._log, stderr=subprocess.STDOUT, env=full_env,
        )

    def wait_live(self, timeout: float = 30.0) -> None:
        self._wait("/v2/health/live", timeout)

    def wait_ready(self, timeout: float = 60.0) -> None:
        self._wait("/v2/health/ready", timeout)

    def _wait(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.proc.args[1]} exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                if httpx.get(self.url + path, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.url}{path} not 200 within {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 20.0) -> int:
        self.terminate()
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._log.close()
        return code


def wait_for(check: Callable[[], T], timeout: float, what: str) -> T:
    """``check()``'s first truthy result, polled every 50 ms; the test fails when there is
    none within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")
