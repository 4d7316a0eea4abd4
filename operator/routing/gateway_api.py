"""The Gateway API backend: an HTTPRoute (gateway.networking.k8s.io/v1) that carries the split. Pure.

For clusters whose gateway controller (Envoy Gateway, Istio, Cilium, ...) implements the
Gateway API: the operator owns one HTTPRoute per ModelDeployment and rewrites it whole on
every SetTraffic, so the stored route never holds a half-applied split. Checked against the
real v1.6.1 CRD, schema and CEL rules, in tests/operator/test_routing_gateway_api.py.

Rules of the route, in order:

    preview   path /v2/models/<model> + header x-modelrollout-revision: <candidate> or
              "preview" -> the candidate only (reach it on purpose, at any weight, even 0)
    traffic   path /v2/models/<model> -> stable and candidate Services, weighted;
              a RequestMirror filter copies mirror_percent of requests to the candidate

Gateway API prefers the rule with more header matches, so ``preview`` wins over ``traffic``
whatever the order; it comes first only for people reading the route.

Options (``spec.trafficRouting.gatewayAPI``):

    parentRefs  [{name, namespace?, sectionName?, port?}]  the Gateway(s) to attach to; required
    httpRoute   the HTTPRoute's name; default: the ModelDeployment's name
    hostnames   [str]  passed to the route as they are
    port        the port of the revision Services; default SERVER_PORT
"""

from __future__ import annotations

import re

from modelrollout.serving.contract.routes import REVISION_HEADER

from ..actions import SetTraffic
from ..spec import InvalidSpec
from . import (
    MANAGED_BY_LABELS,
    MODEL_DEPLOYMENT_LABEL,
    PREVIEW,
    SERVER_PORT,
    Target,
    owner_reference,
    revision_name,
)

API_VERSION = "gateway.networking.k8s.io/v1"

_OPTIONS = ("parentRefs", "httpRoute", "hostnames", "port")
_PARENT_KEYS = ("name", "namespace", "sectionName", "port")
_MAX_PARENTS = 32  # the CRD's maxItems
_MAX_HOSTNAMES = 16
# The same patterns the HTTPRoute CRD and the API server apply, so a bad value is reported
# on the ModelDeployment (a condition that says what to fix) instead of as a failed write.
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_PATH_VALUE = re.compile(r"^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$")


def validate_options(options: dict, path: str = "spec.trafficRouting.gatewayAPI") -> None:
    """Raise InvalidSpec, naming the field, for options that would make an invalid HTTPRoute."""
    if not isinstance(options, dict):
        raise InvalidSpec(path, "must be a mapping")
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise InvalidSpec(path, f"unknown option(s) {', '.join(unknown)}; known: {', '.join(_OPTIONS)}")
    _validate_parent_refs(options.get("parentRefs"), f"{path}.parentRefs")
    if "httpRoute" in options:
        _check_name(options["httpRoute"], f"{path}.httpRoute", _DNS_SUBDOMAIN, 253, "a DNS-1123 subdomain")
    if "hostnames" in options:
        hostnames = options["hostnames"]
        if not isinstance(hostnames, list) or len(hostnames) > _MAX_HOSTNAMES:
            raise InvalidSpec(f"{path}.hostnames", f"must be a list of at most {_MAX_HOSTNAMES} hostnames")
        for i, hostname in enumerate(hostnames):
            _check_name(hostname, f"{path}.hostnames[{i}]", _HOSTNAME, 253,
                        "a lower-case hostname, optionally starting with *.")
    if "port" in options:
        _check_port(options["port"], f"{path}.port")


def http_route(target: Target, traffic: SetTraffic) -> dict:
    """The HTTPRoute (gateway.networking.k8s.io/v1) that carries out ``traffic``."""
    validate_options(target.options)
    prefix = f"/v2/models/{target.model}"
    if (not _PATH_VALUE.match(prefix) or any(bad in prefix for bad in ("//", "/./", "/../", "%2f", "%2F"))
            or prefix.endswith(("/.", "/.."))):
        raise InvalidSpec("spec.model.name", f"{target.model!r} cannot be matched by an HTTPRoute path")
    port = target.options.get("port", SERVER_PORT)
    path_match = {"type": "PathPrefix", "value": prefix}
    stable = _service_ref(target, traffic.stable_revision, port)
    candidate = None
    if traffic.candidate_revision is not None:
        candidate = _service_ref(target, traffic.candidate_revision, port)

    rules = []
    if candidate is not None:
        rules.append({
            "name": "preview",
            "matches": [{"path": dict(path_match), "headers": [
                {"type": "Exact", "name": REVISION_HEADER, "value": value}]}
                for value in (traffic.candidate_revision, PREVIEW)],
            "backendRefs": [{**candidate, "weight": 1}],
        })
    # A candidate at weight 0 keeps its backendRef: the route's shape stays the same through
    # the whole rollout, and only the numbers change from one step to the next.
    traffic_rule: dict = {
        "name": "traffic",
        "matches": [{"path": dict(path_match)}],
        "backendRefs": [{**stable, "weight": traffic.stable_weight}],
    }
    if candidate is not None:
        traffic_rule["backendRefs"].append({**candidate, "weight": traffic.candidate_weight})
        if traffic.mirror_percent > 0:
            traffic_rule["filters"] = [{"type": "RequestMirror", "requestMirror": {
                "backendRef": dict(candidate), "percent": traffic.mirror_percent}}]
    rules.append(traffic_rule)

    spec: dict = {"parentRefs": [_parent_ref(p) for p in target.options["parentRefs"]]}
    if target.options.get("hostnames"):
        spec["hostnames"] = list(target.options["hostnames"])
    spec["rules"] = rules
    return {
        "apiVersion": API_VERSION,
        "kind": "HTTPRoute",
        "metadata": {
            "name": target.options.get("httpRoute") or target.name,
            "namespace": target.namespace,
            "labels": {**MANAGED_BY_LABELS, MODEL_DEPLOYMENT_LABEL: target.name},
            "ownerReferences": [owner_reference(target)],
        },
        "spec": spec,
    }


def _service_ref(target: Target, revision: str, port: int) -> dict:
    # group and kind are the CRD's defaults, written out so that what we write equals what
    # the API server stores and reads back.
    return {"group": "", "kind": "Service", "name": revision_name(target.name, revision), "port": port}


def _parent_ref(parent: dict) -> dict:
    return {key: parent[key] for key in _PARENT_KEYS if key in parent}


def _validate_parent_refs(refs: object, path: str) -> None:
    if not isinstance(refs, list) or not refs:
        raise InvalidSpec(path, "required: a non-empty list of {name, namespace?, sectionName?, port?}, "
                                "the Gateway(s) the HTTPRoute attaches to")
    if len(refs) > _MAX_PARENTS:
        raise InvalidSpec(path, f"at most {_MAX_PARENTS} parents")
    sections: dict[tuple[str, str], list[str | None]] = {}
    for i, ref in enumerate(refs):
        where = f"{path}[{i}]"
        if not isinstance(ref, dict):
            raise InvalidSpec(where, "must be a mapping with a name")
        unknown = sorted(set(ref) - set(_PARENT_KEYS))
        if unknown:
            raise InvalidSpec(where, f"unknown key(s) {', '.join(unknown)}; known: {', '.join(_PARENT_KEYS)}")
        if "name" not in ref:
            raise InvalidSpec(f"{where}.name", "required: the name of the Gateway")
        _check_name(ref["name"], f"{where}.name", None, 253, "a non-empty string")
        if "namespace" in ref:
            _check_name(ref["namespace"], f"{where}.namespace", _DNS_LABEL, 63, "a namespace name")
        if "sectionName" in ref:
            _check_name(ref["sectionName"], f"{where}.sectionName", _DNS_SUBDOMAIN, 253,
                        "a listener name (DNS-1123 subdomain)")
        if "port" in ref:
            _check_port(ref["port"], f"{where}.port")
        sections.setdefault((ref["name"], ref.get("namespace", "")), []).append(ref.get("sectionName"))
    for (name, _), names in sections.items():
        # The CRD's rule: the same Gateway twice needs a distinct sectionName on each reference.
        if len(names) > 1 and (None in names or len(set(names)) != len(names)):
            raise InvalidSpec(path, f"Gateway {name!r} is referenced more than once: "
                                    "each reference needs its own sectionName")


def _check_name(value: object, path: str, pattern: re.Pattern | None, max_length: int, what: str) -> None:
    if (not isinstance(value, str) or not value or len(value) > max_length
            or (pattern is not None and not pattern.match(value))):
        raise InvalidSpec(path, f"{value!r} is not {what} (at most {max_length} characters)")


def _check_port(value: object, path: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise InvalidSpec(path, f"{value!r} is not a port number (1..65535)")
