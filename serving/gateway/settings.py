"""Everything `modelrollout gateway` can be told, parsed once at the edge (the CLI)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..http_limits import HttpLimits


@dataclass(frozen=True)
class GatewaySettings:
    host: str = "127.0.0.1"
    port: int = 8000
    # Route source: a file (local runs, tests) or the Kubernetes API.
    routes: Path | None = None
    kubernetes: bool = False
    namespaces: tuple[str, ...] = ()  # empty with kubernetes=True: every namespace
    kubeconfig: str | None = None
    # Upstreams.
    load_balancing: str = "least-outstanding"
    upstream_timeout_seconds: float = 30.0
    eject_after_failures: int = 3
    ejection_seconds: float = 10.0
    max_body_bytes: int = 16 * 1024 * 1024
    # Shadow traffic.
    mirror_queue_size: int = 256
    mirror_concurrency: int = 8
    shadow_atol: float = 1e-5
    shadow_rtol: float = 1e-3
    # Feedback routing (feedback.py): request ids remembered, and for how long.
    feedback_ids: int = 100_000  # 0: none (labels then need the x-modelrollout-revision header)
    feedback_ttl_seconds: float = 3600.0
    # Shutdown (frontend.py): stay up but unready for drain_seconds, then finish in-flight
    # requests within grace_seconds.
    drain_seconds: float = 0.0
    grace_seconds: float = 30.0
    # What a client may send before its request is answered (serving/http_limits.py).
    http: HttpLimits = HttpLimits()
