"""Domain errors of the server and the HTTP status each maps to, all in one place.

    ServingError                 500  inference_error
    ├── BadRequest               400  bad_request
    ├── ModelNotFound            404  bad_request
    ├── PayloadTooLarge          413  too_large
    ├── Overloaded               503  overloaded  (with Retry-After)
    └── NotReady                 503  (model still loading, or failed to load)

The response body is always the Open Inference Protocol error object
``{"error": "<message>"}``.
"""

from __future__ import annotations


class ServingError(Exception):
    status = 500
    reason = "inference_error"  # label value of the failures metric
    headers: dict[str, str] = {}

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ServingError):
    status = 400
    reason = "bad_request"


class ModelNotFound(ServingError):
    status = 404
    reason = "bad_request"


class PayloadTooLarge(ServingError):
    status = 413
    reason = "too_large"


class Overloaded(ServingError):
    status = 503
    reason = "overloaded"

    def __init__(self, message: str, retry_after_seconds: int = 1) -> None:
        super().__init__(message)
        self.headers = {"retry-after": str(retry_after_seconds)}


class NotReady(ServingError):
    status = 503
    reason = "not_ready"
