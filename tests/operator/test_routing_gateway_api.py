"""operator/routing/gateway_api.py: the HTTPRoute for a split, checked against the real v1.6.1 CRD.

The contract is ../shared/crds/gateway-api-v1.6.1-httproutes.yaml (version v1): each route we
produce must pass its schema and every CEL rule on the nodes we write (tests/support/crd_validation.py),
and the validator must be able to say no.
"""

from __future__ import annotations

import ast
import copy
from pathlib import Path

import pytest
import yaml
from modelrollout.operator.actions import SetTraffic
from modelrollout.operator.routing import SERVER_PORT, Target, gateway_api, owner_reference
from modelrollout.operator.routing.gateway_api import http_route, validate_options
from modelrollout.operator.spec import InvalidSpec

from tests.support.crd_validation import CrdVersion, cel_program, rules

ROOT = Path(__file__).resolve().parents[2]
# No registry package ships the Gateway API CRDs: the file sits beside the clone (CI always has it).
HTTPROUTE_FILE = ROOT.parent / "shared" / "crds" / "gateway-api-v1.6.1-httproutes.yaml"
HTTPROUTE = CrdVersion.load(HTTPROUTE_FILE, "v1") if HTTPROUTE_FILE.exists() else None
needs_httproute = pytest.mark.skipif(
    HTTPROUTE is None, reason=f"the Gateway API HTTPRoute CRD is missing: {HTTPROUTE_FILE} does not exist")
GATEWAY_EXAMPLE = yaml.safe_load((ROOT / "manifests" / "examples" / "canary-gateway-api.yaml").read_text())

OPTIONS = {"parentRefs": [{"name": "ml-gateway", "namespace": "gateways", "sectionName": "http"}]}
TARGET = Target(name="fraud", namespace="ml", model="fraud-detector", options=OPTIONS, uid="0f6c-uid")
PREFIX = "/v2/models/fraud-detector"


def _target(**options) -> Target:
    return Target(name="fraud", namespace="ml", model="fraud-detector", options={**OPTIONS, **options},
                  uid="0f6c-uid")


def _rule(route: dict, name: str) -> dict | None:
    found = [r for r in route["spec"]["rules"] if r["name"] == name]
    assert len(found) <= 1
    return found[0] if found else None


def _weights(route: dict) -> list[tuple[str, int]]:
    return [(b["name"], b["weight"]) for b in _rule(route, "traffic")["backendRefs"]]


def _assert_accepted(route: dict) -> None:
    result = HTTPROUTE.validate(route)
    assert result.errors == []
    assert result.skipped == []  # every CEL rule on a node we wrote was evaluated


# --- what the route says -----------------------------------------------------------------


@pytest.mark.parametrize(("stable", "candidate"), [(100, 0), (95, 5), (50, 50), (25, 75), (0, 100)])
def test_the_traffic_rule_weights_stable_and_candidate_services_as_decided(stable, candidate):
    route = http_route(TARGET, SetTraffic("7c9d1e", "a41f03", stable, candidate))
    assert _weights(route) == [("fraud-7c9d1e", stable), ("fraud-a41f03", candidate)]
    assert _rule(route, "traffic")["matches"] == [{"path": {"type": "PathPrefix", "value": PREFIX}}]
    for backend in _rule(route, "traffic")["backendRefs"]:
        assert (backend["group"], backend["kind"], backend["port"]) == ("", "Service", SERVER_PORT)


def test_without_a_candidate_the_route_has_one_backend_no_preview_and_no_mirror():
    route = http_route(TARGET, SetTraffic("7c9d1e", None, 100, 0, mirror_percent=50))
    assert [r["name"] for r in route["spec"]["rules"]] == ["traffic"]
    assert _weights(route) == [("fraud-7c9d1e", 100)]
    assert "filters" not in _rule(route, "traffic")


@pytest.mark.parametrize(("candidate", "mirror", "expected"), [
    ("a41f03", 0, None), ("a41f03", 1, 1), ("a41f03", 30, 30), ("a41f03", 100, 100), (None, 100, None)])
@needs_httproute
def test_a_mirror_filter_copies_to_the_candidate_only_when_there_is_one_and_mirror_is_on(
        candidate, mirror, expected):
    route = http_route(TARGET, SetTraffic("7c9d1e", candidate, 100, 0, mirror_percent=mirror))
    filters = _rule(route, "traffic").get("filters")
    if expected is None:
        assert filters is None
    else:
        assert filters == [{"type": "RequestMirror", "requestMirror": {
            "backendRef": {"group": "", "kind": "Service", "name": "fraud-a41f03", "port": SERVER_PORT},
            "percent": expected}}]
    _assert_accepted(route)


def test_shadowing_sends_no_live_traffic_but_keeps_the_candidate_backend_at_weight_0():
    route = http_route(TARGET, SetTraffic("7c9d1e", "a41f03", 100, 0, mirror_percent=100))
    assert _weights(route) == [("fraud-7c9d1e", 100), ("fraud-a41f03", 0)]
    assert _rule(route, "traffic")["filters"][0]["requestMirror"]["percent"] == 100


def test_the_preview_rule_reaches_the_candidate_by_header_at_any_weight():
    route = http_route(TARGET, SetTraffic("7c9d1e", "a41f03", 100, 0))
    preview = _rule(route, "preview")
    assert route["spec"]["rules"][0] is preview
    assert preview["matches"] == [{
        "path": {"type": "PathPrefix", "value": PREFIX},
        "headers": [{"type": "Exact", "name": "x-modelrollout-revision", "value": value}]}
        for value in ("a41f03", "preview")]  # by its name, or as whatever the preview is
    assert [(b["name"], b["weight"]) for b in preview["backendRefs"]] == [("fraud-a41f03", 1)]
    assert "filters" not in preview


def test_metadata_names_labels_and_owns_the_route():
    route = http_route(TARGET, SetTraffic("7c9d1e", None, 100, 0))
    assert (route["apiVersion"], route["kind"]) == ("gateway.networking.k8s.io/v1", "HTTPRoute")
    assert route["metadata"] == {
        "name": "fraud", "namespace": "ml",
        "labels": {"app.kubernetes.io/managed-by": "modelrollout",
                   "modelrollout.io/model-deployment": "fraud"},
        "ownerReferences": [owner_reference(TARGET)],
    }
    assert route["metadata"]["ownerReferences"][0]["uid"] == "0f6c-uid"
    assert route["metadata"]["ownerReferences"][0]["controller"] is True


def test_the_http_route_option_names_the_route():
    route = http_route(_target(httpRoute="fraud-route.v1"), SetTraffic("7c9d1e", None, 100, 0))
    assert route["metadata"]["name"] == "fraud-route.v1"
    assert route["metadata"]["labels"]["modelrollout.io/model-deployment"] == "fraud"


@needs_httproute
def test_parent_refs_hostnames_and_port_are_passed_through():
    parents = [{"name": "a", "namespace": "gw", "sectionName": "https", "port": 443}, {"name": "b"}]
    target = _target(parentRefs=parents, hostnames=["models.example.com", "*.ml.example.com"], port=9000)
    route = http_route(target, SetTraffic("7c9d1e", "a41f03", 90, 10, mirror_percent=5))
    assert route["spec"]["parentRefs"] == parents
    assert route["spec"]["hostnames"] == ["models.example.com", "*.ml.example.com"]
    rule = _rule(route, "traffic")
    ports = {b["port"] for b in rule["backendRefs"] + _rule(route, "preview")["backendRefs"]}
    assert ports | {rule["filters"][0]["requestMirror"]["backendRef"]["port"]} == {9000}
    assert "hostnames" not in http_route(TARGET, SetTraffic("7c9d1e", None, 100, 0))["spec"]
    _assert_accepted(route)


def test_the_route_is_rewritten_whole_and_only_the_numbers_move_between_steps():
    """Same rules, same backends at 10% and at 50%: a merge patch of spec replaces nothing else."""
    at_10 = http_route(TARGET, SetTraffic("7c9d1e", "a41f03", 90, 10))
    at_50 = http_route(TARGET, SetTraffic("7c9d1e", "a41f03", 50, 50))
    for route in (at_10, at_50):
        for rule in route["spec"]["rules"]:
            for backend in rule["backendRefs"]:
                backend.pop("weight")
    assert at_10 == at_50


def test_http_route_refuses_options_without_parent_refs():
    target = Target(name="fraud", namespace="ml", model="fraud-detector", options={}, uid="u")
    with pytest.raises(ValueError, match=r"spec\.trafficRouting\.gatewayAPI\.parentRefs: required"):
        http_route(target, SetTraffic("7c9d1e", None, 100, 0))


@pytest.mark.parametrize("model", ["a//b", "a b", "x#y", "../etc", "..", "a%2Fb"])
def test_a_model_name_that_no_path_match_can_carry_is_refused(model):
    target = Target(name="fraud", namespace="ml", model=model, options=OPTIONS, uid="u")
    with pytest.raises(InvalidSpec) as caught:
        http_route(target, SetTraffic("7c9d1e", None, 100, 0))
    assert caught.value.path == "spec.model.name"


@needs_httproute
def test_the_gateway_api_example_makes_a_valid_route():
    options = GATEWAY_EXAMPLE["spec"]["trafficRouting"]["gatewayAPI"]
    validate_options(options)
    target = Target(name="fraud", namespace="ml", model="fraud-detector", options=options, uid="u")
    route = http_route(target, SetTraffic("7c9d1e", "a41f03", 75, 25, mirror_percent=10))
    assert route["metadata"]["name"] == "fraud"
    assert route["spec"]["parentRefs"] == [
        {"name": "ml-gateway", "namespace": "gateways", "sectionName": "http"}]
    _assert_accepted(route)


# --- against the CRD: what we produce is accepted ----------------------------------------

VALID_CASES = {
    "stable only": (OPTIONS, SetTraffic("7c9d1e", None, 100, 0)),
    "stable only, mirror asked": (OPTIONS, SetTraffic("7c9d1e", None, 100, 0, mirror_percent=40)),
    "candidate at 0": (OPTIONS, SetTraffic("7c9d1e", "a41f03", 100, 0)),
    "canary 10": (OPTIONS, SetTraffic("7c9d1e", "a41f03", 90, 10)),
    "canary 10 mirror 20": (OPTIONS, SetTraffic("7c9d1e", "a41f03", 90, 10, mirror_percent=20)),
    "shadow": (OPTIONS, SetTraffic("7c9d1e", "a41f03", 100, 0, mirror_percent=100)),
    "promoted": (OPTIONS, SetTraffic("7c9d1e", "a41f03", 0, 100)),
    "two listeners of one gateway": ({"parentRefs": [{"name": "gw", "sectionName": "http"},
                                                     {"name": "gw", "sectionName": "https"}]},
                                     SetTraffic("7c9d1e", "a41f03", 50, 50)),
    "one gateway name in two namespaces": ({"parentRefs": [{"name": "gw", "namespace": "a"},
                                                           {"name": "gw", "namespace": "b"}]},
                                           SetTraffic("7c9d1e", "a41f03", 50, 50)),
    "all options": ({"parentRefs": [{"name": "gw", "port": 80}], "httpRoute": "r", "hostnames": ["a.b"],
                     "port": 1}, SetTraffic("7c9d1e", "a41f03", 99, 1, mirror_percent=1)),
}


@needs_httproute
@pytest.mark.parametrize("case", VALID_CASES, ids=str)
def test_the_route_passes_the_httproute_schema_and_cel_rules(case):
    options, traffic = VALID_CASES[case]
    validate_options(options)
    route = http_route(_target(**options), traffic)
    result = HTTPROUTE.validate(route)
    print(f"{case}: {len(result.evaluated)} CEL rule evaluations, {len(result.skipped)} skipped")
    assert result.errors == []
    assert result.skipped == []


def _messages(evaluated: list[tuple[str, str]]) -> set[str]:
    by_rule = {rule["rule"]: rule.get("message", "") for _, rule in rules(HTTPROUTE.schema)}
    return {by_rule[text] for _, text in evaluated}


@needs_httproute
def test_the_cel_rules_on_what_we_write_are_actually_evaluated():
    """Not vacuous: the rules about mirrors, Service ports, paths and parents ran on our route."""
    route = http_route(TARGET, SetTraffic("7c9d1e", "a41f03", 90, 10, mirror_percent=20))
    result = HTTPROUTE.validate(route)
    messages = _messages(result.evaluated)
    for expected in ["Only one of percent or fraction may be specified in HTTPRequestMirrorFilter",
                     "Must have port for Service reference",
                     "filter.requestMirror must be specified for RequestMirror filter.type",
                     "sectionName must be unique when parentRefs includes 2 or more references to the same "
                     "parent",
                     "must not contain '//' when type one of ['Exact', 'PathPrefix']",
                     "type must be one of ['Exact', 'PathPrefix', 'RegularExpression']"]:
        assert expected in messages, sorted(messages)
    assert any(m.startswith("must only contain valid characters") for m in messages)
    paths = {path for path, _ in result.evaluated}
    assert {"spec.rules[1].filters[0].requestMirror", "spec.rules[1].filters[0].requestMirror.backendRef",
            "spec.rules[1].backendRefs[1]", "spec.rules[0].matches[0].path", "spec.parentRefs"} <= paths
    print(f"{len(result.evaluated)} evaluations of {len({t for _, t in result.evaluated})} distinct rules, "
          f"{len(result.skipped)} skipped")


@needs_httproute
def test_celpy_compiles_every_rule_of_the_httproute_crd():
    """So no rule of this CRD can be skipped for want of a parser; a function celpy lacks would
    show up as skipped in the validation result, which the tests above refuse."""
    texts = {rule["rule"] for _, rule in rules(HTTPROUTE.schema)}
    assert len(texts) == 48
    for text in texts:
        cel_program(text)


# --- against the CRD: the validator can say no --------------------------------------------

def _traffic_rule(route: dict) -> dict:
    return route["spec"]["rules"][1]


def _mirror(route: dict) -> dict:
    return _traffic_rule(route)["filters"][0]["requestMirror"]


BROKEN = {
    "mirror percent 101": (lambda r: _mirror(r).update(percent=101),
                           "spec.rules[1].filters[0].requestMirror.percent: 101 is greater than the maximum"),
    "weight -1": (lambda r: _traffic_rule(r)["backendRefs"][0].update(weight=-1),
                  "spec.rules[1].backendRefs[0].weight: -1 is less than the minimum"),
    "percent and fraction": (lambda r: _mirror(r).update(fraction={"numerator": 1}),
                             "spec.rules[1].filters[0].requestMirror: Only one of percent or fraction"),
    "fraction above 1": (lambda r: _traffic_rule(r)["filters"][0].update(requestMirror={
        "backendRef": _mirror(r)["backendRef"], "fraction": {"numerator": 3, "denominator": 2}}),
        "spec.rules[1].filters[0].requestMirror.fraction: numerator must be less than or equal to"),
    "mirror filter without its body": (lambda r: _traffic_rule(r)["filters"][0].pop("requestMirror"),
                                       "spec.rules[1].filters[0]: filter.requestMirror must be specified"),
    "service without port": (lambda r: _traffic_rule(r)["backendRefs"][1].pop("port"),
                             "spec.rules[1].backendRefs[1]: Must have port for Service reference"),
    "service without port, group defaulted": (
        lambda r: [_traffic_rule(r)["backendRefs"][1].pop(k) for k in ("port", "group", "kind")],
        "spec.rules[1].backendRefs[1]: Must have port for Service reference"),
    "path with //": (lambda r: _traffic_rule(r)["matches"][0]["path"].update(value="/v2//models"),
                     "spec.rules[1].matches[0].path: must not contain '//'"),
    "same gateway twice": (lambda r: r["spec"].update(parentRefs=[{"name": "gw"}, {"name": "gw"}]),
                           "spec.parentRefs: sectionName must be unique"),
    "misspelt field": (lambda r: _traffic_rule(r).update(backendRef=[]),
                       "'backendRef' was unexpected"),
    "owner without uid": (lambda r: r["metadata"]["ownerReferences"][0].pop("uid"),
                          "metadata.ownerReferences[0].uid: required"),
    "label value too long": (lambda r: r["metadata"]["labels"].update(
        {"modelrollout.io/model-deployment": "x" * 64}),
                             "is not a valid label value"),
}


@needs_httproute
@pytest.mark.parametrize("case", BROKEN, ids=str)
def test_the_validator_rejects_a_broken_route(case):
    change, words = BROKEN[case]
    route = copy.deepcopy(http_route(TARGET, SetTraffic("7c9d1e", "a41f03", 90, 10, mirror_percent=20)))
    change(route)
    errors = HTTPROUTE.validate(route).errors
    assert any(words in e for e in errors), errors


# --- validate_options --------------------------------------------------------------------

P = "spec.trafficRouting.gatewayAPI"
BAD_OPTIONS = {
    "no parentRefs": ({}, f"{P}.parentRefs", "required"),
    "empty parentRefs": ({"parentRefs": []}, f"{P}.parentRefs", "required"),
    "parentRefs not a list": ({"parentRefs": {"name": "gw"}}, f"{P}.parentRefs", "non-empty list"),
    "parent not a mapping": ({"parentRefs": ["gw"]}, f"{P}.parentRefs[0]", "mapping"),
    "parent without name": ({"parentRefs": [{"namespace": "gw"}]}, f"{P}.parentRefs[0].name", "required"),
    "parent with empty name": ({"parentRefs": [{"name": ""}]}, f"{P}.parentRefs[0].name", "non-empty"),
    "parent with kind": ({"parentRefs": [{"name": "gw", "kind": "Service"}]}, f"{P}.parentRefs[0]",
                         "unknown key(s) kind"),
    "parent namespace": ({"parentRefs": [{"name": "gw"}, {"name": "gw2", "namespace": "Gateways"}]},
                         f"{P}.parentRefs[1].namespace", "namespace name"),
    "parent sectionName": ({"parentRefs": [{"name": "gw", "sectionName": "HTTP"}]},
                           f"{P}.parentRefs[0].sectionName", "listener name"),
    "parent port 0": ({"parentRefs": [{"name": "gw", "port": 0}]}, f"{P}.parentRefs[0].port", "1..65535"),
    "same parent twice": ({"parentRefs": [{"name": "gw"}, {"name": "gw", "sectionName": "http"}]},
                          f"{P}.parentRefs", "its own sectionName"),
    "httpRoute uppercase": ({**OPTIONS, "httpRoute": "Fraud"}, f"{P}.httpRoute", "DNS-1123 subdomain"),
    "httpRoute empty": ({**OPTIONS, "httpRoute": ""}, f"{P}.httpRoute", "DNS-1123 subdomain"),
    "httpRoute too long": ({**OPTIONS, "httpRoute": "a" * 254}, f"{P}.httpRoute", "DNS-1123 subdomain"),
    "httpRoute not a string": ({**OPTIONS, "httpRoute": 7}, f"{P}.httpRoute", "DNS-1123 subdomain"),
    "hostnames a string": ({**OPTIONS, "hostnames": "a.example.com"}, f"{P}.hostnames", "list"),
    "hostname not a string": ({**OPTIONS, "hostnames": ["a.example.com", 5]}, f"{P}.hostnames[1]",
                              "hostname"),
    "hostname with a port": ({**OPTIONS, "hostnames": ["a.example.com:80"]}, f"{P}.hostnames[0]", "hostname"),
    "port 0": ({**OPTIONS, "port": 0}, f"{P}.port", "1..65535"),
    "port 65536": ({**OPTIONS, "port": 65536}, f"{P}.port", "1..65535"),
    "port a string": ({**OPTIONS, "port": "8080"}, f"{P}.port", "1..65535"),
    "port true": ({**OPTIONS, "port": True}, f"{P}.port", "1..65535"),
    "unknown option": ({**OPTIONS, "weights": {}}, P, "unknown option(s) weights"),
}


@pytest.mark.parametrize("case", BAD_OPTIONS, ids=str)
def test_validate_options_names_the_field_that_is_wrong(case):
    options, path, words = BAD_OPTIONS[case]
    with pytest.raises(InvalidSpec) as caught:
        validate_options(options)
    assert caught.value.path == path
    assert words in caught.value.problem


def test_validate_options_prefixes_the_path_it_is_given():
    with pytest.raises(InvalidSpec) as caught:
        validate_options({"parentRefs": [{}]}, path="spec.x")
    assert caught.value.path == "spec.x.parentRefs[0].name"


@pytest.mark.parametrize("options", [
    OPTIONS,
    {"parentRefs": [{"name": "gw"}], "httpRoute": "a.b-c", "hostnames": [], "port": 65535},
    {"parentRefs": [{"name": "gw", "sectionName": "a"}, {"name": "gw", "sectionName": "b"}]},
    {"parentRefs": [{"name": "gw", "namespace": "a"}, {"name": "gw", "namespace": "b"}]},
])
@needs_httproute
def test_validate_options_accepts_what_makes_a_valid_route(options):
    validate_options(options)
    _assert_accepted(http_route(_target(**options), SetTraffic("7c9d1e", "a41f03", 90, 10, mirror_percent=5)))


def test_the_backend_is_pure_it_imports_no_client_library():
    """Until pyproject's import-linter contract lists operator.routing among the pure modules."""
    tree = ast.parse(Path(gateway_api.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    forbidden = ("kubernetes", "httpx", "kopf", "uvicorn", "starlette", "fastapi", "prometheus_client")
    assert not {name for name in imported if name.split(".")[0] in forbidden}
    assert imported <= {"__future__", "re", "modelrollout.serving.contract.routes", "actions", "spec", ""}
