"""Every metric name modelrollout exports, defined once.

The server, the gateway, the operator's builtin analysis queries, the dashboard and
the alert rules all take their names from here. Labels stay low-cardinality: never a
request id or a user id.
"""

PREFIX = "modelrollout_"

# Server (modelrollout serve)
SERVER_REQUESTS = PREFIX + "server_requests"  # counter; model, version, code
SERVER_REQUEST_DURATION = PREFIX + "server_request_duration_seconds"  # histogram; model, version
SERVER_STAGE_DURATION = PREFIX + "server_stage_duration_seconds"  # histogram; model, version, stage
SERVER_BATCH_SIZE = PREFIX + "server_batch_size"  # histogram; model, version
SERVER_QUEUE_DEPTH = PREFIX + "server_queue_depth"  # gauge; model, version
SERVER_INFLIGHT = PREFIX + "server_inflight_requests"  # gauge; model, version
SERVER_MODEL_INFO = PREFIX + "server_model_info"  # gauge=1; model, version, sha256, opset, provider
SERVER_MODEL_READY = PREFIX + "server_model_ready"  # gauge 0/1; model, version
SERVER_MODEL_LOAD_DURATION = PREFIX + "server_model_load_duration_seconds"  # gauge; model, version
SERVER_FAILURES = PREFIX + "server_failures"  # counter; model, version, reason
SERVER_PREDICTION_LOG_DROPPED = PREFIX + "server_prediction_log_dropped"  # counter; model, version

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
