"""operator/spec.py: the spec parsed once at the edge, with errors that say what to fix."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st
from modelrollout.operator.spec import InvalidSpec, Spec, parse_duration, parse_spec

GOOD = {
    "model": {"uri": "https://models.example.com/iris/2.0.0/model.onnx", "sha256": "A" * 64,
              "version": "2.0.0"},
    "replicas": 3,
    "server": {"image": "ghcr.io/example/modelrollout-server:0.1.0",
               "resources": {"limits": {"cpu": "2"}},
               "env": [{"name": "MODELROLLOUT_LOG_LEVEL", "value": "INFO"}],
               "batching": {"maxBatchSize": 32, "maxQueueDelayMicroseconds": 500}},
    "trafficRouting": {"builtin": {}},
    "strategy": {"canary": {"steps": [
        {"setWeight": 10},
        {"analysis": {"metrics": ["error-rate", "latency-p99"]}},
        {"setWeight": 50},
        {"pause": {"duration": "5m"}},
        {"pause": {}},
        {"setWeight": 100},
    ]}},
    "analysis": {
        "interval": "30s",
        "prometheus": {"address": "http://prometheus.monitoring:9090"},
        "metrics": [
            {"name": "error-rate", "thresholdRange": {"max": 0.01}, "failureLimit": 1},
            {"name": "latency-p99", "thresholdRange": {"max": 0.050}},
            {"name": "orders", "query": 'sum(rate(orders_total{model="{{model}}"}[{{interval}}]))',
             "thresholdRange": {"min": 1}, "count": 3, "minSamples": 20},
        ],
    },
    "progressDeadlineSeconds": 300,
}


def test_the_design_example_parses_into_typed_values():
    spec = parse_spec(GOOD)
    assert spec.model.sha256 == "a" * 64 and spec.model.version == "2.0.0"
    assert spec.replicas == 3 and spec.server.batching.max_batch_size == 32
    assert spec.traffic_routing.kind == "builtin" and spec.strategy.kind == "canary"
    steps = spec.strategy.canary.steps
    assert [(s.kind, s.set_weight, s.pause and s.pause.duration_seconds, s.analysis and s.analysis.metrics)
            for s in steps] == [
        ("setWeight", 10, None, None),
        ("analysis", None, None, ["error-rate", "latency-p99"]),
        ("setWeight", 50, None, None),
        ("pause", None, 300.0, None),
        ("pause", None, None, None),
        ("setWeight", 100, None, None),
    ]
    orders = spec.analysis.metric("orders")
    assert (orders.threshold_range.min, orders.threshold_range.max, orders.count, orders.min_samples) == (
        1.0, None, 3, 20)
    assert spec.analysis.metric("error-rate").failure_limit == 1
    assert spec.analysis.interval_seconds == 30 and spec.progress_deadline_seconds == 300


def broken(change) -> dict:
    doc = copy.deepcopy(GOOD)
    change(doc)
    return doc


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        (lambda d: d["model"].pop("uri"), "spec.model.uri", "required"),
        (lambda d: d["model"].update(uri="s3://bucket/m.onnx"), "spec.model.uri", "must start with"),
        (lambda d: d["model"].update(sha256="abc"), "spec.model.sha256", "64 hexadecimal"),
        (lambda d: d.update(replicas=-1), "spec.replicas", "from 0"),
        (lambda d: d.update(replicas="3"), "spec.replicas", "integer"),
        (lambda d: d["server"].pop("image"), "spec.server.image", "required"),
        (lambda d: d.update(trafficRouting={"builtin": {}, "replicas": {}}), "spec.trafficRouting",
         "exactly one"),
        (lambda d: d.update(trafficRouting={"istio": {}}), "spec.trafficRouting", "unknown field"),
        (lambda d: d["strategy"]["canary"].update(steps=[]), "spec.strategy.canary.steps", "non-empty"),
        (lambda d: d["strategy"]["canary"]["steps"].append({"setWeight": 101}),
         "spec.strategy.canary.steps[6].setWeight", "0 to 100"),
        (lambda d: d["strategy"]["canary"]["steps"].append({"setWeight": 5, "pause": {}}),
         "spec.strategy.canary.steps[6]", "exactly one"),
        (lambda d: d["strategy"]["canary"]["steps"].append({"pause": {"duration": "5 minutes"}}),
         "spec.strategy.canary.steps[6].pause.duration", "not a duration"),
        (lambda d: d["strategy"]["canary"]["steps"].append({"analysis": {"metrics": ["nope"]}}),
         "spec.strategy.canary.steps[6].analysis.metrics", "'nope' is not defined"),
        (lambda d: d["analysis"]["metrics"].append({"name": "custom", "thresholdRange": {"max": 1}}),
         "spec.analysis.metrics[3].query", "not a builtin metric"),
        (lambda d: d["analysis"]["metrics"][0].update(thresholdRange={}),
         "spec.analysis.metrics[0].thresholdRange", "min, max or both"),
        (lambda d: d["analysis"]["metrics"][0].update(thresholdRange={"min": 2, "max": 1}),
         "spec.analysis.metrics[0].thresholdRange", "above max"),
        (lambda d: d["analysis"]["metrics"].append(dict(d["analysis"]["metrics"][0])),
         "spec.analysis.metrics", "unique"),
        (lambda d: d["analysis"].pop("prometheus"), "spec.analysis.prometheus.address", "required"),
    ],
)
def test_invalid_specs_name_the_field_and_what_to_fix(change, path, words):
    with pytest.raises(InvalidSpec) as info:
        parse_spec(broken(change))
    assert info.value.path == path
    assert words in info.value.problem


# --- hostile ModelDeployments: refused with the field path, before anything is done ---

STEPS = "spec.strategy.canary.steps"
QUERY = "spec.analysis.metrics[2].query"


def _query(text: str):
    return lambda d: d["analysis"]["metrics"][2].update(query=text)


def _uri(uri: str):
    return lambda d: d["model"].update(uri=uri)


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        # sizes: status, the operator's work and the API server's object size stay bounded
        (lambda d: d["strategy"]["canary"].update(steps=[{"setWeight": 1}] * 51), STEPS, "more than 50"),
        (lambda d: d["strategy"]["canary"]["steps"].append({"analysis": {"metrics": ["orders"] * 17}}),
         f"{STEPS}[6].analysis.metrics", "more than 16"),
        (lambda d: d["analysis"].update(metrics=[
            {"name": f"m{i}", "query": "up", "thresholdRange": {"min": 0}} for i in range(17)]),
         "spec.analysis.metrics", "more than 16"),
        (lambda d: d["server"].update(env=[{"name": f"E{i}", "value": ""} for i in range(101)]),
         "spec.server.env", "more than 100"),
        (lambda d: d.update(revisionHistoryLimit=10**6), "spec.revisionHistoryLimit", "from 0 to 100"),
        (_uri("https://models.example.com/" + "a" * 2040), "spec.model.uri", "more than 2048"),
        # absurd durations: a date past datetime's range would crash every reconcile
        (lambda d: d["strategy"]["canary"]["steps"].append({"pause": {"duration": "99999999999h"}}),
         f"{STEPS}[6].pause.duration", "out of range: from 0s to 30d"),
        (lambda d: d["strategy"]["canary"]["steps"].append({"pause": {"duration": "721h"}}),
         f"{STEPS}[6].pause.duration", "out of range"),
        (lambda d: d.update(progressDeadlineSeconds=10**30), "spec.progressDeadlineSeconds",
         "from 1 to 2592000"),
        (lambda d: d.update(strategy={"shadow": {"duration": "100000h"}}), "spec.strategy.shadow.duration",
         "out of range"),
        (lambda d: d.update(strategy={"blueGreen": {"autoPromotionSeconds": 10**12}}),
         "spec.strategy.blueGreen.autoPromotionSeconds", "from 0 to 2592000"),
        (lambda d: d.update(strategy={"blueGreen": {"abortScaleDownDelaySeconds": 10**12}}),
         "spec.strategy.blueGreen.abortScaleDownDelaySeconds", "from 0 to 2592000"),
        (lambda d: d["analysis"].update(interval="0s"), "spec.analysis.interval", "from 1s to 1d"),
        (lambda d: d["analysis"].update(interval="250ms"), "spec.analysis.interval", "from 1s to 1d"),
        (lambda d: d["analysis"]["metrics"][0].update(interval="48h"), "spec.analysis.metrics[0].interval",
         "from 1s to 1d"),
        # templates: only the known placeholders, written exactly; braces balanced
        (_query('sum(x{model="{{secret}}"})'), QUERY, "unknown placeholder '{{secret}}'"),
        (_query('sum(x{model="{{ model }}"})'), QUERY, "unknown placeholder '{{ model }}'"),
        (_query('sum(x{model="{{model}"})'), QUERY, "unknown placeholder"),
        (_query("sum(x{a=\"b\"}})"), QUERY, "unbalanced '}'"),
        (_query('sum(x{a="b"'), QUERY, "unbalanced '{'"),
        (_query("up" + " " * 4095), QUERY, "more than 4096"),
        # PromQL injection through the model name: it goes inside label values and URL paths
        (lambda d: d["model"].update(name='iris"} or vector(1) #'), "spec.model.name", "letters, digits"),
        (lambda d: d["model"].update(name="iris/../admin"), "spec.model.name", "letters, digits"),
        (lambda d: d["model"].update(name="iris\nup"), "spec.model.name", "letters, digits"),
        # model and Prometheus URIs at link-local or cloud-metadata addresses (SSRF)
        (_uri("http://169.254.169.254/latest/meta-data/model.onnx"), "spec.model.uri", "169.254.0.0/16"),
        (_uri("http://[fe80::1%25eth0]/m.onnx"), "spec.model.uri", "fe80::/10"),
        (_uri("http://[fd00:ec2::254]/m.onnx"), "spec.model.uri", "fd00:ec2::254"),
        (_uri("http://[::ffff:169.254.169.254]/m.onnx"), "spec.model.uri", "169.254.0.0/16"),
        (_uri("https://user:pw@100.100.100.200:443/m.onnx"), "spec.model.uri", "100.100.100.200"),
        (_uri("https://Metadata.Google.Internal./computeMetadata/v1/"), "spec.model.uri", "cloud-metadata"),
        (_uri("http://2852039166/m.onnx"), "spec.model.uri", "169.254.169.254"),  # decimal
        (_uri("http://0xa9fea9fe/m.onnx"), "spec.model.uri", "169.254.169.254"),  # hexadecimal
        (_uri("http://0251.0376.0251.0376/m.onnx"), "spec.model.uri", "169.254.169.254"),  # octal
        (_uri("http://169.254.43518/m.onnx"), "spec.model.uri", "169.254.169.254"),  # two parts
        (lambda d: d["analysis"]["prometheus"].update(address="http://169.254.169.254/"),
         "spec.analysis.prometheus.address", "Prometheus URI points at"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_hostile_specs_are_refused_with_the_field_path(change, path, words):
    with pytest.raises(InvalidSpec) as info:
        parse_spec(broken(change))
    assert info.value.path == path
    assert words in info.value.problem, info.value.problem


@pytest.mark.parametrize("doc_change", [
    _query('sum(rate(x{model="{{model}}",namespace="{{namespace}}",revision=~"{{revision}}|{{stableRevision}}"}'
           '[{{interval}}]))'),
    _uri("https://models.example.com/169.254.169.254/m.onnx"),  # only the host counts
    _uri("https://169.254.example.com/m.onnx"),  # a name: the server checks what it resolves to
    _uri("http://10.0.0.1/m.onnx"),
    lambda d: d["model"].update(name="fraud-detector_v2.1"),
    lambda d: d["strategy"]["canary"].update(steps=[{"setWeight": 1}] * 50),
    lambda d: d["strategy"]["canary"]["steps"].append({"pause": {"duration": "720h"}}),
    lambda d: d["analysis"].update(interval="24h"),
], ids=["every placeholder", "address in the path", "link-local-looking name", "private address",
        "model name", "50 steps", "720h pause", "24h interval"])
def test_what_is_at_the_bounds_is_accepted(doc_change):
    parse_spec(broken(doc_change))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), ("1m30s", 90), (45, 45)],
)
def test_durations(text, seconds):
    assert parse_duration(text, "x") == seconds


@pytest.mark.parametrize("text", ["", "5", "m", "5 m", "-1s", "1d", "5m\n", True, None])
def test_bad_durations_are_refused(text):
    with pytest.raises(InvalidSpec):
        parse_duration(text, "x")


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                               max_size=4),
                    max_leaves=20))
def test_any_document_parses_or_is_refused_with_invalid_spec(doc):
    # Anything but a Spec or an InvalidSpec (a KeyError, a TypeError) fails the test.
    try:
        result = parse_spec(doc)
    except InvalidSpec as exc:
        result = exc
    assert isinstance(result, (Spec, InvalidSpec))


def test_the_gates_example_of_docs_gates_md_is_a_valid_spec():
    """The page's example, on top of the canary example's model and server, parses to the
    gates it shows; and the page's claim that a metric needs a threshold holds."""
    import re
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[2]
    base = yaml.safe_load((root / "manifests" / "examples" / "canary-builtin.yaml").read_text())["spec"]
    example = re.findall(r"```yaml\n(.*?)```", (root / "docs" / "gates.md").read_text(), re.S)[0]
    spec = parse_spec({**base, **yaml.safe_load(example)["spec"]})
    assert (spec.golden_set.min_accuracy, spec.golden_set.tolerance) == (0.9, 0.02)
    assert [m.name for m in spec.analysis.metrics] == ["error-rate", "prediction-shift", "input-violations",
                                                         "accuracy"]
    unbounded = copy.deepcopy({**base, **yaml.safe_load(example)["spec"]})
    del unbounded["analysis"]["metrics"][1]["thresholdRange"]
    with pytest.raises(InvalidSpec, match=r"metrics\[1\].thresholdRange"):
        parse_spec(unbounded)
