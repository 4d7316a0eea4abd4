"""The chart's autoscalers of ModelDeployments (templates/autoscaling.yaml), rendered by the real
Helm engine: an HPA v2 valid for Kubernetes, a KEDA ScaledObject valid for KEDA's schema
(cloudcoil's models), both aimed at the ModelDeployment's scale subresource; their queries
and the Prometheus Adapter rules accepted by the real promtool and written only with
metrics and labels of the catalogue."""

from __future__ import annotations

import json

import kubernetes_validate
import pydantic
import pytest
import yaml
from cloudcoil.models.keda import v1alpha1 as keda_v1alpha1
from modelrollout.operator.api.crd import SCALE, document
from modelrollout.serving.contract import metric_names as names

from tests.monitoring.test_dashboard import check_query
from tests.support.chart import Install, find, lint, render
from tests.support.promtool import promtool

EXAMPLE = Install(values_files=("charts/examples/autoscaling.yaml",))
CRD = document()


def validate_keda(obj: dict) -> None:
    """KEDA's schema as cloudcoil's generated models hold it; a field lost on the way through
    them is one the schema does not have."""
    model = keda_v1alpha1.ScaledObject.model_validate(obj)
    assert model.model_dump(by_alias=True, exclude_none=True, mode="json") == obj


def _targets_the_scale_subresource(ref: dict) -> None:
    spec = CRD["spec"]
    assert ref["apiVersion"] == f"{spec['group']}/{spec['versions'][0]['name']}"
    assert ref["kind"] == spec["names"]["kind"]
    assert spec["versions"][0]["subresources"]["scale"] == SCALE


def test_the_example_lints_strict():
    report = lint(EXAMPLE)
    assert report["errors"] == [] and [m for m in report["messages"] if m["severity"] >= 2] == []


def test_an_hpa_on_cpu_scales_the_model_deployment():
    hpa = find(render(EXAMPLE), "HorizontalPodAutoscaler", "iris", "ml")
    kubernetes_validate.validate(hpa, "1.30", strict=True)
    _targets_the_scale_subresource(hpa["spec"]["scaleTargetRef"])
    assert hpa["spec"]["scaleTargetRef"]["name"] == "iris"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    (cpu,) = hpa["spec"]["metrics"]
    assert cpu["resource"] == {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}


def test_a_keda_scaled_object_sums_the_in_flight_requests_of_the_model_deployments_pods():
    scaled = find(render(EXAMPLE), "ScaledObject", "fraud", "ml")
    validate_keda(scaled)
    _targets_the_scale_subresource(scaled["spec"]["scaleTargetRef"])
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (1, 20)
    (trigger,) = scaled["spec"]["triggers"]
    query = trigger["metadata"]["query"]
    assert query == f'sum({names.SERVER_INFLIGHT}{{namespace="ml",model_deployment="fraud"}})'
    check_query(query)
    assert trigger["metadata"]["threshold"] == "4"


def test_the_keda_check_catches_an_unknown_field_and_a_wrong_type():
    scaled = find(render(EXAMPLE), "ScaledObject", "fraud", "ml")
    misspelt = json.loads(json.dumps(scaled))
    misspelt["spec"]["maxReplicaCounts"] = 3
    with pytest.raises(AssertionError):
        validate_keda(misspelt)
    wrong = json.loads(json.dumps(scaled))
    wrong["spec"]["minReplicaCount"] = "one"
    with pytest.raises(pydantic.ValidationError):
        validate_keda(wrong)


def test_the_queue_depth_signal_and_the_release_namespace_by_default():
    target = {"name": "m", "minReplicas": 1, "maxReplicas": 3,
              "keda": {"signal": "queueDepth", "threshold": 2.5, "serverAddress": "http://prometheus:9090"}}
    install = Install(namespace="serving", set_json=(f"modelAutoscaling={json.dumps([target])}",))
    scaled = find(render(install), "ScaledObject", "m", "serving")
    (trigger,) = scaled["spec"]["triggers"]
    wanted = f'sum({names.SERVER_QUEUE_DEPTH}{{namespace="serving",model_deployment="m"}})'
    assert trigger["metadata"]["query"] == wanted
    assert trigger["metadata"]["threshold"] == "2.5"


def _adapter_queries(rules: list[dict]) -> list[str]:
    """Each rule's metricsQuery as the adapter runs it for one pod of namespace ml."""
    return [" ".join(rule["metricsQuery"].split())
            .replace("<<.Series>>", rule["seriesQuery"].split("{")[0])
            .replace("<<.LabelMatchers>>", 'namespace="ml",pod="iris-abc"')
            .replace("<<.GroupBy>>", "pod") for rule in rules]


def test_the_prometheus_adapter_rules_expose_in_flight_queue_depth_and_queue_wait(tmp_path):
    config = find(render(EXAMPLE), "ConfigMap", "modelrollout-prometheus-adapter-rules")
    kubernetes_validate.validate(config, "1.30", strict=True)
    rules = yaml.safe_load(config["data"]["config.yaml"])["rules"]
    series = [rule["seriesQuery"].split("{")[0] for rule in rules]
    assert series == [names.SERVER_INFLIGHT, names.SERVER_QUEUE_DEPTH, f"{names.SERVER_STAGE_DURATION}_sum"]
    assert rules[2]["name"]["as"] == "modelrollout_server_queue_wait_seconds"
    for rule in rules:
        check_query(rule["seriesQuery"])
        assert rule["resources"]["overrides"] == {"namespace": {"resource": "namespace"},
                                                  "pod": {"resource": "pod"}}
    queries = _adapter_queries(rules)
    for query in queries:
        check_query(query)
    # Each query, as the adapter fills it in, is PromQL the real promtool accepts.
    recorded = {"groups": [{"name": "adapter", "rules": [
        {"record": f"adapter:query{i}", "expr": query} for i, query in enumerate(queries)]}]}
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(recorded))
    checked = promtool("check", "rules", str(tmp_path / "rules.yaml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    broken = {"groups": [{"name": "adapter", "rules": [{"record": "adapter:x", "expr": queries[2] + ")"}]}]}
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken))
    assert promtool("check", "rules", str(tmp_path / "broken.yaml")).returncode != 0


def test_nothing_is_rendered_by_default():
    kinds = {o["kind"] for o in render()}
    assert not kinds & {"HorizontalPodAutoscaler", "ScaledObject"}
    assert all(o["metadata"]["name"] != "modelrollout-prometheus-adapter-rules" for o in render())


@pytest.mark.parametrize(("target", "where"), [
    ({"name": "m", "minReplicas": 1, "maxReplicas": 3}, "/modelAutoscaling/0"),  # neither hpa nor keda
    ({"name": "m", "minReplicas": 1, "maxReplicas": 3, "hpa": {"cpuUtilization": 70},  # both
      "keda": {"signal": "inflight", "threshold": 1, "serverAddress": "http://p:9090"}},
     "/modelAutoscaling/0"),
    ({"name": "m", "minReplicas": 0, "maxReplicas": 3, "hpa": {"cpuUtilization": 70}},
     "/modelAutoscaling/0/minReplicas"),
    ({"name": "m", "minReplicas": 1, "maxReplicas": 3, "keda": {"signal": "cpu", "threshold": 1,
                                                                  "serverAddress": "http://p:9090"}},
     "/modelAutoscaling/0/keda/signal"),
    ({"name": "M_1", "minReplicas": 1, "maxReplicas": 3, "hpa": {"cpuUtilization": 70}},
     "/modelAutoscaling/0/name"),
])
def test_the_schema_refuses_a_target_it_cannot_render(target, where):
    report = lint(Install(set_json=(f"modelAutoscaling={json.dumps([target])}",)))
    assert any(where in error for error in report["errors"]), report["errors"]
