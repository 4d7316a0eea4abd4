"""Everything `modelrollout gateway` can be told, parsed once at the edge (the CLI). Each field
declares its option (modelrollout/settings_fields.py); the fields are in the order of
`modelrollout gateway --help`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelrollout.settings_fields import check_bounds, setting

from ..http_limits import HttpLimits
from ..shutdown import Shutdown


@dataclass(frozen=True)
class GatewaySettings:
    # Route source: a file (local runs, tests) or the Kubernetes API.
    routes: Path | None = setting(
        None, file_only=True, help="Route file (YAML or JSON), followed as it changes. See docs/gateway.md.")
    kubernetes: bool = setting(
        False, off_flag="--no-kubernetes",
        help="Take routes from ModelDeployment status and EndpointSlices in the Kubernetes API.")
    namespaces: tuple[str, ...] = setting(  # empty with kubernetes=True: every namespace
        (), flag="--namespace",
        help="With --kubernetes: namespace to watch (repeatable); none given: all namespaces.")
    kubeconfig: str | None = setting(None, help="With --kubernetes: kubeconfig file (default: in-cluster).")
    host: str = setting("127.0.0.1", help="Address to listen on (0.0.0.0 in a pod).")
    port: int = setting(8000)
    # Upstreams.
    load_balancing: str = setting("least-outstanding", choices=("least-outstanding", "round-robin"))
    upstream_timeout_seconds: float = setting(
        30.0, above=0, help="An upstream that takes longer is answered 504.")
    eject_after_failures: int = setting(
        3, at_least=1, help="Consecutive failures that take an endpoint out of rotation.")
    ejection_seconds: float = setting(10.0, at_least=0)
    max_body_bytes: int = setting(
        16 * 1024 * 1024, at_least=1, help="Largest request body; larger ones get 413.")
    # Shadow traffic.
    mirror_queue_size: int = setting(
        256, at_least=1,
        help="Mirrored copies waiting for the shadow; beyond it copies are dropped and counted.")
    mirror_concurrency: int = setting(8, at_least=1, help="Mirrored requests in flight to shadows at once.")
    shadow_atol: float = setting(
        1e-5, at_least=0, help="Shadow comparison: absolute tolerance per output value.")
    shadow_rtol: float = setting(
        1e-3, at_least=0, help="Shadow comparison: relative tolerance per output value.")
    # Feedback routing (feedback.py): request ids remembered, and for how long.
    feedback_ids: int = setting(
        100_000, at_least=0,
        help="Request ids remembered with the endpoint that answered them, so feedback reaches it; "
        "0: none (feedback then needs the x-modelrollout-revision header).")
    feedback_ttl_seconds: float = setting(
        3600.0, above=0, help="How long a request id is remembered for feedback.")
    shutdown: Shutdown = Shutdown()  # frontend.py: stay up but unready, then finish in-flight requests
    # What a client may send before its request is answered (serving/http_limits.py).
    http: HttpLimits = HttpLimits()

    def __post_init__(self) -> None:
        check_bounds(self)
