"""Leader election: the pure rules (election.py), then LeaderElector against the harness's
API server over HTTP (resourceVersion preconditions, 409 on a lost race, injected faults)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from modelrollout.operator.election import (
    ElectionTiming,
    claimed,
    may_take,
    micro_time,
    observe,
    released,
)
from modelrollout.operator.kube.api import Api, configuration
from modelrollout.operator.kube.leader import LeaderElector

from modelrollout.harness.apiserver.faults import Fault
from modelrollout.harness.emulator import KubeEmulator

TIMING = ElectionTiming(lease_duration_seconds=15, renew_deadline_seconds=10, retry_seconds=2)


def lease(holder: str, renew: str = "t1", version: str = "7", transitions: int = 0) -> dict:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "op", "namespace": "sys", "resourceVersion": version},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": renew,
                     "acquireTime": "t0", "leaseTransitions": transitions}}


# --- the rules ---


def test_the_clock_of_an_observation_restarts_only_when_the_record_changes():
    first = observe(None, lease("a", "t1"), now=100.0)
    assert (first.holder, first.at) == ("a", 100.0)
    assert observe(first, lease("a", "t1", version="8"), now=105.0) is first  # same spec: still 100
    renewed = observe(first, lease("a", "t2"), now=106.0)
    assert renewed.at == 106.0


@pytest.mark.parametrize(("holder", "seen_at", "now", "allowed"), [
    ("", 100.0, 100.0, True),  # nobody holds it (released)
    ("me", 100.0, 100.0, True),  # ours already (a restart with the same identity)
    ("other", 100.0, 114.9, False),  # renewed less than a lease duration ago, as seen here
    ("other", 100.0, 115.0, True),  # not renewed for a whole lease duration
])
def test_a_lease_may_be_taken_when_free_ours_or_expired(holder, seen_at, now, allowed):
    observed = observe(None, lease(holder), seen_at)
    assert may_take(observed, "me", TIMING, now) is allowed


def test_taking_over_counts_a_transition_and_renewing_keeps_the_acquire_time():
    taken = claimed(lease("other", transitions=2), "me", TIMING, "t9")
    assert taken["spec"] == {"holderIdentity": "me", "leaseDurationSeconds": 15, "renewTime": "t9",
                             "acquireTime": "t9", "leaseTransitions": 3}
    assert taken["metadata"]["resourceVersion"] == "7"  # the precondition of the write
    renewed = claimed(taken, "me", TIMING, "t10")
    assert renewed["spec"]["acquireTime"] == "t9" and renewed["spec"]["leaseTransitions"] == 3
    assert renewed["spec"]["renewTime"] == "t10"
    fresh = claimed(None, "me", TIMING, "t1")
    assert fresh["spec"]["leaseTransitions"] == 0


def test_a_released_lease_has_no_holder():
    gone = released(lease("me"), "t5")
    assert gone["spec"]["holderIdentity"] == "" and gone["spec"]["leaseDurationSeconds"] == 1
    assert may_take(observe(None, gone, 0.0), "other", TIMING, 0.0)


@pytest.mark.parametrize("times", [(15, 10, 10), (10, 15, 2), (15, 10, 0)])
def test_a_leader_must_give_up_before_a_follower_may_take_over(times):
    with pytest.raises(ValueError, match="retry < renew deadline < lease duration"):
        ElectionTiming(*times).check()


def test_micro_time_is_rfc3339_with_microseconds():
    assert micro_time(datetime(2026, 1, 2, 3, 4, 5, 60, tzinfo=UTC)) == "2026-01-02T03:04:05.000060Z"


# --- against the API server ---

FAST = ElectionTiming(lease_duration_seconds=2.0, renew_deadline_seconds=1.5, retry_seconds=0.2)


class Replica:
    """One elector with its own identity (its bearer token), recording what it was told."""

    def __init__(self, kube: KubeEmulator, identity: str, timing: ElectionTiming = FAST) -> None:
        self.api = Api(configuration(kube.kubeconfig_for(identity)), timeout_seconds=1.0)
        self.told: list[tuple[str, float]] = []
        self.elector = LeaderElector(self.api, "sys", "op", identity, timing, self._started, self._stopped)
        self.task: asyncio.Task | None = None

    async def _started(self) -> None:
        self.told.append(("start", time.monotonic()))

    async def _stopped(self) -> None:
        self.told.append(("stop", time.monotonic()))

    def start(self) -> Replica:
        self.task = asyncio.create_task(self.elector.run())
        return self

    async def crash(self) -> None:
        """Stops without releasing: the Lease stays as it was last renewed."""
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def until(check, seconds: float) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, "timed out"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


@pytest.fixture
def kube(tmp_path):
    with KubeEmulator(tmp_path) as emulator:
        yield emulator


@pytest.mark.asyncio
async def test_exactly_one_of_two_replicas_leads_and_the_other_takes_over_a_crashed_leader(kube):
    a, b = Replica(kube, "a").start(), Replica(kube, "b").start()
    await until(lambda: a.elector.is_leading() or b.elector.is_leading(), 5)
    await asyncio.sleep(3 * FAST.retry_seconds)
    assert a.elector.is_leading() != b.elector.is_leading()  # exactly one
    leader, follower = (a, b) if a.elector.is_leading() else (b, a)
    assert [what for what, _ in leader.told] == ["start"] and follower.told == []
    await leader.crash()
    crashed_at = time.monotonic()
    await until(follower.elector.is_leading, 10)
    waited = time.monotonic() - crashed_at
    # Not before the lease ran out as the follower saw it, and within one more look.
    assert FAST.lease_duration_seconds - FAST.retry_seconds <= waited <= FAST.takeover_bound_seconds + 0.5
    stored = kube.get("coordination.k8s.io/v1", "Lease", "op", "sys")
    assert stored["spec"]["holderIdentity"] == follower.elector.identity
    assert stored["spec"]["leaseTransitions"] == 1
    await follower.crash()


@pytest.mark.asyncio
async def test_a_released_lease_is_taken_at_the_next_look(kube):
    # A long lease and quick looks: taken well before the lease would have run out means the
    # release was seen, however slow the machine is at the moment.
    timing = ElectionTiming(lease_duration_seconds=30.0, renew_deadline_seconds=20.0, retry_seconds=0.2)
    a = Replica(kube, "a", timing).start()
    await until(a.elector.is_leading, 5)
    b = Replica(kube, "b", timing).start()
    await asyncio.sleep(3 * timing.retry_seconds)
    assert not b.elector.is_leading()
    await a.crash()
    await a.elector.release()
    assert await until(b.elector.is_leading, 15) < timing.lease_duration_seconds / 2
    await b.crash()


@pytest.mark.asyncio
async def test_a_leader_that_cannot_renew_stops_within_the_renew_deadline(kube):
    a = Replica(kube, "a").start()
    await until(a.elector.is_leading, 5)
    fault = kube.inject(Fault(500, verbs={"update"}, resource="leases", identity="a"))
    refused_at = time.monotonic()
    await until(lambda: any(what == "stop" for what, _ in a.told), 5)
    stopped_after = next(at for what, at in a.told if what == "stop") - refused_at
    assert stopped_after <= FAST.renew_deadline_seconds + FAST.retry_seconds
    assert not a.elector.is_leading() and fault.hits >= 2
    kube.clear_faults()
    await until(a.elector.is_leading, 5)  # renewing works again: it leads again
    assert [what for what, _ in a.told] == ["start", "stop", "start"]
    await a.crash()


@pytest.mark.asyncio
async def test_a_leader_finding_another_holder_stops_at_its_next_look(kube):
    a = Replica(kube, "a").start()
    await until(a.elector.is_leading, 5)
    stolen = kube.get("coordination.k8s.io/v1", "Lease", "op", "sys")
    kube.merge_patch("coordination.k8s.io/v1", "Lease", "op", {"spec": {"holderIdentity": "z"}}, "sys")
    assert stolen["spec"]["holderIdentity"] == "a"
    assert await until(lambda: not a.elector.is_leading(), 2) <= 2 * FAST.retry_seconds + 0.5
    assert [what for what, _ in a.told] == ["start", "stop"]
    await a.crash()


@pytest.mark.asyncio
async def test_a_stale_resource_version_is_refused_so_two_takeovers_cannot_both_win(kube):
    api = Api(configuration(kube.kubeconfig_for("x")))
    created = api.create("Lease", "sys", {**lease("old"), "metadata": {"name": "op", "namespace": "sys"}})
    first = api.replace("Lease", "sys", "op", claimed(created, "b", FAST, "t2"))
    assert first["spec"]["holderIdentity"] == "b"
    with pytest.raises(Exception) as refused:  # the same read, written a second time
        api.replace("Lease", "sys", "op", claimed(created, "c", FAST, "t2"))
    assert refused.value.status == 409
    api.close()


@pytest.mark.asyncio
async def test_a_stop_that_comes_as_a_renewal_ends_stops_the_elector(kube, monkeypatch):
    """The hang once seen in the election tests: the elector was cancelled in the very loop turn
    its renewal's thread finished, Python 3.11's asyncio.wait_for returned the renewal instead
    of the cancellation, and the elector ran on (its stop waited forever). Here the renewal is
    a future finished by the test, and the cancellation comes in the same turn."""
    renewals: list[asyncio.Future] = []

    def renewal(function, *args):
        renewals.append(asyncio.get_running_loop().create_future())
        return renewals[-1]

    monkeypatch.setattr(asyncio, "to_thread", renewal)
    replica = Replica(kube, "a").start()
    await until(lambda: renewals, 5)
    renewals[0].set_result(True)
    replica.task.cancel()
    done, _ = await asyncio.wait({replica.task}, timeout=5)
    assert done == {replica.task} and replica.task.cancelled()
    assert replica.told == []  # the renewal that ended with the stop did not start leading
