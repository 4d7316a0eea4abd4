"""The operator and the gateway as real processes, pointed at the harness's API server.

    operator = OperatorProcess(kubeconfig, ["ml"], folder / "operator.log")   # [] : every namespace
    gateway = GatewayProcess(kubeconfig, ["ml"], folder / "gateway.log")
    ...
    operator.kill()     # SIGKILL: a crash, nothing flushed
    operator.restart()  # the same command and ports again

Both are the `modelrollout` command itself, as a pod would run it; their logs go to files.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from .ports import free_port
from .process import Process

MODELROLLOUT = shutil.which("modelrollout", path=os.path.dirname(sys.executable)) or "modelrollout"


class Component(Process):
    """A long-running `modelrollout ...` process with a health URL."""

    def __init__(self, args: list[str], log_path: Path, health_url: str) -> None:
        self.health_url = health_url
        super().__init__([MODELROLLOUT, *args], log_path)

    def wait_healthy(self, timeout: float = 30.0) -> None:
        self.wait_until_healthy(self.health_url, timeout)

    def restart(self, timeout: float = 30.0) -> None:
        if self.running:
            self.stop()
        self.start()
        self.wait_healthy(timeout)


def _namespace_flags(namespaces: str | Sequence[str]) -> list[str]:
    names = [namespaces] if isinstance(namespaces, str) else list(namespaces)
    return [flag for name in names for flag in ("--namespace", name)]


class OperatorProcess(Component):
    """``args``: more flags, e.g. ``LEADER_ELECTION`` for one of several replicas."""

    def __init__(self, kubeconfig: Path, namespaces: str | Sequence[str], log_path: Path,
                 tick_seconds: float = 0.5, args: Sequence[str] = ()) -> None:
        self.metrics_port, self.liveness_port = free_port(), free_port()
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        super().__init__(["operator", "--kubeconfig", str(kubeconfig), *_namespace_flags(namespaces),
                          "--tick-seconds", str(tick_seconds), "--metrics-port", str(self.metrics_port),
                          "--liveness-port", str(self.liveness_port), *args],
                         log_path, f"http://127.0.0.1:{self.liveness_port}/healthz")


# Leader election as the harness runs it: a Lease in modelrollout-system, and times short
# enough for tests (a takeover within 4 + 0.5 s of the leader's last renewal).
LEADER_ELECTION = ("--leader-elect", "--lease-namespace", "modelrollout-system",
                   "--lease-duration-seconds", "4", "--renew-deadline-seconds", "3", "--retry-seconds", "0.5")


class GatewayProcess(Component):
    def __init__(self, kubeconfig: Path, namespaces: str | Sequence[str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(["gateway", "--kubernetes", "--kubeconfig", str(kubeconfig),
                          *_namespace_flags(namespaces), "--port", str(self.port), "--grace-seconds", "5"],
                         log_path, f"{self.url}/v2/health/live")
