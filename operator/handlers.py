"""kopf handlers: watch ModelDeployments and keep one reconcile loop per object.

kopf's watch tells us which ModelDeployments exist and when one changes; each gets a
loop that reconciles it every ``tick_seconds`` and at once after a change. The loop is
ours rather than a kopf timer or daemon: those put a finalizer on the object, and the
operator writes nothing but the status subresource of a ModelDeployment (GitOps tools
see no drift, and deleting one never waits for the operator).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import kopf

from .kube.api import GROUP, PLURAL, VERSION
from .reconcile import Shell, reconcile

log = logging.getLogger("modelrollout.operator")

_BACKOFF_SECONDS = (1, 2, 5, 10, 30)


class Loops:
    """One reconcile loop per ModelDeployment, started on first sight, stopped on deletion."""

    def __init__(self, shell: Shell, tick_seconds: float) -> None:
        self.shell = shell
        self.tick_seconds = tick_seconds
        self._loops: dict[tuple[str, str], tuple[asyncio.Task, asyncio.Event]] = {}

    def __len__(self) -> int:
        return len(self._loops)

    def seen(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        if key in self._loops:
            self._loops[key][1].set()  # changed: reconcile now
            return
        wake = asyncio.Event()
        task = asyncio.create_task(self._loop(namespace, name, wake), name=f"reconcile {namespace}/{name}")
        self._loops[key] = (task, wake)

    async def deleted(self, namespace: str, name: str) -> None:
        entry = self._loops.pop((namespace, name), None)
        if entry is not None:
            entry[0].cancel()
            await asyncio.gather(entry[0], return_exceptions=True)
        self.shell.metrics.forget(namespace, name)

    async def close(self) -> None:
        tasks = [task for task, _ in self._loops.values()]
        self._loops.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self, namespace: str, name: str, wake: asyncio.Event) -> None:
        failures = 0
        while True:
            wake.clear()
            try:
                await reconcile(self.shell, namespace, name)
                failures = 0
                delay = self.tick_seconds
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - logged, counted, retried with backoff
                delay = _BACKOFF_SECONDS[min(failures, len(_BACKOFF_SECONDS) - 1)]
                failures += 1
                log.exception("reconcile of %s/%s failed (attempt %d); retrying in %s s",
                              namespace, name, failures, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), delay)


def register(registry: kopf.OperatorRegistry, loops: Loops) -> None:
    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def model_deployment_event(event: dict, namespace: str, name: str, **_) -> None:
        if event.get("type") == "DELETED":
            await loops.deleted(namespace, name)
        else:
            loops.seen(namespace, name)

    @kopf.on.cleanup(registry=registry)
    async def stop_loops(**_) -> None:
        await loops.close()

    @kopf.on.probe(id="reconcile-loops", registry=registry)
    def count_loops(**_) -> int:
        return len(loops)
