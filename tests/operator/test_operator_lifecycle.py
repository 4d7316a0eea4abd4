"""What every strategy shares: history of every rollout, retry, revert and fast revert."""

from __future__ import annotations

import copy

import pytest
from modelrollout.operator.actions import EnsureRevision, ScaleRevision, SetTraffic
from modelrollout.operator.status import DEGRADED, HEALTHY

from tests.support.operator_fixtures import BLUE_GREEN, SHADOW, SPEC, Rollout

STRATEGIES = {"canary": SPEC, "blueGreen": BLUE_GREEN, "shadow": SHADOW}


def promoted(r: Rollout, version: str) -> Rollout:
    r.roll_to(version)
    r.make_candidate_ready()
    r.tick(command="promote-full")
    assert r.status.stable_revision == r.revision, r.status.message
    r.wait(120)  # past any keep-warm window
    r.tick()
    return r


def test_a_candidate_superseded_by_a_newer_spec_stays_in_history():
    r = Rollout()
    r.tick()
    r.roll_to("2.0.0")
    superseded = r.revision
    r.new_version("3.0.0")
    r.tick()
    entry = r.status.history[-1]
    assert (entry.revision, entry.model_version, entry.result) == (superseded, "2.0.0", "Superseded")
    assert entry.started_at is not None and "superseded by" in entry.reason
    assert r.events()[0] == "Superseded"


def test_a_candidate_called_off_by_a_spec_back_to_stable_stays_in_history():
    r = Rollout()
    r.tick()
    r.roll_to("2.0.0")
    called_off = r.revision
    r.new_version("1.0.0")
    r.tick()
    assert r.status.phase == HEALTHY and r.status.history[-1].revision == called_off
    assert r.status.history[-1].result == "Superseded"


@pytest.mark.parametrize("kind", sorted(STRATEGIES))
def test_retry_after_an_abort_asks_for_the_candidate_at_full_size_again(kind):
    r = Rollout(STRATEGIES[kind])
    r.tick()
    r.roll_to("2.0.0")
    r.tick(command="abort")
    assert r.status.phase == DEGRADED
    r.wait(60)
    r.tick()
    assert ScaleRevision(r.revision, 0) in r.actions
    r.candidate_ready = 0  # scaled down
    r.tick(command="retry")
    assert r.status.candidate_revision == r.revision and r.status.history[-1].result == "Aborted"
    assert r.replicas_asked()[r.revision] >= 1  # the apply layer brings the Deployment back
    r.make_candidate_ready()
    r.tick()
    assert r.status.gate_passed


@pytest.mark.parametrize("kind", sorted(STRATEGIES))
def test_a_revert_without_rollback_window_goes_through_the_steps_again(kind):
    r = promoted(Rollout(STRATEGIES[kind]).tick(), "2.0.0")
    r.new_version("1.0.0")
    r.tick()
    assert r.status.candidate_revision == r.revision and not r.status.fast_revert
    assert r.replicas_asked()[r.revision] >= 1  # scaled down for history, wanted again
    r.make_candidate_ready()
    r.smoke = True
    r.tick()
    r.tick()
    assert r.status.candidate_revision == r.revision  # steps, not promoted at once


@pytest.mark.parametrize("kind", sorted(STRATEGIES))
def test_a_revert_within_the_rollback_window_goes_to_100_percent_in_one_write_after_the_gate(kind):
    doc = copy.deepcopy(STRATEGIES[kind])
    doc["rollbackWindow"] = {"revisions": 1}
    r = promoted(Rollout(doc).tick(), "2.0.0")
    v2 = r.status.stable_revision
    r.new_version("1.0.0")
    r.tick()
    assert r.status.fast_revert and "rollbackWindow" in r.status.message and r.events() == ["FastRevert"]
    assert r.replicas_asked()[r.revision] == 2  # full size for the gate: it goes straight to 100%
    r.tick()
    assert r.status.candidate_revision == r.revision and r.traffic() == (100, 0)  # gate still closed
    r.make_candidate_ready()
    r.smoke = True
    r.tick()  # gate
    r.tick()
    assert r.status.stable_revision == r.revision
    assert r.set_traffic()[0] == SetTraffic(r.revision, None, 100, 0)
    entry = r.status.history[-1]
    assert (entry.result, entry.reason) == ("Promoted", "FastRevert")
    assert v2 in r.replicas_asked()


def test_the_rollback_window_counts_revisions_back():
    doc = copy.deepcopy(SPEC)
    doc["rollbackWindow"] = {"revisions": 1}
    r = promoted(promoted(Rollout(doc).tick(), "2.0.0"), "3.0.0")
    r.new_version("1.0.0")  # two revisions back: outside a window of 1
    r.tick()
    assert not r.status.fast_revert
    r.new_version("2.0.0")  # one back
    r.tick()
    assert r.status.fast_revert


def test_a_revert_to_a_revision_still_kept_warm_takes_it_out_of_its_scale_down():
    r = promoted(Rollout(BLUE_GREEN).tick(), "2.0.0")
    r.roll_to("3.0.0")
    r.make_candidate_ready()
    r.tick(command="promote")
    r.tick(command="promote-full")
    v2, v3 = r.status.scale_downs[0].revision, r.revision
    assert r.status.stable_revision == v3
    r.new_version("2.0.0")
    r.tick()
    assert r.status.candidate_revision == v2 and r.status.scale_downs == ()
    r.wait(600)
    r.tick()
    assert ScaleRevision(v2, 0) not in r.actions and EnsureRevision(v2, 1) in r.actions  # its preview size
