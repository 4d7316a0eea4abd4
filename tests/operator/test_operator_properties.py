"""Properties of the rollout engine over random histories (hypothesis), for every strategy."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from modelrollout.operator.actions import RecordEvent, ScaleRevision, SetTraffic
from modelrollout.operator.engine import COMMANDS
from modelrollout.operator.status import DEGRADED, parse_time, status_from_doc, status_to_doc

from tests.support.operator_fixtures import BLUE_GREEN, SHADOW, SPEC, Rollout

# What each metric reads: error-rate and latency ratios are good low, agreement high.
GOOD = {"error-rate": 0.001, "shadow-agreement": 1.0, "shadow-latency-ratio": 1.0}
BAD = {"error-rate": 0.5, "shadow-agreement": 0.5, "shadow-latency-ratio": 3.0}
READINGS = {"good": (GOOD, 100, None), "bad": (BAD, 100, None), "idle": ({}, 2, None),
            "error": ({}, 0, "connection refused")}
STRATEGIES = {"canary": SPEC, "blueGreen": BLUE_GREEN, "shadow": SHADOW}
# A revert to one of the last two revisions skips the steps (spec.rollbackWindow).
WITH_WINDOW = {**STRATEGIES, "canary+rollbackWindow": {**SPEC, "rollbackWindow": {"revisions": 2}}}

events = st.one_of(
    st.tuples(st.just("tick"), st.sampled_from(sorted(READINGS))),
    st.tuples(st.just("wait"), st.sampled_from([1, 30, 31, 400, 700])),
    st.tuples(st.just("ready"), st.sampled_from([1, 2])),
    st.tuples(st.just("compared"), st.sampled_from([10, 600])),
    st.tuples(st.just("healthy-candidate"), st.just(None)),
    st.tuples(st.just("smoke"), st.sampled_from([True, "wrong output"])),
    st.tuples(st.just("crash"), st.booleans()),
    st.tuples(st.just("version"), st.sampled_from(["1.0.0", "2.0.0", "3.0.0"])),
    st.tuples(st.just("restart"), st.just(None)),
    st.tuples(st.just("command"), st.sampled_from(COMMANDS)),
)


def apply(r: Rollout, kind: str, arg) -> bool:
    """Change the world by one event; True when the event was a reconcile (a tick)."""
    if kind == "tick":
        values, samples, error = READINGS[arg]
        r.tick(value=0.0 if arg == "idle" else None, values=values, samples=samples, error=error)
    elif kind == "wait":
        r.wait(arg)
    elif kind == "ready":
        r.make_candidate_ready(arg)
    elif kind == "compared":
        r.comparisons += arg
    elif kind == "healthy-candidate":  # every replica ready and answering: gates pass sooner
        r.make_candidate_ready()
        r.smoke = True
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


def play(doc: dict, history, check) -> None:
    r = Rollout(doc)
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
    if "Promoted" in r.events() or "FastRevert" in [h.reason for h in r.status.history[-1:]]:
        assert before.gate_passed  # even a person cannot promote past a closed gate
    kind_of = r.spec.strategy.kind
    if kind_of == "shadow":  # the candidate never answers a client: copies only
        assert all(a.candidate_weight == 0 for a in r.set_traffic())
    if kind_of == "blueGreen":  # one switch, never a share
        assert all(a.candidate_weight in (0, 100) for a in r.set_traffic())
    # A revision kept warm is not scaled down before its time, unless it is being aborted.
    for down in before.scale_downs:
        if parse_time(down.at) > r.now and down.revision != before.candidate_revision:
            assert ScaleRevision(down.revision, 0) not in r.actions
    # A restart from any status reads back the same status.
    assert status_from_doc(status_to_doc(r.status)) == r.status


@pytest.mark.parametrize("strategy", sorted(WITH_WINDOW))
@settings(max_examples=150, deadline=None)
@given(history=st.lists(events, max_size=60))
def test_invariants_hold_over_any_history(strategy, history):
    play(WITH_WINDOW[strategy], history, invariants)


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@settings(max_examples=100, deadline=None)
@given(history=st.lists(events.filter(lambda e: e[0] != "command" and e != ("tick", "good")), max_size=60))
def test_without_passing_analysis_and_without_a_person_nothing_is_promoted(strategy, history):
    # Canary's first step is setWeight 10; blue-green and shadow never give a share at all.
    most = {"canary": 10, "blueGreen": 0, "shadow": 0}[strategy]

    def never_promoted(r: Rollout, before, kind, arg) -> None:
        invariants(r, before, kind, arg)
        if r.status.candidate_revision is not None or r.status.phase == DEGRADED:
            assert "Promoted" not in r.events()
        assert r.traffic()[1] <= most
        assert not any(h.result == "Promoted" for h in r.status.history)

    play(STRATEGIES[strategy], history, never_promoted)


@pytest.mark.parametrize("strategy", sorted(WITH_WINDOW))
@settings(max_examples=100, deadline=None)
@given(history=st.lists(events.filter(lambda e: e[0] not in ("restart", "command")), max_size=50),
       command=st.sampled_from(COMMANDS + (None,)))
def test_a_restart_at_any_point_decides_exactly_as_staying_up(strategy, history, command):
    """All a rollout knows is in its stored status: a new operator process reading it back
    decides the same traffic and the same next status as the process that wrote it."""
    stayed = Rollout(WITH_WINDOW[strategy])
    stayed.tick()
    for kind, arg in history:
        apply(stayed, kind, arg)
    restarted = copy.copy(stayed)
    restarted.status = status_from_doc(status_to_doc(stayed.status))
    stayed.tick(command=command)
    restarted.tick(command=command)
    assert restarted.actions == stayed.actions
    assert restarted.status == stayed.status
