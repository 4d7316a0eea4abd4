"""The server's Prometheus metrics, on a registry of its own (one per app)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from modelrollout import build_info

from ..contract import metric_names as names

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServerMetrics:
    def __init__(self, model: str, version: str, revision: str = "",
                 registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        build_info.register(r)
        # revision: the rollout revision this server belongs to (set by the operator), so
        # analysis can tell stable from candidate even when both serve the same version.
        labels = {"model": model, "version": version, "revision": revision}
        self._labels = labels
        self.requests = Counter(
            names.SERVER_REQUESTS, "Inference requests by status code",
            ["model", "version", "revision", "code"], registry=r,
        )
        self.request_duration = Histogram(
            names.SERVER_REQUEST_DURATION, "Inference request duration, body read to response",
            ["model", "version", "revision"], buckets=names.LATENCY_BUCKETS, registry=r,
        ).labels(**labels)
        stage = Histogram(
            names.SERVER_STAGE_DURATION, "Time spent per stage of an inference request",
            ["model", "version", "revision", "stage"], buckets=names.LATENCY_BUCKETS, registry=r,
        )
        self.stage = {s: stage.labels(stage=s, **labels) for s in names.STAGES}
        self.batch_size = Histogram(
            names.SERVER_BATCH_SIZE, "Rows per onnxruntime run",
            ["model", "version", "revision"], buckets=BATCH_BUCKETS, registry=r,
        ).labels(**labels)
        self.queue_depth = Gauge(
            names.SERVER_QUEUE_DEPTH, "Requests waiting for an inference slot",
            ["model", "version", "revision"], registry=r,
        ).labels(**labels)
        self.inflight = Gauge(
            names.SERVER_INFLIGHT, "Inference requests being handled",
            ["model", "version", "revision"], registry=r,
        ).labels(**labels)
        self.model_info = Gauge(
            names.SERVER_MODEL_INFO, "The loaded model (value 1)",
            ["model", "version", "revision", "sha256", "opset", "provider"], registry=r,
        )
        self.model_ready = Gauge(
            names.SERVER_MODEL_READY, "1 when the model is loaded, warmed up and serving",
            ["model", "version", "revision"], registry=r,
        ).labels(**labels)
        self.load_duration = Gauge(
            names.SERVER_MODEL_LOAD_DURATION, "Seconds from start of fetch to ready",
            ["model", "version", "revision"], registry=r,
        ).labels(**labels)
        failures = Counter(
            names.SERVER_FAILURES, "Failures by reason",
            ["model", "version", "revision", "reason"], registry=r,
        )
        self.failures = failures
        for reason in names.FAILURE_REASONS:  # export zeros so rate() works from the start
            failures.labels(reason=reason, **labels)
        self.prediction_log_dropped = Counter(
            names.SERVER_PREDICTION_LOG_DROPPED, "Prediction log lines dropped (writer behind)",
            ["model", "version", "revision"], registry=r,
        ).labels(**labels)
        self._codes: dict[int, Counter] = {}

    def count_request(self, code: int) -> None:
        child = self._codes.get(code)
        if child is None:
            child = self._codes[code] = self.requests.labels(code=str(code), **self._labels)
        child.inc()

    def count_failure(self, reason: str) -> None:
        self.failures.labels(reason=reason, **self._labels).inc()

    def set_model_info(self, sha256: str, opset: int, provider: str) -> None:
        self.model_info.labels(
            sha256=sha256, opset=str(opset), provider=provider, **self._labels
        ).set(1)
