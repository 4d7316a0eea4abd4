"""After the rollout: the guard on the promoted revision, the fallback, and recovery (engine/guard.py)."""

from __future__ import annotations

import pytest
from modelrollout.operator.actions import EnsureRevision, RequestFallback, SetTraffic
from modelrollout.operator.engine import buildable, revision_of
from modelrollout.operator.engine.revisions import fallback_spec
from modelrollout.operator.reconcile import parse
from modelrollout.operator.routing import Target, builtin
from modelrollout.operator.spec import InvalidSpec, parse_spec
from modelrollout.operator.status import (
    DEGRADED,
    FALLBACK_ACTIVE,
    FALLBACK_NOT_READY,
    GUARD_ENDED,
    GUARD_FIRED,
    HEALTHY,
    RECOVERED,
    status_from_doc,
    status_to_doc,
)
from modelrollout.serving.contract.routes import parse_model_route

from tests.support.operator_fixtures import (
    BAD,
    BLUE_GREEN,
    FALLBACK_MODEL,
    GUARD,
    SHADOW,
    SPEC,
    Rollout,
    fire,
    guarded,
    promoted,
)


def test_a_promoted_revision_is_watched_and_the_previous_stable_kept_warm():
    r = Rollout(guarded())
    old = r.tick().status.stable_revision
    promoted(r)
    guard = r.status.guard
    assert (guard.revision, guard.state, guard.previous_stable) == (r.revision, "Watching", old)
    assert guard.until is None  # no window: without end
    r.wait(120)  # past the keep-warm window the canary does not have anyway
    r.tick()
    assert r.replicas_asked()[old] == 1  # fallback.replicas, not 0
    assert r.status.fallback.revision == old and r.status.fallback.kind == "previousStable"
    assert r.status.fallback.version == "1.0.0" and not r.status.fallback.active
    assert [m.metric for m in r.status.guard.analysis] == ["error-rate"]


def test_one_bad_scrape_never_fires_and_a_run_fires_after_its_for():
    r = promoted(Rollout(guarded()))
    r.wait(30)
    r.tick(value=BAD)
    r.wait(30)
    r.tick()  # Successful: the run ends
    r.wait(30)
    r.tick(value=BAD)
    assert r.status.guard.state == "Watching" and r.status.phase == HEALTHY
    r.wait(30)
    r.tick(value=BAD)  # two in a row (> failureLimit 1), but not failing for 1m yet
    assert r.status.guard.state == "Watching"
    first_failed = r.status.guard.analysis[-2].at
    r.wait(30)
    r.tick(value=BAD)
    assert r.status.guard.state == "Fired" and first_failed in r.status.guard.trigger


def test_the_guard_falls_back_in_one_routing_write_and_keeps_measuring_the_guarded_revision():
    r = promoted(Rollout(guarded()))
    guarded_revision, old = r.revision, r.status.guard.previous_stable
    fire(r)
    status = r.status
    assert status.fallback.active and status.reason == FALLBACK_ACTIVE and status.phase == DEGRADED
    assert r.set_traffic() == [SetTraffic(old, guarded_revision, 100, 0, 100)]  # copies to the guarded
    assert r.events()[:2] == [GUARD_FIRED, FALLBACK_ACTIVE]
    assert r.replicas_asked()[old] == r.spec.replicas  # it takes all traffic: full size
    assert "kubectl modelrollout recover" in status.message and "error-rate" in status.message
    assert status.stable_revision == guarded_revision  # activation is a status transition only
    r.wait(30)
    r.tick(value=BAD)
    assert r.status.fallback.active and r.set_traffic() == [SetTraffic(old, guarded_revision, 100, 0, 100)]
    assert [m.metric for m in r.measured] == ["error-rate"]  # the guarded revision, on copies


def test_a_fallback_that_is_not_ready_never_gets_traffic_and_the_guard_says_why():
    r = promoted(Rollout(guarded(fallback={"model": {**FALLBACK_MODEL, "sha256": "a" * 64}})))
    r.fallback_ready, r.fallback_problem = 0, "model failed to load: sha256 mismatch"
    fire(r)
    assert r.status.reason == FALLBACK_NOT_READY and r.status.phase == DEGRADED
    assert "sha256 mismatch" in r.status.message and r.status.fallback.problem
    assert r.set_traffic() == [SetTraffic(r.revision, None, 100, 0)]
    r.fallback_ready = 1  # fixed: the next reconcile sends the traffic
    r.wait(30)
    r.tick(value=BAD)
    assert r.status.fallback.active and r.set_traffic()[0].stable_revision == r.status.fallback.revision


def test_recover_by_a_person_sends_traffic_back_and_watches_afresh():
    r = promoted(Rollout(guarded()))
    fire(r)
    r.wait(5)
    r.tick(command="recover", by="alice")
    assert not r.status.fallback.active and r.status.guard.state == "Watching"
    assert r.set_traffic() == [SetTraffic(r.revision, None, 100, 0)]
    assert RECOVERED in r.events() and r.status.phase == HEALTHY
    assert r.status.guard.analysis == ()  # measured afresh


def test_automatic_recovery_once_healthy_for_the_time_asked():
    guard = {**GUARD, "recovery": {"automatic": True, "healthyFor": "2m"}}
    r = promoted(Rollout(guarded(guard=guard)))
    fire(r)
    for _ in range(4):  # healthy from the first measurement on: 0, 30, 60, 90 s
        r.wait(30)
        r.tick()
        assert r.status.fallback.active, r.status.message
    r.wait(30)
    r.tick()  # 120 s healthy
    assert not r.status.fallback.active and RECOVERED in r.events()
    assert r.set_traffic() == [SetTraffic(r.revision, None, 100, 0)]


def test_automatic_recovery_starts_over_after_a_failed_measurement():
    guard = {**GUARD, "recovery": {"automatic": True, "healthyFor": "1m"}}
    r = promoted(Rollout(guarded(guard=guard)))
    fire(r)
    r.wait(30)
    r.tick()
    since = r.status.guard.healthy_since
    r.wait(30)
    r.tick(value=BAD)
    assert r.status.guard.healthy_since is None and r.status.fallback.active
    r.wait(30)
    r.tick()
    assert r.status.guard.healthy_since > since


def test_the_window_ends_the_watch_and_the_previous_stable_goes():
    r = promoted(Rollout(guarded(guard={**GUARD, "window": "5m"})))
    old = r.status.guard.previous_stable
    seen = []
    for _ in range(12):
        r.wait(30)
        r.tick()
        seen += r.events()
    assert r.status.guard.state == "Ended" and r.status.fallback is None
    assert seen.count(GUARD_ENDED) == 1
    r.wait(30)
    r.tick(value=BAD)
    assert r.status.guard.state == "Ended" and old not in [a.revision for a in r.actions
                                                        if isinstance(a, EnsureRevision)]


def test_a_named_fallback_model_is_built_and_kept_warm_from_the_first_revision():
    r = Rollout(guarded(fallback={"model": FALLBACK_MODEL, "replicas": 2}))
    r.tick()
    spec_of_fallback = fallback_spec(r.spec)
    revision = revision_of(spec_of_fallback)
    assert set(buildable(r.spec)) == {r.revision, revision}
    assert spec_of_fallback.model.version == "simple-1" and spec_of_fallback.server == r.spec.server
    assert EnsureRevision(revision, 2) in r.actions
    assert r.status.fallback.kind == "model" and r.status.revision_versions[revision] == "simple-1"


@pytest.mark.parametrize("base", [SPEC, BLUE_GREEN, SHADOW], ids=["canary", "blueGreen", "shadow"])
def test_a_new_rollout_while_the_fallback_serves_keeps_it_in_the_stable_place_until_promoted(base):
    r = promoted(Rollout(guarded(base, fallback={"model": FALLBACK_MODEL})))
    fire(r)
    fallback = r.status.fallback.revision
    r.roll_to("3.0.0")
    assert r.status.candidate_revision == r.revision and r.status.fallback.active
    assert all(t.stable_revision == fallback for t in r.set_traffic())
    assert f"fallback {fallback} (simple-1) serves the stable share in place of" in r.status.message
    r.tick(command="promote-full")
    for _ in range(10):
        if r.status.stable_revision == r.revision:
            break
        r.wait(30)
        r.tick()
    assert r.status.stable_revision == r.revision
    assert not r.status.fallback.active and r.status.guard.revision == r.revision
    assert r.set_traffic()[0].stable_revision == r.revision


def test_the_fallback_state_survives_a_restart():
    r = promoted(Rollout(guarded()))
    fire(r)
    before = r.status
    r.status = status_from_doc(status_to_doc(before))
    assert r.status.guard == before.guard and r.status.fallback == before.fallback
    r.wait(30)
    r.tick(value=BAD)
    assert r.status.fallback.active and r.status.fallback.since == before.fallback.since


def test_per_request_fallback_names_the_ready_fallback_in_the_route():
    doc = guarded(fallback={"model": FALLBACK_MODEL, "perRequest": {"deadline": "250ms"}})
    r = promoted(Rollout(doc))
    fallback = r.status.fallback.revision
    [traffic] = r.set_traffic()
    assert traffic.fallback == RequestFallback(fallback, 250)
    route = builtin.route(Target(name="iris", namespace="ml", model="iris", options={}), traffic)
    parsed = parse_model_route("iris", route)
    assert parsed.revision(fallback).role == "fallback" and parsed.revision(fallback).weight == 0
    assert route["fallback"] == {"revision": fallback, "deadlineMs": 250}
    r.fallback_ready = 0
    r.tick()
    assert r.set_traffic()[0].fallback is None  # never a revision that cannot answer


@pytest.mark.parametrize(("routing", "part", "field"), [
    ({"replicas": {}}, {"fallback": {"previousStable": {}, "perRequest": {}}}, "spec.fallback.perRequest"),
    ({"replicas": {}}, {"guard": {**GUARD, "recovery": {"automatic": True}}},
     "spec.guard.recovery.automatic"),
])
def test_what_a_routing_cannot_do_is_refused(routing, part, field):
    doc = {**guarded(), "trafficRouting": routing, **part}
    with pytest.raises(InvalidSpec) as caught:
        parse(doc and {"spec": doc})
    assert caught.value.path == field
    parse_spec(doc)  # the API itself takes it: only the backend cannot


@pytest.mark.parametrize("kept", [None, {"model": FALLBACK_MODEL}], ids=["nothing", "the fallback"])
def test_removing_the_guard_while_the_fallback_serves_sends_traffic_back(kept):
    r = promoted(Rollout(guarded(fallback={"model": FALLBACK_MODEL})))
    fire(r)
    r.doc.pop("guard")
    r.doc.pop("fallback")
    if kept is not None:
        r.doc["fallback"] = kept
    r.spec = parse_spec(r.doc)
    r.tick()
    assert r.status.guard is None and (r.status.fallback is None or not r.status.fallback.active)
    assert r.set_traffic() == [SetTraffic(r.revision, None, 100, 0)] and RECOVERED in r.events()
    assert r.status.phase == HEALTHY
