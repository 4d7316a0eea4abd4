"""The route table: one schema, written by the operator (into ModelDeployment status)
or by hand (the gateway's --routes file), read by the gateway.

    models:
      iris:                                  # the name in /v2/models/{name}/...
        revisions:
          - {name: v1, role: stable, weight: 90, endpoints: ["127.0.0.1:8001"]}
          - {name: v2, role: candidate, weight: 10, endpoints: ["127.0.0.1:8002"]}
        mirror: {revision: v2, percent: 100}  # optional; compare: {absoluteTolerance,
                                              #   relativeTolerance, match: values|classes}
        match:                                # optional; first match wins over weights
          - {header: x-modelrollout-revision, value: v2, revision: v2}
        sticky: {header: x-user-id}           # optional (or {cookie: name})
        fallback: {revision: v1, deadlineMs: 250}  # optional; deadlineMs optional

Roles: stable, candidate, shadow, fallback. Weights are int percentages; the weights of
the stable and candidate revisions add up to 100. A shadow revision has weight 0 and
only receives mirrored copies. A fallback revision has weight 0 too: it takes no
weighted traffic, only requests a ``match`` rule sends it and those other revisions
fail. ``fallback.revision`` (any role but shadow: a fallback revision, or the stable one
while a candidate is guarded) answers a request when the revision serving it answers
5xx, cannot be reached, times out, or has not answered within ``deadlineMs`` (an int
from 1 to 600000); a request sent with ``x-modelrollout-idempotent: false`` never goes
there (docs/gateway.md, "Per-request fallback"). An endpoint
is "host:port" or {address: "host:port", ready: bool}. In ModelDeployment status a
revision names its Kubernetes Service (``service: iris-a41f03``) instead of endpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

ROLES = ("stable", "candidate", "shadow", "fallback")
WEIGHTED_ROLES = ("stable", "candidate")  # the others take weight 0
MATCHES = ("values", "classes")  # how a mirrored answer is compared (gateway/compare.py)
REVISION_HEADER = "x-modelrollout-revision"  # response header naming the serving revision
# Request header: "false" (any case) forbids the gateway to send the request to the route's
# fallback revision after its revision failed it (the upstream may have acted on it).
IDEMPOTENT_HEADER = "x-modelrollout-idempotent"
MAX_DEADLINE_MS = 600_000  # fallback.deadlineMs: at most ten minutes


class InvalidRoutes(ValueError):
    """The route document breaks the schema; the message says where and how."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    ready: bool = True

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Revision:
    name: str
    role: str
    weight: int
    endpoints: tuple[Endpoint, ...] = ()
    # In the Kubernetes API the operator names the revision's Service instead of listing
    # endpoints; the gateway fills endpoints in from that Service's EndpointSlices.
    service: str | None = None

    @cached_property  # asked on every request; a revision never changes once built
    def ready_endpoints(self) -> tuple[Endpoint, ...]:
        return tuple(e for e in self.endpoints if e.ready)


@dataclass(frozen=True)
class Compare:
    """How a mirrored answer is compared with the served one; None: the gateway's defaults."""

    atol: float | None = None
    rtol: float | None = None
    match: str = "values"


@dataclass(frozen=True)
class Mirror:
    revision: str
    percent: int
    compare: Compare = Compare()


@dataclass(frozen=True)
class MatchRule:
    header: str  # lower-case header name
    value: str
    revision: str


@dataclass(frozen=True)
class Sticky:
    header: str | None = None  # lower-case header name
    cookie: str | None = None


@dataclass(frozen=True)
class Fallback:
    """Where a request goes when its revision fails it; ``deadline_ms``: how long the
    revision may take before the request goes there anyway (None: the gateway's timeout)."""

    revision: str
    deadline_ms: int | None = None


@dataclass(frozen=True)
class ModelRoute:
    revisions: tuple[Revision, ...]
    mirror: Mirror | None = None
    match: tuple[MatchRule, ...] = ()
    sticky: Sticky | None = None
    fallback: Fallback | None = None

    def revision(self, name: str) -> Revision | None:
        return next((r for r in self.revisions if r.name == name), None)

    @cached_property
    def served(self) -> tuple[Revision, ...]:
        """The revisions that take weighted traffic (stable and candidate), candidate first:
        the order the gateway lays out its sticky buckets in."""
        order = {"candidate": 0, "stable": 1}
        return tuple(sorted((r for r in self.revisions if r.role in WEIGHTED_ROLES),
                            key=lambda r: order[r.role]))

    @cached_property  # asked per request on routes with a fallback
    def fallback_revision(self) -> Revision | None:
        return self.revision(self.fallback.revision) if self.fallback else None


@dataclass(frozen=True)
class RouteTable:
    models: dict[str, ModelRoute] = field(default_factory=dict)


def parse_route_table(doc: object) -> RouteTable:
    if doc is None:
        return RouteTable()
    if not isinstance(doc, dict):
        raise InvalidRoutes("the route table must be a mapping with a 'models' key")
    models = doc.get("models") or {}
    if not isinstance(models, dict):
        raise InvalidRoutes("'models' must map model names to routes")
    return RouteTable({str(name): parse_model_route(str(name), route) for name, route in models.items()})


def parse_model_route(model: str, doc: object) -> ModelRoute:
    where = f"models.{model}"
    if not isinstance(doc, dict):
        raise InvalidRoutes(f"{where} must be a mapping")
    revisions_doc = doc.get("revisions")
    if not isinstance(revisions_doc, list) or not revisions_doc:
        raise InvalidRoutes(f"{where}.revisions must be a non-empty list")
    revisions = tuple(
        _revision(f"{where}.revisions[{i}]", item) for i, item in enumerate(revisions_doc)
    )
    names = [r.name for r in revisions]
    if len(set(names)) != len(names):
        raise InvalidRoutes(f"{where}.revisions: revision names must be unique, got {names}")
    served = [r for r in revisions if r.role in WEIGHTED_ROLES]
    if not served:
        raise InvalidRoutes(f"{where}.revisions: needs a stable or candidate revision")
    if sum(r.weight for r in served) != 100:
        raise InvalidRoutes(
            f"{where}.revisions: weights of stable and candidate revisions must add up to 100, "
            f"got {sum(r.weight for r in served)}"
        )
    route = ModelRoute(
        revisions=revisions,
        mirror=_mirror(where, doc.get("mirror")),
        match=tuple(_match(f"{where}.match[{i}]", m) for i, m in enumerate(doc.get("match") or [])),
        sticky=_sticky(where, doc.get("sticky")),
        fallback=_fallback(where, doc.get("fallback")),
    )
    for ref, what in [(m.revision, "match") for m in route.match] + (
        [(route.mirror.revision, "mirror")] if route.mirror else []
    ) + ([(route.fallback.revision, "fallback")] if route.fallback else []):
        if ref not in names:
            raise InvalidRoutes(f"{where}.{what}: revision '{ref}' is not one of {names}")
    if route.fallback and route.fallback_revision.role == "shadow":
        raise InvalidRoutes(f"{where}.fallback: revision '{route.fallback.revision}' is a shadow "
                            "(it only receives mirrored copies)")
    return route


def route_table_to_doc(table: RouteTable) -> dict:
    return {"models": {name: model_route_to_doc(route) for name, route in table.models.items()}}


def model_route_to_doc(route: ModelRoute) -> dict:
    doc: dict = {
        "revisions": [
            {
                "name": r.name,
                "role": r.role,
                "weight": r.weight,
                "endpoints": [{"address": e.address, "ready": e.ready} for e in r.endpoints],
                **({"service": r.service} if r.service else {}),
            }
            for r in route.revisions
        ]
    }
    if route.mirror:
        doc["mirror"] = {"revision": route.mirror.revision, "percent": route.mirror.percent}
        compare = route.mirror.compare
        if compare != Compare():
            doc["mirror"]["compare"] = {key: value for key, value in (
                ("absoluteTolerance", compare.atol), ("relativeTolerance", compare.rtol),
                ("match", compare.match)) if value is not None}
    if route.match:
        doc["match"] = [{"header": m.header, "value": m.value, "revision": m.revision} for m in route.match]
    if route.sticky:
        sticky = route.sticky
        doc["sticky"] = {"header": sticky.header} if sticky.header else {"cookie": sticky.cookie}
    if route.fallback:
        doc["fallback"] = {"revision": route.fallback.revision}
        if route.fallback.deadline_ms is not None:
            doc["fallback"]["deadlineMs"] = route.fallback.deadline_ms
    return doc


def _revision(where: str, doc: object) -> Revision:
    if not isinstance(doc, dict):
        raise InvalidRoutes(f"{where} must be a mapping")
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRoutes(f"{where}.name must be a non-empty string")
    role = doc.get("role", "stable")
    if role not in ROLES:
        raise InvalidRoutes(f"{where}.role must be one of {', '.join(ROLES)}, got {role!r}")
    weight = doc.get("weight", 0)
    if type(weight) is not int or not 0 <= weight <= 100:  # noqa: E721 - bool is not a weight
        raise InvalidRoutes(f"{where}.weight must be an integer from 0 to 100, got {weight!r}")
    if role == "shadow" and weight:
        raise InvalidRoutes(f"{where}: a shadow revision takes no weight (it gets mirrored copies)")
    if role == "fallback" and weight:
        raise InvalidRoutes(f"{where}: a fallback revision takes no weight (it answers for failing ones)")
    endpoints = doc.get("endpoints") or []
    if not isinstance(endpoints, list):
        raise InvalidRoutes(f"{where}.endpoints must be a list")
    service = doc.get("service")
    if service is not None and (not isinstance(service, str) or not service):
        raise InvalidRoutes(f"{where}.service must be a Service name")
    return Revision(
        name, role, weight,
        tuple(_endpoint(f"{where}.endpoints[{i}]", e) for i, e in enumerate(endpoints)),
        service,
    )


def _endpoint(where: str, doc: object) -> Endpoint:
    ready = True
    if isinstance(doc, dict):
        ready = doc.get("ready", True)
        if not isinstance(ready, bool):
            raise InvalidRoutes(f"{where}.ready must be true or false")
        doc = doc.get("address")
    if not isinstance(doc, str):
        raise InvalidRoutes(f"{where} must be 'host:port' or {{address, ready}}")
    host, sep, port = doc.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidRoutes(f"{where}: {doc!r} is not host:port")
    return Endpoint(host.strip("[]"), int(port), ready)


def _mirror(where: str, doc: object) -> Mirror | None:
    if doc is None:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("revision"), str):
        raise InvalidRoutes(f"{where}.mirror must be {{revision, percent}}")
    percent = doc.get("percent", 100)
    if type(percent) is not int or not 0 <= percent <= 100:  # noqa: E721
        raise InvalidRoutes(f"{where}.mirror.percent must be an integer from 0 to 100")
    return Mirror(doc["revision"], percent, _compare(f"{where}.mirror.compare", doc.get("compare")))


def _fallback(where: str, doc: object) -> Fallback | None:
    if doc is None:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("revision"), str) or not doc["revision"]:
        raise InvalidRoutes(f"{where}.fallback must be {{revision, deadlineMs}} (deadlineMs optional)")
    deadline = doc.get("deadlineMs")
    if deadline is not None and (type(deadline) is not int or not 0 < deadline <= MAX_DEADLINE_MS):  # noqa: E721
        raise InvalidRoutes(
            f"{where}.fallback.deadlineMs must be an integer from 1 to {MAX_DEADLINE_MS}, got {deadline!r}")
    return Fallback(doc["revision"], deadline)


def _compare(where: str, doc: object) -> Compare:
    if doc is None:
        return Compare()
    if not isinstance(doc, dict):
        raise InvalidRoutes(f"{where} must be {{absoluteTolerance, relativeTolerance, match}}")
    tolerances = []
    for key in ("absoluteTolerance", "relativeTolerance"):
        value = doc.get(key)
        bad = isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
        if value is not None and bad:
            raise InvalidRoutes(f"{where}.{key} must be a number from 0 up, got {value!r}")
        tolerances.append(None if value is None else float(value))
    match = doc.get("match", "values")
    if match not in MATCHES:
        raise InvalidRoutes(f"{where}.match must be one of {', '.join(MATCHES)}, got {match!r}")
    return Compare(tolerances[0], tolerances[1], match)


def _match(where: str, doc: object) -> MatchRule:
    if not isinstance(doc, dict) or not all(
        isinstance(doc.get(k), str) and doc.get(k) for k in ("header", "value", "revision")
    ):
        raise InvalidRoutes(f"{where} must be {{header, value, revision}} (all strings)")
    return MatchRule(doc["header"].lower(), doc["value"], doc["revision"])


def _sticky(where: str, doc: object) -> Sticky | None:
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise InvalidRoutes(f"{where}.sticky must be {{header: name}} or {{cookie: name}}")
    header, cookie = doc.get("header"), doc.get("cookie")
    if (header is None) == (cookie is None) or not isinstance(header or cookie, str):
        raise InvalidRoutes(f"{where}.sticky needs exactly one of 'header' or 'cookie'")
    return Sticky(header.lower() if header else None, cookie)
