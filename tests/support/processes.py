"""Real server processes on loopback for the tests: start, wait, stop, read logs. The process
wrapper and the polling wait are the harness's own (modelrollout/harness/process.py)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from modelrollout.harness.ports import free_port
from modelrollout.harness.process import Process, wait_for

MODELROLLOUT = shutil.which("modelrollout", path=os.path.dirname(sys.executable)) or "modelrollout"
__all__ = ["MODELROLLOUT", "ServerProcess", "free_port", "wait_for"]


class ServerProcess(Process):
    """One `modelrollout serve` process (or another command answering /v2/health/*);
    logs go to a file the test can read."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None,
                 command: list[str] | None = None, port: int | None = None) -> None:
        """``command`` replaces `modelrollout serve --host 127.0.0.1 --port P`; it must then
        listen on ``port`` by itself (through ``env``, say)."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        log_path.unlink(missing_ok=True)  # one process per log file
        base = command or [MODELROLLOUT, "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        super().__init__([*base, *args], log_path, env)

    def wait_live(self, timeout: float = 30.0) -> None:
        self.wait_until_healthy(f"{self.url}/v2/health/live", timeout)

    def wait_ready(self, timeout: float = 60.0) -> None:
        self.wait_until_healthy(f"{self.url}/v2/health/ready", timeout)
