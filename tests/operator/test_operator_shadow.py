"""The shadow strategy, tick by tick: mirrored copies only, a duration and a number of
comparisons, analysis the whole time, then one switch (or a person's promote)."""

from __future__ import annotations

import copy

import pytest
from modelrollout.operator.actions import ScaleRevision, SetTraffic
from modelrollout.operator.status import DEGRADED, PAUSED, PROGRESSING

from tests.support.operator_fixtures import SHADOW, Rollout

GOOD = {"shadow-agreement": 1.0, "shadow-latency-ratio": 1.1}


def shadowing(doc: dict = SHADOW) -> Rollout:
    r = Rollout(doc)
    r.tick()
    r.roll_to("2.0.0")
    r.tick()  # the mirror starts
    return r


def test_the_candidate_answers_copies_only_until_duration_and_comparisons_are_met():
    r = shadowing()
    old, new = r.status.stable_revision, r.revision
    assert r.set_traffic() == [SetTraffic(old, new, 100, 0, 100)] and r.events() == ["Shadowing"]
    for _ in range(19):  # 9.5 of the 10 minutes
        r.comparisons += 40
        r.wait(30)
        r.tick(values=GOOD)
        assert r.status.phase == PROGRESSING and r.status.reason == "Shadowing"
        assert all(a.candidate_weight == 0 for a in r.set_traffic())
    assert (r.status.shadow.mirror_percent, r.status.shadow.comparisons, r.status.shadow.agreement) == (
        100, 760, 1.0)
    r.comparisons = 450
    r.wait(60)  # the duration is over but 450 < minComparisons 500
    r.tick(values=GOOD)
    assert r.status.reason == "Shadowing" and "450 of 500 comparisons" in r.status.message
    r.comparisons = 510
    r.wait(30)
    r.tick(values=GOOD)
    assert r.status.stable_revision == new and r.status.history[-1].result == "Promoted"
    assert r.set_traffic() == [SetTraffic(new, None, 100, 0)]  # every client switched in one write
    assert r.replicas_asked()[old] == 2  # kept warm, as blue-green


def test_a_disagreeing_shadow_is_aborted_and_never_answered_a_client():
    r = shadowing()
    r.comparisons += 100
    r.wait(30)
    r.tick(values={**GOOD, "shadow-agreement": 0.7})  # failureLimit 0: the first failure aborts
    assert all(a.candidate_weight == 0 for a in r.set_traffic())
    assert r.status.phase == DEGRADED and r.status.reason == "AnalysisFailed"
    assert "shadow-agreement" in r.status.message and "0.7 outside [0.99, +inf]" in r.status.message
    assert r.actions[0] == SetTraffic(r.status.stable_revision, None, 100, 0, 0)  # mirror off, first
    assert ScaleRevision(r.revision, 0) in r.actions


def test_then_manual_waits_for_a_person_with_the_mirror_still_on():
    doc = copy.deepcopy(SHADOW)
    doc["strategy"]["shadow"].update(then="manual", duration="1m", minComparisons=0)
    r = shadowing(doc)
    for _ in range(3):
        r.wait(30)
        r.tick(values=GOOD)
    assert r.status.phase == PAUSED and r.status.reason == "WaitingForPromotion"
    assert r.set_traffic()[-1].mirror_percent == 100 and r.traffic() == (100, 0)
    r.tick(command="promote", by="dana")
    assert r.status.stable_revision == r.revision and r.status.history[-1].by == "dana"


def test_no_mirrored_traffic_is_inconclusive_never_a_pass():
    r = shadowing()
    for _ in range(25):
        r.wait(30)
        r.tick(value=None, samples=0)
    assert r.status.phase == PAUSED and r.status.reason == "AnalysisInconclusive"
    assert r.status.candidate_revision is not None and r.traffic() == (100, 0)


@pytest.mark.parametrize("percent", [10, 100])
def test_the_mirror_percent_is_what_the_spec_says(percent):
    doc = copy.deepcopy(SHADOW)
    doc["strategy"]["shadow"]["mirrorPercent"] = percent
    r = shadowing(doc)
    assert r.set_traffic()[-1].mirror_percent == percent and r.status.traffic.mirror == percent


def test_a_shadow_waiting_for_a_person_is_still_analysed_and_counted_and_a_failure_aborts():
    doc = copy.deepcopy(SHADOW)
    doc["strategy"]["shadow"].update(then="manual", duration="1m", minComparisons=40)
    r = shadowing(doc)
    for _ in range(3):
        r.comparisons += 20
        r.wait(30)
        r.tick(values=GOOD)
    assert r.status.phase == PAUSED and r.status.reason == "WaitingForPromotion"
    waiting_since = r.status.shadow.stage_started_at
    for _ in range(3):  # the gateway goes on comparing while a person makes up their mind
        r.comparisons += 20
        r.wait(30)
        r.tick(values=GOOD)
        assert r.status.reason == "WaitingForPromotion"
    assert r.status.shadow.comparisons == r.comparisons == 120
    assert [m.metric for m in r.status.analysis][-2:] == ["shadow-agreement", "shadow-latency-ratio"]
    assert r.status.shadow.stage_started_at == waiting_since
    r.wait(30)
    r.tick(values={**GOOD, "shadow-agreement": 0.7})  # it starts disagreeing: never promoted now
    assert r.status.phase == DEGRADED and r.status.reason == "AnalysisFailed"
    assert "while waiting for promotion" in r.status.message and r.traffic() == (100, 0)
    assert r.set_traffic()[0].mirror_percent == 0  # the abort's one write stops the mirror
