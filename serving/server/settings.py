"""Everything `modelrollout serve` can be told, parsed once at the edge (the CLI). Each field
declares its option (modelrollout/settings_fields.py); the fields are in the order of
`modelrollout serve --help`."""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from modelrollout.settings_fields import check_bounds, setting

from ..http_limits import HttpLimits
from ..shutdown import Shutdown
from .download_policy import DownloadPolicy

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


def _cache_dir() -> Path:
    # The platform's temporary folder (TMPDIR, else /tmp on Linux), asked when needed: it
    # probes the folder, which is no work for an import to do.
    return Path(tempfile.gettempdir(), "modelrollout-models")


@dataclass(frozen=True, kw_only=True)  # keywords: required fields sit among the others
class ServerSettings:
    model_uri: str = setting(
        help="Model file or folder: a path, file://, or http(s):// (never a link-local or cloud-metadata "
        "address).")
    sha256: str | None = setting(None, help="Expected sha256 of the .onnx file; checked before loading.")
    model_name: str = setting(help="Name in /v2/models/{name}.")
    model_version: str = setting("1", help="Version reported and accepted in /versions/{v}.")
    revision: str = setting(
        "", help="Rollout revision this server belongs to (the operator sets it): the revision label of "
        "every metric.")
    host: str = setting("127.0.0.1", help="Address to listen on (0.0.0.0 in a pod).")
    port: int = setting(8080)
    # Dynamic batching (Triton semantics).
    max_batch_size: int = setting(
        0, at_least=0, help="Dynamic batching: most rows per run; 0 turns batching off.")
    max_queue_delay_us: int = setting(
        500, at_least=0, help="Dynamic batching: longest wait of the oldest request for more rows.")
    max_queue_size: int = setting(
        256, at_least=1, help="Requests allowed to wait; beyond it the server answers 503 with Retry-After.")
    workers: int = setting(1, at_least=1, help="Inference runs in flight at once.")
    intra_op_threads: int = setting(
        0, at_least=0, help="onnxruntime intra-op threads; 0 sizes them from the container's CPU limit.")
    inter_op_threads: int = setting(1, at_least=1)
    execution_provider: str = setting("cpu", choices=("cpu", "cuda"), help="cuda needs onnxruntime-gpu.")
    # Limits and input policy.
    max_body_bytes: int = setting(
        16 * 1024 * 1024, at_least=1, help="Largest request body (after decompression); larger ones get 413.")
    allow_nonfinite: bool = setting(
        False, off_flag="--reject-nonfinite",
        help="Accept NaN and Infinity in float inputs (rejected with 400 by default).")
    # Model fetching (loading.py, model_uri.py).
    cache_dir: Path = setting(default_factory=_cache_dir, help="Where downloaded models are kept.")
    download: DownloadPolicy = DownloadPolicy()
    require_sha256: bool = setting(
        False, off_flag="--no-require-sha256", help="Refuse to start without --sha256.")
    # Prediction logging (off unless a path is given).
    prediction_log: str | None = setting(
        None, help="Write sampled predictions as JSON lines to this file ('-' for stdout).")
    prediction_log_sample_rate: float = setting(1.0, at_least=0, at_most=1)
    shutdown: Shutdown = Shutdown()  # stay up but unready, then finish in-flight requests
    access_log: bool = setting(False, off_flag="--no-access-log", help="Log every inference request.")
    # Model-aware gates (docs/gates.md).
    drift_window_rows: int = setting(
        1000, at_least=10,
        help="Input drift (with a profile.json beside the model): PSI and KS over the last this many rows.")
    feedback_store_size: int = setting(
        50_000, at_least=0,
        help="Predicted rows kept for feedback (POST .../feedback); the oldest go first. 0: no feedback.")
    feedback_ttl_seconds: float = setting(3600.0, above=0, help="How long a prediction takes its label.")
    # What a client may send before its request is answered (serving/http_limits.py).
    http: HttpLimits = HttpLimits()

    def __post_init__(self) -> None:
        check_bounds(self)
        if self.sha256 is not None and not _SHA256.match(self.sha256):
            raise ValueError(f"--sha256 must be 64 hexadecimal digits, got {self.sha256!r}")
        if self.require_sha256 and not self.sha256:
            raise ValueError("--require-sha256 is set and no --sha256 is given: "
                             "refusing to load a model that cannot be verified")
