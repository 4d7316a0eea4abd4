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
        self.gates = GateMetrics(r, labels)

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


class GateMetrics:
    """The model-aware signals (docs/gates.md): prediction distribution, input and output
    checks, drift, feedback. Written by the monitor thread (monitor.py), which creates
    per-class and per-feature series once it has something true to say about them: a
    drift gauge at 0 before any row came would read as "no drift"."""

    def __init__(self, r: CollectorRegistry, labels: dict[str, str]) -> None:
        self._labels = labels
        base = ["model", "version", "revision"]
        self.monitored_rows = Counter(
            names.SERVER_MONITORED_ROWS, "Rows the monitor has checked (the denominator of every ratio)",
            base, registry=r).labels(**labels)
        self.monitor_dropped = Counter(
            names.SERVER_MONITOR_DROPPED, "Requests left unmonitored because the monitor was behind",
            base, registry=r).labels(**labels)
        self.monitor_cpu = Counter(
            names.SERVER_MONITOR_CPU, "CPU seconds the monitor thread has used", base, registry=r,
        ).labels(**labels)
        self.predictions = Counter(
            names.SERVER_PREDICTIONS, "Rows predicted, by predicted class (classifiers)",
            [*base, "class"], registry=r)
        self._registry = r
        self.score = self._score_family(names.SCORE_BUCKETS)
        self.profile_info = Gauge(
            names.SERVER_PROFILE_INFO, "The reference profile in use (value 1)", [*base, "sha256"],
            registry=r)
        self.drift_psi = Gauge(
            names.SERVER_INPUT_DRIFT_PSI, "PSI of the feature over the drift window against the profile",
            [*base, "feature"], registry=r)
        self.drift_ks = Gauge(
            names.SERVER_INPUT_DRIFT_KS, "KS statistic of the feature over the drift window against the "
            "profile",
            [*base, "feature"], registry=r)
        self.drift_window_rows = Gauge(
            names.SERVER_INPUT_DRIFT_WINDOW_ROWS, "Rows in the drift window", base, registry=r)
        self.input_violations = Counter(
            names.SERVER_INPUT_VIOLATIONS, "Feature values out of the profile's range, or missing",
            [*base, "feature", "kind"], registry=r)
        self.input_violating_rows = Counter(
            names.SERVER_INPUT_VIOLATING_ROWS, "Rows with at least one input violation", base, registry=r)
        self.output_violations = Counter(
            names.SERVER_OUTPUT_VIOLATIONS, "Rows with an output value outside the declared outputBounds",
            [*base, "output"], registry=r)
        self.feedback = Counter(
            names.SERVER_FEEDBACK, "Labelled rows joined to a prediction (classifiers)",
            [*base, "result"], registry=r)
        self.feedback_abs_error = Histogram(
            names.SERVER_FEEDBACK_ABS_ERROR, "Absolute error of labelled rows (regressors)", base,
            buckets=names.ABS_ERROR_BUCKETS, registry=r)
        self.feedback_rejected = Counter(
            names.SERVER_FEEDBACK_REJECTED, "Feedback ids not joined, by reason", [*base, "reason"],
            registry=r)
        self.feedback_store_rows = Gauge(
            names.SERVER_FEEDBACK_STORE_ROWS, "Predicted rows held for feedback", base, registry=r)
        self.feedback_store_evictions = Counter(
            names.SERVER_FEEDBACK_STORE_EVICTIONS, "Rows pushed out of the store before their label came",
            base, registry=r).labels(**labels)
        for reason in names.FEEDBACK_REJECTIONS:  # zeros, so rate() works from the start
            self.feedback_rejected.labels(reason=reason, **labels)

    def score_histogram(self, buckets: tuple[float, ...]):
        """The regressor's score histogram, on the buckets of the model metadata when it has
        them (the family is registered from the start with the default ones)."""
        if tuple(buckets) != names.SCORE_BUCKETS:
            self._registry.unregister(self.score)
            self.score = self._score_family(buckets)
        return self.score.labels(**self._labels)

    def _score_family(self, buckets: tuple[float, ...]) -> Histogram:
        return Histogram(
            names.SERVER_PREDICTION_SCORE, "Predicted values (regressors)", ["model", "version", "revision"],
            buckets=buckets, registry=self._registry,
        )

    def child(self, metric, **extra: str):
        return metric.labels(**extra, **self._labels)
