"""Every metric modelrollout exports, defined once, as data: name, type, labels and help.

The server, the gateway and the operator register their metrics from here; the operator's
builtin analysis queries, the Grafana dashboard (monitoring/dashboard.py) and the alert rules
(monitoring/alerts.py) take their names from here too, and `selector()` refuses a label a metric
does not have. Labels stay low-cardinality: never a request id or a user id.

Each metric is a module constant holding its full name (``SERVER_REQUESTS`` is
``"modelrollout_server_requests"``), so code that only needs the name keeps using it;
``metric(name)`` gives the whole definition and ``catalogue()`` all of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "modelrollout_"

COUNTER, GAUGE, HISTOGRAM = "counter", "gauge", "histogram"


@dataclass(frozen=True)
class Metric:
    name: str  # without the _total/_bucket/_sum/_count suffixes Prometheus adds
    type: str  # COUNTER, GAUGE or HISTOGRAM
    labels: tuple[str, ...]  # the labels the process itself puts on the metric
    help: str
    component: str  # which process exports it: server, gateway, operator, or every process

    @property
    def series(self) -> str:
        """The series name a query uses: ``_total`` for a counter, the name itself for a gauge
        (histograms have three: use ``bucket``, ``sum`` and ``count``)."""
        if self.type == HISTOGRAM:
            raise ValueError(f"{self.name} is a histogram: use its bucket, sum or count series")
        return self.name + "_total" if self.type == COUNTER else self.name

    @property
    def bucket(self) -> str:
        return self._histogram("_bucket")

    @property
    def sum(self) -> str:
        return self._histogram("_sum")

    @property
    def count(self) -> str:
        return self._histogram("_count")

    def _histogram(self, suffix: str) -> str:
        if self.type != HISTOGRAM:
            raise ValueError(f"{self.name} is a {self.type}, not a histogram")
        return self.name + suffix


_CATALOGUE: dict[str, Metric] = {}


def _define(name: str, kind: str, labels: tuple[str, ...], help_text: str, component: str) -> str:
    full = PREFIX + name
    if full in _CATALOGUE:
        raise ValueError(f"{full} is defined twice")
    _CATALOGUE[full] = Metric(full, kind, labels, help_text, component)
    return full


def metric(name: str) -> Metric:
    """The definition of the metric called ``name`` (a module constant's value)."""
    try:
        return _CATALOGUE[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a modelrollout metric (serving/contract/metric_names.py)") from None


def family(kind, name: str, registry, **options):
    """A prometheus_client metric (``kind``: Counter, Gauge, Histogram) of ``registry``, as this
    catalogue defines ``name``: its name, help and labels. Every process registers this way."""
    definition = metric(name)
    return kind(definition.name, definition.help, definition.labels, registry=registry, **options)


def catalogue() -> tuple[Metric, ...]:
    """Every metric, in the order they are defined here."""
    return tuple(_CATALOGUE.values())


# Labels that the scrape adds rather than the process: Prometheus' own (job, instance), and
# what the chart's PodMonitor and the local harness's file SD give every model server pod.
TARGET_LABELS = ("job", "instance", "namespace", "pod", "model_deployment")
# Scrape jobs, the same in a cluster (the chart's ServiceMonitors and PodMonitor relabel to
# them) and in the local harness: the dashboard and the alerts select on them.
JOB_OPERATOR = "modelrollout-operator"
JOB_GATEWAY = "modelrollout-gateway"
JOB_SERVERS = "modelrollout-server"

_MATCHER = re.compile(r'(=|!=|=~|!~)".*"', re.DOTALL)


def selector(metric_name: str, suffix: str = "", /, **matchers: str) -> str:
    """``name<suffix>{label<op>"value",...}`` for PromQL, each label checked against the
    contract. ``suffix`` is "total", "bucket", "sum" or "count" ("" for a gauge); a matcher is
    written with its operator: ``selector(SERVER_REQUESTS, "total", code='=~"5.."')``. The first
    two arguments are positional only, so ``name`` (the operator's label) can be a matcher."""
    definition = metric(metric_name)
    series = {"": definition.series if definition.type != HISTOGRAM else None,
              "total": definition.series if definition.type == COUNTER else None,
              "bucket": definition.bucket if definition.type == HISTOGRAM else None,
              "sum": definition.sum if definition.type == HISTOGRAM else None,
              "count": definition.count if definition.type == HISTOGRAM else None}.get(suffix)
    if series is None:
        raise ValueError(f"{metric_name} is a {definition.type}: no {suffix or 'plain'} series")
    allowed = set(definition.labels) | set(TARGET_LABELS) | ({"le"} if suffix == "bucket" else set())
    parts = []
    for label, matcher in matchers.items():
        if label not in allowed:
            raise ValueError(f"{metric_name} has no label {label!r} (it has {', '.join(definition.labels)})")
        if not _MATCHER.fullmatch(matcher):
            raise ValueError(f"matcher for {label!r} must be an operator and a quoted value: {matcher!r}")
        parts.append(f"{label}{matcher}")
    return f"{series}{{{','.join(parts)}}}" if parts else series


# Latency histogram buckets of the server and the gateway, 100 µs to 10 s: tiny models
# answer in well under a millisecond, so the low end needs resolution.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
)

# Every process (server, gateway, operator): which modelrollout and Python it runs.
BUILD_INFO = _define("build_info", GAUGE, ("version", "python_version"),
                     "The modelrollout version and Python version of this process (value 1)", "every")

# Server (modelrollout serve). "revision" is the operator's revision of the pod (--revision).
_SERVER = ("model", "version", "revision")
SERVER_REQUESTS = _define("server_requests", COUNTER, (*_SERVER, "code"),
                          "Inference requests by status code", "server")
SERVER_REQUEST_DURATION = _define("server_request_duration_seconds", HISTOGRAM, _SERVER,
                                  "Inference request duration, body read to response", "server")
SERVER_STAGE_DURATION = _define("server_stage_duration_seconds", HISTOGRAM, (*_SERVER, "stage"),
                                "Time spent per stage of an inference request", "server")
SERVER_BATCH_SIZE = _define("server_batch_size", HISTOGRAM, _SERVER, "Rows per onnxruntime run", "server")
# Rows per run over --max-batch-size, with dynamic batching on only: runs near 1 are full,
# the pods saturated (an autoscaling signal, docs/autoscaling.md).
SERVER_BATCH_FILL = _define("server_batch_fill_ratio", HISTOGRAM, _SERVER,
                            "Rows per onnxruntime run over the max batch size (dynamic batching on)",
                            "server")
BATCH_FILL_BUCKETS = (0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0)
SERVER_QUEUE_DEPTH = _define("server_queue_depth", GAUGE, _SERVER, "Requests waiting for an inference slot",
                             "server")
SERVER_INFLIGHT = _define("server_inflight_requests", GAUGE, _SERVER, "Inference requests being handled",
                          "server")
SERVER_MODEL_INFO = _define("server_model_info", GAUGE, (*_SERVER, "sha256", "opset", "provider"),
                            "The loaded model (value 1)", "server")
SERVER_MODEL_READY = _define("server_model_ready", GAUGE, _SERVER,
                             "1 when the model is loaded, warmed up and serving", "server")
SERVER_MODEL_LOAD_DURATION = _define("server_model_load_duration_seconds", GAUGE, _SERVER,
                                     "Seconds from start of fetch to ready", "server")
SERVER_FAILURES = _define("server_failures", COUNTER, (*_SERVER, "reason"), "Failures by reason", "server")
SERVER_PREDICTION_LOG_DROPPED = _define("server_prediction_log_dropped", COUNTER, _SERVER,
                                        "Prediction log lines dropped (writer behind)", "server")

# Model-aware signals (docs/gates.md). All of them are computed off the request path by
# the server's monitor thread (serving/server/monitor.py), from what it was handed; when
# it falls behind, whole requests are left out and counted in SERVER_MONITOR_DROPPED, so
# every ratio below takes SERVER_MONITORED_ROWS as its denominator.
SERVER_MONITORED_ROWS = _define("server_monitored_rows", COUNTER, _SERVER,
                                "Rows the monitor has checked (the denominator of every ratio)", "server")
SERVER_MONITOR_DROPPED = _define("server_monitor_dropped", COUNTER, _SERVER,  # requests
                                 "Requests left unmonitored because the monitor was behind", "server")
# CPU time of the monitor thread (thread_time): what the signals cost, apart from the request path.
SERVER_MONITOR_CPU = _define("server_monitor_cpu_seconds", COUNTER, _SERVER,
                             "CPU seconds the monitor thread has used", "server")
# Prediction distribution, with or without a profile. Classifiers: rows per predicted class
# (at most MAX_CLASS_LABELS class values, the rest as CLASS_OTHER). Regressors: a histogram
# of the predicted value on SCORE_BUCKETS (or the model metadata's scoreBuckets).
SERVER_PREDICTIONS = _define("server_predictions", COUNTER, (*_SERVER, "class"),  # rows
                             "Rows predicted, by predicted class (classifiers)", "server")
SERVER_PREDICTION_SCORE = _define("server_prediction_score", HISTOGRAM, _SERVER,
                                  "Predicted values (regressors)", "server")
# With a profile (profile.json beside model.onnx): its digest, and the input checks.
SERVER_PROFILE_INFO = _define("server_profile_info", GAUGE, (*_SERVER, "sha256"),
                              "The reference profile in use (value 1)", "server")
# Each class's share of the model's predictions on the profile's sample (profile.json's
# prediction.classFrequencies), every known class listed (0 for one the sample never got):
# what the guard's prediction-shift compares the live predictions with (docs/gates.md).
SERVER_REFERENCE_PREDICTIONS = _define("server_reference_prediction_share", GAUGE, (*_SERVER, "class"),
                                       "Share of each class in the profile's predictions (classifiers)",
                                       "server")
# Drift of the last --drift-window-rows rows against the profile, per feature (the profile's
# first MAX_FEATURE_LABELS features). Exported once the window holds a row with a value for
# the feature; refreshed about every second. KS only for numeric features.
SERVER_INPUT_DRIFT_PSI = _define("server_input_drift_psi", GAUGE, (*_SERVER, "feature"),
                                 "PSI of the feature over the drift window against the profile", "server")
SERVER_INPUT_DRIFT_KS = _define("server_input_drift_ks", GAUGE, (*_SERVER, "feature"),
                                "KS statistic of the feature over the drift window against the profile",
                                "server")
SERVER_INPUT_DRIFT_WINDOW_ROWS = _define("server_input_drift_window_rows", GAUGE, _SERVER,
                                         "Rows in the drift window", "server")
SERVER_INPUT_VIOLATIONS = _define("server_input_violations", COUNTER, (*_SERVER, "feature", "kind"),  # values
                                  "Feature values out of the profile's range, or missing", "server")
SERVER_INPUT_VIOLATING_ROWS = _define("server_input_violating_rows", COUNTER, _SERVER,
                                      "Rows with at least one input violation", "server")
# Rows whose output holds a value outside the metadata's outputBounds (or NaN).
SERVER_OUTPUT_VIOLATIONS = _define("server_output_violations", COUNTER, (*_SERVER, "output"),  # rows
                                   "Rows with an output value outside the declared outputBounds", "server")
# Ground truth (POST .../feedback) joined to the server's own predictions.
SERVER_FEEDBACK = _define("server_feedback", COUNTER, (*_SERVER, "result"),  # classifier rows
                          "Labelled rows joined to a prediction (classifiers)", "server")
SERVER_FEEDBACK_ABS_ERROR = _define("server_feedback_abs_error", HISTOGRAM, _SERVER,  # regressor rows
                                    "Absolute error of labelled rows (regressors)", "server")
SERVER_FEEDBACK_REJECTED = _define("server_feedback_rejected", COUNTER, (*_SERVER, "reason"),  # ids
                                   "Feedback ids not joined, by reason", "server")
SERVER_FEEDBACK_STORE_ROWS = _define("server_feedback_store_rows", GAUGE, _SERVER,
                                     "Predicted rows held for feedback", "server")
# Predictions pushed out of the store by its size limit before any label came for them.
SERVER_FEEDBACK_STORE_EVICTIONS = _define("server_feedback_store_evictions", COUNTER, _SERVER,  # rows
                                          "Rows pushed out of the store before their label came", "server")

# Kind label values of SERVER_INPUT_VIOLATIONS: a numeric value outside the profile's
# [min, max] or a category the profile never saw; a NaN (or empty category) value.
INPUT_VIOLATION_KINDS = ("out_of_range", "missing")
# Result label values of SERVER_FEEDBACK; reason label values of SERVER_FEEDBACK_REJECTED
# (the same words as the feedback API's answers, serving/contract/feedback.py).
FEEDBACK_RESULTS = ("correct", "incorrect")
FEEDBACK_REJECTIONS = ("unknown", "expired", "duplicate", "invalid")
# Bounds on label values that come from a model or a profile.
MAX_CLASS_LABELS = 64
CLASS_OTHER = "other"
MAX_FEATURE_LABELS = 64
# Default buckets of SERVER_PREDICTION_SCORE: 1-2-5 steps from 0.001 to 50 000 on both sides
# of 0. The same on every revision, so two revisions' histograms can be compared bucket by
# bucket (models may declare their own scoreBuckets; give both revisions the same).
SCORE_BUCKETS = tuple(
    sorted({0.0} | {float(f"{sign * m}e{e}") for sign in (-1, 1) for e in range(-3, 5) for m in (1, 2, 5)})
)
# Buckets of SERVER_FEEDBACK_ABS_ERROR: 1-2-5 steps from 0.001 to 50 000.
ABS_ERROR_BUCKETS = tuple(sorted({0.0} | {float(f"{m}e{e}") for e in range(-3, 5) for m in (1, 2, 5)}))

# Stage label values of SERVER_STAGE_DURATION.
STAGES = ("decode", "queue", "infer", "encode")

# Reason label values of SERVER_FAILURES.
FAILURE_REASONS = (
    "bad_request",  # the request was malformed or did not fit the model
    "too_large",  # body over the size limit
    "overloaded",  # queue full, shed with 503
    "inference_error",  # onnxruntime raised on a valid request
    "download",  # the model could not be fetched
    "sha256_mismatch",  # the model's digest differs from --sha256
    "load",  # onnxruntime could not load the model
)
# The reasons that keep a pod from ever serving (the model never loaded).
LOAD_FAILURE_REASONS = ("download", "sha256_mismatch", "load")

# Gateway (modelrollout gateway). "revision" and "role" come from the route table.
_GATEWAY = ("model", "revision", "role")
# What the client got, under the revision that answered: a request another revision answered
# for (a fallback) counts here under that one only, never under the revision that failed it.
GATEWAY_REQUESTS = _define("gateway_requests", COUNTER, (*_GATEWAY, "code"),
                           "Requests answered, by the revision that served them", "gateway")
GATEWAY_REQUEST_DURATION = _define("gateway_request_duration_seconds", HISTOGRAM, _GATEWAY,
                                   "Request duration at the gateway, body read to response", "gateway")
# Failures of a revision seen only by the gateway: no ready endpoint, connection refused
# (a crashed pod), timeouts, broken responses; and, on routes with a fallback revision, a
# 5xx answer or the route's deadline passing that made the fallback answer instead. A
# request that fell back to another revision succeeded for the client but still counts
# here against the revision that failed.
GATEWAY_UPSTREAM_FAILURES = _define("gateway_upstream_failures", COUNTER, (*_GATEWAY, "reason"),
                                    "Failures of a revision seen by the gateway", "gateway")
# revision: the one that could not serve (no endpoint reached, or, on routes with a fallback
# revision, it failed the request or missed the deadline). The analysis error rate counts
# these as the revision's errors, so a failure the client never saw still counts.
GATEWAY_FALLBACKS = _define("gateway_fallbacks", COUNTER, _GATEWAY,
                            "Requests served by another revision because this one could not", "gateway")
GATEWAY_EJECTIONS = _define("gateway_ejections", COUNTER, ("model", "revision"),
                            "Endpoints ejected after consecutive failures", "gateway")
GATEWAY_WEIGHT = _define("gateway_weight_percent", GAUGE, _GATEWAY,
                         "Current traffic weight of each revision (percent)", "gateway")
# Endpoints of each revision in the route table that are ready (0: requests to it fail with
# no_endpoint, or fall back to the other revision).
GATEWAY_READY_ENDPOINTS = _define("gateway_ready_endpoints", GAUGE, _GATEWAY,
                                  "Ready endpoints of each revision in the route table", "gateway")
GATEWAY_ROUTE_UPDATES = _define("gateway_route_updates", COUNTER, ("source", "result"),  # applied|rejected
                                "Route table updates", "gateway")
# result: sent|dropped|failed
GATEWAY_MIRRORED = _define("gateway_mirrored", COUNTER, ("model", "revision", "result"),
                           "Mirrored requests by outcome", "gateway")
# The shadow's revision is a label too, so a new shadow mid-rollout starts its own series.
SHADOW_COMPARISONS = _define("shadow_comparisons", COUNTER, ("model", "revision", "result"),
                             "Shadow answer compared with the primary's", "gateway")
SHADOW_MAX_ABS_DIFF = _define("shadow_max_abs_difference", HISTOGRAM, ("model", "revision"),
                              "Largest absolute difference between shadow and primary outputs", "gateway")
SHADOW_DURATION = _define("shadow_request_duration_seconds", HISTOGRAM, ("model", "revision"),
                          "Duration of mirrored requests to the shadow", "gateway")
# The served (primary) side of the same mirrored requests, labelled by the shadow's revision:
# shadow p99 over this p99 compares the two revisions on the same requests.
SHADOW_PRIMARY_DURATION = _define("shadow_primary_request_duration_seconds", HISTOGRAM,
                                  ("model", "revision"),
                                  "Duration of the served requests that were mirrored, by shadow", "gateway")

# Feedback (POST .../feedback) sent on to the revision that answered the request and to the
# shadow that got its mirrored copy. Unrouted: ids not in the gateway's map and either sent
# without an x-modelrollout-revision header or unknown to every endpoint of the one named.
GATEWAY_FEEDBACK = _define("gateway_feedback", COUNTER, (*_GATEWAY, "result"),  # ids
                           "Feedback ids sent on to the revision (or shadow) that made the prediction",
                           "gateway")
GATEWAY_FEEDBACK_UNROUTED = _define("gateway_feedback_unrouted", COUNTER, ("model",),  # ids
                                    "Feedback ids the gateway had no revision for", "gateway")
# The bounded map request id -> endpoint that answered (and shadow endpoint that got the copy).
GATEWAY_ANSWERED_IDS = _define("gateway_answered_ids", GAUGE, (),
                               "Request ids remembered for feedback routing", "gateway")
# reason: capacity|expired
GATEWAY_ANSWERED_ID_EVICTIONS = _define("gateway_answered_id_evictions", COUNTER, ("reason",),
                                        "Request ids forgotten, by reason", "gateway")

# Reason label values of GATEWAY_UPSTREAM_FAILURES.
# error_status: a 5xx answer the route's fallback revision replaced; deadline: the route's
# fallback.deadlineMs passed before the revision answered (the call was cancelled).
UPSTREAM_FAILURE_REASONS = ("no_endpoint", "connect", "timeout", "broken", "error_status", "deadline")
# Result label values of SHADOW_COMPARISONS.
SHADOW_RESULTS = ("agree", "disagree", "error")

# Operator (labels namespace and name are those of the ModelDeployment)
_ROLLOUT = ("namespace", "name")
ROLLOUT_PHASE = _define("rollout_phase", GAUGE, (*_ROLLOUT, "strategy", "phase"),
                        "1 for the rollout's current phase", "operator")
# status.reason: why the phase is what it is (AnalysisInconclusive, WaitingForPromotion ...).
ROLLOUT_REASON = _define("rollout_reason", GAUGE, (*_ROLLOUT, "reason"),
                         "1 for the rollout's current reason (status.reason)", "operator")
# After the promotion (spec.guard, spec.fallback; docs/guard.md). No series without them.
GUARD_STATE = _define("guard_state", GAUGE, (*_ROLLOUT, "state"),  # Watching|Fired|Ended
                      "1 for the current state of the guard on the promoted revision", "operator")
FALLBACK_ACTIVE = _define("fallback_active", GAUGE, (*_ROLLOUT, "kind"),  # previousStable|model
                          "1 while the fallback serves all traffic, 0 while it stands by", "operator")
ROLLOUT_STEP = _define("rollout_step", GAUGE, _ROLLOUT,  # index of the step being worked on
                       "Index of the canary step being worked on", "operator")
ROLLOUT_WEIGHT = _define("rollout_weight_percent", GAUGE, (*_ROLLOUT, "role"),  # stable|candidate|mirror
                         "Traffic percentage by role", "operator")
ANALYSIS_VALUE = _define("analysis_value", GAUGE, (*_ROLLOUT, "metric"),  # the last measured value
                         "Last measured value of an analysis metric", "operator")
# thresholdRange of each analysis metric of the spec: bound=min|max.
ANALYSIS_THRESHOLD = _define("analysis_threshold", GAUGE, (*_ROLLOUT, "metric", "bound"),
                             "Threshold of an analysis metric (spec.analysis.metrics[].thresholdRange)",
                             "operator")
ANALYSIS_MEASUREMENTS = _define("analysis_measurements", COUNTER, (*_ROLLOUT, "metric", "phase"),
                                "Analysis measurements by verdict", "operator")
ROLLOUT_ABORTS = _define("rollout_aborts", COUNTER, (*_ROLLOUT, "strategy", "reason"),
                         "Rollouts aborted, by reason", "operator")
ROLLOUT_PROMOTIONS = _define("rollout_promotions", COUNTER, (*_ROLLOUT, "strategy"),
                             "Candidates promoted", "operator")
ROLLOUT_TIME_TO_PROMOTE = _define("rollout_time_to_promote_seconds", HISTOGRAM, (*_ROLLOUT, "strategy"),
                                  "From a candidate's appearance to its promotion", "operator")
RECONCILE_ERRORS = _define("reconcile_errors", COUNTER, _ROLLOUT,
                           "Reconciles that failed and will be retried", "operator")
RECONCILE_DURATION = _define("reconcile_duration_seconds", HISTOGRAM, _ROLLOUT, "Time of one reconcile",
                             "operator")

# Bound label values of ANALYSIS_THRESHOLD.
THRESHOLD_BOUNDS = ("min", "max")
