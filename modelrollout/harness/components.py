"""The operator and the gateway as real processes, pointed at the harness's API server.

    operator = OperatorProcess(kubeconfig, "ml", folder / "operator.log")
    gateway = GatewayProcess(kubeconfig, "ml", folder / "gateway.log")
    ...
    operator.kill()     # SIGKILL: a crash, nothing flushed
    operator.restart()  # the same command and ports again

Both are the `modelrollout` command itself, as a pod would run it; their logs go to files.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .ports import free_port

MODELROLLOUT = shutil.which("modelrollout", path=os.path.dirname(sys.executable)) or "modelrollout"


class Process:
    """A long-running `modelrollout ...` process with its log in a file."""

    def __init__(self, args: list[str], log_path: Path, health_url: str) -> None:
        self.args = [MODELROLLOUT, *args]
        self.log_path = log_path
        self.health_url = health_url
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{' '.join(self.args[:2])} exited with {self.proc.returncode}:\n"
                                   f"{self.logs()[-4000:]}")
            try:
                if httpx.get(self.health_url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.health_url} not 200 within {timeout}s:\n{self.logs()[-4000:]}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crashed or evicted pod: no clean-up of any kind."""
        if self.running:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def restart(self, timeout: float = 30.0) -> None:
        if self.running:
            self.stop()
        self.start()
        self.wait_healthy(timeout)

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class OperatorProcess(Process):
    def __init__(self, kubeconfig: Path, namespace: str, log_path: Path, tick_seconds: float = 0.5) -> None:
        self.metrics_port, self.liveness_port = free_port(), free_port()
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        super().__init__(["operator", "--kubeconfig", str(kubeconfig), "--namespace", namespace,
                          "--tick-seconds", str(tick_seconds), "--metrics-port", str(self.metrics_port),
                          "--liveness-port", str(self.liveness_port)],
                         log_path, f"http://127.0.0.1:{self.liveness_port}/healthz")


class GatewayProcess(Process):
    def __init__(self, kubeconfig: Path, namespace: str, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(["gateway", "--kubernetes", "--kubeconfig", str(kubeconfig),
                          "--namespace", namespace, "--port", str(self.port), "--grace-seconds", "5"],
                         log_path, f"{self.url}/v2/health/live")
