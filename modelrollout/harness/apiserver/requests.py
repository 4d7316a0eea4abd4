"""What every part of the harness's API server shares: the Status answers (Refused), the
lookups on kmock's arrays, and the small readings of a request (dry run, Table wanted,
namespaces path) and of an object (resourceVersion, what a generation counts)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import aiohttp.web
import attrs
import kmock

from ..api import protobuf, scale

OBJECT_HISTORY = 5  # versions kept of every object: kmock keeps all of them otherwise
CRD_RESOURCE = kmock.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
NAMESPACES = kmock.resource("", "v1", "namespaces")


class Refused(Exception):
    """An answer other than 2xx, with the API server's Status body."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}
        self.headers: dict[str, str] = {}

    def response(self) -> aiohttp.web.Response:
        return aiohttp.web.json_response({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "details": self.details, "code": self.code,
        }, status=self.code, headers=self.headers)


class Lookups:
    """Resource and object lookups, for the ApiServer these are mixed into."""

    __slots__ = ()

    def _check_known(self, request: kmock.Request) -> None:
        known = request.resource in self.resources
        if not known and all(r != request.resource for r in self._get_resources()):
            raise Refused(404, "NotFound", "the server could not find the requested resource")

    def _not_found(self, request: kmock.Request) -> Refused:
        return Refused(404, "NotFound", f"{qualified(request.resource)} \"{request.name}\" not found",
                       {"name": request.name, "group": request.resource.group,
                        "kind": request.resource.plural})

    def _scale_paths(self, request: kmock.Request) -> scale.ScalePaths:
        """Where a custom resource keeps what its scale subresource shows; 404 without one."""
        found = self._crd_versions.get(request.resource)
        declared = (found[1].get("subresources") or {}).get("scale") if found else None
        if declared is None:
            raise Refused(404, "NotFound", "the server could not find the requested resource")
        return scale.ScalePaths.of(declared)

    def _kind(self, request: kmock.Request) -> str:
        info = entry(self.resources, request.resource)
        return (info.kind if info is not None else None) or request.resource.plural


_NAMESPACE_PATH = re.compile(r"^/api/v1/namespaces(/[^/]+(/(status|finalize))?)?/?$")
_NAMESPACE_STAND_IN = "-namespaces-"  # no namespace can be called that (not a DNS label)


def namespaces_path(raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.BaseRequest:
    """kmock reads /api/v1/namespaces[/NAME[/status]] as a namespace prefix (the collection
    even fails): give it a path it reads as the namespaces resource in a stand-in namespace,
    which namespaces_read_right takes away again."""
    if not _NAMESPACE_PATH.match(raw_request.path):
        return raw_request
    rest = raw_request.path.rstrip("/")[len("/api/v1/namespaces"):]
    query = f"?{raw_request.query_string}" if raw_request.query_string else ""
    return raw_request.clone(rel_url=f"/api/v1/namespaces/{_NAMESPACE_STAND_IN}/namespaces{rest}{query}")


def namespaces_read_right(request: kmock.Request) -> kmock.Request:
    if request.namespace != _NAMESPACE_STAND_IN:
        return request
    return attrs.evolve(request, namespace=None)


def body_of(request: kmock.Request) -> object:
    content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
    if content_type == "application/vnd.kubernetes.protobuf":
        try:
            return protobuf.namespace_from_protobuf(request.body)
        except protobuf.UnsupportedKind as exc:
            raise Refused(415, "UnsupportedMediaType", f"the modelrollout harness reads protobuf bodies of "
                           f"Namespaces only, not of {exc}: write it with kubectl apply -f") from exc
        except ValueError as exc:
            raise Refused(400, "BadRequest", f"unreadable protobuf body: {exc}") from exc
    return request.data


def entry(mapping: Any, key: object) -> Any:
    """kmock's arrays have no .get()."""
    if key not in mapping:
        return None
    return mapping[key]


def wants_table(request: kmock.Request) -> bool:
    accept = request.headers.get("Accept") or ""
    return any("as=Table" in part.replace(" ", "") for part in accept.split(","))


def dry_run(request: kmock.Request) -> bool:
    return request.params.get("dryRun") == "All"


def qualified(resource: kmock.resource) -> str:
    return f"{resource.plural}.{resource.group}" if resource.group else str(resource.plural)


def api_version(resource: kmock.resource) -> str:
    return f"{resource.group}/{resource.version}" if resource.group else str(resource.version)


def revision_of(obj: dict) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def without_metadata_and_status(obj: dict) -> dict:
    """What a generation counts: everything but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def trim(stored: kmock.Object) -> None:
    if len(stored.history) > OBJECT_HISTORY:
        stored.history = list(stored.history)[-OBJECT_HISTORY:]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

