"""Every metric name modelrollout exports, defined once.

The server, the gateway, the operator's builtin analysis queries, the dashboard and
the alert rules all take their names from here. Labels stay low-cardinality: never a
request id or a user id.
"""

PREFIX = "modelrollout_"

# Latency histogram buckets of the server and the gateway, 100 µs to 10 s: tiny models
# answer in well under a millisecond, so the low end needs resolution.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
)

# Every process (server, gateway, operator): which modelrollout and Python it runs.
BUILD_INFO = PREFIX + "build_info"  # gauge=1; version, python_version

# Server (modelrollout serve). "revision" is the operator's revision of the pod (--revision).
SERVER_REQUESTS = PREFIX + "server_requests"  # counter; model, version, revision, code
SERVER_REQUEST_DURATION = PREFIX + "server_request_duration_seconds"  # histogram; model, version, revision
SERVER_STAGE_DURATION = PREFIX + "server_stage_duration_seconds"  # histogram; model, version, revision, stage
SERVER_BATCH_SIZE = PREFIX + "server_batch_size"  # histogram; model, version, revision
SERVER_QUEUE_DEPTH = PREFIX + "server_queue_depth"  # gauge; model, version, revision
SERVER_INFLIGHT = PREFIX + "server_inflight_requests"  # gauge; model, version, revision
SERVER_MODEL_INFO = PREFIX + "server_model_info"  # gauge=1; model, version, revision, sha256, opset, provider
SERVER_MODEL_READY = PREFIX + "server_model_ready"  # gauge 0/1; model, version, revision
SERVER_MODEL_LOAD_DURATION = PREFIX + "server_model_load_duration_seconds"  # gauge; model, version, revision
SERVER_FAILURES = PREFIX + "server_failures"  # counter; model, version, revision, reason
SERVER_PREDICTION_LOG_DROPPED = PREFIX + "server_prediction_log_dropped"  # counter; model, version, revision

# Model-aware signals (docs/gates.md). All of them are computed off the request path by
# the server's monitor thread (serving/server/monitor.py), from what it was handed; when
# it falls behind, whole requests are left out and counted in SERVER_MONITOR_DROPPED, so
# every ratio below takes SERVER_MONITORED_ROWS as its denominator.
SERVER_MONITORED_ROWS = PREFIX + "server_monitored_rows"  # counter; model, version, revision
SERVER_MONITOR_DROPPED = PREFIX + "server_monitor_dropped"  # counter (requests); model, version, revision
# CPU time of the monitor thread (thread_time): what the signals cost, apart from the request path.
SERVER_MONITOR_CPU = PREFIX + "server_monitor_cpu_seconds"  # counter; model, version, revision
# Prediction distribution, with or without a profile. Classifiers: rows per predicted class
# (at most MAX_CLASS_LABELS class values, the rest as CLASS_OTHER). Regressors: a histogram
# of the predicted value on SCORE_BUCKETS (or the model metadata's scoreBuckets).
SERVER_PREDICTIONS = PREFIX + "server_predictions"  # counter (rows); model, version, revision, class
SERVER_PREDICTION_SCORE = PREFIX + "server_prediction_score"  # histogram; model, version, revision
# With a profile (profile.json beside model.onnx): its digest, and the input checks.
SERVER_PROFILE_INFO = PREFIX + "server_profile_info"  # gauge=1; model, version, revision, sha256
# Drift of the last --drift-window-rows rows against the profile, per feature (the profile's
# first MAX_FEATURE_LABELS features). Exported once the window holds a row with a value for
# the feature; refreshed about every second. KS only for numeric features.
SERVER_INPUT_DRIFT_PSI = PREFIX + "server_input_drift_psi"  # gauge; model, version, revision, feature
SERVER_INPUT_DRIFT_KS = PREFIX + "server_input_drift_ks"  # gauge; model, version, revision, feature
SERVER_INPUT_DRIFT_WINDOW_ROWS = PREFIX + "server_input_drift_window_rows"  # gauge; model, version, revision
SERVER_INPUT_VIOLATIONS = PREFIX + "server_input_violations"  # counter (values); ..., feature, kind
SERVER_INPUT_VIOLATING_ROWS = PREFIX + "server_input_violating_rows"  # counter; model, version, revision
# Rows whose output holds a value outside the metadata's outputBounds (or NaN).
SERVER_OUTPUT_VIOLATIONS = PREFIX + "server_output_violations"  # counter (rows); ..., output
# Ground truth (POST .../feedback) joined to the server's own predictions.
SERVER_FEEDBACK = PREFIX + "server_feedback"  # counter (classifier rows); ..., result=correct|incorrect
SERVER_FEEDBACK_ABS_ERROR = PREFIX + "server_feedback_abs_error"  # histogram (regressor rows); ...
SERVER_FEEDBACK_REJECTED = PREFIX + "server_feedback_rejected"  # counter (ids); ..., reason
SERVER_FEEDBACK_STORE_ROWS = PREFIX + "server_feedback_store_rows"  # gauge; model, version, revision
# Predictions pushed out of the store by its size limit before any label came for them.
SERVER_FEEDBACK_STORE_EVICTIONS = PREFIX + "server_feedback_store_evictions"  # counter (rows); ...

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

# Gateway (modelrollout gateway). "revision" and "role" come from the route table.
GATEWAY_REQUESTS = PREFIX + "gateway_requests"  # counter; model, revision, role, code
GATEWAY_REQUEST_DURATION = PREFIX + "gateway_request_duration_seconds"  # histogram; model, revision, role
# Failures of a revision seen only by the gateway: no ready endpoint, connection refused
# (a crashed pod), timeouts, broken responses. A request that fell back to the other
# revision succeeded for the client but still counts here against the revision that failed.
GATEWAY_UPSTREAM_FAILURES = PREFIX + "gateway_upstream_failures"  # counter; model, revision, role, reason
GATEWAY_FALLBACKS = PREFIX + "gateway_fallbacks"  # counter; model, revision (that could not serve), role
GATEWAY_EJECTIONS = PREFIX + "gateway_ejections"  # counter; model, revision
GATEWAY_WEIGHT = PREFIX + "gateway_weight_percent"  # gauge; model, revision, role
GATEWAY_ROUTE_UPDATES = PREFIX + "gateway_route_updates"  # counter; source, result=applied|rejected
GATEWAY_MIRRORED = PREFIX + "gateway_mirrored"  # counter; model, revision, result=sent|dropped|failed
# The shadow's revision is a label too, so a new shadow mid-rollout starts its own series.
SHADOW_COMPARISONS = PREFIX + "shadow_comparisons"  # counter; model, revision, result
SHADOW_MAX_ABS_DIFF = PREFIX + "shadow_max_abs_difference"  # histogram; model, revision
SHADOW_DURATION = PREFIX + "shadow_request_duration_seconds"  # histogram; model, revision
# The served (primary) side of the same mirrored requests, labelled by the shadow's revision:
# shadow p99 over this p99 compares the two revisions on the same requests.
SHADOW_PRIMARY_DURATION = PREFIX + "shadow_primary_request_duration_seconds"  # histogram; model, revision

# Feedback (POST .../feedback) sent on to the revision that answered the request and to the
# shadow that got its mirrored copy. Unrouted: ids not in the gateway's map and either sent
# without an x-modelrollout-revision header or unknown to every endpoint of the one named.
GATEWAY_FEEDBACK = PREFIX + "gateway_feedback"  # counter (ids); model, revision, role, result=sent|failed
GATEWAY_FEEDBACK_UNROUTED = PREFIX + "gateway_feedback_unrouted"  # counter (ids); model
# The bounded map request id -> endpoint that answered (and shadow endpoint that got the copy).
GATEWAY_ANSWERED_IDS = PREFIX + "gateway_answered_ids"  # gauge
GATEWAY_ANSWERED_ID_EVICTIONS = PREFIX + "gateway_answered_id_evictions"  # counter; reason=capacity|expired

# Reason label values of GATEWAY_UPSTREAM_FAILURES.
UPSTREAM_FAILURE_REASONS = ("no_endpoint", "connect", "timeout", "broken")
# Result label values of SHADOW_COMPARISONS.
SHADOW_RESULTS = ("agree", "disagree", "error")

# Operator (labels namespace and name are those of the ModelDeployment)
ROLLOUT_PHASE = PREFIX + "rollout_phase"  # gauge, 1 for the current phase; namespace, name, strategy, phase
ROLLOUT_STEP = PREFIX + "rollout_step"  # gauge; namespace, name (index of the step being worked on)
ROLLOUT_WEIGHT = PREFIX + "rollout_weight_percent"  # gauge; namespace, name, role=stable|candidate|mirror
ANALYSIS_VALUE = PREFIX + "analysis_value"  # gauge, the last measured value; namespace, name, metric
ANALYSIS_MEASUREMENTS = PREFIX + "analysis_measurements"  # counter; namespace, name, metric, phase
ROLLOUT_ABORTS = PREFIX + "rollout_aborts"  # counter; namespace, name, strategy, reason
ROLLOUT_PROMOTIONS = PREFIX + "rollout_promotions"  # counter; namespace, name, strategy
ROLLOUT_TIME_TO_PROMOTE = PREFIX + "rollout_time_to_promote_seconds"  # histogram; namespace, name, strategy
RECONCILE_ERRORS = PREFIX + "reconcile_errors"  # counter; namespace, name
RECONCILE_DURATION = PREFIX + "reconcile_duration_seconds"  # histogram; namespace, name
