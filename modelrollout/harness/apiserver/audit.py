"""Who asked the harness's API server for what: every request as an RBAC verb on a resource,
by caller, kept as counts (bounded by nature) and, for writes, as a time-stamped log.

The harness authenticates nobody: the bearer token a client sends is taken as its name
(``KubeEmulator.kubeconfig_for("modelrollout-operator")`` writes a kubeconfig with that
token), and a request without one is ``anonymous``. What is recorded is what RBAC would
check: the verb (get, list, watch, create, update, patch, delete, deletecollection), the
API group, the resource with its subresource (``modeldeployments/status``) and the
namespace. Requests that name no resource (discovery, OpenAPI) are counted with resource
None: every authenticated user may make them (the system:discovery role).

tests/e2e/test_e2e_rbac.py checks the counts against manifests/rbac/.
"""

from __future__ import annotations

import collections
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import kmock

ANONYMOUS = "anonymous"
WRITES_KEPT = 200_000


@dataclass(frozen=True)
class Call:
    identity: str
    verb: str  # an RBAC verb
    group: str | None  # None: a non-resource request
    resource: str | None  # plural, with "/subresource" when one was asked for
    namespace: str | None  # None: cluster-wide (or non-resource)
    name: str | None = None
    path: str = ""

    @property
    def key(self) -> tuple:
        return (self.identity, self.verb, self.group, self.resource, self.namespace)


@dataclass(frozen=True)
class Write:
    at: float  # time.time() when the request arrived
    identity: str
    verb: str
    group: str
    resource: str
    namespace: str | None
    name: str | None


def identity_of(request: kmock.Request) -> str:
    header = request.headers.get("Authorization") or ""
    token = header[len("Bearer "):].strip() if header.startswith("Bearer ") else ""
    return token or ANONYMOUS


def verb_of(request: kmock.Request) -> str:
    method = request.method
    resourceless = request.resource is None or request.resource.plural is None
    if method == kmock.method.GET or method == kmock.method.HEAD:
        if request.action == kmock.action.WATCH and not resourceless:
            return "watch"
        return "get" if request.name is not None or resourceless else "list"
    if method == kmock.method.POST:
        return "create"
    if method == kmock.method.PUT:
        return "update"
    if method == kmock.method.PATCH:
        return "patch"
    if method == kmock.method.DELETE:
        return "delete" if request.name is not None else "deletecollection"
    return str(method.value if method is not None else "").lower()


def call_of(request: kmock.Request) -> Call:
    resource = request.resource
    if resource is None or resource.plural is None:
        return Call(identity_of(request), verb_of(request), None, None, None, None, request.url.path)
    plural = str(resource.plural) + (f"/{request.subresource}" if request.subresource else "")
    return Call(identity_of(request), verb_of(request), str(resource.group or ""), plural, request.namespace,
                request.name, request.url.path)


class Audit:
    """Counts of calls by (identity, verb, group, resource, namespace), and the writes in order."""

    def __init__(self) -> None:
        self.counts: collections.Counter = collections.Counter()
        self.writes: collections.deque[Write] = collections.deque(maxlen=WRITES_KEPT)

    def record(self, call: Call) -> None:
        self.counts[call.key] += 1
        if call.resource is not None and call.verb not in ("get", "list", "watch"):
            self.writes.append(Write(time.time(), call.identity, call.verb, call.group or "", call.resource,
                                     call.namespace, call.name))

    def summary(self) -> list[dict]:
        """Every distinct call with its count, as plain data (sorted)."""
        rows = [{"identity": i, "verb": v, "group": g, "resource": r, "namespace": n, "count": c}
                for (i, v, g, r, n), c in self.counts.items()]
        return sorted(rows, key=lambda row: json.dumps(row, sort_keys=True, default=str))

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps({"calls": self.summary()}, indent=1))


def writes_as_dicts(writes: list[Write]) -> list[dict]:
    return [asdict(w) for w in writes]
