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
