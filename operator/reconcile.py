"""One reconcile of one ModelDeployment: read, parse, observe, decide, apply. Nothing else.

The ModelDeployment is read afresh every time (state lives in its status, never in this
process), so a restarted operator carries on from exactly where the last one wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import httpx

from .actions import RecordEvent
from .engine import decide, reject_spec
from .kube.api import Api, describe_error, latest, short_error, urgent
from .kube.apply import Applier
from .kube.observe import command_of, observe
from .metrics import OperatorMetrics
from .routing import Target, pod_selector
from .routing.capabilities import refuse_unsupported
from .spec import Comparison, InvalidSpec, Spec, parse_spec
from .status import SPEC_INVALID, RolloutStatus, rolls_back, status_from_doc

log = logging.getLogger("modelrollout.operator")

@dataclass
class Shell:
    """What every reconcile shares: the API, an HTTP client, the metrics."""

    api: Api
    applier: Applier
    http: httpx.AsyncClient
    metrics: OperatorMetrics


async def reconcile(shell: Shell, namespace: str, name: str,
                    seen: dict | None = None) -> RolloutStatus | None:
    """The status it wrote (or found right); None when the ModelDeployment is gone.

    ``seen``: the ModelDeployment as the watch last delivered it. The reconcile starts from
    it or from the operator's own last write, whichever is later, with no GET; without it
    (a loop's first reconcile, a resync) it reads the object from the API server."""
    started = time.perf_counter()
    try:
        return await _reconcile(shell, namespace, name, seen)
    except Exception:
        shell.metrics.errors.labels(namespace, name).inc()
        raise
    finally:
        shell.metrics.duration.labels(namespace, name).observe(time.perf_counter() - started)


async def _reconcile(shell: Shell, namespace: str, name: str, seen: dict | None) -> RolloutStatus | None:
    cache = shell.applier.reads.cache
    if cache is not None and not cache.synced.is_set():
        await cache.synced.wait()  # decide only once every object it owns has been listed
    if seen is not None:
        body = copy.deepcopy(latest(seen, shell.applier.written.get((namespace, name))))
    else:
        body = await asyncio.to_thread(shell.api.get, "ModelDeployment", namespace, name)
    if body is None:
        return None  # deleted meanwhile; the children go with it (ownerReferences)
    now = datetime.now(UTC)
    status = status_from_doc(body.get("status") or {})
    metadata = body.get("metadata") or {}
    try:
        spec = parse(body)
    except InvalidSpec as exc:
        problem = str(exc)
        new = reject_spec(status, problem, int(metadata.get("generation") or 0), now)
        if status.reason != SPEC_INVALID or status.message != new.message:
            log.warning("ModelDeployment %s/%s has an invalid spec: %s", namespace, name, problem)
            await shell.applier.record_event(body, RecordEvent("Warning", SPEC_INVALID, problem), now)
        await shell.applier.write_status(target_of(body, None), body, new)
        return new
    target = target_of(body, spec)
    observations = await observe(shell.applier.reads, shell.http, target, spec, status, body, now)
    decision = decide(spec, status, observations, now)
    decision = replace(decision, status=decision.status.with_(selector=pod_selector(name)))
    _, command_id = command_of(status)
    if command_id is not None:
        log.info("ModelDeployment %s/%s: carrying out command %s", namespace, name, observations.command)
        decision = replace(decision, status=decision.status.with_(handled_command=command_id))
    with urgent() if rolls_back(status, decision.status) else contextlib.nullcontext():
        await shell.applier.apply(target, spec, decision, body, now)
    shell.metrics.observe(namespace, name, status, decision.status, spec, observations.measurements)
    return decision.status


# --- when reconciles keep failing (the API server refusing, unreachable, ...) ---

RECONCILE_FAILING = "ReconcileFailing"  # Warning: several reconciles in a row failed; retrying
RECONCILE_RECOVERED = "ReconcileRecovered"  # Normal: reconciling again after such a streak
FAILURES_BEFORE_WARNING = 3


@dataclass
class Trouble:
    """One ModelDeployment's failed reconciles in a row, and the Events about them that are
    not posted yet: an API server that refuses writes usually refuses Events too, so they
    wait (in order) until one can be posted. A Warning once a streak reaches
    FAILURES_BEFORE_WARNING, a Normal one when it ends."""

    failures: int = 0
    since: float = 0.0
    kinds: Counter = field(default_factory=Counter)  # failures of the streak by kind (short_error)
    last: str = ""  # the last failure, described
    warned: bool = False  # this streak's Warning is posted or waiting
    pending: list[RecordEvent | None] = field(default_factory=list)  # None: this streak's Warning

    def failed(self, error: Exception, now: float) -> None:
        if not self.failures:
            self.since = now
        self.failures += 1
        self.kinds[short_error(error)] += 1
        self.last = describe_error(error)
        if self.failures >= FAILURES_BEFORE_WARNING and not self.warned:
            self.warned = True
            self.pending.append(None)

    def succeeded(self, now: float) -> None:
        if self.failures >= FAILURES_BEFORE_WARNING:
            over = f"{self.failures} failed attempts over {now - self.since:.0f} s ({_counted(self.kinds)})"
            # A Warning still waiting tells the whole streak, now that it is over.
            self.pending = [event or self.warning(now, over=True) for event in self.pending]
            self.pending.append(RecordEvent("Normal", RECONCILE_RECOVERED, f"reconciling again after {over}"))
        self.failures, self.kinds, self.last, self.warned = 0, Counter(), "", False

    def warning(self, now: float, over: bool = False) -> RecordEvent:
        told = (f"{self.failures} reconciles in a row failed over {now - self.since:.0f} s "
                f"({_counted(self.kinds)}), the last: {self.last}; ")
        told += "status was left as it was" if over else "retrying with backoff; status is left as it was"
        return RecordEvent("Warning", RECONCILE_FAILING, told)


async def tell(shell: Shell, namespace: str, name: str, uid: str | None, trouble: Trouble,
               now: float) -> None:
    """Post the waiting Events, oldest first, until one is refused (tried again next time)."""
    involved = {"metadata": {"name": name, "namespace": namespace, **({"uid": uid} if uid else {})}}
    while trouble.pending:
        event = trouble.pending[0] or trouble.warning(now)
        if not await shell.applier.record_event(involved, event, datetime.now(UTC)):
            return
        trouble.pending.pop(0)


def _counted(kinds: Counter) -> str:
    return ", ".join(f"{kind} x{count}" for kind, count in kinds.most_common())


def parse(body: dict) -> Spec:
    """The spec, refused where its routing backend cannot carry it out."""
    return refuse_unsupported(parse_spec(body.get("spec")))


def target_of(body: dict, spec: Spec | None) -> Target:
    metadata = body.get("metadata") or {}
    name = metadata["name"]
    return Target(name=name, namespace=metadata["namespace"],
                  model=(spec.model.name if spec and spec.model.name else name),
                  options=spec.traffic_routing.options if spec else {}, uid=metadata.get("uid"),
                  comparison=spec.comparison if spec else Comparison())
