"""OpenAPI v3 documents, as the API server serves them under /openapi/v3.

    index(group_versions)                            # GET /openapi/v3
    group_version_document(group, version, resources)  # GET /openapi/v3/apis/<group>/<version>

Each resource gets its paths with the operations the emulator serves; every write operation
lists the ``dryRun``, ``fieldManager`` and ``fieldValidation`` query parameters, which is how
kubectl learns that the server validates fields itself (it then sends
``fieldValidation=Strict`` instead of validating on its side). A custom resource's schema is
its CRD's ``openAPIV3Schema`` (so `kubectl explain` shows it); a built-in kind is listed by
its paths only: kubectl then builds its patches from its own compiled-in types, as it does
against a real server.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Resource:
    plural: str
    kind: str
    namespaced: bool
    schema: dict | None = None  # a CRD's openAPIV3Schema; None for built-in kinds
    subresources: tuple[str, ...] = ()


def document_path(group: str, version: str) -> str:
    return f"api/{version}" if group == "" else f"apis/{group}/{version}"


def index(documents: dict[str, dict]) -> dict:
    """``documents``: document_path -> document. Hashes let clients cache, as the real ones do."""
    return {"paths": {path: {"serverRelativeURL": f"/openapi/v3/{path}?hash={_hash(doc)}"}
                      for path, doc in sorted(documents.items())}}


def group_version_document(group: str, version: str, resources: list[Resource]) -> dict:
    paths: dict[str, dict] = {}
    schemas: dict[str, dict] = {}
    prefix = "/" + document_path(group, version)
    for resource in sorted(resources, key=lambda r: r.plural):
        gvk = {"group": group, "version": version, "kind": resource.kind}
        ref = _schema_name(group, version, resource.kind) if resource.schema is not None else None
        base = f"{prefix}/namespaces/{{namespace}}/{resource.plural}" if resource.namespaced \
            else f"{prefix}/{resource.plural}"
        paths[base] = {"get": _operation("list", gvk, ref, reads=True),
                       "post": _operation("create", gvk, ref)}
        paths[f"{base}/{{name}}"] = {"get": _operation("read", gvk, ref, reads=True),
                                     "put": _operation("replace", gvk, ref),
                                     "patch": _operation("patch", gvk, ref),
                                     "delete": _operation("delete", gvk, ref)}
        for sub in resource.subresources:
            paths[f"{base}/{{name}}/{sub}"] = {"get": _operation("read", gvk, ref, reads=True),
                                               "put": _operation("replace", gvk, ref),
                                               "patch": _operation("patch", gvk, ref)}
        if ref is not None:
            schema = copy.deepcopy(resource.schema)
            schema["x-kubernetes-group-version-kind"] = [gvk]
            schemas[ref] = schema
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (modelrollout harness)", "version": "unversioned"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _operation(action: str, gvk: dict, ref: str | None, reads: bool = False) -> dict:
    parameters = [{"name": "pretty", "in": "query", "schema": {"type": "string"}}]
    if not reads:
        parameters += [{"name": name, "in": "query", "schema": {"type": "string"}}
                       for name in ("dryRun", "fieldManager", "fieldValidation")]
    response: dict = {"description": "OK"}
    if ref is not None:
        response["content"] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}
    return {
        "operationId": f"{action}{gvk['kind']}",
        "parameters": parameters,
        "responses": {"200": response},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    }


def _schema_name(group: str, version: str, kind: str) -> str:
    reversed_group = ".".join(reversed(group.split("."))) if group else "io.k8s.api.core"
    return f"{reversed_group}.{version}.{kind}"


def _hash(document: dict) -> str:
    return hashlib.sha512(json.dumps(document, sort_keys=True).encode()).hexdigest()[:32].upper()
