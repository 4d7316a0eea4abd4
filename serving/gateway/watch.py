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

Each (kind, namespace) has an informer (modelrollout.kubeclient: a thread that lists, then
watches from the list's resourceVersion) that hands what it sees to the event loop. A
watch that ends resumes from the last resourceVersion; 410 Gone relists at once; any
other failure (the API server restarting, say) is logged and retried after the one
backoff policy of modelrollout.kubeclient.backoff, and the routes in force stay meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from modelrollout.kubeclient import (
    Api,
    ConfigurationError,
    Informer,
    configuration,
    describe_error,
    for_informers,
    resource_name,
    stop_all,
)

from ..contract.endpoint_slices import endpoints_by_service
from ..contract.routes import InvalidRoutes, ModelRoute, RouteTable, parse_model_route
from .state import RouteState

log = logging.getLogger("modelrollout.gateway")

_CONNECT_SECONDS = 5.0
_LIST_READ_SECONDS = 30.0

DEPLOYMENTS = "ModelDeployment"
SLICES = "EndpointSlice"
KINDS = (DEPLOYMENTS, SLICES)


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
        self._api: Api | None = None
        self._known: dict[str, dict[tuple[str, str], dict]] = {kind: {} for kind in KINDS}
        self._problems: set[str] = set()

    async def load(self) -> RouteTable:
        if self._api is None:
            self._api = await asyncio.to_thread(_connect, self._kubeconfig, len(KINDS) * len(self._scopes))
        for kind in KINDS:
            for namespace in self._scopes:
                objects = await asyncio.to_thread(_list, self._api, kind, namespace)
                self._apply(_Listed(kind, namespace, objects))
        return self._build()[0]  # its problems are reported by follow(), which has the state to count them

    async def follow(self, state: RouteState) -> None:
        if self._api is None:
            await self.load()
        assert self._api is not None
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_Listed | _Changed] = asyncio.Queue()

        def deliver(item: _Listed | _Changed) -> None:
            # A closed loop means the gateway is gone, and the informer soon with it.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def informer(api: Api, kind: str, namespace: str | None) -> Informer:
            return Informer(api, kind, namespace, log=log,
                            listed=lambda objects: deliver(_Listed(kind, namespace, objects)),
                            changed=lambda type_, obj: deliver(_Changed(kind, type_, obj)))

        self._report(self._build()[1], state.reject)
        informers = [informer(self._api, kind, namespace) for kind in KINDS for namespace in self._scopes]
        for informer in informers:
            informer.start()
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
            for informer in await asyncio.to_thread(stop_all, informers):
                log.warning("watch thread did not stop in time", extra={"thread": informer.thread.name})
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
        return build_route_table(list(self._known[DEPLOYMENTS].values()), list(self._known[SLICES].values()))

    def _report(self, problems: list[str], reject: Callable[..., None]) -> None:
        # Every rebuild finds the same problems again: say each one once, until it is fixed.
        for problem in problems:
            if problem not in self._problems:
                reject(self.name, problem, outcome="that model is not served; the others are")
        self._problems = set(problems)


def _list(api: Api, kind: str, namespace: str | None) -> list[dict]:
    try:
        return api.listing(kind, namespace).items
    except Exception as exc:
        where = f"namespace '{namespace}'" if namespace else "all namespaces"
        raise KubernetesRoutesError(
            f"cannot list {resource_name(kind)} in {where} at {api.host}: {describe_error(exc)}"
        ) from exc


def _connect(kubeconfig: str | None, informers: int) -> Api:
    """From the kubeconfig file if given, else the pod's service account, else ~/.kube/config."""
    try:
        settings = configuration(kubeconfig)
    except ConfigurationError as exc:
        raise KubernetesRoutesError(str(exc)) from exc
    return Api(for_informers(settings, informers), timeout_seconds=_LIST_READ_SECONDS,
               connect_timeout_seconds=_CONNECT_SECONDS)

