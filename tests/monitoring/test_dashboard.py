"""The Grafana dashboard (monitoring/dashboard.py -> charts/modelrollout/files/dashboard.json):
committed as generated, written only with metrics and labels of the catalogue, and every panel's
every query answered with series by a real Prometheus after real rollouts (a canary that is
promoted, then one aborted by its analysis; a shadow that agrees and is promoted), on which the
alert rules' expressions see the abort and nothing else."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from modelrollout.serving.contract import metric_names as names

from modelrollout.harness.cluster import LocalCluster, model_deployment
from modelrollout.harness.process import wait_for
from modelrollout.harness.traffic import Traffic, wait_serving
from tests.support.e2e import ERROR_RATE, healthy_on
from tests.support.processes import MODELROLLOUT

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "charts" / "modelrollout" / "files" / "dashboard.json"
INTERVAL = 3.0
SHADOW_METRICS = [
    {"name": "shadow-agreement", "thresholdRange": {"min": 0.99}, "minSamples": 20},
    {"name": "shadow-latency-ratio", "thresholdRange": {"max": 10}, "minSamples": 20, "failureLimit": 2},
]
# What Grafana puts in place of its variables when the test runs a query. The windows are long
# enough to hold both rollouts, whatever the machine's speed (the test bounds them to minutes).
WINDOW = "10m"


def load(name: str):
    """monitoring/<name>.py: a script beside the package, not part of it (not in the wheel)."""
    spec = importlib.util.spec_from_file_location(f"monitoring_{name}", ROOT / "monitoring" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


dashboard = load("dashboard")


def panels(doc: dict) -> list[dict]:
    return [p for p in doc["panels"] if p["type"] != "row"]


def test_the_committed_dashboard_is_what_the_generator_writes():
    assert COMMITTED.read_text() == dashboard.render(), "run: python monitoring/dashboard.py"
    result = subprocess.run([sys.executable, "-P", str(ROOT / "monitoring" / "dashboard.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_monitoring_scripts_read_the_metric_contract_and_nothing_else_of_ours():
    """monitoring/ is tooling outside the wheel (import-linter sees only the package): of
    modelrollout it may import serving.contract alone, never a process's code."""
    for script in sorted((ROOT / "monitoring").glob("*.py")):
        tree = ast.parse(script.read_text())
        nodes = list(ast.walk(tree))
        imported = {node.module for node in nodes if isinstance(node, ast.ImportFrom) and node.module}
        imported |= {a.name for node in nodes if isinstance(node, ast.Import) for a in node.names}
        ours = {m for m in imported if m.split(".")[0] in ("modelrollout", "operator", "serving", "tests")}
        assert ours and all(m.startswith("modelrollout.serving.contract") for m in ours), (script.name, ours)


def test_the_dashboard_is_grafana_json_with_unique_ids_variables_and_a_prometheus_datasource():
    doc = json.loads(COMMITTED.read_text())
    assert doc["uid"] == "modelrollout" and doc["schemaVersion"] >= 39
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    assert [v["name"] for v in doc["templating"]["list"]] == ["datasource", "namespace", "model"]
    for panel in panels(doc):
        assert panel["targets"] and panel["description"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert 0 <= panel["gridPos"]["x"] < 24 and panel["gridPos"]["w"] > 0
    titles = {p["title"] for p in panels(doc)}
    assert {"Phase", "Canary step", "Traffic weights (operator)", "Error ratio", "Latency p50 and p99",
            "Analysis values and thresholds", "Shadow agreement", "Shadow latency ratio", "Batch size",
            "Queue depth and in flight", "Model info", "Predicted class shares", "Input drift",
            "Input and output violations"} <= titles


_SERIES = re.compile(r"\b(modelrollout_[a-z0-9_]+)(\{([^}]*)\})?")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"')
_GROUPING = re.compile(r"\b(?:by|on)\s*\(([^)]*)\)")


def metric_of(series: str) -> names.Metric:
    """The catalogue's metric behind a series name (``_total`` of a counter, ``_bucket`` ...)."""
    for suffix, kinds in (("_total", (names.COUNTER,)), ("_bucket", (names.HISTOGRAM,)),
                          ("_sum", (names.HISTOGRAM,)), ("_count", (names.HISTOGRAM,)),
                          ("", (names.GAUGE,))):
        if series.endswith(suffix):
            try:
                metric = names.metric(series.removesuffix(suffix) if suffix else series)
            except KeyError:
                continue
            if metric.type in kinds:
                return metric
    raise AssertionError(f"{series} is not a series of the catalogue (serving/contract/metric_names.py)")


def check_query(expr: str, legend: str = "") -> None:
    """Every series of ``expr`` is the catalogue's, with labels it has; the labels grouped by
    and the legend's ``{{label}}`` are those of some metric of the query."""
    found = _SERIES.findall(expr)
    assert found, expr
    known = set(names.TARGET_LABELS) | {"le"}
    for series, _, matchers in found:
        metric = metric_of(series)
        labels = set(metric.labels) | set(names.TARGET_LABELS)
        if series.endswith("_bucket"):
            labels.add("le")
        assert {m[0] for m in _MATCHER.findall(matchers)} <= labels, (series, matchers)
        known |= set(metric.labels)
    for group in _GROUPING.findall(expr):
        assert {label.strip() for label in group.split(",") if label.strip()} <= known, (group, expr)
    assert set(re.findall(r"\{\{(\w+)\}\}", legend)) <= known, (legend, expr)


def test_every_metric_and_label_of_the_dashboard_is_in_the_catalogue():
    doc = json.loads(COMMITTED.read_text())
    for panel in panels(doc):
        for target in panel["targets"]:
            check_query(target["expr"], target.get("legendFormat", ""))
    for variable in doc["templating"]["list"][1:]:
        check_query(variable["query"])
    with pytest.raises(AssertionError):
        check_query('modelrollout_server_requests_total{pod_name="x"}')
    with pytest.raises(AssertionError):
        check_query("sum by (feature) (rate(modelrollout_gateway_requests_total[5m]))")


def substitute(expr: str, namespace: str, models: str) -> str:
    return (expr.replace("$__rate_interval", WINDOW).replace("$__range", WINDOW)
            .replace("$namespace", namespace).replace("$model", models))


def model_folder(folder: Path, model: Path, reference: Path) -> Path:
    """A model folder with what the model-aware signals need: a profile and output bounds."""
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(model.read_bytes())
    (folder / "metadata.json").write_text(json.dumps({"outputBounds": {"probabilities": {"max": 0.99}}}))
    subprocess.run([MODELROLLOUT, "profile", "--model", str(folder), "--data", str(reference),
                    "--out", str(folder / "profile.json")], check=True, capture_output=True, timeout=120)
    return folder


def canary(cluster: LocalCluster, name: str, model: Path, version: str) -> dict:
    """Guarded after promotion too: the guard's panels have their series."""
    steps = [{"setWeight": 50}, {"analysis": {"metrics": ["error-rate"]}}]
    doc = model_deployment(name, model, version, cluster.prometheus.url, steps, INTERVAL, [ERROR_RATE])
    doc["spec"].update(guard={"triggers": [{"metric": "error-rate", "for": "1m"}]},
                       fallback={"previousStable": {}})
    return doc


def shadow(cluster: LocalCluster, name: str, model: Path, version: str) -> dict:
    strategy = {"shadow": {"duration": "6s", "minComparisons": 40, "then": "promote",
                           "analysis": {"metrics": [m["name"] for m in SHADOW_METRICS]}}}
    return model_deployment(name, model, version, cluster.prometheus.url, [], INTERVAL, SHADOW_METRICS,
                            strategy=strategy)


def roll(cluster: LocalCluster, first: dict, then: list[tuple[dict, object]]) -> None:
    """``first`` deployed and serving, client traffic through the gateway, then each spec of
    ``then`` applied in turn until its check passes."""
    name = first["metadata"]["name"]
    cluster.apply(first)
    cluster.wait_for(name, healthy_on(first["spec"]["model"]["version"]), what="the first revision healthy")
    wait_serving(cluster.gateway.url, name)
    clients = Traffic(cluster.gateway.url, name, rate_per_second=30, max_seconds=200).start()
    try:
        for doc, done in then:
            cluster.apply(doc)
            cluster.wait_for(name, done, timeout=150, what=f"{name} to settle")
            clients.wait_results(20, since=time.monotonic())  # the settled state served a while
    finally:
        clients.stop()


@pytest.mark.slow
def test_every_panel_query_returns_series_after_real_rollouts(cluster: LocalCluster, models, tmp_path):
    reference = tmp_path / "reference.npy"
    np.save(reference, np.random.default_rng(3).normal(0, 1, (500, 4)).astype(np.float32))
    v1 = model_folder(tmp_path / "1.0.0", models["1.0.0"], reference)
    v2 = model_folder(tmp_path / "2.0.0", models["2.0.0"], reference)
    roll(cluster, canary(cluster, "dash-canary", v1, "1.0.0"), [
        (canary(cluster, "dash-canary", v2, "2.0.0"), healthy_on("2.0.0")),
        # 3.0.0 fails on half of real inputs: its analysis aborts it.
        (canary(cluster, "dash-canary", models["3.0.0"], "3.0.0"), lambda s: s.get("phase") == "Degraded"),
    ])
    roll(cluster, shadow(cluster, "dash-shadow", models["1.0.0"], "1.0.0"), [
        (shadow(cluster, "dash-shadow", models["1.0.1"], "1.0.1"), healthy_on("1.0.1")),
    ])

    doc = json.loads(COMMITTED.read_text())
    queries = {(panel["title"], target["refId"]): substitute(target["expr"], cluster.namespace,
                                                             "dash-canary|dash-shadow")
               for panel in panels(doc) for target in panel["targets"]}
    empty: dict = {}

    def all_answered() -> bool:
        empty.clear()
        empty.update({key: expr for key, expr in queries.items() if not cluster.prometheus.query(expr)})
        return not empty

    # The last scrape after the rollouts settles within a few seconds; bounded, never a fixed sleep.
    try:
        wait_for(all_answered, 60, "every panel's queries to return series", poll_seconds=2)
    except Exception as exc:  # noqa: BLE001 - report which queries came back empty
        missing = "\n".join(f"{title} {ref}: {expr}" for (title, ref), expr in empty.items())
        raise AssertionError(f"no series for:\n{missing}") from exc

    # A few answers checked for what they say, not only that they exist.
    info = cluster.prometheus.query(queries[("Model info", "A")])
    served = {s["metric"]["sha256"] for s in info if s["metric"]["model_deployment"] == "dash-canary"}
    assert hashlib.sha256(models["2.0.0"].read_bytes()).hexdigest() in served
    aborts = cluster.prometheus.query(queries[("Promotions and aborts", "B")])
    assert {(s["metric"]["name"], s["metric"]["reason"]) for s in aborts} == \
        {("dash-canary", "AnalysisFailed")}
    weights = cluster.prometheus.query(queries[("Traffic weights (operator)", "A")])
    assert {(s["metric"]["name"], s["metric"]["role"]): float(s["value"][1]) for s in weights}[
        ("dash-shadow", "stable")] == 100

    # The alert rules' expressions on the same real series (their "for" aside): the abort is seen
    # with its reason, and nothing else that should page does.
    rules = {a.name: a.expr for a in load("alerts").alerts()}
    aborted = cluster.prometheus.query(rules["ModelRolloutAborted"])
    assert {(s["metric"]["name"], s["metric"]["reason"]) for s in aborted} == \
        {("dash-canary", "AnalysisFailed")}
    for quiet in ("ModelRolloutOperatorDown", "ModelRevisionNoReadyEndpoint", "ModelLoadFailures",
                  "ModelShadowDisagreement"):
        assert cluster.prometheus.query(rules[quiet]) == [], quiet
