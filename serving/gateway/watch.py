"""Routes from the Kubernetes API (``--kubernetes``): ModelDeployment status + EndpointSlices.

The contract (docs/gateway-kubernetes.md says the same for users):

- The gateway watches ModelDeployments (``modelrollout.io/v1alpha1``, plural
  ``modeldeployments``) in the namespaces it is given, or in all namespaces when none.
- ``status.route`` of each is the route of ONE model, in the schema of
  ``contract.routes.parse_model_route``: revisions with name, role and weight, and
  ``service`` naming the revision's Service instead of listing endpoints; optional
  mirror, match and sticky. The served name (``/v2/models/{name}``) is
  ``status.route.model`` when given, else the ModelDeployment's name.
- A revision's endpoints are the endpoints of the EndpointSlices labelled
  ``kubernetes.io/service-name=<service>`` in the ModelDeployment's namespace, on the
  slice's port named ``http`` (else its first port). An endpoint is ready unless its
  ``conditions.ready`` is false (unset means ready, as in Kubernetes); a terminating
  endpoint that is not serving is left out. A revision without ``service`` keeps the
  endpoints it lists.
- No ``status.route`` yet: the ModelDeployment is skipped. An invalid one: skipped and
  logged as rejected; the other models are unaffected. Two ModelDeployments serving one
  model name: the first by (namespace, name) serves it, the other is reported.
- Every change to either kind rebuilds the whole table (``build_route_table``, pure), and
  the gateway swaps it in when it differs from the one in force, within a second.

The official client is synchronous, so each (kind, namespace) has a thread that lists,
then watches from the list's resourceVersion, and hands what it sees to the event loop.
A watch that ends resumes from the last resourceVersion; 410 Gone relists at once; any
other failure (the API server restarting, say) is logged and retried with backoff, and
the routes in force stay meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from ..contract.endpoint_slices import endpoints_by_service
from ..contract.routes import InvalidRoutes, ModelRoute, RouteTable, parse_model_route
from .state import RouteState

log = logging.getLogger("modelrollout.gateway")

GROUP = "modelrollout.io"
VERSION = "v1alpha1"
PLURAL = "modeldeployments"

_CONNECT_SECONDS = 5.0
_LIST_READ_SECONDS = 30.0
# Real API servers end a watch after timeoutSeconds; spreading them keeps many gateways from
# relisting together. The read timeout only catches a connection that died without closing.
_WATCH_SECONDS = (240, 360)
_WATCH_READ_MARGIN_SECONDS = 30.0
_BACKOFF_FIRST_SECONDS = 0.2
_BACKOFF_MAX_SECONDS = 5.0
_QUIET_WATCH_SECONDS = 1.0
_JOIN_SECONDS = 5.0


_HINTS = {
    401: " (are the kubeconfig's credentials valid?)",
    403: " (may the gateway's ServiceAccount list and watch it? see docs/gateway-kubernetes.md)",
    404: " (is the ModelDeployment CRD installed?)",
}


class KubernetesRoutesError(RuntimeError):
    """The API cannot give the first table (unreachable, CRD missing, forbidden)."""


# --- The pure part: objects -> route table ---


def build_route_table(deployments: list[dict], slices: list[dict]) -> tuple[RouteTable, list[str]]:
    """The route table that ModelDeployments and EndpointSlices describe, and what is wrong
    with them. The same objects in any order give the same table and problems."""
    endpoints = endpoints_by_service(slices)
    models: dict[str, ModelRoute] = {}
    owners: dict[str, str] = {}
    problems: list[str] = []
    for obj in sorted(deployments, key=_object_key):
        namespace, name = _object_key(obj)
        route_doc = _mapping(obj.get("status")).get("route")
        if route_doc is None:
            continue  # the operator has not written a route yet
        where = f"ModelDeployment {namespace}/{name}"
        model = route_doc.get("model", name) if isinstance(route_doc, dict) else name
        if not isinstance(model, str) or not model or "/" in model:
            problems.append(f"{where}: status.route.model must be a model name without '/', got {model!r}")
            continue
        # The claim comes before validation: an invalid route must not hand its model name
        # to another namespace's ModelDeployment.
        if model in owners:
            problems.append(f"{where}: model '{model}' is already served by ModelDeployment {owners[model]}; "
                            f"skipped")
            continue
        owners[model] = f"{namespace}/{name}"
        try:
            route = parse_model_route(model, route_doc)
        except InvalidRoutes as exc:
            problems.append(f"{where}: status.route skipped: {exc}")
            continue
        models[model] = replace(route, revisions=tuple(
            replace(r, endpoints=endpoints.get((namespace, r.service), ())) if r.service else r
            for r in route.revisions
        ))
    return RouteTable(models), problems


def _object_key(obj: dict) -> tuple[str, str]:
    metadata = _mapping(obj.get("metadata"))
    return (str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))


def _mapping(value: object) -> dict:
    return value if isinstance(value, dict) else {}


# --- The shell: the API server -> RouteState ---


@dataclass(frozen=True)
class _Kind:
    """One watched kind: how to list it in a namespace or across all of them."""

    name: str
    list_in: Callable[..., Any]  # (api, namespace, **query) -> response
    list_all: Callable[..., Any]  # (api, **query) -> response

    def lister(self, api: client.ApiClient, namespace: str | None) -> Callable[..., Any]:
        if namespace is None:
            return lambda **kwargs: self.list_all(api, **kwargs)
        return lambda **kwargs: self.list_in(api, namespace, **kwargs)


DEPLOYMENTS = _Kind(
    f"{PLURAL}.{GROUP}",
    lambda api, namespace, **kw: client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, **kw),
    lambda api, **kw: client.CustomObjectsApi(api).list_cluster_custom_object(GROUP, VERSION, PLURAL, **kw),
)
SLICES = _Kind(
    "endpointslices.discovery.k8s.io",
    lambda api, namespace, **kw: client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(namespace, **kw),
    lambda api, **kw: client.DiscoveryV1Api(api).list_endpoint_slice_for_all_namespaces(**kw),
)
KINDS = (DEPLOYMENTS, SLICES)


@dataclass(frozen=True)
class _Listed:
    """Everything of ``kind`` in ``namespace`` (None: all namespaces), replacing what was known."""

    kind: str
    namespace: str | None
    objects: list[dict]


@dataclass(frozen=True)
class _Changed:
    kind: str
    type: str  # ADDED, MODIFIED or DELETED
    obj: dict


class KubernetesRoutes:
    name = "kubernetes"

    def __init__(self, namespaces: tuple[str, ...], kubeconfig: str | None) -> None:
        self._scopes: tuple[str | None, ...] = tuple(dict.fromkeys(namespaces)) or (None,)
        self._kubeconfig = kubeconfig
        self._api: client.ApiClient | None = None
        self._known: dict[str, dict[tuple[str, str], dict]] = {kind.name: {} for kind in KINDS}
        self._problems: set[str] = set()

    async def load(self) -> RouteTable:
        if self._api is None:
            self._api = await asyncio.to_thread(_api_client, self._kubeconfig, len(KINDS) * len(self._scopes))
        for kind in KINDS:
            for namespace in self._scopes:
                objects, _ = await asyncio.to_thread(_list, kind, self._api, namespace)
                self._apply(_Listed(kind.name, namespace, objects))
        return self._build()[0]  # its problems are reported by follow(), which has the state to count them

    async def follow(self, state: RouteState) -> None:
        if self._api is None:
            await self.load()
        assert self._api is not None
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_Listed | _Changed] = asyncio.Queue()

        def deliver(item: _Listed | _Changed) -> None:
            # A closed loop means the gateway is gone, and the watcher soon with it.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(queue.put_nowait, item)

        self._report(self._build()[1], state.reject)
        watchers = [
            _Watcher(kind, namespace, self._api, deliver) for kind in KINDS for namespace in self._scopes
        ]
        for watcher in watchers:
            watcher.start()
        try:
            while True:
                self._apply(await queue.get())
                while not queue.empty():  # a burst (a relist, a rollout step) becomes one rebuild
                    self._apply(queue.get_nowait())
                table, problems = self._build()
                self._report(problems, state.reject)
                if table != state.table:
                    state.update(table, self.name)
        finally:
            for watcher in watchers:
                watcher.stop()
            await asyncio.to_thread(_join, watchers)
            self._api.close()
            self._api = None

    def _apply(self, item: _Listed | _Changed) -> None:
        known = self._known[item.kind]
        if isinstance(item, _Listed):
            for key in [k for k in known if item.namespace is None or k[0] == item.namespace]:
                del known[key]
            for obj in item.objects:
                known[_object_key(obj)] = obj
        elif item.type == "DELETED":
            known.pop(_object_key(item.obj), None)
        else:
            known[_object_key(item.obj)] = item.obj

    def _build(self) -> tuple[RouteTable, list[str]]:
        return build_route_table(list(self._known[DEPLOYMENTS.name].values()),
                                 list(self._known[SLICES.name].values()))

    def _report(self, problems: list[str], reject: Callable[..., None]) -> None:
        # Every rebuild finds the same problems again: say each one once, until it is fixed.
        for problem in problems:
            if problem not in self._problems:
                reject(self.name, problem, outcome="that model is not served; the others are")
        self._problems = set(problems)


class _Watcher:
    """List, then watch, one kind in one namespace (or all), on a thread of its own."""

    def __init__(self, kind: _Kind, namespace: str | None, api: client.ApiClient,
                 deliver: Callable[[_Listed | _Changed], None]) -> None:
        self.kind = kind
        self.namespace = namespace
        self._api = api
        self._deliver = deliver
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._response: Any = None  # the open watch response, for stop() to cut
        self.thread = threading.Thread(
            target=self._run, name=f"watch-{kind.name}-{namespace or '*'}", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Make the thread end soon: a watch blocked on a quiet stream is cut now."""
        with self._lock:
            self._stopping.set()
            if self._response is not None:
                _cut(self._response)

    def _run(self) -> None:
        where = f"{self.kind.name} in {self.namespace or 'all namespaces'}"
        delay = _BACKOFF_FIRST_SECONDS
        version: str | None = None
        while not self._stopping.is_set():
            try:
                if version is None:
                    objects, version = _list(self.kind, self._api, self.namespace)
                    if self._stopping.is_set():
                        return
                    self._deliver(_Listed(self.kind.name, self.namespace, objects))
                started = time.monotonic()
                version, saw_events = self._watch(version)
                if saw_events:
                    delay = _BACKOFF_FIRST_SECONDS
                elif time.monotonic() - started < _QUIET_WATCH_SECONDS:
                    # A server that ends watches at once without a word must not get a busy loop.
                    self._stopping.wait(delay)
                    delay = min(delay * 2, _BACKOFF_MAX_SECONDS)
            except _Stopped:
                return
            except Exception as exc:  # noqa: BLE001 - a watcher that dies silently freezes the routes
                if self._stopping.is_set():
                    return
                version = None  # whatever was missed, a relist catches up
                if isinstance(exc, ApiException) and exc.status == 410:
                    log.info("watch expired (410 Gone); relisting", extra={"watch": where})
                    continue
                pause = delay * random.uniform(0.5, 1.0)
                log.warning("watch failed; keeping the current routes and retrying",
                            extra={"watch": where, "error": _describe(exc), "retry_seconds": round(pause, 2)})
                self._stopping.wait(pause)
                delay = min(delay * 2, _BACKOFF_MAX_SECONDS)

    def _watch(self, version: str) -> tuple[str, bool]:
        """Deliver changes until the stream ends; the version to resume from, and whether
        anything came."""
        seconds = random.randint(*_WATCH_SECONDS)
        # "object" keeps events as plain dicts (the schema of the API, not the client's models);
        # timeout_seconds also stops Watch from resuming by itself: this loop does that.
        stream = watch.Watch(return_type="object").stream(
            self._open, resource_version=version or None, allow_watch_bookmarks=True, timeout_seconds=seconds,
            _request_timeout=(_CONNECT_SECONDS, seconds + _WATCH_READ_MARGIN_SECONDS),
        )
        saw_events = False
        try:
            for event in stream:
                if self._stopping.is_set():
                    raise _Stopped()
                saw_events = True
                obj = _mapping(event.get("raw_object"))
                version = _mapping(obj.get("metadata")).get("resourceVersion") or version
                if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                    self._deliver(_Changed(self.kind.name, event["type"], obj))
        finally:
            with self._lock:
                self._response = None  # before the stream closes it, so stop() never cuts a reused one
            stream.close()
        return version, saw_events

    def _open(self, **kwargs: Any) -> Any:
        response = self.kind.lister(self._api, self.namespace)(**kwargs)
        with self._lock:
            if self._stopping.is_set():
                response.close()
                raise _Stopped()
            self._response = response
        return response


class _Stopped(Exception):
    pass


def _list(kind: _Kind, api: client.ApiClient, namespace: str | None) -> tuple[list[dict], str]:
    try:
        response = kind.lister(api, namespace)(
            _preload_content=False, _request_timeout=(_CONNECT_SECONDS, _LIST_READ_SECONDS)
        )
        doc = json.loads(response.data)
    except Exception as exc:
        where = f"namespace '{namespace}'" if namespace else "all namespaces"
        hint = _HINTS.get(exc.status, "") if isinstance(exc, ApiException) else ""
        raise KubernetesRoutesError(
            f"cannot list {kind.name} in {where} at {api.configuration.host}: {_describe(exc)}{hint}"
        ) from exc
    items = [item for item in doc.get("items") or [] if isinstance(item, dict)]
    return items, str(_mapping(doc.get("metadata")).get("resourceVersion") or "")


def _api_client(kubeconfig: str | None, watches: int) -> client.ApiClient:
    """From the kubeconfig file if given, else the pod's service account, else ~/.kube/config."""
    configuration = client.Configuration()
    try:
        if kubeconfig:
            config.load_kube_config(config_file=kubeconfig, client_configuration=configuration,
                                    persist_config=False)
        else:
            try:
                config.load_incluster_config(client_configuration=configuration)
            except config.ConfigException:
                config.load_kube_config(client_configuration=configuration, persist_config=False)
    except (config.ConfigException, OSError) as exc:
        raise KubernetesRoutesError(f"no usable Kubernetes configuration: {exc}") from exc
    # One long-lived connection per watch, plus room for the lists made while relisting.
    configuration.connection_pool_maxsize = max(watches + 2, configuration.connection_pool_maxsize or 0)
    # urllib3 would retry a refused connection three times at once, logging each: the
    # watchers' own backoff is the retry, and one log line per attempt says enough.
    configuration.retries = 0
    return client.ApiClient(configuration)


def _cut(response: Any) -> None:
    # Closing a response from another thread does not wake a blocked read; shutting its
    # socket down does (the way kubernetes.watch.Watch.stop does it).
    sock = getattr(getattr(response, "connection", None), "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)


def _join(watchers: list[_Watcher]) -> None:
    for watcher in watchers:
        watcher.thread.join(_JOIN_SECONDS)
        if watcher.thread.is_alive():
            log.warning("watch thread did not stop in time", extra={"thread": watcher.thread.name})


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        message = ""
        with contextlib.suppress(ValueError, AttributeError):  # a body that is not a Status
            message = json.loads(exc.body or "{}").get("message", "")
        return f"{exc.status} {exc.reason}" + (f": {message}" if message else "")
    return f"{type(exc).__name__}: {exc}"
