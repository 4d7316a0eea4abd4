"""operator/status.py: conditions with Kubernetes semantics; status survives a round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from modelrollout.operator.status import (
    AVAILABLE,
    DEGRADED,
    HEALTHY,
    PAUSED,
    PROGRESSING,
    BlueGreenStatus,
    CanaryStatus,
    Condition,
    HistoryEntry,
    Measurement,
    RolloutStatus,
    ScaleDown,
    Traffic,
    phase_of,
    rolls_back,
    set_condition,
    status_from_doc,
    status_to_doc,
)


def available(status: str, reason: str, message: str = "") -> Condition:
    return Condition(type=AVAILABLE, status=status, reason=reason, message=message)


def test_a_new_condition_is_added_with_its_transition_time():
    conditions, changed = set_condition((), available("True", "StableReady"), "t1")
    assert changed and conditions[0].last_transition_time == "t1"


def test_same_condition_again_changes_nothing():
    first, _ = set_condition((), available("True", "StableReady"), "t1")
    again, changed = set_condition(first, available("True", "StableReady"), "t2")
    assert not changed and again == first


def test_transition_time_moves_only_when_the_status_flips():
    first, _ = set_condition((), available("True", "StableReady"), "t1")
    reason_only, changed = set_condition(first, available("True", "Promoted", "new"), "t2")
    assert changed and reason_only[0].last_transition_time == "t1" and reason_only[0].reason == "Promoted"
    flipped, changed = set_condition(reason_only, available("False", "CandidateNotReady"), "t3")
    assert changed and flipped[0].last_transition_time == "t3" and len(flipped) == 1


def test_traffic_weights_must_add_up_to_100():
    with pytest.raises(ValueError):
        Traffic(stable=90, candidate=20)
    assert Traffic(stable=90, candidate=10).candidate == 10


def test_status_round_trips_through_the_stored_document():
    status = RolloutStatus(
        phase=PAUSED,
        message="analysis inconclusive",
        stable_revision="7c9d1e",
        candidate_revision="a41f03",
        current_step=2,
        canary=CanaryStatus(step=2, step_started_at="2026-11-22T10:00:00Z"),
        candidate_since="2026-11-22T09:58:00Z",
        traffic=Traffic(stable=90, candidate=10),
        analysis=(Measurement(metric="error-rate", at="2026-11-22T10:00:30Z", value=0.002,
                              phase="Successful"),),
        history=(HistoryEntry(revision="7c9d1e", model_version="1.0.0", sha256="ab" * 32, result="Promoted",
                              at="2026-11-21T08:00:00Z"),),
        conditions=(Condition(type=AVAILABLE, status="True", reason="StableReady", last_transition_time="t",
                              observed_generation=4),),
        observed_generation=4,
        revision_versions={"7c9d1e": "1.0.0", "a41f03": "2.0.0"},
    )
    doc = status_to_doc(status)
    assert doc["stableRevision"] == "7c9d1e"
    assert doc["traffic"] == {"stable": 90, "candidate": 10, "mirror": 0}
    assert doc["conditions"][0]["lastTransitionTime"] == "t"
    assert doc["revisionVersions"] == {"7c9d1e": "1.0.0", "a41f03": "2.0.0"}
    assert status_from_doc(doc) == status


def test_an_empty_status_reads_as_the_default():
    assert status_from_doc(None) == RolloutStatus() == status_from_doc({})


# --- each strategy's own record, the derived phase, a status an earlier operator wrote ---

DATA = Path(__file__).resolve().parents[1] / "data" / "argocd"  # statuses recorded from real rollouts


def test_each_strategy_writes_its_own_record_under_its_own_key_and_nulls_the_others():
    status = RolloutStatus(strategy="blueGreen", candidate_revision="b",
                           blue_green=BlueGreenStatus(stage="Switched", switched_at="t"))
    doc = status_to_doc(status)
    assert doc["blueGreen"]["stage"] == "Switched" and doc["blueGreen"]["switchedAt"] == "t"
    assert doc["canary"] is None and doc["shadow"] is None
    assert not {"stepStartedAt", "switchedAt", "comparisons", "consecutiveErrors"} & set(doc)


@pytest.mark.parametrize(("change", "phase"), [
    ({}, HEALTHY),
    ({"ready_replicas": 1}, PROGRESSING),  # stable not at its 2 replicas yet
    ({"candidate_revision": "b"}, PROGRESSING),
    ({"candidate_revision": "b", "paused": True}, PAUSED),
    ({"candidate_revision": "b", "paused_by_user": True}, PAUSED),
    ({"reason": "AnalysisFailed", "aborted_revision": "b"}, DEGRADED),
    ({"reason": "SpecInvalid"}, DEGRADED),
    ({"scale_downs": (ScaleDown(revision="old", replicas=2, at="t"),),
      "history": (HistoryEntry(revision="old", model_version="1", result="Deployed", at="t"),)}, PROGRESSING),
    ({"scale_downs": (ScaleDown(revision="b", replicas=2, at="t"),),  # an aborted candidate kept for a look
      "history": (HistoryEntry(revision="b", model_version="2", result="Aborted", at="t"),)}, HEALTHY),
])
def test_the_phase_is_derived_from_the_rest(change, phase):
    status = RolloutStatus(stable_revision="a", ready_replicas=2, phase="Healthy").with_(**change)
    assert phase_of(status, 2) == phase


def _recorded(name: str) -> dict:
    return json.loads((DATA / name).read_text())["status"]


@pytest.mark.parametrize(("name", "record", "expected"), [
    ("canary-Paused-PausedByStep.json", "canary", {"step": 3}),
    ("canary-Progressing-AnalysisRunning.json", "canary", {"step": 2}),
    ("blueGreen-Progressing-Switched.json", "blue_green", {"stage": "Switched"}),
    ("blueGreen-Progressing-ScalingUp.json", "blue_green", {"stage": "ScalingUp"}),
    ("blueGreen-Paused-WaitingForPromotion.json", "blue_green", {"stage": "AwaitingPromotion"}),
    ("shadow-Progressing-Shadowing.json", "shadow", {"stage": "Shadowing"}),
    ("shadow-Paused-WaitingForPromotion.json", "shadow", {"stage": "AwaitingPromotion"}),
])
def test_a_status_the_previous_operator_wrote_reads_into_the_records(name, record, expected):
    """Recorded before each strategy had a record of its own: a rollout under way carries on."""
    old = _recorded(name)
    status = status_from_doc(old)
    mine = getattr(status, record)
    for field, value in expected.items():
        assert getattr(mine, field) == value
    started = getattr(mine, "step_started_at", None) or getattr(mine, "stage_started_at", None)
    assert started == old["stepStartedAt"]
    assert status.paused == (old["phase"] == "Paused" and not old.get("pausedByUser"))
    if record == "blue_green" and old.get("switchedAt"):
        assert mine.switched_at == old["switchedAt"]


def test_keys_other_writers_own_are_read_and_never_written_back():
    doc = {"stableRevision": "a", "paused": False, "command": {"action": "promote", "id": "c1"},
           "route": {"model": "iris", "revisions": []}, "preview": {"service": "iris-preview"}}
    status = status_from_doc(doc)
    assert status.command.action == "promote" and status.route.model == "iris" and status.preview.service
    assert not {"command", "route", "preview", "replicaRouting"} & set(status_to_doc(status))
    bad = status_from_doc({**doc, "command": {"action": "explode", "id": "c2"}})  # not one of the commands
    assert bad.command is None and bad.stable_revision == "a"


def test_lists_that_went_through_lua_as_empty_tables_read_as_empty():
    status = status_from_doc({"stableRevision": "a", "analysis": {}, "history": {}, "scaleDowns": {},
                              "conditions": {}})
    assert status.analysis == status.history == status.scale_downs == status.conditions == ()


def test_an_abort_and_a_fast_revert_roll_back_and_nothing_else_does():
    """What makes a reconcile's API calls urgent (the client-side rate limit lets them first)."""
    rolling = RolloutStatus(stable_revision="a", candidate_revision="b")
    aborted = rolling.with_(candidate_revision=None, aborted_revision="b")
    assert rolls_back(rolling, aborted)
    assert not rolls_back(aborted, aborted)  # already aborted: nothing moves back now
    assert rolls_back(RolloutStatus(stable_revision="a"), rolling.with_(fast_revert=True))
    assert not rolls_back(rolling, rolling.with_(traffic=rolling.traffic.with_(stable=50, candidate=50)))
    assert not rolls_back(rolling, RolloutStatus(stable_revision="b"))  # a promotion
