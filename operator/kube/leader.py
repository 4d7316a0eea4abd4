"""Leader election: take, renew and give up a coordination.k8s.io/v1 Lease (rules in
election.py). Only the replica holding the Lease runs reconcile loops.

    elector = LeaderElector(api, "modelrollout-system", "modelrollout-operator", identity,
                            ElectionTiming(), on_start=loops.lead, on_stop=loops.follow)
    task = asyncio.create_task(elector.run())
    ...
    elector.is_leading()       # the fence each reconcile checks before it writes
    await elector.release()    # on shutdown: a follower takes over at its next look

``on_stop`` runs the moment this replica stops leading: its renewal was refused or found
someone else in the Lease, or it could not renew for the renew deadline (an API server
it cannot reach). A renewal that hangs counts as failed once the deadline passes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from kubernetes.client.exceptions import ApiException

from modelrollout.kubeclient import Api

from ..election import ElectionTiming, Observed, claimed, holder_of, may_take, micro_time, observe, released

RELEASE_ATTEMPTS = 5  # reads and writes of the Lease when giving it up, past conflicts

log = logging.getLogger("modelrollout.operator")

Callback = Callable[[], Awaitable[None]]


class LeaderElector:
    def __init__(self, api: Api, namespace: str, name: str, identity: str, timing: ElectionTiming,
                 on_start: Callback, on_stop: Callback, clock: Callable[[], float] = time.monotonic) -> None:
        timing.check()
        self.api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.timing = timing
        self._on_start = on_start
        self._on_stop = on_stop
        self._clock = clock
        self._observed: Observed | None = None
        self._leading = False
        self._renewed_at = 0.0  # monotonic, of the last successful write
        self._lease: dict | None = None  # the Lease as last written or read

    def is_leading(self) -> bool:
        """True while this replica holds the Lease and renewed it within the renew deadline."""
        return self._leading and self._clock() - self._renewed_at < self.timing.renew_deadline_seconds

    async def run(self) -> None:
        """Try to take the Lease, renew it while leading, every retry period; until cancelled."""
        log.info("leader election: %s competing for Lease %s/%s", self.identity, self.namespace, self.name)
        try:
            while True:
                await self._round()
                await asyncio.sleep(self.timing.retry_seconds)
        finally:
            if self._leading:
                self._leading = False
                await self._on_stop()

    async def _round(self) -> None:
        deadline = self.timing.renew_deadline_seconds
        budget = deadline - (self._clock() - self._renewed_at) if self._leading else deadline
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
            # that comes as the renewal's thread ends (it returns the result instead), and the
            # elector of an operator shutting down would then run on, and its stop wait forever.
            async with asyncio.timeout(max(0.1, budget)):
                held = await asyncio.to_thread(self._try)
        except TimeoutError:
            held = False
            log.warning("leader election: the API server did not answer within %.1f s", budget)
        if held and not self._leading:
            self._leading = True
            log.info("leader election: %s now leads (Lease %s/%s)", self.identity, self.namespace, self.name)
            await self._on_start()
        elif self._leading and not held:
            other = self._observed.holder if self._observed else ""
            if (other and other != self.identity) or not self.is_leading():
                self._leading = False
                why = f"{other} holds the Lease" if other and other != self.identity else \
                    f"could not renew for {deadline:g} s"
                log.warning("leader election: %s stops leading: %s", self.identity, why)
                await self._on_stop()

    def _try(self) -> bool:
        """One read and, when allowed, one write of the Lease (in a worker thread)."""
        now = self._clock()
        try:
            lease = self.api.get("Lease", self.namespace, self.name)
            if lease is None:
                body = claimed(None, self.identity, self.timing, micro_time(datetime.now(UTC)))
                body.update(apiVersion="coordination.k8s.io/v1", kind="Lease",
                            metadata={"name": self.name, "namespace": self.namespace})
                written = self.api.create("Lease", self.namespace, body)
            else:
                self._observed = observe(self._observed, lease, now)
                if not may_take(self._observed, self.identity, self.timing, now):
                    return False
                written = self.api.replace("Lease", self.namespace, self.name,
                                           claimed(lease, self.identity, self.timing,
                                                   micro_time(datetime.now(UTC))))
        except ApiException as exc:
            # 409: another replica wrote first (create or a stale resourceVersion).
            log.log(logging.DEBUG if exc.status == 409 else logging.WARNING,
                    "leader election: Lease %s/%s: %s %s", self.namespace, self.name, exc.status, exc.reason)
            return False
        except Exception as exc:  # noqa: BLE001 - unreachable API server: not held this round
            log.warning("leader election: Lease %s/%s: %s", self.namespace, self.name, exc)
            return False
        if holder_of(written) != self.identity:
            return False
        self._observed = observe(self._observed, written, now)
        self._lease = written
        self._renewed_at = now
        return True

    async def release(self) -> None:
        """Give the Lease up (shutting down): no holder, so a follower need not wait it out."""
        if self._lease is None or holder_of(self._lease) != self.identity:
            return
        self._lease = None

        def give_up() -> bool:
            # Read, then write on that version; again on a conflict: a renewal cut short by
            # the shutdown may still be writing (its thread cannot be cancelled).
            for _ in range(RELEASE_ATTEMPTS):
                current = self.api.get("Lease", self.namespace, self.name)
                if current is None or holder_of(current) != self.identity:
                    return False
                try:
                    self.api.replace("Lease", self.namespace, self.name,
                                     released(current, micro_time(datetime.now(UTC))))
                    return True
                except ApiException as exc:
                    if exc.status != 409:
                        raise
            return False

        try:
            async with asyncio.timeout(self.timing.renew_deadline_seconds):  # not wait_for: see _round
                given_up = await asyncio.to_thread(give_up)
            if given_up:
                log.info("leader election: %s released Lease %s/%s", self.identity, self.namespace, self.name)
        except Exception as exc:  # noqa: BLE001 - the Lease then expires by itself
            log.warning("leader election: releasing Lease %s/%s failed: %s", self.namespace, self.name, exc)
