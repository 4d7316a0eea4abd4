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
- a CustomResourceDefinition created through the API declares its resource, as installing
  it does; deleting an object deletes its dependents (ownerReferences, in the background)
  and deleting a Namespace deletes what it holds.

Not emulated: admission webhooks, CEL rules (x-kubernetes-validations), defaulting, pruning
of unknown fields, the status subresource's split (a write to the object can change its
status), subresources other than status (scale, log, exec, port-forward), RBAC and
authentication, server-side apply, pagination (``limit`` returns all).
See docs/harness.md.
"""

from __future__ import annotations

import asyncio
import copy
import random
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal import enums, references, rendering

from .api import openapi, patches, protobuf, schema, tables
from .api.selectors import SelectorError, field_selector, label_selector

# Every stored object keeps this many versions: kmock keeps all of them otherwise.
OBJECT_HISTORY = 5
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_CRD_RESOURCE = references.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
_NAMESPACES = references.resource("", "v1", "namespaces")
_ALL_VERBS = {"create", "delete", "get", "list", "patch", "update", "watch"}


class _Refused(Exception):
    """An answer other than 2xx, with the API server's Status body."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}

    def response(self) -> aiohttp.web.Response:
        return aiohttp.web.json_response({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "details": self.details, "code": self.code,
        }, status=self.code)


@attrs.define(kw_only=True)
class ApiServer(kmock.KubernetesEmulator):
    """See the module docstring. Declare a CRD with ``declare_crd(document)``."""

    _crd_versions: dict = attrs.field(factory=dict, init=False)  # resource -> (CRD document, version entry)
    _revision: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
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
            resource = references.resource(spec["group"], version["name"], names["plural"])
            tables.columns_of_crd(version)  # a bad printer column fails here, not on every get
            self._resources[resource] = references.ResourceInfo(
                kind=names["kind"], singular=names.get("singular") or names["kind"].lower(),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced", verbs=set(_ALL_VERBS),
                shortnames=set(names.get("shortNames") or []), categories=set(names.get("categories") or []),
                subresources=subresources)
            self._crd_versions[resource] = (crd, version)

    def store_crd(self, crd: dict) -> None:
        """Declare the CRD and keep the CRD object itself (``kubectl get crd`` shows it)."""
        self.declare_crd(crd)
        key = (_CRD_RESOURCE, None, crd["metadata"]["name"])
        body = self._established(self._stamped(copy.deepcopy(crd), None))
        if key in self._objects and not self._objects[key].deleted:
            self._objects[key].create(body)
        else:
            self._objects[key] = body

    # --- the request path ---

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        return await super().__call__(_namespaces_path(raw_request))

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        request = _namespaces_read_right(request)
        try:
            if request.resource is not None and request.resource.plural is not None:
                method = request.method
                if method == enums.method.POST and request.name is None:
                    return await self._create(request)
                if method in (enums.method.PATCH, enums.method.PUT) and request.name is not None:
                    return await self._update(request)
                if method == enums.method.DELETE and request.name is not None:
                    return await self._delete(request)
                if method == enums.method.GET:
                    self._check_known(request)
                    if request.resource == _NAMESPACES:  # kmock's filters read the path, not the fix
                        return await self._serve_directly(request)
            return await kmock.RawHandler._handle(self, request)
        except _Refused as refused:
            return refused.response()
        except SelectorError as exc:
            return _Refused(400, "BadRequest", str(exc)).response()

    async def _serve_directly(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        if request.action == enums.action.WATCH:
            payload = await self._serve_watch(request)
        elif request.name is None:
            payload = await self._serve_list(request)
        else:
            payload = await self._serve_fetch(request)
        return await rendering.Response(payload=payload)(request)

    async def _create(self, request: rendering.Request) -> aiohttp.web.Response:
        self._check_known(request)
        body = _body(request)
        if not isinstance(body, dict):
            raise _Refused(400, "BadRequest", "the request body must be a JSON object")
        body = copy.deepcopy(body)
        metadata = body.setdefault("metadata", {})
        if request.namespace is not None:
            if metadata.get("namespace") not in (None, "", request.namespace):
                raise _Refused(400, "BadRequest", "the namespace of the provided object does not match "
                                                  "the namespace sent on the request")
            metadata["namespace"] = request.namespace
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = metadata["generateName"] + "".join(random.choices(_NAME_ALPHABET, k=5))
        if not metadata.get("name"):
            raise _Refused(422, "Invalid", f"{self._kind(request)} \"\" is invalid: metadata.name: "
                                           "Required value: name or generateName is required")
        key = (request.resource, request.namespace, metadata["name"])
        dry_run = _dry_run(request)
        async with self._lock:
            if key in self._objects and not self._objects[key].deleted:
                raise _Refused(409, "AlreadyExists", f"{_qualified(request.resource)} \"{metadata['name']}\" "
                                                     "already exists",
                               {"name": metadata["name"], "kind": request.resource.plural})
            self._validate(request, body)
            body = self._stamped(body, None)
            if request.resource == _CRD_RESOURCE:
                body = self._established(body)
            if not dry_run:
                if key in self._objects:
                    self._objects[key].create(body)
                else:
                    self._objects[key] = body
                await self._buses[request.resource].put({"type": "ADDED", "object": body})
                if request.resource == _CRD_RESOURCE:
                    self.declare_crd(body)
        return aiohttp.web.json_response(body, status=201)

    async def _update(self, request: rendering.Request) -> aiohttp.web.Response:
        self._check_known(request)
        if request.subresource not in (None, "status"):  # scale, ...: not served
            raise _Refused(404, "NotFound", "the server could not find the requested resource")
        if (request.headers.get("Content-Type") or "").startswith("application/apply-patch"):
            raise _Refused(415, "UnsupportedMediaType", "server-side apply is not supported by the "
                           "modelrollout harness: use kubectl apply without --server-side")
        key = (request.resource, request.namespace, request.name)
        dry_run = _dry_run(request)
        async with self._lock:
            stored = _entry(self._objects, key)
            if stored is None or stored.deleted:
                raise self._not_found(request)
            live = copy.deepcopy(stored.raw)
            wanted = self._apply_body(request, live)
            precondition = (wanted.get("metadata") or {}).get("resourceVersion")
            if isinstance(request.data, dict) and precondition and precondition != _revision_of(live):
                raise _Refused(409, "Conflict", f"Operation cannot be fulfilled on "
                               f"{_qualified(request.resource)} \"{request.name}\": the object has been "
                               "modified; please apply your changes to the latest version and try again")
            if request.subresource is not None:  # only the subresource's part changes
                part = wanted.get(request.subresource)
                wanted = {k: v for k, v in live.items() if k != request.subresource}
                if part is not None:
                    wanted[request.subresource] = part
            for fixed in ("uid", "creationTimestamp", "name", "namespace", "deletionTimestamp", "generation"):
                if fixed in live.get("metadata", {}):
                    wanted.setdefault("metadata", {})[fixed] = live["metadata"][fixed]
            if wanted == live:
                return aiohttp.web.json_response(live)  # no change, no new resourceVersion
            self._validate(request, wanted)
            spec_changed = request.subresource is None and _without(wanted) != _without(live)
            wanted = self._stamped(wanted, live, bump_generation=spec_changed)
            if dry_run:
                return aiohttp.web.json_response(wanted)
            stored.create(wanted)
            _trim(stored)
            await self._buses[request.resource].put({"type": "MODIFIED", "object": wanted})
            if request.resource == _CRD_RESOURCE:
                self.declare_crd(wanted)
            meta = wanted["metadata"]
            if meta.get("deletionTimestamp") and not meta.get("finalizers"):
                await self._remove(key)
        return aiohttp.web.json_response(wanted)

    async def _delete(self, request: rendering.Request) -> aiohttp.web.Response:
        self._check_known(request)
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            stored = _entry(self._objects, key)
            if stored is None or stored.deleted:
                raise self._not_found(request)
            live = stored.raw
            if _dry_run(request):
                return aiohttp.web.json_response(live)
            gone = await self._delete_key(key)
        return aiohttp.web.json_response(gone)

    async def _delete_key(self, key: tuple) -> dict:
        """Delete as the API server does: held by finalizers, else removed. The object as it left."""
        stored = self._objects[key]
        live = stored.raw
        meta = live.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            return live
        if meta.get("finalizers"):
            marked = self._stamped({**live, "metadata": {**meta, "deletionTimestamp": _now()}}, live)
            stored.create(marked)
            _trim(stored)
            await self._buses[key[0]].put({"type": "MODIFIED", "object": marked})
            return marked
        return await self._remove(key)

    async def _remove(self, key: tuple) -> dict:
        stored = self._objects[key]
        live = self._stamped(copy.deepcopy(stored.raw), stored.raw)  # a deletion is a change too
        stored.delete()
        await self._buses[key[0]].put({"type": "DELETED", "object": live})
        # Garbage collection (background): dependents by ownerReference, a namespace's objects.
        uid = (live.get("metadata") or {}).get("uid")
        doomed = []
        for other_key, obj in list(self._objects.items()):
            if obj.deleted:
                continue
            owners = (obj.raw.get("metadata") or {}).get("ownerReferences") or []
            if (uid and any(o.get("uid") == uid for o in owners)) or \
                    (key[0] == _NAMESPACES and other_key[1] == key[2]):
                doomed.append(other_key)
        for other_key in doomed:
            if not self._objects[other_key].deleted:
                await self._delete_key(other_key)
        return live

    def _apply_body(self, request: rendering.Request, live: dict) -> dict:
        body = request.data
        if request.method == enums.method.PUT:
            if not isinstance(body, dict):
                raise _Refused(400, "BadRequest", "the request body must be a JSON object")
            return copy.deepcopy(body)
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
        try:
            if content_type == "application/json-patch+json":
                return patches.json_patch(live, body)
            if not isinstance(body, dict):
                raise _Refused(400, "BadRequest", "the patch must be a JSON object")
            if content_type == "application/strategic-merge-patch+json":
                if request.resource in self._crd_versions:
                    raise _Refused(415, "UnsupportedMediaType", "the body of the request was in an unknown "
                                   "format - accepted media types include: application/json-patch+json, "
                                   "application/merge-patch+json, application/apply-patch+yaml")
                return patches.strategic_merge_patch(live, body)
            return patches.merge_patch(live, body)
        except patches.PatchError as exc:
            raise _Refused(422, "Invalid", str(exc)) from exc

    def _validate(self, request: rendering.Request, obj: dict) -> None:
        found = self._crd_versions.get(request.resource)
        if found is None:
            return
        crd, version = found
        openapi_schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if not openapi_schema:
            return
        kind = crd["spec"]["names"]["kind"]
        name = (obj.get("metadata") or {}).get("name") or ""
        if request.params.get("fieldValidation") == "Strict":
            unknown = schema.unknown_fields(obj, openapi_schema)
            if unknown:
                listed = ", ".join(f'unknown field "{u}"' for u in unknown)
                raise _Refused(400, "BadRequest", f"{kind} in version \"{version['name']}\" cannot be "
                               f"handled as a {kind}: strict decoding error: {listed}")
        problems = schema.validate(obj, openapi_schema)
        if problems:
            causes = [{"reason": "FieldValueInvalid", "field": p.split(": ", 1)[0],
                       "message": p.split(": ", 1)[1]} for p in problems]
            raise _Refused(422, "Invalid", schema.invalid_message(kind, name, problems),
                           {"name": name, "group": crd["spec"]["group"], "kind": kind, "causes": causes})

    def _stamped(self, obj: dict, live: dict | None, bump_generation: bool = False) -> dict:
        self._revision += 1
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(self._revision)
        if live is None:
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", _now())
            meta["generation"] = 1
        elif bump_generation:
            meta["generation"] = int((live.get("metadata") or {}).get("generation") or 1) + 1
        return obj

    @staticmethod
    def _established(crd: dict) -> dict:
        names = crd.get("spec", {}).get("names", {})
        crd["status"] = {"acceptedNames": names, "storedVersions": [
            v["name"] for v in crd.get("spec", {}).get("versions", []) if v.get("storage")],
            "conditions": [{"type": t, "status": "True", "reason": r, "lastTransitionTime": _now(),
                            "message": m} for t, r, m in (
                ("NamesAccepted", "NoConflicts", "no conflicts found"),
                ("Established", "InitialNamesAccepted", "the initial names have been accepted"))]}
        return crd

    def _check_known(self, request: rendering.Request) -> None:
        known = request.resource in self._resources
        if not known and all(r != request.resource for r in self._get_resources()):
            raise _Refused(404, "NotFound", "the server could not find the requested resource")

    def _not_found(self, request: rendering.Request) -> _Refused:
        return _Refused(404, "NotFound", f"{_qualified(request.resource)} \"{request.name}\" not found",
                        {"name": request.name, "group": request.resource.group,
                         "kind": request.resource.plural})

    def _kind(self, request: rendering.Request) -> str:
        info = _entry(self._resources, request.resource)
        return (info.kind if info is not None else None) or request.resource.plural

    # --- reads (kmock reactions, when a test adds some, come first) ---

    def _matching(self, request: rendering.Request) -> list[dict]:
        labels = label_selector(request.params.get("labelSelector"))
        fields = field_selector(request.params.get("fieldSelector"))
        found = []
        for (resource, namespace, name), obj in self._objects.items():
            if resource != request.resource or obj.deleted:
                continue
            if request.namespace is not None and namespace != request.namespace:
                continue
            if request.name is not None and name != request.name:
                continue
            raw = obj.raw
            if labels(raw) and fields(raw):
                found.append(raw)
        return sorted(found, key=lambda o: ((o.get("metadata") or {}).get("namespace") or "",
                                            (o.get("metadata") or {}).get("name") or ""))

    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        self._check_known(request)
        async with self._lock:
            items = self._matching(request)
            revision = str(self._revision)
        if _wants_table(request):
            return tables.table(items, self._columns(request.resource), datetime.now(UTC),
                                request.params.get("includeObject", "Metadata"), revision)
        info = _entry(self._resources, request.resource)
        kind = (info.kind if info is not None and info.kind else request.resource.plural.capitalize())
        return {"kind": f"{kind}List", "apiVersion": _api_version(request.resource),
                "metadata": {"resourceVersion": revision}, "items": items}

    async def _serve_fetch(self, request: rendering.Request) -> rendering.Payload:
        self._check_known(request)
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            stored = _entry(self._objects, key)
            if stored is None or stored.deleted:
                raise self._not_found(request)
            obj = stored.raw
        if _wants_table(request) and request.subresource is None:
            return tables.table([obj], self._columns(request.resource), datetime.now(UTC),
                                request.params.get("includeObject", "Metadata"), _revision_of(obj))
        return obj

    async def _serve_watch(self, request: rendering.Request) -> rendering.Response:
        self._check_known(request)
        labels = label_selector(request.params.get("labelSelector"))
        fields = field_selector(request.params.get("fieldSelector"))
        return rendering.Response(headers={"Content-Type": "application/json"},
                                  payload=self._watch_events(request, labels, fields))

    async def _watch_events(self, request: rendering.Request, labels: Any, fields: Any) -> AsyncIterator:
        yield b""  # the headers go out now, even if nothing happens for a while
        since = request.params.get("resourceVersion") or "0"
        since_number = int(since) if since.isdigit() else 0
        timeout = request.params.get("timeoutSeconds")
        deadline = time.monotonic() + float(timeout) if timeout and timeout.isdigit() else None
        table = _wants_table(request)
        columns = self._columns(request.resource) if table else []
        include = request.params.get("includeObject", "Metadata")
        bus = self._buses[request.resource]
        async with self._lock:  # writes publish under this lock: nothing falls between the two
            marker = await bus.mark()
            initial = [o for o in self._matching(request) if int(_revision_of(o) or 0) > since_number]
        try:
            for obj in initial:
                yield self._event("ADDED", obj, table, columns, include)
            events = aiter(bus.stream(since=marker))
            while True:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return
                try:
                    event = await asyncio.wait_for(anext(events), remaining)
                except TimeoutError:
                    return
                obj = event.get("object") or {}
                meta = obj.get("metadata") or {}
                if request.namespace is not None and meta.get("namespace") != request.namespace:
                    continue
                if request.name is not None and meta.get("name") != request.name:
                    continue
                if labels(obj) and fields(obj):
                    yield self._event(event["type"], obj, table, columns, include)
        finally:
            await bus.unmark(marker)

    def _event(self, kind: str, obj: dict, table: bool, columns: list, include: str) -> dict:
        if not table:
            return {"type": kind, "object": obj}
        return {"type": kind, "object": tables.table([obj], columns, datetime.now(UTC), include,
                                                     _revision_of(obj))}

    def _columns(self, resource: references.resource) -> list[tables.Column]:
        found = self._crd_versions.get(resource)
        if found is not None:
            return tables.columns_of_crd(found[1])
        info = _entry(self._resources, resource)
        return tables.builtin_columns(info.kind if info is not None and info.kind else "")

    # --- discovery and OpenAPI ---

    async def _serve_version(self, request: rendering.Request) -> rendering.Payload:
        document = await super()._serve_version(request)
        if request.resource is not None and request.resource.group == "":
            document["groupVersion"] = request.resource.version  # "v1", not kmock's "/v1"
        for entry in document.get("resources") or []:
            if "/" in entry["name"]:  # kmock copies them to subresources, which confuses kubectl
                entry["shortNames"], entry["categories"] = [], []
        return document

    def _openapi_documents(self) -> dict[str, dict]:
        by_group_version: dict[tuple[str, str], list[openapi.Resource]] = {}
        for resource in self._resources:
            info = self._resources[resource]
            if not info.kind or not {"get", "patch"} & set(info.verbs or ()):
                continue
            crd = self._crd_versions.get(resource)
            crd_schema = ((crd[1].get("schema") or {}).get("openAPIV3Schema") if crd else None)
            by_group_version.setdefault((resource.group, resource.version), []).append(openapi.Resource(
                resource.plural, info.kind, bool(info.namespaced), crd_schema,
                tuple(sorted(info.subresources))))
        return {openapi.document_path(g, v): openapi.group_version_document(g, v, resources)
                for (g, v), resources in by_group_version.items()}

    async def _serve_openapi_index(self, request: rendering.Request) -> rendering.Payload:
        return openapi.index(self._openapi_documents())

    async def _serve_openapi_document(self, request: rendering.Request) -> rendering.Payload:
        path = request.url.path.removeprefix("/openapi/v3/")
        document = self._openapi_documents().get(path)
        if document is None:
            raise kmock.KubernetesNotFoundError()
        return document


_NAMESPACE_PATH = re.compile(r"^/api/v1/namespaces(/[^/]+(/(status|finalize))?)?/?$")
_NAMESPACE_STAND_IN = "-namespaces-"  # no namespace can be called that (not a DNS label)


def _namespaces_path(raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.BaseRequest:
    """kmock reads /api/v1/namespaces[/NAME[/status]] as a namespace prefix (the collection
    even fails): give it a path it reads as the namespaces resource in a stand-in namespace,
    which _namespaces_read_right takes away again."""
    if not _NAMESPACE_PATH.match(raw_request.path):
        return raw_request
    rest = raw_request.path.rstrip("/")[len("/api/v1/namespaces"):]
    query = f"?{raw_request.query_string}" if raw_request.query_string else ""
    return raw_request.clone(rel_url=f"/api/v1/namespaces/{_NAMESPACE_STAND_IN}/namespaces{rest}{query}")


def _namespaces_read_right(request: rendering.Request) -> rendering.Request:
    if request.namespace != _NAMESPACE_STAND_IN:
        return request
    return attrs.evolve(request, namespace=None)


def _body(request: rendering.Request) -> object:
    content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
    if content_type == "application/vnd.kubernetes.protobuf":
        try:
            return protobuf.namespace_from_protobuf(request.body)
        except protobuf.UnsupportedKind as exc:
            raise _Refused(415, "UnsupportedMediaType", f"the modelrollout harness reads protobuf bodies of "
                           f"Namespaces only, not of {exc}: write it with kubectl apply -f") from exc
        except ValueError as exc:
            raise _Refused(400, "BadRequest", f"unreadable protobuf body: {exc}") from exc
    return request.data


def _entry(mapping: Any, key: object) -> Any:
    """kmock's arrays have no .get()."""
    if key not in mapping:
        return None
    return mapping[key]


def _wants_table(request: rendering.Request) -> bool:
    accept = request.headers.get("Accept") or ""
    return any("as=Table" in part.replace(" ", "") for part in accept.split(","))


def _dry_run(request: rendering.Request) -> bool:
    return request.params.get("dryRun") == "All"


def _qualified(resource: references.resource) -> str:
    return f"{resource.plural}.{resource.group}" if resource.group else str(resource.plural)


def _api_version(resource: references.resource) -> str:
    return f"{resource.group}/{resource.version}" if resource.group else str(resource.version)


def _revision_of(obj: dict) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _without(obj: dict) -> dict:
    """What a generation counts: everything but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _trim(stored: kmock.Object) -> None:
    if len(stored.history) > OBJECT_HISTORY:
        stored.history = list(stored.history)[-OBJECT_HISTORY:]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = ["OBJECT_HISTORY", "ApiServer"]
