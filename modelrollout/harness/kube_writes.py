"""How the kubelet stand-in talks to the API server: the operator's own client
(operator/kube/api.Api) with no retries (the next poll is the retry), an unreachable
server told apart (ApiDown) from a refused write (logged, FAILED)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import urllib3
from kubernetes.client.exceptions import ApiException

from modelrollout.operator.kube.api import Api, configuration

log = logging.getLogger("modelrollout.harness.kubelet")

API_TIMEOUT_SECONDS = 5.0
FAILED = object()


class ApiDown(Exception):
    """The API server did not answer (connection refused, timeout)."""


class KubeletApi(Api):
    def __init__(self, kubeconfig: Path) -> None:
        settings = configuration(kubeconfig)
        settings.retries = 0
        super().__init__(settings, API_TIMEOUT_SECONDS)

    def _call(self, *args, **kwargs) -> dict:
        try:
            return super()._call(*args, **kwargs)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ApiDown(f"{type(exc).__name__}: {exc}") from exc


def write(call: Callable[..., object], *args: object) -> object:
    """The call's result, or FAILED when the API server refused it (logged). ApiDown propagates."""
    try:
        return call(*args)
    except ApiException as exc:
        # 404: deleted since the list (the operator removing a revision); the next poll knows.
        log.log(logging.DEBUG if exc.status == 404 else logging.WARNING, "API %s %s refused: %s %s",
                call.__name__, args[:3], exc.status, exc.reason)
        return FAILED
