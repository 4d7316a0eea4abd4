"""manifests/: the ModelDeployment CRD is the contract of operator/spec.py and operator/status.py.

The examples pass the CRD's openAPIV3Schema (checked with jsonschema) and parse_spec; bad
specs are rejected by the schema or, for what structure cannot say, by the CRD's CEL rules
(evaluated with celpy, walking the object along the schema as the API server does) and by
parse_spec alike; the CRD itself is a valid apiextensions.k8s.io/v1 object.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from modelrollout.operator import status as st
from modelrollout.operator.routing.capabilities import refuse_unsupported
from modelrollout.operator.spec import InvalidSpec, parse_duration, parse_spec

from tests.support.crd_validation import cel_program, cel_violations, to_jsonschema
from tests.support.crd_validation import rules as cel_rules

MANIFESTS = Path(__file__).resolve().parents[3] / "manifests"
CRD = yaml.safe_load((MANIFESTS / "crd" / "modeldeployments.yaml").read_text())
VERSION = CRD["spec"]["versions"][0]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]
SPEC_SCHEMA = SCHEMA["properties"]["spec"]
STATUS_SCHEMA = SCHEMA["properties"]["status"]
EXAMPLES = sorted((MANIFESTS / "examples").glob("*.yaml"))
BUILTIN = yaml.safe_load((MANIFESTS / "examples" / "canary-builtin.yaml").read_text())


VALIDATOR = jsonschema.Draft202012Validator(to_jsonschema(SCHEMA))
SPEC_VALIDATOR = jsonschema.Draft202012Validator(to_jsonschema(SPEC_SCHEMA))
STATUS_VALIDATOR = jsonschema.Draft202012Validator(to_jsonschema(STATUS_SCHEMA))


def _schema_errors(spec: dict) -> list[str]:
    """Each error as 'path: message', the path dotted like spec.model.uri."""
    return [".".join(["spec", *map(str, e.absolute_path)]) + ": " + e.message
            for e in SPEC_VALIDATOR.iter_errors(spec)]


def _changed(change) -> dict:
    spec = copy.deepcopy(BUILTIN["spec"])
    change(spec)
    return spec


# --- the examples ------------------------------------------------------------------------


def test_there_is_an_example_for_each_kind_of_traffic_routing_and_each_strategy():
    assert [p.name for p in EXAMPLES] == ["blue-green-builtin.yaml", "canary-builtin.yaml",
                                          "canary-gateway-api.yaml", "canary-replicas.yaml",
                                          "shadow-builtin.yaml"]
    specs = [parse_spec(yaml.safe_load(p.read_text())["spec"]) for p in EXAMPLES]
    assert {spec.traffic_routing.kind for spec in specs} == {"builtin", "gatewayAPI", "replicas"}
    assert {spec.strategy.kind for spec in specs} == {"canary", "blueGreen", "shadow"}
    for spec in specs:
        refuse_unsupported(spec)  # each backend can carry out its example


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_each_example_passes_the_schema_the_cel_rules_and_parse_spec(path):
    doc = yaml.safe_load(path.read_text())
    assert doc["apiVersion"] == "modelrollout.io/v1alpha1" and doc["kind"] == "ModelDeployment"
    assert doc["metadata"]["name"] and doc["metadata"]["namespace"]
    assert [e.message for e in VALIDATOR.iter_errors(doc)] == []
    assert cel_violations(SPEC_SCHEMA, doc["spec"]) == []
    parse_spec(doc["spec"])


def test_the_gateway_api_example_names_its_httproute_and_parents():
    doc = yaml.safe_load((MANIFESTS / "examples" / "canary-gateway-api.yaml").read_text())
    options = parse_spec(doc["spec"]).traffic_routing.options
    assert options["httpRoute"] == "fraud" and options["parentRefs"][0]["name"] == "ml-gateway"


# --- structure: what the schema rejects --------------------------------------------------

def _step(i, body):
    return lambda s: s["strategy"]["canary"]["steps"].__setitem__(i, body)


def _strategy(body: dict):
    return lambda s: s.update(strategy=body)


SCHEMA_INVALID = {
    "model.uri missing": (lambda s: s["model"].pop("uri"), "spec.model", "uri"),
    "model.uri scheme": (lambda s: s["model"].update(uri="s3://bucket/model.onnx"), "spec.model.uri",
                         "does not match"),
    "model.version missing": (lambda s: s["model"].pop("version"), "spec.model", "version"),
    "model.sha256 short": (lambda s: s["model"].update(sha256="abc123"), "spec.model.sha256",
                           "does not match"),
    "model.sha256 not hex": (lambda s: s["model"].update(sha256="g" * 64), "spec.model.sha256",
                             "does not match"),
    "replicas -1": (lambda s: s.update(replicas=-1), "spec.replicas", "minimum"),
    "replicas not integer": (lambda s: s.update(replicas="3"), "spec.replicas", "integer"),
    "server.image missing": (lambda s: s["server"].pop("image"), "spec.server", "image"),
    "env without name": (lambda s: s["server"].update(env=[{"value": "x"}]), "spec.server.env.0", "name"),
    "maxBatchSize -1": (lambda s: s["server"]["batching"].update(maxBatchSize=-1),
                        "spec.server.batching.maxBatchSize", "minimum"),
    "strategy missing": (lambda s: s.pop("strategy"), "spec", "strategy"),
    "steps empty": (lambda s: s["strategy"]["canary"].update(steps=[]), "spec.strategy.canary.steps",
                    "empty"),
    "setWeight 101": (_step(0, {"setWeight": 101}), "spec.strategy.canary.steps.0.setWeight", "maximum"),
    "setWeight -1": (_step(0, {"setWeight": -1}), "spec.strategy.canary.steps.0.setWeight", "minimum"),
    "pause 5 minutes": (_step(3, {"pause": {"duration": "5 minutes"}}),
                        "spec.strategy.canary.steps.3.pause.duration", "does not match"),
    "analysis step without metrics": (_step(1, {"analysis": {}}), "spec.strategy.canary.steps.1.analysis",
                                      "metrics"),
    "analysis.interval 5 minutes": (lambda s: s["analysis"].update(interval="5 minutes"),
                                    "spec.analysis.interval", "does not match"),
    "metric interval 1.5s": (lambda s: s["analysis"]["metrics"][0].update(interval="1.5s"),
                             "spec.analysis.metrics.0.interval", "does not match"),
    "prometheus address": (lambda s: s["analysis"]["prometheus"].update(address="prometheus:9090"),
                           "spec.analysis.prometheus.address", "does not match"),
    "metric count 0": (lambda s: s["analysis"]["metrics"][0].update(count=0), "spec.analysis.metrics.0.count",
                       "minimum"),
    "metric failureLimit -1": (lambda s: s["analysis"]["metrics"][0].update(failureLimit=-1),
                               "spec.analysis.metrics.0.failureLimit", "minimum"),
    "metric minSamples 0": (lambda s: s["analysis"]["metrics"][0].update(minSamples=0),
                            "spec.analysis.metrics.0.minSamples", "minimum"),
    "thresholdRange missing": (lambda s: s["analysis"]["metrics"][0].pop("thresholdRange"),
                               "spec.analysis.metrics.0", "thresholdRange"),
    "threshold not a number": (lambda s: s["analysis"]["metrics"][0].update(thresholdRange={"max": "0.1"}),
                               "spec.analysis.metrics.0.thresholdRange.max", "number"),
    "consecutiveErrorLimit 0": (lambda s: s["analysis"].update(consecutiveErrorLimit=0),
                                "spec.analysis.consecutiveErrorLimit", "minimum"),
    "progressDeadlineSeconds 0": (lambda s: s.update(progressDeadlineSeconds=0),
                                  "spec.progressDeadlineSeconds", "minimum"),
    "revisionHistoryLimit -1": (lambda s: s.update(revisionHistoryLimit=-1), "spec.revisionHistoryLimit",
                                "minimum"),
    "smokeTest without request": (lambda s: s.update(smokeTest={}), "spec.smokeTest", "request"),
    # Hostile ModelDeployments (tests/operator/test_operator_spec.py has parse_spec's side of each)
    "51 steps": (lambda s: s["strategy"]["canary"].update(steps=[{"setWeight": 1}] * 51),
                 "spec.strategy.canary.steps", "is too long"),
    "17 metrics": (lambda s: s["analysis"].update(metrics=[
        {"name": f"m{i}", "query": "up", "thresholdRange": {"min": 0}} for i in range(17)]),
        "spec.analysis.metrics", "is too long"),
    "unknown placeholder": (lambda s: s["analysis"]["metrics"][2].update(query='x{model="{{secret}}"}'),
                            "spec.analysis.metrics.2.query", "does not match"),
    "placeholder with spaces": (lambda s: s["analysis"]["metrics"][2].update(query='x{m="{{ model }}"}'),
                                "spec.analysis.metrics.2.query", "does not match"),
    "unbalanced braces": (lambda s: s["analysis"]["metrics"][2].update(query='x{m="a"}}'),
                          "spec.analysis.metrics.2.query", "does not match"),
    "query of 4097 characters": (lambda s: s["analysis"]["metrics"][2].update(query="u" * 4097),
                                 "spec.analysis.metrics.2.query", "is too long"),
    "model name breaking out of a label value": (lambda s: s["model"].update(name='iris"} or vector(1)'),
                                                 "spec.model.name", "does not match"),
    "model.uri of 2049 characters": (lambda s: s["model"].update(uri="https://m.example.com/" + "a" * 2027),
                                     "spec.model.uri", "is too long"),
    "progressDeadlineSeconds of 1e12": (lambda s: s.update(progressDeadlineSeconds=10**12),
                                        "spec.progressDeadlineSeconds", "maximum"),
    "revisionHistoryLimit 1000": (lambda s: s.update(revisionHistoryLimit=1000), "spec.revisionHistoryLimit",
                                  "maximum"),
    "autoPromotionSeconds of 1e12": (_strategy({"blueGreen": {"autoPromotionSeconds": 10**12}}),
                                     "spec.strategy.blueGreen.autoPromotionSeconds", "maximum"),
    "a 17-character pause": (_step(3, {"pause": {"duration": "9" * 16 + "h"}}),
                             "spec.strategy.canary.steps.3.pause.duration", "is too long"),
}


@pytest.mark.parametrize("case", SCHEMA_INVALID, ids=str)
def test_the_schema_rejects_a_bad_spec_naming_the_field_and_so_does_parse_spec(case):
    change, where, words = SCHEMA_INVALID[case]
    errors = _schema_errors(_changed(change))
    assert any(e.startswith(where + ":") and words in e for e in errors), errors
    with pytest.raises(InvalidSpec):
        parse_spec(_changed(change))


def _routing(body: dict, *more_metrics: dict):
    def change(spec: dict) -> None:
        spec["trafficRouting"] = body
        spec["analysis"]["metrics"] += list(more_metrics)
    return change


@pytest.mark.parametrize("text", ["30s", "5m", "1h30m", "250ms", "1m5ms", "0h", "1h2m3s4ms", "10m0s",
                                  "5 minutes", "", "m", "ms", "5ms5s", "1.5s", "5S", "10mss", "s5", "1d",
                                  "5m5m", " 5m"])
def test_the_duration_pattern_accepts_exactly_what_parse_duration_accepts(text):
    node = SPEC_SCHEMA["properties"]["analysis"]["properties"]["interval"]
    by_schema = len(text) >= node["minLength"] and re.search(node["pattern"], text) is not None
    try:
        parse_duration(text, "x")
        by_parser = True
    except InvalidSpec:
        by_parser = False
    assert by_schema == by_parser


def test_every_duration_field_uses_the_same_pattern():
    props = SPEC_SCHEMA["properties"]
    nodes = [props["analysis"]["properties"]["interval"],
             props["analysis"]["properties"]["metrics"]["items"]["properties"]["interval"],
             props["strategy"]["properties"]["canary"]["properties"]["steps"]["items"]["properties"]
             ["pause"]["properties"]["duration"]]
    assert {(n["type"], n["pattern"], n["minLength"]) for n in nodes} == {
        ("string", "^([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?$", 2)}


# --- CEL: what structure cannot say ------------------------------------------------------


CEL_INVALID = {
    "two traffic routings": (lambda s: s.update(trafficRouting={"builtin": {}, "replicas": {}}),
                             "spec.trafficRouting", "exactly one of builtin"),
    "no traffic routing": (lambda s: s.update(trafficRouting={}), "spec.trafficRouting",
                           "exactly one of builtin"),
    "no strategy": (lambda s: s.update(strategy={}), "spec.strategy", "exactly one of canary"),
    "step with two kinds": (_step(0, {"setWeight": 10, "pause": {}}), "spec.strategy.canary.steps[0]",
                            "exactly one of setWeight"),
    "empty step": (_step(0, {}), "spec.strategy.canary.steps[0]", "exactly one of setWeight"),
    "thresholdRange empty": (lambda s: s["analysis"]["metrics"][0].update(thresholdRange={}),
                             "spec.analysis.metrics[0].thresholdRange", "min, max or both"),
    "min above max": (lambda s: s["analysis"]["metrics"][0].update(thresholdRange={"min": 1, "max": 0.5}),
                      "spec.analysis.metrics[0].thresholdRange", "not be above max"),
    "custom metric without query": (lambda s: s["analysis"]["metrics"][2].pop("query"),
                                    "spec.analysis.metrics[2]", "builtin metric"),
    "step metric not defined": (_step(1, {"analysis": {"metrics": ["error-rate", "nope"]}}), "spec",
                                "must be defined in spec.analysis.metrics"),
    "step metric without analysis": (lambda s: s.pop("analysis"), "spec", "must be defined in spec.analysis"),
    "metrics without prometheus": (lambda s: s["analysis"].pop("prometheus"), "spec.analysis",
                                   "prometheus.address is required"),
    "two strategies": (_strategy({"blueGreen": {}, "shadow": {}}), "spec.strategy",
                       "exactly one of canary, blueGreen, shadow"),
    "blue-green metric not defined": (
        _strategy({"blueGreen": {"postPromotionAnalysis": {"metrics": ["nope"]}}}), "spec",
        "named in a blue-green analysis must be defined"),
    "shadow metric not defined": (_strategy({"shadow": {"analysis": {"metrics": ["nope"]}}}), "spec",
                                  "named in the shadow analysis must be defined"),
    "shadow with replicas routing": (
        lambda s: s.update(strategy={"shadow": {}}, trafficRouting={"replicas": {}}), "spec",
        "strategy.shadow needs a router that copies requests"),
    "setMirror with replicas routing": (lambda s: (_step(0, {"setMirror": {"percent": 20}})(s),
                                                   s.update(trafficRouting={"replicas": {}})),
                                        "spec", "a setMirror step needs a router that copies requests"),
    "model.uri at the metadata address": (
        lambda s: s["model"].update(uri="http://169.254.169.254/latest/m"), "spec.model.uri",
        "link-local or cloud-metadata"),
    "model.uri at an IPv6 link-local address": (lambda s: s["model"].update(uri="http://[FE80::1]/m.onnx"),
                                                "spec.model.uri", "link-local or cloud-metadata"),
    "model.uri at the GCE metadata host": (
        lambda s: s["model"].update(uri="https://x@metadata.google.internal./computeMetadata/v1/"),
        "spec.model.uri", "link-local or cloud-metadata"),
    "Prometheus at the metadata address": (
        lambda s: s["analysis"]["prometheus"].update(address="http://169.254.169.254:80"),
        "spec.analysis.prometheus.address", "link-local or cloud-metadata"),
    "a pause of 721h": (_step(3, {"pause": {"duration": "721h"}}),
                        "spec.strategy.canary.steps[3].pause.duration", "a pause lasts at most 720h"),
    "a shadow of 1000h": (_strategy({"shadow": {"duration": "1000h"}}), "spec.strategy.shadow.duration",
                          "a shadow lasts at most 720h"),
    "an analysis interval of 500ms": (lambda s: s["analysis"].update(interval="500ms"),
                                      "spec.analysis.interval", "analysis.interval must be from 1s to 24h"),
    "a metric interval of 25h": (lambda s: s["analysis"]["metrics"][0].update(interval="25h"),
                                 "spec.analysis.metrics[0].interval", "a metric's interval must be from 1s"),
    "shadow-agreement with the Gateway API": (
        _routing({"gatewayAPI": {"parentRefs": [{"name": "gw"}]}},
                 {"name": "shadow-agreement", "thresholdRange": {"min": 0.99}}),
        "spec", "shadow-agreement needs the answers compared"),
    "a guard trigger on an undefined metric": (
        lambda s: s.update(guard={"triggers": [{"metric": "nope"}]}), "spec",
        "named in a guard trigger must be defined"),
    "a guard window of 10s": (
        lambda s: s.update(guard={"window": "10s", "triggers": [{"metric": "error-rate"}]}),
        "spec.guard.window", "guard.window must be from 1m"),
    "a trigger for of 25h": (
        lambda s: s.update(guard={"triggers": [{"metric": "error-rate", "for": "25h"}]}),
        "spec.guard.triggers[0].for", "a trigger's for must be from 0s to 24h"),
    "recovery healthy for 721h": (
        lambda s: s.update(guard={"triggers": [{"metric": "error-rate"}],
                                  "recovery": {"healthyFor": "721h"}}),
        "spec.guard.recovery.healthyFor", "recovery.healthyFor must be from 0s"),
    "a fallback with both kinds": (
        lambda s: s.update(fallback={"previousStable": {},
                                     "model": {"uri": "/m/model.onnx", "version": "1"}}),
        "spec.fallback", "exactly one of previousStable, model"),
    "a fallback model at the metadata address": (
        lambda s: s.update(fallback={"model": {"uri": "http://169.254.169.254/m", "version": "1"}}),
        "spec.fallback.model.uri", "link-local or cloud-metadata"),
    "a per-request deadline of 11m": (
        lambda s: s.update(guard={"triggers": [{"metric": "error-rate"}]},
                           fallback={"previousStable": {}, "perRequest": {"deadline": "11m"}}),
        "spec.fallback.perRequest.deadline", "perRequest.deadline must be from 1ms"),
    "per-request fallback without a guard": (
        lambda s: s.update(fallback={"previousStable": {}, "perRequest": {"deadline": "250ms"}}), "spec",
        "fallback.perRequest needs spec.guard"),
}


@pytest.mark.parametrize("case", CEL_INVALID, ids=str)
def test_a_cel_rule_rejects_what_the_schema_lets_through_and_so_does_parse_spec(case):
    change, where, words = CEL_INVALID[case]
    spec = _changed(change)
    assert _schema_errors(spec) == []
    violations = cel_violations(SPEC_SCHEMA, spec)
    assert len(violations) == 1 and violations[0][0] == where and words in violations[0][1], violations
    with pytest.raises(InvalidSpec):
        refuse_unsupported(parse_spec(spec))


def test_min_equal_to_max_and_integer_bounds_pass_the_threshold_rule():
    spec = _changed(lambda s: s["analysis"]["metrics"][0].update(thresholdRange={"min": 0, "max": 0.0}))
    assert cel_violations(SPEC_SCHEMA, spec) == []
    spec = _changed(lambda s: s["analysis"]["metrics"][0].update(thresholdRange={"min": 1, "max": 2}))
    assert cel_violations(SPEC_SCHEMA, spec) == []


ENV_CASES = [
    ([{"name": "A", "value": "1"}], []),
    ([{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}], []),
    ([{"name": "A"}], ["spec.server.env[0]"]),
    ([{"name": "A", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
     ["spec.server.env[0]"]),
]


@pytest.mark.parametrize(("env", "rejected_at"), ENV_CASES)
def test_an_env_entry_has_exactly_one_of_value_and_value_from(env, rejected_at):
    """The rule and parse_spec's check are declared together (api/v1alpha1.py EnvVar)."""
    spec = _changed(lambda s: s["server"].update(env=env))
    assert _schema_errors(spec) == []
    assert [path for path, _ in cel_violations(SPEC_SCHEMA, spec)] == rejected_at
    if rejected_at:
        with pytest.raises(InvalidSpec, match="exactly one of value or valueFrom") as caught:
            parse_spec(spec)
        assert caught.value.path == rejected_at[0]
    else:
        parse_spec(spec)


def test_every_cel_rule_compiles_and_is_exercised_by_a_case():
    rules = cel_rules(SPEC_SCHEMA, "spec")
    assert len(rules) == 28
    for _, rule in rules:
        cel_program(rule["rule"])
        assert rule["message"]
    exercised = {words for _, _, words in CEL_INVALID.values()} | {"exactly one of value or valueFrom"}
    for path, rule in rules:
        assert any(words in rule["message"] for words in exercised), (path, rule)


# --- status and printer columns ----------------------------------------------------------


def test_what_status_to_doc_writes_fits_the_status_schema():
    fresh = st.status_to_doc(st.RolloutStatus())
    busy = st.status_to_doc(st.RolloutStatus(
        phase=st.PAUSED, reason=st.PAUSED_BY_STEP, stable_revision="7c9d1e", candidate_revision="a41f03",
        current_step=2, paused=True, traffic=st.Traffic(stable=90, candidate=10),
        canary=st.CanaryStatus(step=2, step_started_at="2026-01-01T00:00:00Z"),
        analysis=(st.Measurement(metric="error-rate", at="2026-01-01T00:00:00Z", phase="Error",
                                 message="no data"),),
        history=(st.HistoryEntry(revision="7c9d1e", model_version="1.0.0", result="Promoted",
                                 at="2026-01-01T00:00:00Z"),),
        conditions=(st.Condition(type=st.AVAILABLE, status="True", reason=st.STABLE_READY,
                                 observed_generation=3),),
        revision_versions={"7c9d1e": "1.0.0", "a41f03": "2.0.0"},
    ))
    busy["readyReplicas"] = 3
    busy["route"] = {"model": "iris", "revisions": [
        {"name": "7c9d1e", "role": "stable", "weight": 90, "service": "iris-7c9d1e"},
        {"name": "a41f03", "role": "candidate", "weight": 10, "service": "iris-a41f03"}]}
    for doc in (fresh, busy):
        assert [e.message for e in STATUS_VALIDATOR.iter_errors(doc)] == []
    assert set(fresh) <= set(STATUS_SCHEMA["properties"])
    assert STATUS_SCHEMA["properties"]["phase"]["enum"] == list(st.PHASES)
    assert STATUS_SCHEMA["x-kubernetes-preserve-unknown-fields"] is True
    assert STATUS_SCHEMA["properties"]["route"]["x-kubernetes-preserve-unknown-fields"] is True


def test_the_printer_columns_point_at_fields_of_the_schema():
    columns = {c["name"]: (c["type"], c["jsonPath"]) for c in VERSION["additionalPrinterColumns"]}
    assert columns == {
        "Strategy": ("string", ".status.strategy"), "Phase": ("string", ".status.phase"),
        "Fallback": ("date", ".status.fallback.since"), "Stable": ("string", ".status.stableVersion"),
        "Candidate": ("string", ".status.candidateVersion"),
        "Step": ("integer", ".status.currentStep"), "Weight": ("integer", ".status.traffic.candidate"),
        "Ready": ("integer", ".status.readyReplicas"), "Age": ("date", ".metadata.creationTimestamp"),
    }
    for _, path in columns.values():
        if path.startswith(".metadata"):
            continue
        node = SCHEMA
        for part in path.strip(".").split("."):
            node = node["properties"][part]
        assert node["type"] in ("string", "integer")


# --- the CRD as an apiextensions.k8s.io/v1 object ----------------------------------------


def test_the_crd_is_a_valid_apiextensions_v1_object():
    kubernetes_validate.validate(CRD, "1.30", strict=True)
    spec = CRD["spec"]
    assert CRD["metadata"]["name"] == "modeldeployments.modelrollout.io"
    assert (spec["group"], spec["scope"]) == ("modelrollout.io", "Namespaced")
    assert spec["names"] == {"kind": "ModelDeployment", "listKind": "ModelDeploymentList",
                             "plural": "modeldeployments", "singular": "modeldeployment",
                             "shortNames": ["mdep"]}
    assert [(v["name"], v["served"], v["storage"]) for v in spec["versions"]] == [("v1alpha1", True, True)]
    # The scale subresource's paths point at fields the schema has, of the types the API server wants.
    assert VERSION["subresources"] == {"status": {}, "scale": {
        "specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector"}}
    properties = VERSION["schema"]["openAPIV3Schema"]["properties"]
    assert properties["spec"]["properties"]["replicas"]["type"] == "integer"
    assert properties["status"]["properties"]["replicas"]["type"] == "integer"
    assert properties["status"]["properties"]["selector"]["type"] == "string"


def _nodes(schema: dict, path: str = ""):
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _nodes(schema["additionalProperties"], f"{path}.*")
    if "items" in schema:
        yield from _nodes(schema["items"], f"{path}[]")


def test_the_schema_is_structural():
    """The rules of a structural schema that jsonschema and kubernetes-validate do not check."""
    allowed = {"type", "description", "required", "properties", "items", "additionalProperties", "enum",
               "default",
               "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems", "pattern", "nullable",
               "x-kubernetes-preserve-unknown-fields", "x-kubernetes-validations", "x-kubernetes-list-type",
               "x-kubernetes-list-map-keys"}
    for path, node in _nodes(SCHEMA):
        assert node.get("type") in ("object", "array", "string", "integer", "number", "boolean"), path
        assert set(node) <= allowed, (path, set(node) - allowed)
        assert not ("properties" in node and "additionalProperties" in node), path
        if "properties" in node or "additionalProperties" in node:
            assert node["type"] == "object", path
            assert set(node.get("required", [])) <= set(node.get("properties", {})), path
        if "items" in node:
            assert node["type"] == "array", path
        if node["type"] == "array":
            assert "items" in node, path
        if node.get("x-kubernetes-list-type") == "map":
            assert set(node["x-kubernetes-list-map-keys"]) <= set(node["items"]["required"]), path
        for rule in node.get("x-kubernetes-validations", []):
            assert set(rule) == {"rule", "message"}, path
        if "default" in node:  # filled in by the API server: it passes its own schema; only spec has one
            assert path.startswith(".spec"), path
            jsonschema.validate(node["default"], to_jsonschema(node))
    assert set(SCHEMA["properties"]["metadata"]) == {"type"}  # metadata may not be constrained further
