"""Properties of the rollout engine over random histories (hypothesis)."""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st
from modelrollout.operator.actions import RecordEvent, SetTraffic
from modelrollout.operator.engine import COMMANDS
from modelrollout.operator.status import DEGRADED, status_from_doc, status_to_doc

from tests.operator_fixtures import Rollout

READINGS = {"good": (0.001, 100, None), "bad": (0.5, 100, None), "idle": (0.0, 2, None),
            "error": (None, 0, "connection refused")}

events = st.one_of(
    st.tuples(st.just("tick"), st.sampled_from(sorted(READINGS))),
    st.tuples(st.just("wait"), st.sampled_from([1, 30, 31, 400, 700])),
    st.tuples(st.just("ready"), st.just(None)),
    st.tuples(st.just("smoke"), st.sampled_from([True, "wrong output"])),
    st.tuples(st.just("crash"), st.booleans()),
    st.tuples(st.just("version"), st.sampled_from(["1.0.0", "2.0.0", "3.0.0"])),
    st.tuples(st.just("restart"), st.just(None)),
    st.tuples(st.just("command"), st.sampled_from(COMMANDS)),
)


def apply(r: Rollout, kind: str, arg) -> bool:
    """Change the world by one event; True when the event was a reconcile (a tick)."""
    if kind == "tick":
        value, samples, error = READINGS[arg]
        r.tick(value=value, samples=samples, error=error)
    elif kind == "wait":
        r.wait(arg)
    elif kind == "ready":
        r.make_candidate_ready()
    elif kind == "smoke":
        r.smoke = arg
    elif kind == "crash":
        r.crash_looping = arg
    elif kind == "version":
        r.new_version(arg)
        r.tick()
    elif kind == "restart":
        before = r.status
        r.status = status_from_doc(status_to_doc(r.status))
        assert r.status == before
    else:
        r.tick(command=arg)
    return kind in ("tick", "version", "command")


def play(history, check) -> None:
    r = Rollout()
    r.tick()
    for kind, arg in history:
        before = r.status
        if apply(r, kind, arg):
            check(r, before, kind, arg)


def invariants(r: Rollout, before, kind, arg) -> None:
    for action in r.set_traffic():
        assert action.stable_weight + action.candidate_weight == 100
        assert 0 <= action.candidate_weight <= 100
        # Traffic reaches a candidate only past the gate (ready replicas and a smoke test).
        if action.candidate_weight:
            assert r.status.gate_passed and action.candidate_revision == r.status.candidate_revision
    if r.status.phase == DEGRADED:
        assert r.traffic() == (100, 0) and r.status.candidate_revision is None
    events = [a for a in r.actions if isinstance(a, RecordEvent)]
    aborts = [e for e in events if e.type == "Warning" and e.reason != "AnalysisInconclusive"]
    if aborts:  # all traffic to stable in the first write
        assert r.actions[0] == SetTraffic(r.status.stable_revision, None, 100, 0)
    # Every transition (a new phase or reason) is told in an Event.
    if (before.phase, before.reason) != (r.status.phase, r.status.reason):
        assert events, (before.reason, r.status.reason)
    if "Promoted" in r.events():
        assert before.gate_passed or arg == "promote-full"
        assert before.gate_passed  # even a person cannot promote past a closed gate
    # A restart from any status reads back the same status.
    assert status_from_doc(status_to_doc(r.status)) == r.status


@settings(max_examples=300, deadline=None)
@given(st.lists(events, max_size=60))
def test_invariants_hold_over_any_history(history):
    play(history, invariants)


@settings(max_examples=200, deadline=None)
@given(st.lists(events.filter(lambda e: e[0] != "command" and not (e[0] == "tick" and e[1] == "good")),
                max_size=60))
def test_without_passing_analysis_and_without_a_person_nothing_is_promoted(history):
    def never_promoted(r: Rollout, before, kind, arg) -> None:
        invariants(r, before, kind, arg)
        if r.status.candidate_revision is not None or r.status.phase == DEGRADED:
            assert "Promoted" not in r.events()
        # The analysis step is never passed: the candidate never gets more than its first 10%.
        assert r.traffic()[1] <= 10
        assert not any(h.result == "Promoted" for h in r.status.history)

    play(history, never_promoted)


@settings(max_examples=200, deadline=None)
@given(st.lists(events.filter(lambda e: e[0] not in ("restart", "command")), max_size=50),
       st.sampled_from(COMMANDS + (None,)))
def test_a_restart_at_any_point_decides_exactly_as_staying_up(history, command):
    """All a rollout knows is in its stored status: a new operator process reading it back
    decides the same traffic and the same next status as the process that wrote it."""
    stayed = Rollout()
    stayed.tick()
    for kind, arg in history:
        apply(stayed, kind, arg)
    restarted = copy.copy(stayed)
    restarted.status = status_from_doc(status_to_doc(stayed.status))
    stayed.tick(command=command)
    restarted.tick(command=command)
    assert restarted.actions == stayed.actions
    assert restarted.status == stayed.status
