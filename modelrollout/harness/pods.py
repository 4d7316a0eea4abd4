"""The harness's pods as plain data: what a Deployment's template asks (Template), one pod
as the kubelet stand-in runs it (Pod), the snapshot tests see (PodProcess), and the pure
rules about them (names, template digests, which pods go first, restart backoff)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

PORT_ANNOTATION = "modelrollout.io/harness-port"
FINALIZER = "harness.modelrollout.io/process"  # holds a deleted Pod until its process has exited
CONTAINER = "server"
NODE_NAME = "harness"
CRASH_LOOP_RESTARTS = 3  # restarts after which a waiting container reports CrashLoopBackOff
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 10.0
BACKOFF_RESET_SECONDS = 10.0  # up this long: the next crash starts the backoff over
SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the one Kubernetes uses for generated names


@dataclass(frozen=True)
class PodProcess:
    """One pod as the stand-in runs it, at the moment ``Kubelet.processes`` was called."""

    name: str
    namespace: str
    deployment: str
    port: int
    pid: int | None  # None while waiting to restart or once stopped
    ready: bool
    restarts: int
    state: str  # "running", "waiting" (backoff), "crash-loop" (backoff after >= 3 restarts), "terminating"
    log_path: Path


@dataclass(frozen=True)
class Template:
    """What a Deployment's pod template asks of a process; ``digest`` tells templates apart."""

    digest: str
    labels: dict
    annotations: dict
    pod_spec: dict
    env: dict
    args: list
    probe: dict | None  # the readinessProbe
    grace_seconds: float


@dataclass(eq=False)
class Pod:
    name: str
    namespace: str
    deployment: str
    template: Template
    port: int
    log_path: Path
    created: float  # monotonic
    start_time: str  # RFC 3339, the Pod's status.startTime
    proc: subprocess.Popen | None = None
    log_file: IO[bytes] | None = None
    started_at: float = 0.0  # monotonic, of the current process
    started_at_wall: str = ""
    ready: bool = False
    restarts: int = 0
    crashes: int = 0  # consecutive ones, for the backoff
    restart_at: float | None = None
    backoff_seconds: float = 0.0
    last_exit: int | None = None
    terminating: bool = False
    kill_at: float = 0.0
    finished: bool = False  # terminating and the process is gone: delete the Pod
    in_api: bool = False  # its Pod object was created and is not known to be deleted

    @property
    def suffix(self) -> str:
        return self.name.rsplit("-", 1)[-1]

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def snapshot(pod: Pod) -> PodProcess:
    if pod.terminating:
        state = "terminating"
    elif pod.running:
        state = "running"
    elif pod.restarts >= CRASH_LOOP_RESTARTS:
        state = "crash-loop"
    else:
        state = "waiting"
    return PodProcess(name=pod.name, namespace=pod.namespace, deployment=pod.deployment, port=pod.port,
                      pid=pod.proc.pid if pod.running and pod.proc is not None else None,
                      ready=pod.ready and pod.running and not pod.terminating, restarts=pod.restarts,
                      state=state, log_path=pod.log_path)


def name_of(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("name") or ""


def namespace_of(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("namespace") or ""


def backoff(crashes: int) -> float:
    """Seconds to wait before restarting after ``crashes`` consecutive exits: 1, 2, 4 ... 10."""
    return min(BACKOFF_FIRST_SECONDS * 2 ** (crashes - 1), BACKOFF_MAX_SECONDS)


def digest(template: dict) -> str:
    """Tells pod templates apart, as the pod-template-hash label of a ReplicaSet does."""
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def replicas(deployment: dict) -> int:
    value = (deployment.get("spec") or {}).get("replicas")
    try:
        return max(0, int(value)) if value is not None else 1  # the API server's default
    except (TypeError, ValueError):
        return 0


def doomed(pods: list[Pod], count: int) -> list[Pod]:
    """The ``count`` pods a ReplicaSet would remove first: unready ones, then the newest."""
    if count <= 0:
        return []
    return sorted(pods, key=lambda p: (p.ready, -p.created))[:count]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
