"""The operator's names for the shared API client (modelrollout.kubeclient): what the
handlers and the reconcile use without importing a Kubernetes client themselves (the
import contracts in pyproject.toml keep it that way), and what tools built on the
operator's client import from here (the harness's kubelet stand-in).

The client, its paths, the configuration and the error descriptions live in
modelrollout.kubeclient, shared with the gateway and the kubectl plugin.
"""

from __future__ import annotations

from modelrollout.kubeclient import (
    GROUP,
    MERGE_PATCH,
    PLURAL,
    VERSION,
    Api,
    RateLimiter,
    configuration,
    describe_error,
    for_informers,
    is_api_answer,
    latest,
    retry_after_seconds,
    short_error,
    urgent,
)

__all__ = ["GROUP", "MERGE_PATCH", "PLURAL", "VERSION", "Api", "RateLimiter", "configuration",
           "describe_error", "for_informers", "is_api_answer", "latest", "retry_after_seconds", "short_error",
           "urgent"]
