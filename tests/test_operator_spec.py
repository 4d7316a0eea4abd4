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
    assert spec.routing == "builtin"
    assert [(s.kind, s.weight, s.pause_seconds, s.metrics) for s in spec.steps] == [
        ("setWeight", 10, None, ()),
        ("analysis", None, None, ("error-rate", "latency-p99")),
        ("setWeight", 50, None, ()),
        ("pause", None, 300.0, ()),
        ("pause", None, None, ()),
        ("setWeight", 100, None, ()),
    ]
    orders = spec.analysis.metric("orders")
    assert (orders.min, orders.max, orders.count, orders.min_samples) == (1.0, None, 3, 20)
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

    root = Path(__file__).resolve().parents[1]
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
