"""A thin client for the API paths we use (paths.py), with plain dicts in and out.

It rides on the official client's ApiClient (in-cluster config or a kubeconfig; auth,
TLS and proxies as kubectl does them) but skips its generated models: we build and read
JSON documents, and merge patches are what we write (the emulated API server in the
harness has no strategic merge for every kind). Calls are synchronous; async callers run
them in a worker thread, informers on a thread of their own (informer.py).

Every refused call raises the official client's ApiException with ``call`` set
(``GET /api/v1/namespaces/ml/pods``), which errors.describe_error puts in its line.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .paths import path as path_of
from .ratelimit import RateLimiter

MERGE_PATCH = "application/merge-patch+json"


class Listing(NamedTuple):
    """A list's objects and the resourceVersion to watch from."""

    items: list[dict]
    resource_version: str


class Api:
    def __init__(self, configuration: client.Configuration, timeout_seconds: float = 10.0,
                 connect_timeout_seconds: float | None = None, limiter: RateLimiter | None = None) -> None:
        """``timeout_seconds``: for a whole call (connecting, sending, the answer), unless
        ``connect_timeout_seconds`` is given: then for connecting that, and for each read this.
        ``limiter``: every call but a stream waits for it (ratelimit.py)."""
        self._client = client.ApiClient(configuration)
        self.limiter = limiter
        self._connect_timeout = connect_timeout_seconds or timeout_seconds
        self._timeout: float | tuple[float, float] = timeout_seconds
        if connect_timeout_seconds is not None:
            self._timeout = (connect_timeout_seconds, timeout_seconds)

    @property
    def host(self) -> str:
        """The API server's URL, for messages."""
        return str(self._client.configuration.host)

    def close(self) -> None:
        self._client.close()

    def get(self, kind: str, namespace: str, name: str, subresource: str | None = None) -> dict | None:
        """The object, or None when it does not exist."""
        try:
            return self._call("GET", path_of(kind, namespace, name, subresource))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, kind: str, namespace: str | None, labels: dict | None = None) -> list[dict]:
        """Objects of ``kind`` in ``namespace`` (None: every namespace) carrying every label in
        ``labels``. The selector is also applied here: an API server that ignored it (an
        older emulator) must not hand a reconcile someone else's objects."""
        selector = ",".join(f"{k}={v}" for k, v in labels.items()) if labels else None
        items = self.listing(kind, namespace, selector).items
        if labels:
            items = [i for i in items if _has_labels(i, labels)]
        return items

    def listing(self, kind: str, namespace: str | None, label_selector: str | None = None) -> Listing:
        """A list with its resourceVersion (what an informer watches from). ``label_selector``
        in the API's syntax: ``app=iris``, or a label's name alone for "has this label"."""
        query = [("labelSelector", label_selector)] if label_selector else []
        doc = self._call("GET", path_of(kind, namespace), query=query)
        items = [i for i in doc.get("items") or [] if isinstance(i, dict)]
        return Listing(items, str((doc.get("metadata") or {}).get("resourceVersion") or ""))

    def create(self, kind: str, namespace: str, body: dict) -> dict:
        return self._call("POST", path_of(kind, namespace), body=body)

    def merge_patch(self, kind: str, namespace: str, name: str, patch: dict,
                    subresource: str | None = None) -> dict:
        return self._call("PATCH", path_of(kind, namespace, name, subresource), body=patch,
                          content_type=MERGE_PATCH)

    def replace(self, kind: str, namespace: str, name: str, body: dict) -> dict:
        """PUT: the whole object; its metadata.resourceVersion is a precondition (409 when stale).
        Only the leader election writes this way (a Lease, by optimistic concurrency)."""
        return self._call("PUT", path_of(kind, namespace, name), body=body)

    def delete(self, kind: str, namespace: str, name: str) -> None:
        try:
            self._call("DELETE", path_of(kind, namespace, name))
        except ApiException as exc:
            if exc.status != 404:
                raise

    def open_stream(self, path: str, query: list, read_timeout_seconds: float) -> Any:
        """A GET whose answer is read as it comes (a watch): the urllib3 response, not read yet.
        The caller closes it; shutting its socket down cuts a read blocked on it."""
        method, url, headers, body, post = self._client.param_serialize(
            "GET", path, query_params=query, header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"])
        response = self._client.call_api(method, url, header_params=headers, body=body, post_params=post,
                                         _request_timeout=(self._connect_timeout, read_timeout_seconds))
        if not 200 <= response.status < 300:
            response.read()
            error = ApiException(http_resp=response)
            error.call = f"GET {path}" + (" (watch)" if ("watch", "true") in query else "")
            raise error
        return response.response

    def _call(self, method: str, path: str, body: object = None, content_type: str | None = None,
              query: list | None = None) -> dict:
        # Every request but a stream goes through here (the harness's kubelet wraps it).
        if self.limiter is not None:
            self.limiter.acquire()
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
            error.call = f"{method} {path}"  # what was refused, for logs and Events
            raise error
        return json.loads(response.data) if response.data else {}


def _has_labels(obj: dict, labels: dict) -> bool:
    present = (obj.get("metadata") or {}).get("labels") or {}
    return all(present.get(k) == v for k, v in labels.items())
