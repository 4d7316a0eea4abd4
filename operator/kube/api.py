"""A thin client for the few API paths the operator uses, with plain dicts in and out.

It rides on the official client's ApiClient (in-cluster config or a kubeconfig; auth,
TLS and proxies as kubectl does them) but skips its generated models: the operator
builds and reads JSON documents, and merge patches are what it writes (the emulated API
server in the harness has no PUT and no strategic merge). Calls are synchronous; the
shell runs them in a worker thread.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

MERGE_PATCH = "application/merge-patch+json"
GROUP = "modelrollout.io"
VERSION = "v1alpha1"
PLURAL = "modeldeployments"

_PATHS = {
    "ModelDeployment": f"/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/{PLURAL}",
    "Deployment": "/apis/apps/v1/namespaces/{namespace}/deployments",
    "Service": "/api/v1/namespaces/{namespace}/services",
    "Pod": "/api/v1/namespaces/{namespace}/pods",
    "EndpointSlice": "/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
    "Event": "/api/v1/namespaces/{namespace}/events",
    "HTTPRoute": "/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/httproutes",
    "Lease": "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases",
}


def configuration(kubeconfig: Path | None) -> client.Configuration:
    """In-cluster config when running in a pod and no kubeconfig is given, else the kubeconfig."""
    configuration = client.Configuration()
    if kubeconfig is None:
        try:
            config.load_incluster_config(client_configuration=configuration)
            return configuration
        except config.ConfigException:
            pass
    config.load_kube_config(config_file=str(kubeconfig) if kubeconfig else None,
                            client_configuration=configuration, persist_config=False)
    return configuration


class Api:
    def __init__(self, configuration: client.Configuration, timeout_seconds: float = 10.0) -> None:
        self._client = client.ApiClient(configuration)
        self._timeout = timeout_seconds

    def close(self) -> None:
        self._client.close()

    def get(self, kind: str, namespace: str, name: str, subresource: str | None = None) -> dict | None:
        """The object, or None when it does not exist."""
        try:
            return self._call("GET", _path(kind, namespace, name, subresource))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, kind: str, namespace: str | None, labels: dict | None = None) -> list[dict]:
        """Objects of ``kind`` in ``namespace`` (None: every namespace) carrying every label in
        ``labels``. The selector is also
        applied here: not every API server (the harness's emulator) honours it."""
        query = []
        if labels:
            query.append(("labelSelector", ",".join(f"{k}={v}" for k, v in labels.items())))
        items = self._call("GET", _path(kind, namespace), query=query).get("items") or []
        if labels:
            items = [i for i in items if _has_labels(i, labels)]
        return items

    def create(self, kind: str, namespace: str, body: dict) -> dict:
        return self._call("POST", _path(kind, namespace), body=body)

    def merge_patch(self, kind: str, namespace: str, name: str, patch: dict,
                    subresource: str | None = None) -> dict:
        return self._call("PATCH", _path(kind, namespace, name, subresource), body=patch,
                          content_type=MERGE_PATCH)

    def replace(self, kind: str, namespace: str, name: str, body: dict) -> dict:
        """PUT: the whole object; its metadata.resourceVersion is a precondition (409 when stale).
        Only the leader election writes this way (a Lease, by optimistic concurrency)."""
        return self._call("PUT", _path(kind, namespace, name), body=body)

    def delete(self, kind: str, namespace: str, name: str) -> None:
        try:
            self._call("DELETE", _path(kind, namespace, name))
        except ApiException as exc:
            if exc.status != 404:
                raise

    def call(self, method: str, path: str, query: list | None = None) -> dict:
        """A request to ``path`` (see ``path()``) with a query, e.g. a list with a label selector."""
        return self._call(method, path, query=query)

    @staticmethod
    def path(kind: str, namespace: str | None, name: str | None = None) -> str:
        return _path(kind, namespace, name)

    def open_stream(self, path: str, query: list, read_timeout_seconds: float) -> object:
        """A GET whose answer is read as it comes (a watch): the urllib3 response, not read yet."""
        method, url, headers, body, post = self._client.param_serialize(
            "GET", path, query_params=query, header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"])
        response = self._client.call_api(method, url, header_params=headers, body=body, post_params=post,
                                         _request_timeout=(self._timeout, read_timeout_seconds))
        if not 200 <= response.status < 300:
            response.read()
            error = ApiException(http_resp=response)
            error.call = f"GET {path}"
            raise error
        return response.response

    def _call(self, method: str, path: str, body: object = None, content_type: str | None = None,
              query: list | None = None) -> dict:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        method, url, headers, body, post = self._client.param_serialize(
            method, path, query_params=query or [], header_params=headers, body=body,
            auth_settings=["BearerToken"],
        )
        response = self._client.call_api(method, url, header_params=headers, body=body, post_params=post,
                                         _request_timeout=self._timeout)
        response.read()
        if not 200 <= response.status < 300:
            error = ApiException(http_resp=response)
            error.call = f"{method} {path}"  # what was refused, for the operator's Events
            raise error
        return json.loads(response.data) if response.data else {}


def describe_error(error: BaseException) -> str:
    """One line for a log or an Event: which call the API server refused and what it said."""
    if isinstance(error, ApiException):
        message = ""
        with contextlib.suppress(ValueError, AttributeError):
            message = (json.loads(error.body or "{}") or {}).get("message") or ""
        call = getattr(error, "call", "a request")
        return f"{call} answered {error.status} {error.reason}" + (f": {message}" if message else "")
    return f"{type(error).__name__}: {error}"[:300]


def is_api_answer(error: BaseException) -> bool:
    """The API server answered with an error (not a failure of our own)."""
    return isinstance(error, ApiException)


def short_error(error: BaseException) -> str:
    """What kind of failure, for counting: ``500 InternalError``, ``409 Conflict``, ``ConnectError``."""
    if isinstance(error, ApiException):
        reason = ""
        with contextlib.suppress(ValueError, AttributeError):
            reason = (json.loads(error.body or "{}") or {}).get("reason") or ""
        return f"{error.status} {reason or error.reason}".strip()
    return type(error).__name__


def retry_after_seconds(error: BaseException) -> float:
    """The Retry-After the API server asked for (429, some 5xx), in seconds; 0 when none."""
    headers = getattr(error, "headers", None) or {}
    try:
        return max(0.0, float(headers.get("Retry-After") or 0))
    except (TypeError, ValueError):
        return 0.0


def _path(kind: str, namespace: str | None, name: str | None = None, subresource: str | None = None) -> str:
    if namespace is None:  # every namespace (lists only)
        path = _PATHS[kind].replace("/namespaces/{namespace}", "")
    else:
        path = _PATHS[kind].format(namespace=namespace)
    if name is not None:
        path += f"/{name}"
    if subresource is not None:
        path += f"/{subresource}"
    return path


def _has_labels(obj: dict, labels: dict) -> bool:
    present = (obj.get("metadata") or {}).get("labels") or {}
    return all(present.get(k) == v for k, v in labels.items())
