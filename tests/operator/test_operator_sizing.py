"""How spec.replicas, the total an HPA or `kubectl scale` sets, is divided between the
revisions (engine/sizing.py): the rounding as properties, then each strategy tick by tick
with pods that become ready only when asked for."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st
from modelrollout.operator.engine.sizing import share
from modelrollout.operator.spec import parse_spec
from modelrollout.operator.status import HEALTHY

from tests.support.operator_fixtures import BLUE_GREEN, SHADOW, SPEC, Rollout

totals = st.integers(min_value=0, max_value=500)
percents = st.integers(min_value=0, max_value=100)


@given(totals, percents)
def test_a_share_is_at_least_one_pod_at_most_the_total_and_never_thinner_than_stable(total, percent):
    pods = share(total, percent)
    if total == 0:
        assert pods == 0
        return
    assert 1 <= pods <= total
    assert pods * 100 >= total * percent  # as many pods per request as stable, or more
    assert pods == 1 or (pods - 1) * 100 < total * percent  # and not one more than that


@given(totals, percents, percents)
def test_a_larger_share_never_has_fewer_pods(total, low, high):
    low, high = sorted((low, high))
    assert share(total, low) <= share(total, high)


@given(st.integers(min_value=1, max_value=500))
def test_all_the_traffic_is_the_whole_total(total):
    assert share(total, 100) == total


@pytest.mark.parametrize(("total", "percent", "pods"), [(10, 5, 1), (10, 25, 3), (10, 50, 5), (3, 30, 1),
                                                         (3, 34, 2), (6, 20, 2), (1, 1, 1)])
def test_the_rounding_in_the_docs(total, percent, pods):
    assert share(total, percent) == pods


def with_spec(base: dict, **changes) -> dict:
    doc = copy.deepcopy(base)
    doc.update(changes)
    return doc


def ready_as_asked(rollout: Rollout) -> None:
    """The candidate's pods become ready as the last reconcile asked for them."""
    rollout.candidate_ready = rollout.replicas_asked().get(rollout.status.candidate_revision,
                                                           rollout.candidate_ready)


def started(spec: dict) -> Rollout:
    """1.0.0 stable; 2.0.0 applied, its first pods ready, the gate passed."""
    r = Rollout(spec)
    r.tick()
    r.new_version("2.0.0")
    r.tick()
    ready_as_asked(r)
    r.smoke = True
    r.tick()
    assert r.status.gate_passed
    return r


CANARY = with_spec(SPEC, replicas=4, strategy={"canary": {"steps": [
    {"setWeight": 25}, {"setWeight": 60}, {"pause": {"duration": "1m"}}]}})


def test_a_canary_gets_pods_for_its_weight_before_the_weight_and_all_of_them_before_promotion():
    r = started(CANARY)
    stable, candidate = r.status.stable_revision, r.status.candidate_revision
    assert r.candidate_ready == 1  # 0% of the traffic: one pod for the gate
    r.tick()  # setWeight 25: 1 pod of 4 is enough
    assert r.traffic() == (75, 25) and r.replicas_asked() == {stable: 4, candidate: 1}
    r.tick()  # setWeight 60: 3 pods wanted, 1 ready, the weight waits
    assert r.traffic() == (75, 25) and r.status.reason == "ScalingUp" and r.status.current_step == 1
    assert r.replicas_asked()[candidate] == 3 and "1 of 3 ready" in r.status.message
    assert not r.set_traffic() or r.set_traffic()[-1].candidate_weight == 25
    ready_as_asked(r)
    r.tick()
    assert r.traffic() == (40, 60) and r.replicas_asked() == {stable: 4, candidate: 3}
    r.wait(60)
    r.tick()  # pause over
    r.tick()  # every step passed: all 4 pods first
    assert r.status.reason == "ScalingUp" and r.status.candidate_revision == candidate
    assert r.traffic() == (40, 60) and r.replicas_asked()[candidate] == 4
    ready_as_asked(r)
    r.tick()
    assert r.status.stable_revision == candidate and r.status.candidate_revision is None
    assert r.set_traffic()[-1].stable_weight == 100


def test_a_canary_that_cannot_get_its_pods_is_aborted_at_the_progress_deadline():
    r = started(CANARY)
    r.tick()  # 25%
    r.tick()  # 60% wants 3 pods; none come
    r.wait(CANARY["progressDeadlineSeconds"])
    r.tick()
    assert r.status.reason == "ProgressDeadlineExceeded" and r.traffic() == (100, 0)
    assert "not scaled to 3 replicas for 60% of traffic" in r.status.message


def test_a_scale_in_the_middle_of_a_canary_keeps_the_step_and_the_weight():
    r = started(CANARY)
    r.tick()  # 25% on 1 pod of 4
    step, at = r.status.current_step, r.status.canary.step_started_at
    r.doc["replicas"] = 10  # kubectl scale, an HPA
    r.spec = parse_spec(r.doc)
    r.tick()  # the next step waits for the pods of 60% of 10; nothing restarts or is skipped
    assert r.status.candidate_revision is not None and r.status.current_step == step
    assert r.status.canary.step_started_at == at and r.traffic() == (75, 25)
    assert r.replicas_asked() == {r.status.stable_revision: 10, r.status.candidate_revision: 6}
    ready_as_asked(r)
    r.tick()
    assert r.traffic() == (40, 60) and r.status.current_step == step + 1


def test_promote_full_by_a_person_waits_for_every_pod_and_says_who():
    r = started(CANARY)
    r.tick()  # 25%
    r.tick(command="promote-full", by="alice")
    candidate = r.status.candidate_revision
    assert r.status.reason == "ScalingUp" and r.replicas_asked()[candidate] == 4 and r.traffic() == (75, 25)
    r.tick()  # the command was carried out once; the promotion is remembered
    assert r.status.reason == "ScalingUp"
    ready_as_asked(r)
    r.tick()
    assert r.status.stable_revision == candidate and "by alice" in r.status.message


def test_a_shadow_gets_the_mirrors_share_then_every_pod_before_it_takes_the_traffic():
    spec = with_spec(SHADOW, replicas=10)
    spec["strategy"]["shadow"].update(mirrorPercent=20, minComparisons=10, then="promote")
    r = started(spec)
    candidate = r.status.candidate_revision
    assert r.candidate_ready == 2  # the gate waited for the mirror's share: 20% of 10
    r.tick()  # the mirror starts
    assert r.status.traffic.mirror == 20 and r.replicas_asked()[candidate] == 2
    r.comparisons = 50
    r.wait(600)
    r.tick(value=1.0, values={"shadow-latency-ratio": 1.0})
    r.wait(30)
    r.tick(value=1.0, values={"shadow-latency-ratio": 1.0})  # passed: promotion waits for 10 pods
    assert r.status.reason == "ScalingUp" and r.status.shadow.stage == "ScalingUp"
    assert r.replicas_asked()[candidate] == 10 and r.status.traffic.mirror == 20
    ready_as_asked(r)
    r.tick()
    assert r.status.stable_revision == candidate and "shadow passed" in r.status.message


def test_a_blue_green_preview_keeps_its_own_count_then_grows_to_the_total_before_the_switch():
    spec = with_spec(BLUE_GREEN, replicas=5)
    r = started(spec)
    candidate = r.status.candidate_revision
    assert r.candidate_ready == 1  # previewReplicas
    r.tick(command="promote")
    assert r.status.reason == "ScalingUp" and r.replicas_asked()[candidate] == 5 and r.traffic() == (100, 0)
    assert r.status.message == "scaling the candidate to 5 replicas before the switch: 1 of 5 ready"
    ready_as_asked(r)
    r.tick()
    assert r.traffic() == (0, 100)


def test_the_first_revision_and_a_healthy_model_get_the_total():
    r = Rollout(CANARY).tick()
    assert r.replicas_asked() == {r.revision: 4}
    r.tick()
    assert r.status.phase == HEALTHY and r.status.replicas == 4
