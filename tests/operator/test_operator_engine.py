"""The rollout engine driven tick by tick, as Flagger drives advanceCanary."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from modelrollout.operator.actions import EnsureRevision, RecordEvent, ScaleRevision, SetTraffic
from modelrollout.operator.engine import revision_of
from modelrollout.operator.spec import parse_spec
from modelrollout.operator.status import (
    DEGRADED,
    HEALTHY,
    PAUSED,
    PROGRESSING,
    status_from_doc,
    status_to_doc,
)

from tests.support.operator_fixtures import Rollout


@pytest.fixture
def rollout() -> Rollout:
    """v1.0.0 deployed and stable; v2.0.0 just applied."""
    r = Rollout()
    r.tick()
    r.new_version("2.0.0")
    return r


def test_first_deployment_becomes_stable_at_full_traffic():
    r = Rollout().tick()
    assert r.status.phase == PROGRESSING and r.status.stable_revision == r.revision  # just created
    assert r.traffic() == (100, 0)
    assert EnsureRevision(r.revision, 2) in r.actions and SetTraffic(r.revision, None, 100, 0) in r.actions
    (first,) = r.status.history
    assert (first.revision, first.model_version, first.result) == (r.revision, "1.0.0", "Deployed")
    assert first.started_at == first.at
    r.tick()  # its pods ready
    assert r.status.phase == HEALTHY


def test_canary_promotes_step_by_step(rollout):
    stable = rollout.status.stable_revision
    rollout.tick()
    assert rollout.status.candidate_revision == rollout.revision and rollout.traffic() == (100, 0)
    assert EnsureRevision(stable, 2) in rollout.actions  # stable keeps full capacity
    rollout.tick()
    assert rollout.status.phase == PROGRESSING and rollout.traffic() == (100, 0)  # not ready yet
    rollout.make_candidate_ready()
    rollout.smoke = True
    rollout.tick()  # gate passes
    assert rollout.status.gate_passed and rollout.traffic() == (100, 0)
    rollout.tick()  # setWeight 10
    assert rollout.traffic() == (90, 10) and rollout.set_traffic()[-1].candidate_weight == 10
    rollout.tick()  # analysis: nothing due before one interval
    assert rollout.status.current_step == 1 and not rollout.status.analysis
    for _ in range(2):  # count 2: two good measurements, 30 s apart
        rollout.wait(30)
        rollout.tick()
    assert rollout.status.current_step == 2 and rollout.traffic() == (90, 10)
    rollout.tick()  # setWeight 50
    assert rollout.traffic() == (50, 50)
    rollout.tick()
    rollout.wait(299)
    rollout.tick()
    assert rollout.status.current_step == 3  # 5 min pause not over
    rollout.wait(2)
    rollout.tick()
    rollout.tick()  # setWeight 100
    assert rollout.traffic() == (0, 100)
    rollout.tick()  # after the last step: promote
    assert rollout.status.phase == HEALTHY and rollout.status.stable_revision == rollout.revision
    assert rollout.status.candidate_revision is None and rollout.traffic() == (100, 0)
    assert ScaleRevision(stable, 0) in rollout.actions
    first, last = rollout.status.history
    assert last.result == "Promoted" and last.model_version == "2.0.0" and last.revision == rollout.revision
    assert first.result == "Deployed" and first.revision == stable  # the first revision is history too
    assert first.at <= last.started_at < last.at  # started when the candidate was created


def to_analysis(r: Rollout) -> Rollout:
    r.tick()
    r.make_candidate_ready()
    r.smoke = True
    r.tick()
    r.tick()  # setWeight 10
    return r


def test_failed_analysis_aborts_to_stable_in_one_write(rollout):
    to_analysis(rollout)
    stable, candidate = rollout.status.stable_revision, rollout.status.candidate_revision
    rollout.wait(30)
    rollout.tick(value=0.2)  # error rate 20%
    assert rollout.status.phase == DEGRADED and rollout.status.reason == "AnalysisFailed"
    assert rollout.actions[0] == SetTraffic(stable, None, 100, 0)  # traffic first
    assert ScaleRevision(candidate, 0) in rollout.actions
    assert rollout.traffic() == (100, 0) and "0.2 outside" in rollout.status.message
    assert rollout.events() == ["AnalysisFailed"]
    rollout.tick()  # stays aborted while the spec is unchanged
    assert rollout.status.phase == DEGRADED and rollout.traffic() == (100, 0)
    assert rollout.status.history[-1].result == "Aborted"


def test_idle_candidate_is_inconclusive_and_never_promotes(rollout):
    to_analysis(rollout)
    warnings, phases = [], []
    for _ in range(20):
        rollout.wait(30)
        rollout.tick(value=0.0, samples=3)  # 3 requests: below minSamples 10
        warnings += [(a.type, a.reason) for a in rollout.actions
                     if isinstance(a, RecordEvent) and a.type == "Warning"]
        phases.append(rollout.status.phase)
    # inconclusiveLimit 2: measured twice more while traffic might still arrive, then paused
    assert phases[:3] == [PROGRESSING, PROGRESSING, PAUSED] and set(phases[3:]) == {PAUSED}
    assert rollout.status.phase == PAUSED and rollout.status.reason == "AnalysisInconclusive"
    assert rollout.status.current_step == 1 and rollout.traffic() == (90, 10)
    assert warnings == [("Warning", "AnalysisInconclusive")]  # once, at the transition


def test_a_candidate_whose_traffic_arrives_late_is_measured_again_not_paused(rollout):
    to_analysis(rollout)
    for samples in (0, 4):  # the first intervals: the candidate's requests not scraped yet
        rollout.wait(30)
        rollout.tick(value=0.0, samples=samples)
        assert rollout.status.phase == PROGRESSING and rollout.status.reason == "AnalysisRunning"
    for _ in range(2):  # count 2: two measurements with enough samples behind them
        rollout.wait(30)
        rollout.tick(value=0.001, samples=50)
    assert rollout.status.current_step == 2 and rollout.status.phase == PROGRESSING


def test_prometheus_unreachable_pauses_after_the_error_limit(rollout):
    to_analysis(rollout)
    for i in range(4):
        rollout.wait(30)
        rollout.tick(error="connection refused")
        assert rollout.status.phase == (PAUSED if i == 3 else PROGRESSING)
    assert rollout.status.current_step == 1 and rollout.traffic() == (90, 10)
    rollout.tick(command="resume")  # measure afresh
    for _ in range(2):
        rollout.wait(30)
        rollout.tick()
    assert rollout.status.current_step == 2


def test_candidate_not_ready_within_the_deadline_aborts(rollout):
    rollout.tick()
    rollout.wait(599)
    rollout.tick()
    assert rollout.status.phase == PROGRESSING
    rollout.wait(2)
    rollout.tick()
    assert rollout.status.phase == DEGRADED and rollout.status.reason == "ProgressDeadlineExceeded"


def test_the_deadline_message_names_what_the_unready_candidate_says_is_wrong(rollout):
    """The cause comes from the pods themselves (their readiness answer), so the abort says
    why: a model that cannot be downloaded or whose sha256 differs is never ready."""
    rollout.tick()
    rollout.wait(30)
    rollout.tick()
    # A canary starts with its share of 0% traffic: one pod (sizing.py).
    assert rollout.status.message == "waiting for the candidate: 0 of 1 replicas ready"  # nothing said
    rollout.problem = "pod iris-b-x1: model failed to load: sha256 mismatch"
    rollout.tick()
    assert rollout.status.reason == "CandidateNotReady"
    assert rollout.status.message == ("waiting for the candidate: 0 of 1 replicas ready; "
                                      "pod iris-b-x1: model failed to load: sha256 mismatch")
    rollout.wait(600)
    rollout.tick()
    assert rollout.status.reason == "ProgressDeadlineExceeded"
    assert rollout.status.message.endswith("(600): 0 of 1 replicas ready; pod iris-b-x1: model failed to "
                                           "load: sha256 mismatch")


def test_failed_smoke_test_aborts_before_any_traffic(rollout):
    rollout.tick()
    rollout.make_candidate_ready()
    rollout.smoke = "output 'probabilities' missing"
    rollout.tick()
    assert rollout.status.phase == DEGRADED and "probabilities" in rollout.status.message
    assert all(a.candidate_weight == 0 for a in rollout.set_traffic())


def test_crash_loop_aborts(rollout):
    to_analysis(rollout)
    rollout.crash_looping = True
    rollout.tick()
    assert rollout.status.reason == "CandidateCrashLoop" and rollout.traffic() == (100, 0)


def test_manual_pause_resume_promote_abort_and_retry(rollout):
    to_analysis(rollout)
    rollout.tick(command="pause")
    assert rollout.events() == ["PausedByUser"]
    rollout.wait(120)
    rollout.tick()
    assert rollout.events() == []
    assert rollout.status.phase == PAUSED and rollout.status.current_step == 1 and not rollout.status.analysis
    rollout.tick(command="resume")
    assert rollout.status.phase == PROGRESSING and rollout.events() == [rollout.status.reason]
    rollout.tick(command="promote")  # skip the analysis step
    assert rollout.status.current_step == 2
    rollout.tick(command="abort")
    assert rollout.status.phase == DEGRADED and rollout.status.reason == "AbortedByUser"
    rollout.tick(command="retry")
    assert rollout.status.candidate_revision == rollout.revision and rollout.status.current_step == 0
    rollout.make_candidate_ready()
    rollout.tick()
    rollout.tick(command="promote-full")
    assert rollout.status.phase == HEALTHY and rollout.status.stable_revision == rollout.revision


def test_promote_never_sends_traffic_to_a_candidate_that_is_not_ready(rollout):
    rollout.tick()
    rollout.tick(command="promote-full")
    rollout.tick(command="promote")
    assert rollout.status.candidate_revision is not None and rollout.traffic() == (100, 0)


def test_a_newer_spec_replaces_the_candidate_in_flight(rollout):
    to_analysis(rollout)
    old = rollout.status.candidate_revision
    rollout.new_version("3.0.0")
    rollout.tick()
    assert rollout.status.candidate_revision == rollout.revision != old
    assert rollout.traffic() == (100, 0) and ScaleRevision(old, 0) in rollout.actions


def test_spec_back_to_stable_calls_the_rollout_off(rollout):
    to_analysis(rollout)
    rollout.new_version("1.0.0")
    rollout.tick()
    assert rollout.status.phase == HEALTHY and rollout.status.candidate_revision is None
    assert rollout.traffic() == (100, 0)


def test_a_restart_resumes_from_the_stored_status_without_moving_traffic(rollout):
    to_analysis(rollout)
    rollout.wait(30)
    rollout.tick()
    stored = status_to_doc(rollout.status)
    before = rollout.traffic()
    rollout.status = status_from_doc(stored)  # a new operator process reads the status back
    rollout.tick()
    assert rollout.traffic() == before and rollout.status.current_step == 1
    assert rollout.set_traffic()[-1].candidate_weight == before[1]
    rollout.wait(30)
    rollout.tick()
    assert rollout.status.current_step == 2  # the measurement taken before the restart counted


def test_set_mirror_copies_requests_to_the_candidate_until_promotion():
    doc = {**Rollout().doc, "strategy": {"canary": {"steps": [
        {"setMirror": {"percent": 30}}, {"setWeight": 20}, {"pause": {}}]}}}
    r = Rollout(doc)
    r.tick()
    r.new_version("2.0.0")
    r.tick()
    r.make_candidate_ready()
    r.smoke = True
    r.tick()  # gate
    r.tick()  # setMirror 30
    assert r.status.traffic.mirror == 30 and r.traffic() == (100, 0)
    assert r.set_traffic()[-1].mirror_percent == 30 and "MirrorSet" in r.events()
    r.tick()  # setWeight 20 keeps the mirror
    assert r.status.traffic.mirror == 30 and r.set_traffic()[-1] == SetTraffic(
        r.status.stable_revision, r.revision, 80, 20, 30)
    r.tick()  # pause, held until a person promotes
    assert r.set_traffic()[-1].mirror_percent == 30
    r.tick(command="promote-full")
    assert r.status.traffic.mirror == 0 and r.set_traffic()[-1].mirror_percent == 0


def test_abort_stops_mirroring():
    steps = [{"setMirror": {"percent": 100}}, {"pause": {}}]
    doc = {**Rollout().doc, "strategy": {"canary": {"steps": steps}}}
    r = Rollout(doc)
    r.tick()
    r.new_version("2.0.0")
    r.tick()
    r.make_candidate_ready()
    r.smoke = True
    r.tick()
    r.tick()
    assert r.status.traffic.mirror == 100
    r.tick(command="abort")
    assert r.status.traffic.mirror == 0 and r.set_traffic()[0] == SetTraffic(
        r.status.stable_revision, None, 100, 0, 0)


def test_an_invalid_spec_is_reported_and_changes_nothing_else(rollout):
    from datetime import timedelta

    from modelrollout.operator.engine import reject_spec

    rollout.tick()
    before = rollout.status
    rejected = reject_spec(before, "spec.replicas: must be from 0 up, got -1", 7, rollout.now)
    condition = next(c for c in rejected.conditions if c.type == "InvalidSpec")
    assert (condition.status, condition.reason, condition.observed_generation) == ("True", "SpecInvalid", 7)
    assert "spec.replicas" in condition.message and rejected.phase == DEGRADED
    assert (rejected.traffic, rejected.stable_revision, rejected.candidate_revision) == (
        before.traffic, before.stable_revision, before.candidate_revision)
    # Once fixed, the next decision clears the condition.
    rollout.status = rejected
    rollout.now += timedelta(seconds=1)
    rollout.tick()
    condition = next(c for c in rollout.status.conditions if c.type == "InvalidSpec")
    assert condition.status == "False" and rollout.status.phase != DEGRADED


# The revisions the first release named these specs with: a different name would make an
# operator upgrade roll out every ModelDeployment again.
RELEASED_REVISIONS = {"blue-green-builtin.yaml": "ab00bc969b", "canary-builtin.yaml": "67113f918a",
                      "canary-gateway-api.yaml": "42406e49af", "canary-replicas.yaml": "c39c44313c",
                      "shadow-builtin.yaml": "80e1a7bfa7"}
EVERY_IDENTITY_FIELD = {
    "model": {"uri": "https://m.example.com/a.onnx", "version": "2.0.0", "sha256": "A" * 64, "name": "fraud"},
    "server": {"image": "img:1", "resources": {"limits": {"cpu": "2"}},
               "env": [{"name": "A", "value": "1"},
                       {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
               "batching": {"maxBatchSize": 32, "maxQueueDelayMicroseconds": 700}},
    "strategy": {"canary": {"steps": [{"setWeight": 10}]}}}


def test_revisions_keep_the_names_the_first_release_gave_them():
    examples = Path(__file__).resolve().parents[2] / "manifests" / "examples"
    for name, revision in RELEASED_REVISIONS.items():
        spec = parse_spec(yaml.safe_load((examples / name).read_text())["spec"])
        assert revision_of(spec) == revision, name
    assert revision_of(parse_spec(EVERY_IDENTITY_FIELD)) == "83baf10228"
    replicas_only = {**EVERY_IDENTITY_FIELD, "replicas": 7, "strategy": {"shadow": {}}}
    assert revision_of(parse_spec(replicas_only)) == "83baf10228"  # neither starts a rollout
