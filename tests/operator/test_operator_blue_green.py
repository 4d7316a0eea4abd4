"""The blue-green strategy, tick by tick: preview, pre-promotion analysis, the switch in one
write, post-promotion analysis, keep-warm, and a switch back when the new model fails."""

from __future__ import annotations

import copy

import pytest
from modelrollout.operator.actions import ScaleRevision, SetTraffic
from modelrollout.operator.status import DEGRADED, HEALTHY, PAUSED, PROGRESSING

from tests.support.operator_fixtures import BLUE_GREEN, Rollout


def previewing(doc: dict = BLUE_GREEN) -> Rollout:
    """v1 active; v2's one-replica preview ready and answering: the gate has passed."""
    r = Rollout(doc)
    r.tick()
    r.new_version("2.0.0")
    r.tick()
    assert r.replicas_asked()[r.revision] == 1  # previewReplicas, beside the untouched active
    assert r.replicas_asked()[r.status.stable_revision] == 2
    r.make_candidate_ready(1)
    r.smoke = True
    r.tick()
    assert r.status.gate_passed
    return r


@pytest.fixture
def preview() -> Rollout:
    return previewing()


def measure(r: Rollout, value: float = 0.001, times: int = 1) -> None:
    for _ in range(times):
        r.wait(30)
        r.tick(value=value)


def test_preview_analysis_then_auto_promotion_then_one_switch_then_keep_warm(preview):
    r = preview
    old, new = r.status.stable_revision, r.revision
    shown = r.status.blue_green
    assert (shown.active_revision, shown.preview_revision, shown.switched_at, shown.scale_down_at) == (
        old, new, None, None)
    assert shown.stage == "Preview" and shown.stage_started_at is not None
    measure(r)  # pre-promotion analysis passes
    assert r.status.current_step == 1 and r.traffic() == (100, 0)
    r.wait(119)
    r.tick()
    assert r.status.reason == "WaitingForPromotion" and r.status.phase == PROGRESSING
    r.wait(2)
    r.tick()  # autoPromotionSeconds passed: the preview grows before the switch
    assert r.status.reason == "ScalingUp" and r.replicas_asked()[new] == 2 and r.traffic() == (100, 0)
    r.tick()
    assert r.traffic() == (100, 0)  # not every replica is ready: no switch
    r.make_candidate_ready(2)
    r.tick()
    assert r.traffic() == (0, 100) and r.status.reason == "Switched"
    assert [(a.stable_weight, a.candidate_weight) for a in r.set_traffic()] == [(0, 100)]  # one write
    assert r.replicas_asked()[old] == 2  # the old revision stays at full size
    assert r.status.blue_green.active_revision == new and r.status.blue_green.switched_at
    measure(r)  # post-promotion analysis passes
    assert r.status.stable_revision == new and r.status.history[-1].result == "Promoted"
    assert r.status.phase == PROGRESSING and r.replicas_asked()[old] == 2  # kept warm
    scale_down_at = r.status.blue_green.scale_down_at
    assert scale_down_at is not None
    r.tick()
    assert r.status.reason == "ScaleDownDelay" and r.replicas_asked()[old] == 2
    r.wait(60)
    r.tick()
    assert ScaleRevision(old, 0) in r.actions and r.status.scale_downs == ()
    r.tick()
    assert r.status.phase == HEALTHY and r.status.blue_green.scale_down_at is None


def test_weights_are_only_ever_0_or_100(preview):
    r = preview
    seen = set()
    for _ in range(8):
        measure(r)
        r.make_candidate_ready(2)
        seen |= {(a.stable_weight, a.candidate_weight) for a in r.set_traffic()}
    assert seen <= {(100, 0), (0, 100)} and (0, 100) in seen


def test_without_auto_promotion_a_person_promotes(preview):
    doc = copy.deepcopy(BLUE_GREEN)
    del doc["strategy"]["blueGreen"]["autoPromotionSeconds"]
    del doc["strategy"]["blueGreen"]["prePromotionAnalysis"]
    r = previewing(doc)
    r.tick()
    r.wait(3600)
    r.tick()
    assert r.status.phase == PAUSED and r.status.reason == "WaitingForPromotion"
    assert "kubectl modelrollout promote" in r.status.message and r.traffic() == (100, 0)
    r.make_candidate_ready(2)
    r.tick(command="promote", by="alice")  # scale up and switch, in one reconcile when ready
    assert r.traffic() == (0, 100)


def test_post_promotion_failure_switches_back_in_one_write(preview):
    r = preview
    old, new = r.status.stable_revision, r.revision
    measure(r)
    r.make_candidate_ready(2)
    r.tick(command="promote")
    assert r.traffic() == (0, 100)
    measure(r, value=0.3)
    assert r.status.phase == DEGRADED and r.status.reason == "AnalysisFailed"
    assert "post-promotion error-rate" in r.status.message
    assert r.actions[0] == SetTraffic(old, None, 100, 0)  # back, first, in one write
    assert r.status.stable_revision == old and r.traffic() == (100, 0)
    assert r.status.history[-1].result == "Aborted"
    assert r.replicas_asked()[new] == 2  # kept abortScaleDownDelaySeconds for a look
    r.wait(31)
    r.tick()
    assert ScaleRevision(new, 0) in r.actions


def test_abort_drops_the_preview_and_history_says_who(preview):
    r = preview
    r.tick(command="abort", by="bob")
    assert r.status.phase == DEGRADED and r.traffic() == (100, 0)
    entry = r.status.history[-1]
    assert (entry.result, entry.reason, entry.by) == ("Aborted", "AbortedByUser", "bob")
    assert r.replicas_asked()[r.revision] == 1  # kept at preview size a while, not grown
    r.wait(31)
    r.tick()
    assert ScaleRevision(r.revision, 0) in r.actions


def test_promote_is_recorded_with_who_asked(preview):
    r = preview
    r.make_candidate_ready(2)
    r.tick(command="promote", by="carol")  # skips the pre-promotion analysis: switch
    r.tick(command="promote-full", by="carol")  # and the post-promotion one
    entry = r.status.history[-1]
    assert (entry.result, entry.by) == ("Promoted", "carol") and r.status.stable_revision == r.revision


def test_pre_promotion_analysis_with_no_preview_traffic_is_inconclusive(preview):
    r = preview
    for _ in range(3):
        r.wait(30)
        r.tick(value=0.0, samples=0)
    assert r.status.phase == PAUSED and r.status.reason == "AnalysisInconclusive" and r.traffic() == (100, 0)


@pytest.mark.parametrize("auto", [None, 600])
def test_a_preview_waiting_to_be_promoted_is_still_analysed_and_a_failure_aborts(auto):
    doc = copy.deepcopy(BLUE_GREEN)
    doc["strategy"]["blueGreen"]["autoPromotionSeconds"] = auto
    if auto is None:
        del doc["strategy"]["blueGreen"]["autoPromotionSeconds"]
    r = previewing(doc)
    measure(r)  # the pre-promotion analysis passes
    r.tick()
    assert r.status.reason == "WaitingForPromotion"
    measure(r, times=3)  # measured again while it waits
    assert r.status.reason == "WaitingForPromotion" and r.traffic() == (100, 0)
    assert r.status.phase == (PAUSED if auto is None else PROGRESSING)
    assert len([m for m in r.status.analysis if m.metric == "error-rate"]) == 3
    measure(r, value=0.5)
    assert r.status.phase == DEGRADED and r.status.reason == "AnalysisFailed" and r.traffic() == (100, 0)
    assert "pre-promotion analysis while waiting for promotion" in r.status.message
