"""The server's Prometheus metrics, on a registry of its own (one per app)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from modelrollout import build_info

from ..contract import metric_names as names
from ..contract.metric_names import family

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
        self.requests = family(Counter, names.SERVER_REQUESTS, registry=r)
        self.request_duration = family(Histogram, names.SERVER_REQUEST_DURATION,
                                       buckets=names.LATENCY_BUCKETS, registry=r).labels(**labels)
        stage = family(Histogram, names.SERVER_STAGE_DURATION, buckets=names.LATENCY_BUCKETS, registry=r)
        self.stage = {s: stage.labels(stage=s, **labels) for s in names.STAGES}
        self.batch_size = family(Histogram, names.SERVER_BATCH_SIZE,
                                 buckets=BATCH_BUCKETS, registry=r).labels(**labels)
        self.batch_fill = family(Histogram, names.SERVER_BATCH_FILL,
                                 buckets=names.BATCH_FILL_BUCKETS, registry=r).labels(**labels)
        self.queue_depth = family(Gauge, names.SERVER_QUEUE_DEPTH, registry=r).labels(**labels)
        self.inflight = family(Gauge, names.SERVER_INFLIGHT, registry=r).labels(**labels)
        self.model_info = family(Gauge, names.SERVER_MODEL_INFO, registry=r)
        self.model_ready = family(Gauge, names.SERVER_MODEL_READY, registry=r).labels(**labels)
        self.load_duration = family(Gauge, names.SERVER_MODEL_LOAD_DURATION, registry=r).labels(**labels)
        failures = family(Counter, names.SERVER_FAILURES, registry=r)
        self.failures = failures
        for reason in names.FAILURE_REASONS:  # export zeros so rate() works from the start
            failures.labels(reason=reason, **labels)
        self.prediction_log_dropped = family(Counter, names.SERVER_PREDICTION_LOG_DROPPED,
                                             registry=r).labels(**labels)
        self._codes: dict[int, Counter] = {}
        self.gates = GateMetrics(r, labels)

    def batch_observer(self, max_batch_size: int) -> Callable[[int], None]:
        """What the scheduler calls after each run with its rows: the batch size, and with
        dynamic batching on (``max_batch_size`` > 0) the batch fill."""
        size = self.batch_size.observe
        if max_batch_size <= 0:
            return size
        fill = self.batch_fill.observe

        def observe(rows: int) -> None:
            size(rows)
            fill(rows / max_batch_size)

        return observe

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
        self.monitored_rows = family(Counter, names.SERVER_MONITORED_ROWS, registry=r).labels(**labels)
        self.monitor_dropped = family(Counter, names.SERVER_MONITOR_DROPPED, registry=r).labels(**labels)
        self.monitor_cpu = family(Counter, names.SERVER_MONITOR_CPU, registry=r).labels(**labels)
        self.predictions = family(Counter, names.SERVER_PREDICTIONS, registry=r)
        self._registry = r
        self.score = self._score_family(names.SCORE_BUCKETS)
        self.profile_info = family(Gauge, names.SERVER_PROFILE_INFO, registry=r)
        self.reference_predictions = family(Gauge, names.SERVER_REFERENCE_PREDICTIONS, registry=r)
        self.drift_psi = family(Gauge, names.SERVER_INPUT_DRIFT_PSI, registry=r)
        self.drift_ks = family(Gauge, names.SERVER_INPUT_DRIFT_KS, registry=r)
        self.drift_window_rows = family(Gauge, names.SERVER_INPUT_DRIFT_WINDOW_ROWS, registry=r)
        self.input_violations = family(Counter, names.SERVER_INPUT_VIOLATIONS, registry=r)
        self.input_violating_rows = family(Counter, names.SERVER_INPUT_VIOLATING_ROWS, registry=r)
        self.output_violations = family(Counter, names.SERVER_OUTPUT_VIOLATIONS, registry=r)
        self.feedback = family(Counter, names.SERVER_FEEDBACK, registry=r)
        self.feedback_abs_error = family(Histogram, names.SERVER_FEEDBACK_ABS_ERROR,
                                         buckets=names.ABS_ERROR_BUCKETS, registry=r)
        self.feedback_rejected = family(Counter, names.SERVER_FEEDBACK_REJECTED, registry=r)
        self.feedback_store_rows = family(Gauge, names.SERVER_FEEDBACK_STORE_ROWS, registry=r)
        self.feedback_store_evictions = family(Counter, names.SERVER_FEEDBACK_STORE_EVICTIONS,
                                               registry=r).labels(**labels)
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
        return family(Histogram, names.SERVER_PREDICTION_SCORE, buckets=buckets, registry=self._registry)

    def child(self, metric, **extra: str):
        return metric.labels(**extra, **self._labels)
