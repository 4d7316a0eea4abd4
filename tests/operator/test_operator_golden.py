"""The golden-set gate: the candidate's scores on the examples stored with its model, judged
against thresholds and against stable's, before any traffic moves."""

from __future__ import annotations

import copy

import pytest
from modelrollout.operator.engine import GoldenResult
from modelrollout.operator.engine.golden import judge
from modelrollout.operator.spec import GoldenSet, InvalidSpec, parse_spec
from modelrollout.operator.status import DEGRADED
from modelrollout.serving.contract.golden import GoldenScore

from tests.support.operator_fixtures import BLUE_GREEN, SHADOW, SPEC, Rollout


def classification(candidate: float, stable: float | None, examples: int = 50) -> GoldenResult:
    def of(accuracy):
        return None if accuracy is None else GoldenScore(examples, round(accuracy * examples),
                                                          accuracy=accuracy)
    return GoldenResult("classification", of(candidate), of(stable))


def regression(candidate: float, stable: float | None) -> GoldenResult:
    def of(error):
        return None if error is None else GoldenScore(20, max_abs_error=error, mean_abs_error=error / 2)
    return GoldenResult("regression", of(candidate), of(stable))


@pytest.mark.parametrize(("gate", "result", "problem"), [
    (GoldenSet(min_accuracy=0.9, tolerance=0.05), classification(0.92, 0.95), None),
    (GoldenSet(min_accuracy=0.9), classification(0.92, 0.95), "worse than stable's"),  # tolerance 0
    (GoldenSet(min_accuracy=0.9), classification(0.86, None), "below minAccuracy 0.9"),
    (GoldenSet(tolerance=0.02), classification(0.92, 0.95), "worse than stable's 0.95"),
    (GoldenSet(tolerance=0.05), classification(0.92, 0.95), None),
    (GoldenSet(), classification(0.5, None), None),  # a first deployment: nothing to compare with
    (GoldenSet(max_abs_error=3.0), regression(2.5, 2.0), "worse than stable's 2"),
    (GoldenSet(max_abs_error=3.0, tolerance=1.0), regression(2.5, 2.0), None),
    (GoldenSet(max_abs_error=2.0, tolerance=1.0), regression(2.5, 2.0), "above maxAbsError 2"),
    (GoldenSet(), regression(float("inf"), 1.0), "worse than stable's"),  # unusable answers
])
def test_the_gate_judges_thresholds_and_stable(gate, result, problem):
    found = judge(gate, result)
    assert (found is None) == (problem is None), found
    if problem:
        assert problem in found


@pytest.mark.parametrize("doc", [SPEC, BLUE_GREEN, SHADOW], ids=["canary", "blueGreen", "shadow"])
def test_no_traffic_moves_before_the_golden_set_passes_and_a_failure_aborts(doc):
    doc = copy.deepcopy(doc)
    doc["goldenSet"] = {"minAccuracy": 0.8, "tolerance": 0.02}
    r = Rollout(doc)
    r.tick()
    r.roll_to("2.0.0")
    assert not r.status.gate_passed and "golden set being replayed" in r.status.message
    r.golden = classification(0.6, 0.9)
    r.make_candidate_ready()
    r.tick()
    assert r.status.phase == DEGRADED and r.status.reason == "GoldenSetFailed"
    assert "below minAccuracy 0.8" in r.status.message and "stable 0.9" in r.status.message
    assert all(a.candidate_weight == 0 for a in r.set_traffic()) and r.status.golden_set["candidate"] == {
        "accuracy": 0.6, "correct": 30, "failed": 0}


def test_a_passing_golden_set_opens_the_gate_and_is_told():
    doc = copy.deepcopy(SPEC)
    doc["goldenSet"] = {"minAccuracy": 0.8, "tolerance": 0.05}
    r = Rollout(doc)
    r.tick()
    r.golden = classification(0.94, 0.96)
    r.roll_to("2.0.0")
    assert r.status.gate_passed and r.status.golden_set["stable"]["accuracy"] == 0.96
    assert any("golden set: accuracy 0.94 on 50 examples, stable 0.96" in a.message for a in r.actions
               if getattr(a, "reason", "") == "CandidateReady")


def test_a_model_without_a_golden_set_fails_the_gate_saying_what_to_build():
    doc = copy.deepcopy(SPEC)
    doc["goldenSet"] = {}
    r = Rollout(doc)
    r.tick()
    r.golden = "the candidate's model has no golden.json beside model.onnx"
    r.roll_to("2.0.0")
    assert r.status.reason == "GoldenSetFailed" and "no golden.json" in r.status.message


@pytest.mark.parametrize(("golden", "field"), [
    ({"minAccuracy": 1.5}, "spec.goldenSet.minAccuracy"),
    ({"maxAbsError": -1}, "spec.goldenSet.maxAbsError"),
    ({"tolerance": "small"}, "spec.goldenSet.tolerance"),
    ({"minAcc": 0.9}, "spec.goldenSet"),
])
def test_a_bad_golden_set_gate_names_the_field(golden, field):
    with pytest.raises(InvalidSpec) as caught:
        parse_spec({**SPEC, "goldenSet": golden})
    assert caught.value.path == field
