"""Server-side Tables (``meta.k8s.io/v1`` Table), what ``kubectl get`` asks for and prints.

    table(objects, columns_of_crd(crd_version) or builtin_columns(kind), now, include="Metadata")

A CRD's columns come from its ``additionalPrinterColumns`` (JSONPath, types string, integer,
number, boolean, date), after the Name column, as the real API server builds them; a CRD
without any gets Name and Age. Built-in kinds get the columns kubectl users know for the
kinds the harness deals in (Pod, Deployment, Service, EndpointSlice, Namespace, ConfigMap,
Secret, Event); other built-in kinds get Name and Age.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from . import jsonpath

TABLE_API_VERSION = "meta.k8s.io/v1"


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # string, integer, number, boolean, date
    cell: Callable[[dict, datetime], object]
    priority: int = 0  # > 0: shown with -o wide only
    description: str = ""
    format: str = ""


def table(objects: list[dict], columns: list[Column], now: datetime, include: str = "Metadata",
          resource_version: str = "") -> dict:
    return {
        "kind": "Table",
        "apiVersion": TABLE_API_VERSION,
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [
            {"name": c.name, "type": c.type, "format": c.format, "description": c.description,
             "priority": c.priority} for c in columns
        ],
        "rows": [row(obj, columns, now, include) for obj in objects],
    }


def row(obj: dict, columns: list[Column], now: datetime, include: str = "Metadata") -> dict:
    result: dict = {"cells": [column.cell(obj, now) for column in columns]}
    if include == "Object":
        result["object"] = obj
    elif include != "None":
        result["object"] = {"kind": "PartialObjectMetadata", "apiVersion": TABLE_API_VERSION,
                            "metadata": obj.get("metadata") or {}}
    return result


# --- CRDs ---

def columns_of_crd(version: dict) -> list[Column]:
    """The columns of one ``spec.versions[]`` entry of a CRD."""
    printer = version.get("additionalPrinterColumns")
    if not printer:
        return [NAME, AGE]
    return [NAME, *(_crd_column(c) for c in printer)]


def _crd_column(spec: dict) -> Column:
    path, kind = spec["jsonPath"], spec.get("type", "string")
    jsonpath.parse(path)  # a bad path fails when the CRD is declared, not on every get

    def cell(obj: dict, now: datetime) -> object:
        values = jsonpath.find(obj, path)
        if not values:
            return None
        if kind == "date":
            return _age(values[0], now)
        if len(values) == 1 and not isinstance(values[0], dict | list):
            return values[0]
        return ",".join(_text(v) for v in values)

    return Column(spec["name"], kind, cell, int(spec.get("priority") or 0), spec.get("description", ""),
                  spec.get("format", ""))


# --- built-in kinds ---

def builtin_columns(kind: str) -> list[Column]:
    return _BUILTIN.get(kind, [NAME, AGE])


def _get(obj: dict, *keys: str) -> object:
    node: object = obj
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _name(obj: dict, _now: datetime) -> str:
    return str(_get(obj, "metadata", "name") or "")


def _created(obj: dict, now: datetime) -> str:
    return _age(_get(obj, "metadata", "creationTimestamp"), now)


NAME = Column("Name", "string", _name, description="Name must be unique within a namespace.", format="name")
AGE = Column("Age", "date", _created, description="CreationTimestamp is the time the object was created.")


def _pod_ready(obj: dict, _now: datetime) -> str:
    statuses = _get(obj, "status", "containerStatuses") or []
    containers = _get(obj, "spec", "containers") or []
    return f"{sum(1 for s in statuses if s.get('ready'))}/{len(containers) or len(statuses)}"


def _pod_status(obj: dict, _now: datetime) -> str:
    if _get(obj, "metadata", "deletionTimestamp"):
        return "Terminating"
    for status in _get(obj, "status", "containerStatuses") or []:
        state = status.get("state") or {}
        for phase in ("waiting", "terminated"):
            if (state.get(phase) or {}).get("reason"):
                return str(state[phase]["reason"])
    return str(_get(obj, "status", "phase") or "Pending")


def _pod_restarts(obj: dict, _now: datetime) -> int:
    return sum(int(s.get("restartCount") or 0) for s in _get(obj, "status", "containerStatuses") or [])


def _deployment_ready(obj: dict, _now: datetime) -> str:
    return f"{_get(obj, 'status', 'readyReplicas') or 0}/{_get(obj, 'spec', 'replicas') or 0}"


def _int_at(*keys: str) -> Callable[[dict, datetime], int]:
    return lambda obj, _now: int(_get(obj, *keys) or 0)


def _containers(field: str) -> Callable[[dict, datetime], str]:
    return lambda obj, _now: ",".join(str(c.get(field) or "") for c in
                                      _get(obj, "spec", "template", "spec", "containers") or [])


def _selector(obj: dict, _now: datetime) -> str:
    selector = _get(obj, "spec", "selector") or {}
    labels = selector.get("matchLabels", selector) if isinstance(selector, dict) else {}
    return ",".join(f"{k}={v}" for k, v in labels.items() if isinstance(v, str)) or "<none>"


def _service_ports(obj: dict, _now: datetime) -> str:
    ports = _get(obj, "spec", "ports") or []
    return ",".join(f"{p.get('port')}/{p.get('protocol') or 'TCP'}" for p in ports) or "<none>"


def _slice_ports(obj: dict, _now: datetime) -> str:
    return ",".join(str(p.get("port")) for p in obj.get("ports") or []) or "<unset>"


def _slice_endpoints(obj: dict, _now: datetime) -> str:
    addresses = [a for e in obj.get("endpoints") or [] for a in e.get("addresses") or []]
    if not addresses:
        return "<unset>"
    shown = ",".join(addresses[:3])
    return shown + (f" + {len(addresses) - 3} more..." if len(addresses) > 3 else "")


def _event_last_seen(obj: dict, now: datetime) -> str:
    when = obj.get("lastTimestamp") or obj.get("eventTime") or _get(obj, "metadata", "creationTimestamp")
    return _age(when, now)


def _event_object(obj: dict, _now: datetime) -> str:
    involved = obj.get("involvedObject") or {}
    return f"{str(involved.get('kind') or '').lower()}/{involved.get('name') or ''}"


_BUILTIN: dict[str, list[Column]] = {
    "Pod": [NAME, Column("Ready", "string", _pod_ready), Column("Status", "string", _pod_status),
            Column("Restarts", "string", _pod_restarts), AGE,
            Column("IP", "string", lambda o, _n: _get(o, "status", "podIP") or "<none>", priority=1),
            Column("Node", "string", lambda o, _n: _get(o, "spec", "nodeName") or "<none>", priority=1)],
    "Deployment": [NAME, Column("Ready", "string", _deployment_ready),
                   Column("Up-to-date", "string", _int_at("status", "updatedReplicas")),
                   Column("Available", "string", _int_at("status", "availableReplicas")), AGE,
                   Column("Containers", "string", _containers("name"), priority=1),
                   Column("Images", "string", _containers("image"), priority=1),
                   Column("Selector", "string", _selector, priority=1)],
    "Service": [NAME, Column("Type", "string", lambda o, _n: _get(o, "spec", "type") or "ClusterIP"),
                Column("Cluster-IP", "string", lambda o, _n: _get(o, "spec", "clusterIP") or "<none>"),
                Column("External-IP", "string", lambda o, _n: "<none>"),
                Column("Port(s)", "string", _service_ports), AGE,
                Column("Selector", "string", _selector, priority=1)],
    "EndpointSlice": [NAME, Column("AddressType", "string", lambda o, _n: o.get("addressType") or ""),
                      Column("Ports", "string", _slice_ports),
                      Column("Endpoints", "string", _slice_endpoints), AGE],
    "Namespace": [NAME, Column("Status", "string", lambda o, _n: _get(o, "status", "phase") or "Active"),
                  AGE],
    "ConfigMap": [NAME, Column("Data", "integer", lambda o, _n: len(o.get("data") or {})
                               + len(o.get("binaryData") or {})), AGE],
    "Secret": [NAME, Column("Type", "string", lambda o, _n: o.get("type") or "Opaque"),
               Column("Data", "integer", lambda o, _n: len(o.get("data") or {})), AGE],
    "Scale": [NAME, Column("Desired", "integer", _int_at("spec", "replicas")),  # a scale subresource
              Column("Available", "integer", _int_at("status", "replicas"))],
    "Event": [Column("Last Seen", "string", _event_last_seen),
              Column("Type", "string", lambda o, _n: o.get("type") or ""),
              Column("Reason", "string", lambda o, _n: o.get("reason") or ""),
              Column("Object", "string", _event_object),
              Column("Message", "string", lambda o, _n: o.get("message") or "")],
}


# --- formatting ---

def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _age(timestamp: object, now: datetime) -> str:
    if not isinstance(timestamp, str) or not timestamp:
        return "<unknown>"
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return human_duration((now - then).total_seconds())


def human_duration(seconds: float) -> str:
    """apimachinery's duration.HumanDuration: what the AGE column shows."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        return f"{hours // 24 // 365}y{rest}d" if rest else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"
