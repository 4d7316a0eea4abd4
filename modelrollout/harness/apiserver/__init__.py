"""kmock's Kubernetes emulator, made honest enough for the real kubectl.

kmock 0.8 stores objects and serves get, list, watch, create, merge patch and delete. What
kubectl (and our own clients) also rely on is added here, in a subclass:

- object metadata: uid, creationTimestamp, resourceVersion (one counter for the whole
  server), generation (bumped when anything but metadata and status changes),
  ``generateName``; ``metadata.resourceVersion`` in a PUT or PATCH body is a precondition
  (409 Conflict when stale);
- writes: PUT (replace), JSON merge patch, JSON patch, strategic merge patch (merge keys of
  the built-in lists kubectl patches), ``dryRun=All`` that computes and validates but
  stores nothing and tells no watcher; 404/409/422 answers as the API server words them;
- custom resources are validated against their CRD's structural schema on every write
  (422 Invalid with the API server's messages); ``fieldValidation=Strict`` refuses unknown
  fields (400), as kubectl asks since the OpenAPI document says the server can;
- lists carry kind and apiVersion and honour ``labelSelector`` and ``fieldSelector``, so do
  watches; a watch from a resourceVersion skips what the client already listed, ends after
  ``timeoutSeconds`` and answers ``application/json``;
- ``Accept: ...;as=Table`` gets a meta.k8s.io Table: a CRD's additionalPrinterColumns, the
  usual columns of the built-in kinds (api/tables.py);
- discovery says ``v1`` for the core group (kmock says ``/v1``) and carries a CRD's short
  names and categories; /openapi/v3 documents every resource (api/openapi.py);
- a custom resource's scale subresource: an ``autoscaling/v1`` Scale read and written
  through the CRD's paths (api/scale.py), so ``kubectl scale`` and an HPA's client work;
- a CustomResourceDefinition created through the API declares its resource, as installing
  it does; deleting an object deletes its dependents (ownerReferences, in the background)
  and deleting a Namespace deletes what it holds.

Not emulated: admission webhooks, CEL rules (x-kubernetes-validations), defaulting, pruning
of unknown fields, the status subresource's split (a write to the object can change its
status), the subresources log, exec and port-forward, RBAC and
authentication, server-side apply, pagination (``limit`` returns all).
See docs/harness.md.

One job per module: writes.py (create, replace, patch, delete, validation), reads.py (get,
list, watch, Tables), discovery.py (discovery, OpenAPI), requests.py (what they share); the
pure pieces are in ../api/.
"""

from __future__ import annotations

import collections
import copy
import re

import aiohttp.web
import kmock

from ..api import tables
from ..api.selectors import SelectorError
from .audit import Audit, call_of
from .discovery import Discovery
from .faults import Faults
from .reads import Reads
from .requests import (
    CRD_RESOURCE,
    NAMESPACES,
    OBJECT_HISTORY,
    Lookups,
    Refused,
    namespaces_path,
    namespaces_read_right,
)
from .writes import Writes

__all__ = ["OBJECT_HISTORY", "ApiServer"]

TOMBSTONES_KEPT = 10_000

_ALL_VERBS = {"create", "delete", "get", "list", "patch", "update", "watch"}


class ApiServer(Writes, Reads, Discovery, Lookups, kmock.KubernetesEmulator):
    """See the module docstring. Declare a CRD with ``declare_crd(document)``."""

    def __attrs_post_init__(self) -> None:
        # A plain subclass of kmock's attrs class (mixins and attrs' slots do not mix): its own
        # state is set here, where kmock's generated __init__ hands over.
        self._crd_versions: dict = {}  # resource -> (CRD document, version entry)
        self._revision = 0  # the last resourceVersion given
        self.audit = Audit()  # who called what (audit.py)
        self.faults = Faults()  # refusals injected by tests (faults.py)
        # Deleted objects, with the resourceVersion of their deletion: a watch from an older
        # version is told of them, as a real API server's watch cache tells it.
        self._tombstones: collections.deque = collections.deque(maxlen=TOMBSTONES_KEPT)
        super().__attrs_post_init__()
        self.fallback["get /openapi/v3"] << self._serve_openapi_index
        self.fallback["get", re.compile(r"/openapi/v3/.+")] << self._serve_openapi_document

    # --- CRDs ---

    def declare_crd(self, crd: dict) -> None:
        """What installing a CRD does: its served versions become resources with its names."""
        spec = crd["spec"]
        names = spec["names"]
        subresources = set().union(*((v.get("subresources") or {}).keys() for v in spec["versions"]))
        for version in spec["versions"]:
            if not version.get("served", True):
                continue
            resource = kmock.resource(spec["group"], version["name"], names["plural"])
            tables.columns_of_crd(version)  # a bad printer column fails here, not on every get
            self.resources[resource] = kmock.ResourceInfo(
                kind=names["kind"], singular=names.get("singular") or names["kind"].lower(),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced", verbs=set(_ALL_VERBS),
                shortnames=set(names.get("shortNames") or []), categories=set(names.get("categories") or []),
                subresources=subresources)
            self._crd_versions[resource] = (crd, version)

    def store_crd(self, crd: dict) -> None:
        """Declare the CRD and keep the CRD object itself (``kubectl get crd`` shows it)."""
        self.declare_crd(crd)
        key = (CRD_RESOURCE, None, crd["metadata"]["name"])
        body = self._established(self._stamped(copy.deepcopy(crd), None))
        if key in self.objects and not self.objects[key].deleted:
            self.objects[key].create(body)
        else:
            self.objects[key] = body

    # --- the request path ---

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        return await super().__call__(namespaces_path(raw_request))

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        request = namespaces_read_right(request)
        call = call_of(request)
        self.audit.record(call)
        refused = self.faults.answer(call)
        if refused is not None:
            return refused.response()
        try:
            if request.resource is not None and request.resource.plural is not None:
                method = request.method
                if method == kmock.method.POST and request.name is None:
                    return await self._create(request)
                if method in (kmock.method.PATCH, kmock.method.PUT) and request.name is not None:
                    return await self._update(request)
                if method == kmock.method.DELETE and request.name is not None:
                    return await self._delete(request)
                if method == kmock.method.GET:
                    self._check_known(request)
                    if request.resource == NAMESPACES:  # kmock's filters read the path, not the fix
                        return await self._serve_directly(request)
            return await kmock.RawHandler._handle(self, request)
        except Refused as refused:
            return refused.response()
        except SelectorError as exc:
            return Refused(400, "BadRequest", str(exc)).response()

    async def _serve_directly(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if request.action == kmock.action.WATCH:
            payload = await self._serve_watch(request)
        elif request.name is None:
            payload = await self._serve_list(request)
        else:
            payload = await self._serve_fetch(request)
        return await kmock.Response(payload=payload)(request)
