"""What a failed call to the API server says, told one way: which call was refused, the
status and reason, the API server's own message, and for 401, 403 and 404 what to check.

The exception stays the official client's ApiException (callers catch it by status); the
client (api.py) adds ``call``, e.g. ``PATCH /apis/apps/v1/namespaces/ml/deployments/iris``.
"""

from __future__ import annotations

import contextlib
import json

from kubernetes.client.exceptions import ApiException

from .paths import custom_collection

__all__ = ["ApiException", "describe_error", "hint", "is_api_answer", "is_gone", "retry_after_seconds",
           "short_error"]


def describe_error(error: BaseException) -> str:
    """One line for a log, an Event or a start-up failure:
    ``404 Not Found for GET /apis/...: <the API server's message> (is the ... CRD installed?)``;
    anything else (a refused connection, a timeout) is its type and text."""
    if isinstance(error, ApiException):
        status = _status_body(error)
        message = status.get("message") or ""
        call = getattr(error, "call", "")
        told = f"{error.status} {error.reason}" + (f" for {call}" if call else "") + \
            (f": {message}" if message else "")
        advice = hint(error)
        return told + (f" ({advice})" if advice else "")
    return f"{type(error).__name__}: {error}"[:300]


def hint(error: BaseException) -> str:
    """What to check, for the answers whose cause is usually the same; '' otherwise."""
    status = getattr(error, "status", None)
    if status == 401:
        return "are the kubeconfig's credentials or the service account's token valid?"
    if status == 403:
        return "does RBAC allow this call to the identity the process runs as? manifests/rbac/ has the rules"
    if status == 404:
        call = str(getattr(error, "call", ""))
        kind = custom_collection(call.split(" ")[1]) if call.count(" ") else None
        if kind is not None:
            return f"is the {kind} CRD installed?"
    return ""


def is_api_answer(error: BaseException) -> bool:
    """The API server answered with an error (not a failure of our own)."""
    return isinstance(error, ApiException)


def is_gone(error: BaseException) -> bool:
    """410 Gone: the resourceVersion a watch started from is too old; only a relist helps."""
    return isinstance(error, ApiException) and error.status == 410


def short_error(error: BaseException) -> str:
    """What kind of failure, for counting: ``500 InternalError``, ``409 Conflict``, ``ConnectError``."""
    if isinstance(error, ApiException):
        reason = _status_body(error).get("reason") or ""
        return f"{error.status} {reason or error.reason}".strip()
    return type(error).__name__


def retry_after_seconds(error: BaseException) -> float:
    """The Retry-After the API server asked for (429, some 5xx), in seconds; 0 when none."""
    headers = getattr(error, "headers", None) or {}
    try:
        return max(0.0, float(headers.get("Retry-After") or 0))
    except (TypeError, ValueError):
        return 0.0


def _status_body(error: ApiException) -> dict:
    """The Status document the API server answered with; {} when the body is not one."""
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        body = json.loads(error.body or "{}")
        if isinstance(body, dict):
            return body
    return {}
