"""kopf handlers: watch ModelDeployments and keep one reconcile loop per object.

kopf's watch tells us which ModelDeployments exist and when one changes; each gets a
loop that reconciles it at once after a change, then every ``tick_seconds`` while a
rollout is under way and every ``resync_seconds`` once it has settled (nothing pending
but a change: see ``settled``). Changes of the objects it owns reach the loop too
(kube/cache.py wakes it), so a settled ModelDeployment costs nothing between them.

The loop is ours rather than a kopf timer or daemon: those put a finalizer on the
object, and the operator writes nothing but the status subresource of a ModelDeployment
(GitOps tools see no drift, and deleting one never waits for the operator).

With leader election only the leader runs loops: ``follow()`` stops every loop at once
(the replica lost the Lease), ``lead()`` starts one for every ModelDeployment seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import kopf

from .kube.api import GROUP, PLURAL, VERSION, describe_error, is_api_answer, retry_after_seconds
from .reconcile import Shell, Trouble, reconcile, tell
from .status import DEGRADED, HEALTHY, RolloutStatus, parse_time

log = logging.getLogger("modelrollout.operator")

_BACKOFF_SECONDS = (1, 2, 5, 10, 30)


def settled(status: RolloutStatus | None) -> bool:
    """Nothing will happen to it on its own: no candidate, no revision kept warm, and a
    phase that waits for a change (Healthy, or Degraded until a new spec or a retry).
    Everything else (a rollout, a stable not ready yet) is reconciled every tick."""
    return status is not None and status.candidate_revision is None and not status.scale_downs \
        and status.phase in (HEALTHY, DEGRADED)


class Loops:
    """One reconcile loop per ModelDeployment, started on first sight, stopped on deletion.
    ``active`` False (a follower under leader election): objects are remembered, no loop runs."""

    def __init__(self, shell: Shell, tick_seconds: float, resync_seconds: float = 300.0,
                 active: bool = True, may_act: Callable[[], bool] = lambda: True) -> None:
        self.shell = shell
        self.tick_seconds = tick_seconds
        self.resync_seconds = max(resync_seconds, tick_seconds)
        self.active = active
        self.may_act = may_act  # the leader election's fence, read before every reconcile
        self._known: dict[tuple[str, str], str | None] = {}  # (namespace, name) -> uid
        self._bodies: dict[tuple[str, str], dict] = {}  # the object as the watch last delivered it
        self._loops: dict[tuple[str, str], tuple[asyncio.Task, asyncio.Event]] = {}

    def __len__(self) -> int:
        return len(self._loops)

    def seen(self, namespace: str, name: str, uid: str | None = None, body: dict | None = None) -> None:
        """The ModelDeployment exists and may have changed (``body``: as the watch delivered
        it): reconcile it now."""
        key = (namespace, name)
        self._known[key] = uid or self._known.get(key)
        if body is not None:
            self._bodies[key] = body
        if not self.active:
            return
        if key in self._loops:
            self._loops[key][1].set()  # changed: reconcile now
            return
        wake = asyncio.Event()
        task = asyncio.create_task(self._loop(namespace, name, wake), name=f"reconcile {namespace}/{name}")
        self._loops[key] = (task, wake)

    def wake(self, namespace: str, name: str) -> None:
        """Something it owns changed: reconcile now, if it has a loop."""
        entry = self._loops.get((namespace, name))
        if entry is not None:
            entry[1].set()

    async def deleted(self, namespace: str, name: str) -> None:
        self._known.pop((namespace, name), None)
        self._bodies.pop((namespace, name), None)
        self.shell.applier.forget(namespace, name)
        entry = self._loops.pop((namespace, name), None)
        if entry is not None:
            entry[0].cancel()
            await asyncio.gather(entry[0], return_exceptions=True)
        self.shell.metrics.forget(namespace, name)

    async def lead(self) -> None:
        """This replica leads: a loop for every ModelDeployment seen."""
        self.active = True
        for namespace, name in list(self._known):
            self.seen(namespace, name)
        log.info("reconciling %d ModelDeployment(s)", len(self._loops))

    async def follow(self) -> None:
        """This replica stopped leading: every loop stops now (a reconcile is cut short)."""
        self.active = False
        await self.close()
        log.info("stopped every reconcile loop: another replica leads")

    async def close(self) -> None:
        tasks = [task for task, _ in self._loops.values()]
        self._loops.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self, namespace: str, name: str, wake: asyncio.Event) -> None:
        trouble = Trouble()
        loop = asyncio.get_running_loop()
        read_at = None  # when the object was last read from the API server, not from the watch
        while True:
            wake.clear()
            if not self.may_act():
                delay = self.tick_seconds  # the Lease was not renewed in time: hands off
            else:
                uid = self._known.get((namespace, name))
                # A tick starts from the watch's copy (or the operator's own last write): no
                # GET. The loop's first reconcile (a new leader's too) and one per resync
                # period read the object, in case the watch missed something.
                fresh = read_at is None or loop.time() - read_at >= self.resync_seconds
                seen = None if fresh else self._bodies.get((namespace, name))
                if seen is None:
                    read_at = loop.time()
                try:
                    status = await reconcile(self.shell, namespace, name, seen)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - logged, counted, told, retried with backoff
                    delay = max(_BACKOFF_SECONDS[min(trouble.failures, len(_BACKOFF_SECONDS) - 1)],
                                retry_after_seconds(exc))
                    trouble.failed(exc, loop.time())
                    # A traceback only for what is not an API server's answer (a bug of ours).
                    log.warning("reconcile of %s/%s failed (attempt %d): %s; retrying in %s s", namespace,
                                name, trouble.failures, describe_error(exc), delay,
                                exc_info=not is_api_answer(exc))
                    await tell(self.shell, namespace, name, uid, trouble, loop.time())
                    # The whole backoff, whatever changes meanwhile: a failing API server is not
                    # asked again at every event (a change that came is handled right after).
                    await asyncio.sleep(delay)
                    continue
                trouble.succeeded(loop.time())
                await tell(self.shell, namespace, name, uid, trouble, loop.time())
                delay = self.resync_seconds if settled(status) else self.tick_seconds
                wake_at = status.guard.next_at if status is not None and status.guard else None
                if wake_at is not None:  # the guard measures on its own schedule
                    due = (parse_time(wake_at) - datetime.now(UTC)).total_seconds()
                    delay = min(delay, max(self.tick_seconds, due))
            # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation that
            # comes as the wake-up does, and close() would then wait for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await wake.wait()


def register(registry: kopf.OperatorRegistry, loops: Loops) -> None:
    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def model_deployment_event(event: dict, namespace: str, name: str, uid: str | None = None,
                                     **_) -> None:
        if event.get("type") == "DELETED":
            await loops.deleted(namespace, name)
        else:
            loops.seen(namespace, name, uid, event.get("object"))

    @kopf.on.cleanup(registry=registry)
    async def stop_loops(**_) -> None:
        await loops.close()

    @kopf.on.probe(id="reconcile-loops", registry=registry)
    def count_loops(**_) -> int:
        return len(loops)
