"""One wrapper for a long-running child process and one polling wait, for the harness, the
tests and the benchmarks.

    server = Process([modelrollout, "serve", ...], folder / "server.log", env={...})
    server.wait_until_healthy("http://127.0.0.1:8080/v2/health/ready", timeout=60)
    server.stop()           # SIGTERM, SIGKILL after the timeout; the exit code
    wait_for(lambda: fetch() or None, timeout=30, what="the model to load")

A process whose output goes to a log file (appended to, so a restart keeps the story);
``wait_until_healthy`` fails at once, with the log's tail, when the process exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")
POLL_SECONDS = 0.05


def wait_for(check: Callable[[], T], timeout: float, what: str | Callable[[], str],
             poll_seconds: float = POLL_SECONDS) -> T:
    """``check()``'s first truthy result, polled every ``poll_seconds``; TimeoutError naming
    ``what`` (a text, or a function giving it at the time) when none came within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            text = what() if callable(what) else what
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {text}")
        time.sleep(poll_seconds)


class Process:
    def __init__(self, args: Sequence[str], log_path: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None, start: bool = True) -> None:
        self.args = list(args)
        self.log_path = Path(log_path)
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None
        if start:
            self.start()

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.env, cwd=self.cwd)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_until_healthy(self, url: str, timeout: float = 30.0) -> None:
        """Until ``url`` answers 200; RuntimeError with the log's tail if the process exits first."""
        def healthy() -> bool:
            if not self.running:
                code = self.proc.returncode if self.proc is not None else None
                raise RuntimeError(f"{' '.join(self.args[:2])} exited with {code}:\n{self.logs()[-4000:]}")
            try:
                return httpx.get(url, timeout=1.0).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout, lambda: f"{url} to answer 200; log tail:\n{self.logs()[-4000:]}")

    def terminate(self) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL, as a crashed or evicted pod: no clean-up of any kind."""
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, SIGKILL after ``timeout`` seconds; the exit code (0 if never started)."""
        if self.proc is None:
            return 0
        self.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
