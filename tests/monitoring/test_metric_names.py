"""The metric catalogue (serving/contract/metric_names.py) is what the three processes export:
each registers every metric of its component from it, with the catalogue's type, labels and
help, and nothing else; selector() refuses what the catalogue does not define."""

from __future__ import annotations

import pytest
from modelrollout.operator.metrics import OperatorMetrics
from modelrollout.serving.contract import metric_names as names
from modelrollout.serving.contract.routes import parse_route_table
from modelrollout.serving.gateway.answers import AnsweredBy
from modelrollout.serving.gateway.balancer import Balancer
from modelrollout.serving.gateway.metrics import AnsweredIdsCollector, GatewayMetrics
from modelrollout.serving.gateway.state import RouteState
from modelrollout.serving.server.metrics import ServerMetrics
from prometheus_client import CollectorRegistry

from tests.support.operator_fixtures import Rollout, fire, guarded, promoted


def exported(registry: CollectorRegistry) -> dict[str, tuple[str, str, set[str]]]:
    """name -> (type, help, label names seen on its samples) of every family in ``registry``."""
    families = {}
    for family in registry.collect():
        labels = {label for sample in family.samples for label in sample.labels if label != "le"}
        families[family.name] = (family.type, family.documentation, labels)
    return families


def registries() -> dict[str, CollectorRegistry]:
    server = ServerMetrics("iris", "1.0.0", "abc")
    gateway = GatewayMetrics()
    gateway.registry.register(AnsweredIdsCollector(AnsweredBy(capacity=10, ttl_seconds=60)))
    return {"server": server.registry, "gateway": gateway.registry, "operator": OperatorMetrics().registry}


def test_every_process_exports_exactly_its_components_metrics_as_the_catalogue_defines_them():
    for component, registry in registries().items():
        families = exported(registry)
        wanted = {m.name for m in names.catalogue() if m.component in (component, "every")}
        assert set(families) == wanted, component
        for name, (kind, help_text, labels) in families.items():
            definition = names.metric(name)
            assert (kind, help_text) == (definition.type, definition.help), name
            assert labels <= set(definition.labels), name


def test_the_catalogue_holds_each_name_once_with_a_known_type_and_component():
    catalogue = names.catalogue()
    assert len({m.name for m in catalogue}) == len(catalogue)
    for metric in catalogue:
        assert metric.name.startswith(names.PREFIX)
        assert metric.type in (names.COUNTER, names.GAUGE, names.HISTOGRAM)
        assert metric.component in ("server", "gateway", "operator", "every")
        assert metric.help
    # The constants existing code imports are the full names.
    assert names.SERVER_REQUESTS == "modelrollout_server_requests"
    assert names.metric(names.SERVER_REQUESTS).labels == ("model", "version", "revision", "code")


def test_selector_writes_the_series_and_refuses_what_the_catalogue_does_not_define():
    assert names.selector(names.SERVER_REQUESTS, "total", code='=~"5.."') == \
        'modelrollout_server_requests_total{code=~"5.."}'
    assert names.selector(names.SERVER_REQUEST_DURATION, "bucket", revision='="a"', le='="+Inf"') == \
        'modelrollout_server_request_duration_seconds_bucket{revision="a",le="+Inf"}'
    assert names.selector(names.ROLLOUT_STEP, namespace='="ml"') == \
        'modelrollout_rollout_step{namespace="ml"}'
    with pytest.raises(ValueError, match="no label 'pod_name'"):
        names.selector(names.SERVER_REQUESTS, "total", pod_name='="x"')
    with pytest.raises(ValueError, match="histogram"):
        names.selector(names.SERVER_REQUEST_DURATION, "total")
    with pytest.raises(ValueError, match="operator and a quoted value"):
        names.selector(names.SERVER_REQUESTS, "total", code="5..")
    with pytest.raises(KeyError, match="not a modelrollout metric"):
        names.metric("modelrollout_nothing")


def value(metrics: OperatorMetrics, name: str, **labels) -> float | None:
    return metrics.registry.get_sample_value(name, {"namespace": "ml", "name": "iris", **labels})


def test_the_operator_exports_the_current_reason_once_and_the_specs_thresholds():
    metrics, r = OperatorMetrics(), Rollout()
    before = r.status
    r.tick()
    metrics.observe("ml", "iris", before, r.status, r.spec)
    first = r.status.reason
    assert value(metrics, names.ROLLOUT_REASON, reason=first) == 1
    assert value(metrics, names.ANALYSIS_THRESHOLD, metric="error-rate", bound="max") == 0.01
    assert value(metrics, names.ANALYSIS_THRESHOLD, metric="error-rate", bound="min") is None
    before = r.status
    r.roll_to("2.0.0")
    metrics.observe("ml", "iris", before, r.status, r.spec)
    assert r.status.reason != first
    reasons = [s.labels["reason"] for f in metrics.reason.collect() for s in f.samples]
    assert reasons == [r.status.reason]
    # A metric gone from the spec takes its threshold with it; another ModelDeployment's stays.
    metrics.observe("ml", "other", before, r.status, r.spec)
    unmeasured = r.spec.with_(analysis=r.spec.analysis.with_(metrics=[]))
    metrics.observe("ml", "iris", r.status, r.status, unmeasured)
    assert value(metrics, names.ANALYSIS_THRESHOLD, metric="error-rate", bound="max") is None
    assert metrics.registry.get_sample_value(names.ANALYSIS_THRESHOLD, {
        "namespace": "ml", "name": "other", "metric": "error-rate", "bound": "max"}) == 0.01
    metrics.forget("ml", "other")
    metrics.forget("ml", "iris")
    assert [s for f in metrics.threshold.collect() for s in f.samples] == []


def test_the_gateway_exports_each_revisions_ready_endpoints_from_the_route_table():
    metrics = GatewayMetrics()
    state = RouteState(Balancer(), metrics)
    state.update(parse_route_table({"models": {"iris": {"revisions": [
        {"name": "a", "role": "stable", "weight": 100,
         "endpoints": ["127.0.0.1:9001", {"address": "127.0.0.1:9002", "ready": False}]},
        {"name": "b", "role": "candidate", "weight": 0,
         "endpoints": [{"address": "127.0.0.1:9003", "ready": False}]},
    ]}}}), "test")

    def ready(revision: str, role: str) -> float | None:
        return metrics.registry.get_sample_value(names.GATEWAY_READY_ENDPOINTS,
                                                 {"model": "iris", "revision": revision, "role": role})

    assert (ready("a", "stable"), ready("b", "candidate")) == (1, 0)
    state.update(parse_route_table({"models": {"iris": {"revisions": [
        {"name": "b", "role": "stable", "weight": 100, "endpoints": ["127.0.0.1:9003"]}]}}}), "test")
    assert (ready("a", "stable"), ready("b", "stable")) == (None, 1)


def test_the_operator_exports_the_guards_state_and_the_fallbacks_only_while_the_spec_has_them():
    metrics, r = OperatorMetrics(), promoted(Rollout(guarded()))
    metrics.observe("ml", "iris", r.status, r.status, r.spec)
    assert value(metrics, names.GUARD_STATE, state="Watching") == 1
    assert value(metrics, names.GUARD_STATE, state="Fired") == 0
    r.wait(120)
    r.tick()  # the fallback is known once the promotion is a reconcile old
    metrics.observe("ml", "iris", r.status, r.status, r.spec)
    assert value(metrics, names.FALLBACK_ACTIVE, kind="previousStable") == 0
    before = r.status
    fire(r)
    metrics.observe("ml", "iris", before, r.status, r.spec)
    assert value(metrics, names.GUARD_STATE, state="Fired") == 1
    assert value(metrics, names.FALLBACK_ACTIVE, kind="previousStable") == 1
    unguarded = r.spec.with_(guard=None, fallback=None)
    r.spec = unguarded
    r.tick()
    metrics.observe("ml", "iris", before, r.status, unguarded)
    assert value(metrics, names.GUARD_STATE, state="Fired") is None
    assert value(metrics, names.FALLBACK_ACTIVE, kind="previousStable") is None
