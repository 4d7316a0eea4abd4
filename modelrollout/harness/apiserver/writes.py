"""The write side of the harness's API server: create, PUT, the three patches, delete with
finalizers and garbage collection, dryRun=All, CRD schema validation and the metadata the
API server owns (uid, creationTimestamp, resourceVersion, generation)."""

from __future__ import annotations

import copy
import random
import uuid

import aiohttp.web
import kmock

from ..api import patches, scale, schema
from .requests import (
    CRD_RESOURCE,
    NAMESPACES,
    Refused,
    body_of,
    dry_run,
    entry,
    now,
    qualified,
    revision_of,
    trim,
    without_metadata_and_status,
)

_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


class Writes:
    """Mixed into ApiServer, whose kmock store (objects, and the private _buses and _lock) these use."""

    __slots__ = ()

    async def _create(self, request: kmock.Request) -> aiohttp.web.Response:
        self._check_known(request)
        body = body_of(request)
        if not isinstance(body, dict):
            raise Refused(400, "BadRequest", "the request body must be a JSON object")
        body = copy.deepcopy(body)
        metadata = body.setdefault("metadata", {})
        if request.namespace is not None:
            if metadata.get("namespace") not in (None, "", request.namespace):
                raise Refused(400, "BadRequest", "the namespace of the provided object does not match "
                                                  "the namespace sent on the request")
            metadata["namespace"] = request.namespace
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = metadata["generateName"] + "".join(random.choices(_NAME_ALPHABET, k=5))
        if not metadata.get("name"):
            raise Refused(422, "Invalid", f"{self._kind(request)} \"\" is invalid: metadata.name: "
                                           "Required value: name or generateName is required")
        key = (request.resource, request.namespace, metadata["name"])
        only_trying = dry_run(request)
        async with self._lock:
            if key in self.objects and not self.objects[key].deleted:
                raise Refused(409, "AlreadyExists", f"{qualified(request.resource)} \"{metadata['name']}\" "
                                                     "already exists",
                               {"name": metadata["name"], "kind": request.resource.plural})
            self._validate(request, body)
            body = self._stamped(body, None)
            if request.resource == CRD_RESOURCE:
                body = self._established(body)
            if not only_trying:
                if key in self.objects:
                    self.objects[key].create(body)
                else:
                    self.objects[key] = body
                await self._buses[request.resource].put({"type": "ADDED", "object": body})
                if request.resource == CRD_RESOURCE:
                    self.declare_crd(body)
        return aiohttp.web.json_response(body, status=201)

    async def _update(self, request: kmock.Request) -> aiohttp.web.Response:
        self._check_known(request)
        if request.subresource not in (None, "status", "scale"):  # log, exec, ...: not served
            raise Refused(404, "NotFound", "the server could not find the requested resource")
        if (request.headers.get("Content-Type") or "").startswith("application/apply-patch"):
            raise Refused(415, "UnsupportedMediaType", "server-side apply is not supported by the "
                           "modelrollout harness: use kubectl apply without --server-side")
        scale_paths = self._scale_paths(request) if request.subresource == "scale" else None
        answer = (lambda obj: scale.scale_of(obj, scale_paths)) if scale_paths else (lambda obj: obj)
        key = (request.resource, request.namespace, request.name)
        only_trying = dry_run(request)
        async with self._lock:
            stored = entry(self.objects, key)
            if stored is None or stored.deleted:
                raise self._not_found(request)
            live = copy.deepcopy(stored.raw)
            if scale_paths is not None:  # the Scale is patched, the object's replicas change
                asked = self._apply_body(request, scale.scale_of(live, scale_paths))
                try:
                    wanted = scale.with_replicas(live, scale_paths, scale.replicas_of(asked))
                except scale.ScaleError as exc:
                    raise Refused(422, "Invalid", f"Scale.autoscaling \"{request.name}\" is invalid: "
                                   f"{exc}") from exc
            else:
                wanted = asked = self._apply_body(request, live)
            precondition = (asked.get("metadata") or {}).get("resourceVersion")
            if isinstance(request.data, dict) and precondition and precondition != revision_of(live):
                raise Refused(409, "Conflict", f"Operation cannot be fulfilled on "
                               f"{qualified(request.resource)} \"{request.name}\": the object has been "
                               "modified; please apply your changes to the latest version and try again")
            if request.subresource == "status":  # only the subresource's part changes
                part = wanted.get(request.subresource)
                wanted = {k: v for k, v in live.items() if k != request.subresource}
                if part is not None:
                    wanted[request.subresource] = part
            for fixed in ("uid", "creationTimestamp", "name", "namespace", "deletionTimestamp", "generation"):
                if fixed in live.get("metadata", {}):
                    wanted.setdefault("metadata", {})[fixed] = live["metadata"][fixed]
            if wanted == live:
                return aiohttp.web.json_response(answer(live))  # no change, no new resourceVersion
            self._validate(request, wanted)
            spec_changed = request.subresource != "status" and \
                without_metadata_and_status(wanted) != without_metadata_and_status(live)
            wanted = self._stamped(wanted, live, bump_generation=spec_changed)
            if only_trying:
                return aiohttp.web.json_response(answer(wanted))
            stored.create(wanted)
            trim(stored)
            await self._buses[request.resource].put({"type": "MODIFIED", "object": wanted})
            if request.resource == CRD_RESOURCE:
                self.declare_crd(wanted)
            meta = wanted["metadata"]
            if meta.get("deletionTimestamp") and not meta.get("finalizers"):
                await self._remove(key)
        return aiohttp.web.json_response(answer(wanted))

    async def _delete(self, request: kmock.Request) -> aiohttp.web.Response:
        self._check_known(request)
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            stored = entry(self.objects, key)
            if stored is None or stored.deleted:
                raise self._not_found(request)
            live = stored.raw
            if dry_run(request):
                return aiohttp.web.json_response(live)
            gone = await self._delete_key(key)
        return aiohttp.web.json_response(gone)

    async def _delete_key(self, key: tuple) -> dict:
        """Delete as the API server does: held by finalizers, else removed. The object as it left."""
        stored = self.objects[key]
        live = stored.raw
        meta = live.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            return live
        if meta.get("finalizers"):
            marked = self._stamped({**live, "metadata": {**meta, "deletionTimestamp": now()}}, live)
            stored.create(marked)
            trim(stored)
            await self._buses[key[0]].put({"type": "MODIFIED", "object": marked})
            return marked
        return await self._remove(key)

    async def _remove(self, key: tuple) -> dict:
        stored = self.objects[key]
        live = self._stamped(copy.deepcopy(stored.raw), stored.raw)  # a deletion is a change too
        stored.delete()
        self._tombstones.append((key[0], live))
        await self._buses[key[0]].put({"type": "DELETED", "object": live})
        # Garbage collection (background): dependents by ownerReference, a namespace's objects.
        uid = (live.get("metadata") or {}).get("uid")
        doomed = []
        for other_key, obj in list(self.objects.items()):
            if obj.deleted:
                continue
            owners = (obj.raw.get("metadata") or {}).get("ownerReferences") or []
            if (uid and any(o.get("uid") == uid for o in owners)) or \
                    (key[0] == NAMESPACES and other_key[1] == key[2]):
                doomed.append(other_key)
        for other_key in doomed:
            if not self.objects[other_key].deleted:
                await self._delete_key(other_key)
        return live

    def _apply_body(self, request: kmock.Request, live: dict) -> dict:
        body = request.data
        if request.method == kmock.method.PUT:
            if not isinstance(body, dict):
                raise Refused(400, "BadRequest", "the request body must be a JSON object")
            return copy.deepcopy(body)
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
        try:
            if content_type == "application/json-patch+json":
                return patches.json_patch(live, body)
            if not isinstance(body, dict):
                raise Refused(400, "BadRequest", "the patch must be a JSON object")
            if content_type == "application/strategic-merge-patch+json":
                if request.resource in self._crd_versions:
                    raise Refused(415, "UnsupportedMediaType", "the body of the request was in an unknown "
                                   "format - accepted media types include: application/json-patch+json, "
                                   "application/merge-patch+json, application/apply-patch+yaml")
                return patches.strategic_merge_patch(live, body)
            return patches.merge_patch(live, body)
        except patches.PatchError as exc:
            raise Refused(422, "Invalid", str(exc)) from exc

    def _validate(self, request: kmock.Request, obj: dict) -> None:
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
                raise Refused(400, "BadRequest", f"{kind} in version \"{version['name']}\" cannot be "
                               f"handled as a {kind}: strict decoding error: {listed}")
        problems = schema.validate(obj, openapi_schema)
        if problems:
            causes = [{"reason": "FieldValueInvalid", "field": p.split(": ", 1)[0],
                       "message": p.split(": ", 1)[1]} for p in problems]
            raise Refused(422, "Invalid", schema.invalid_message(kind, name, problems),
                           {"name": name, "group": crd["spec"]["group"], "kind": kind, "causes": causes})

    def _stamped(self, obj: dict, live: dict | None, bump_generation: bool = False) -> dict:
        self._revision += 1
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(self._revision)
        if live is None:
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now())
            meta["generation"] = 1
        elif bump_generation:
            meta["generation"] = int((live.get("metadata") or {}).get("generation") or 1) + 1
        return obj

    @staticmethod
    def _established(crd: dict) -> dict:
        names = crd.get("spec", {}).get("names", {})
        crd["status"] = {"acceptedNames": names, "storedVersions": [
            v["name"] for v in crd.get("spec", {}).get("versions", []) if v.get("storage")],
            "conditions": [{"type": t, "status": "True", "reason": r, "lastTransitionTime": now(),
                            "message": m} for t, r, m in (
                ("NamesAccepted", "NoConflicts", "no conflicts found"),
                ("Established", "InitialNamesAccepted", "the initial names have been accepted"))]}
        return crd
