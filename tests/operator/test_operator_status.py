"""operator/status.py: conditions with Kubernetes semantics; status survives a round trip."""

from __future__ import annotations

import pytest
from modelrollout.operator.status import (
    AVAILABLE,
    PAUSED,
    Condition,
    HistoryEntry,
    Measurement,
    RolloutStatus,
    Traffic,
    set_condition,
    status_from_doc,
    status_to_doc,
)


def test_a_new_condition_is_added_with_its_transition_time():
    conditions, changed = set_condition((), Condition(AVAILABLE, "True", "StableReady"), "t1")
    assert changed and conditions[0].last_transition_time == "t1"


def test_same_condition_again_changes_nothing():
    first, _ = set_condition((), Condition(AVAILABLE, "True", "StableReady"), "t1")
    again, changed = set_condition(first, Condition(AVAILABLE, "True", "StableReady"), "t2")
    assert not changed and again == first


def test_transition_time_moves_only_when_the_status_flips():
    first, _ = set_condition((), Condition(AVAILABLE, "True", "StableReady"), "t1")
    reason_only, changed = set_condition(first, Condition(AVAILABLE, "True", "Promoted", "new"), "t2")
    assert changed and reason_only[0].last_transition_time == "t1" and reason_only[0].reason == "Promoted"
    flipped, changed = set_condition(reason_only, Condition(AVAILABLE, "False", "CandidateNotReady"), "t3")
    assert changed and flipped[0].last_transition_time == "t3" and len(flipped) == 1


def test_traffic_weights_must_add_up_to_100():
    with pytest.raises(ValueError):
        Traffic(90, 20)
    assert Traffic(90, 10).candidate == 10


def test_status_round_trips_through_the_stored_document():
    status = RolloutStatus(
        phase=PAUSED,
        message="analysis inconclusive",
        stable_revision="7c9d1e",
        candidate_revision="a41f03",
        current_step=2,
        step_started_at="2026-11-22T10:00:00Z",
        candidate_since="2026-11-22T09:58:00Z",
        traffic=Traffic(90, 10, 0),
        analysis=(Measurement("error-rate", "2026-11-22T10:00:30Z", 0.002, "Successful"),),
        consecutive_errors=1,
        history=(HistoryEntry("7c9d1e", "1.0.0", "ab" * 32, "Promoted", "2026-11-21T08:00:00Z"),),
        conditions=(Condition(AVAILABLE, "True", "StableReady", "", "t", 4),),
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
