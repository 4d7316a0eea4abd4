"""The operator's own metrics: what a reconcile's status change counts, by strategy."""

from __future__ import annotations

from modelrollout.operator.metrics import OperatorMetrics

from tests.support.operator_fixtures import BLUE_GREEN, SPEC, Rollout


def observed(r: Rollout, metrics: OperatorMetrics, **tick) -> None:
    before = r.status
    r.tick(**tick)
    metrics.observe("ml", "iris", before, r.status, r.spec, r.measured)


def value(metrics: OperatorMetrics, name: str, **labels) -> float:
    return metrics.registry.get_sample_value(name, {"namespace": "ml", "name": "iris", **labels}) or 0.0


def test_a_first_deployment_and_a_superseded_candidate_are_not_aborts():
    metrics, r = OperatorMetrics(), Rollout()
    observed(r, metrics)
    r.roll_to("2.0.0")
    r.new_version("3.0.0")
    observed(r, metrics)  # 2.0.0 superseded
    assert r.status.history[-1].result == "Superseded"
    assert metrics.registry.get_sample_value("modelrollout_rollout_aborts_total",
                                             {"namespace": "ml", "name": "iris", "strategy": "canary",
                                              "reason": "Superseded"}) is None
    assert sum(s.value for m in metrics.aborts.collect() for s in m.samples if s.name.endswith("_total")) == 0


def test_an_abort_counts_once_with_its_reason_and_a_promotion_with_the_strategy():
    metrics, r = OperatorMetrics(), Rollout(BLUE_GREEN)
    observed(r, metrics)
    r.roll_to("2.0.0")
    observed(r, metrics, command="abort")
    observed(r, metrics)
    assert value(metrics, "modelrollout_rollout_aborts_total", strategy="blueGreen",
                 reason="AbortedByUser") == 1
    r.roll_to("3.0.0")
    r.make_candidate_ready()
    observed(r, metrics, command="promote-full")
    assert value(metrics, "modelrollout_rollout_promotions_total", strategy="blueGreen") == 1
    # The old revision is kept warm a while: still Progressing.
    assert value(metrics, "modelrollout_rollout_phase", strategy="blueGreen", phase="Progressing") == 1


def test_a_changed_strategy_leaves_no_phase_series_of_the_old_one():
    metrics, r = OperatorMetrics(), Rollout(SPEC)
    observed(r, metrics)
    r.doc["strategy"] = BLUE_GREEN["strategy"]
    r.doc["analysis"] = BLUE_GREEN["analysis"]
    r.spec = Rollout(r.doc).spec
    observed(r, metrics)
    strategies = {s.labels["strategy"] for m in metrics.phase.collect() for s in m.samples}
    assert strategies == {"blueGreen"}


def test_a_changed_strategy_removes_only_that_model_deployments_old_series_and_can_change_back():
    metrics, r = OperatorMetrics(), Rollout(SPEC)
    observed(r, metrics)
    metrics.observe("ml", "other", r.status, r.status)  # another ModelDeployment, canary all along
    for kind in (BLUE_GREEN, SPEC):
        r.doc["strategy"] = kind["strategy"]
        r.doc["analysis"] = kind["analysis"]
        r.spec = Rollout(r.doc).spec
        observed(r, metrics)
    by_name = {}
    for sample in (s for m in metrics.phase.collect() for s in m.samples):
        by_name.setdefault(sample.labels["name"], set()).add(sample.labels["strategy"])
    assert by_name == {"iris": {"canary"}, "other": {"canary"}}
    metrics.forget("ml", "iris")
    assert {s.labels["name"] for m in metrics.phase.collect() for s in m.samples} == {"other"}


def test_the_measurement_that_ends_a_step_is_counted_and_shown():
    """Its step moves on in the same reconcile, and the status keeps no measurement of it."""
    metrics, r = OperatorMetrics(), Rollout()
    observed(r, metrics)
    r.roll_to("2.0.0")
    observed(r, metrics)  # setWeight 10; the analysis step next
    for _ in range(2):  # count 2
        r.wait(30)
        observed(r, metrics, value=0.004)
    assert r.status.current_step == 2 and r.status.analysis == ()
    assert value(metrics, "modelrollout_analysis_measurements_total", metric="error-rate",
                 phase="Successful") == 2
    assert value(metrics, "modelrollout_analysis_value", metric="error-rate") == 0.004
