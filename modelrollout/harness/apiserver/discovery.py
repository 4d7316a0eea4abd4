"""Discovery and OpenAPI of the harness's API server: the core group as ``v1``, short names
on resources only, and /openapi/v3 built from what is declared (a CRD's schema included)."""

from __future__ import annotations

import kmock

from ..api import openapi


class Discovery:
    __slots__ = ()

    async def _serve_version(self, request: kmock.Request) -> kmock.Payload:
        document = await super()._serve_version(request)
        if request.resource is not None and request.resource.group == "":
            document["groupVersion"] = request.resource.version  # "v1", not kmock's "/v1"
        for entry in document.get("resources") or []:
            if "/" in entry["name"]:  # kmock copies them to subresources, which confuses kubectl
                entry["shortNames"], entry["categories"] = [], []
            if entry["name"].endswith("/scale"):  # the scale client reads the Scale's kind here
                entry.update(group="autoscaling", version="v1", kind="Scale", singularName="",
                             verbs=["get", "patch", "update"])
        return document

    def _openapi_documents(self) -> dict[str, dict]:
        by_group_version: dict[tuple[str, str], list[openapi.Resource]] = {}
        for resource in self.resources:
            info = self.resources[resource]
            if not info.kind or not {"get", "patch"} & set(info.verbs or ()):
                continue
            crd = self._crd_versions.get(resource)
            crd_schema = ((crd[1].get("schema") or {}).get("openAPIV3Schema") if crd else None)
            by_group_version.setdefault((resource.group, resource.version), []).append(openapi.Resource(
                resource.plural, info.kind, bool(info.namespaced), crd_schema,
                tuple(sorted(info.subresources))))
        return {openapi.document_path(g, v): openapi.group_version_document(g, v, resources)
                for (g, v), resources in by_group_version.items()}

    async def _serve_openapi_index(self, request: kmock.Request) -> kmock.Payload:
        return openapi.index(self._openapi_documents())

    async def _serve_openapi_document(self, request: kmock.Request) -> kmock.Payload:
        path = request.url.path.removeprefix("/openapi/v3/")
        document = self._openapi_documents().get(path)
        if document is None:
            raise kmock.KubernetesNotFoundError()
        return document
