"""Everything `modelrollout serve` can be told, parsed once at the edge (the CLI)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..http_limits import HttpLimits
from .download_policy import DownloadPolicy

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class ServerSettings:
    model_uri: str
    model_name: str
    model_version: str = "1"
    revision: str = ""  # the operator's revision of this server: a label on every metric
    sha256: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    # Dynamic batching (Triton semantics); max_batch_size 0 turns it off.
    max_batch_size: int = 0
    max_queue_delay_us: int = 500
    max_queue_size: int = 256
    workers: int = 1
    # onnxruntime threads; 0 sizes them from the container's CPU limit.
    intra_op_threads: int = 0
    inter_op_threads: int = 1
    execution_provider: str = "cpu"
    # Limits and input policy.
    max_body_bytes: int = 16 * 1024 * 1024
    allow_nonfinite: bool = False
    # Model fetching (loading.py, model_uri.py).
    cache_dir: Path = Path("/tmp/modelrollout-models")
    download: DownloadPolicy = DownloadPolicy()
    require_sha256: bool = False
    # Prediction logging (off unless a path is given; "-" is stdout).
    prediction_log: str | None = None
    prediction_log_sample_rate: float = 1.0
    # Shutdown: stay up but unready for drain_seconds, then finish in-flight
    # requests within grace_seconds.
    drain_seconds: float = 0.0
    grace_seconds: float = 30.0
    access_log: bool = False
    # Model-aware gates (docs/gates.md): rows of the input-drift window, and the predictions
    # kept for feedback (rows, and how long a prediction takes its label).
    drift_window_rows: int = 1000
    feedback_store_size: int = 50_000
    feedback_ttl_seconds: float = 3600.0
    # What a client may send before its request is answered (serving/http_limits.py).
    http: HttpLimits = HttpLimits()

    def __post_init__(self) -> None:
        if self.sha256 is not None and not _SHA256.match(self.sha256):
            raise ValueError(f"--sha256 must be 64 hexadecimal digits, got {self.sha256!r}")
        if self.require_sha256 and not self.sha256:
            raise ValueError("--require-sha256 is set and no --sha256 is given: "
                             "refusing to load a model that cannot be verified")
