"""One reconcile of one ModelDeployment: read, parse, observe, decide, apply. Nothing else.

The ModelDeployment is read afresh every time (state lives in its status, never in this
process), so a restarted operator carries on from exactly where the last one wrote.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import httpx

from .actions import RecordEvent
from .engine import decide, reject_spec, revision_of
from .kube.api import Api, describe_error
from .kube.apply import Applier
from .kube.observe import command_of, observe
from .metrics import OperatorMetrics
from .routing import Target
from .routing.capabilities import refuse_unsupported
from .spec import Comparison, InvalidSpec, Spec, parse_spec
from .status import SPEC_INVALID, RolloutStatus, status_from_doc

log = logging.getLogger("modelrollout.operator")

@dataclass
class Shell:
    """What every reconcile shares: the API, an HTTP client, the metrics."""

    api: Api
    applier: Applier
    http: httpx.AsyncClient
    metrics: OperatorMetrics


async def reconcile(shell: Shell, namespace: str, name: str) -> RolloutStatus | None:
    """The status it wrote (or found right); None when the ModelDeployment is gone."""
    started = time.perf_counter()
    try:
        return await _reconcile(shell, namespace, name)
    except Exception:
        shell.metrics.errors.labels(namespace, name).inc()
        raise
    finally:
        shell.metrics.duration.labels(namespace, name).observe(time.perf_counter() - started)


async def _reconcile(shell: Shell, namespace: str, name: str) -> RolloutStatus | None:
    cache = shell.applier.reads.cache
    if cache is not None and not cache.synced.is_set():
        await cache.synced.wait()  # decide only once every object it owns has been listed
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
    _, command_id = command_of(body, status)
    if command_id is not None:
        log.info("ModelDeployment %s/%s: carrying out command %s", namespace, name, observations.command)
        decision = replace(decision, status=decision.status.with_(handled_command=command_id))
    await shell.applier.apply(target, spec, revision_of(spec), decision, body, now)
    shell.metrics.observe(namespace, name, status, decision.status)
    return decision.status


# --- when reconciles keep failing (the API server refusing, unreachable, ...) ---

RECONCILE_FAILING = "ReconcileFailing"  # Warning: several reconciles in a row failed; retrying
RECONCILE_RECOVERED = "ReconcileRecovered"  # Normal: reconciling again after such a streak
FAILURES_BEFORE_WARNING = 3


async def report_failures(shell: Shell, namespace: str, name: str, uid: str | None, failures: int,
                          error: Exception, delay: float, warned: bool) -> bool:
    """A Warning Event once a streak of failed reconciles reaches FAILURES_BEFORE_WARNING
    (tried again at each later failure until it could be posted). True once it was posted."""
    if warned or failures < FAILURES_BEFORE_WARNING:
        return warned
    message = (f"{failures} reconciles in a row failed, the last: {describe_error(error)}; "
               f"retrying with backoff (next in {delay:g} s); status is left as it was")
    return await shell.applier.record_event(_involved(namespace, name, uid),
                                            RecordEvent("Warning", RECONCILE_FAILING, message),
                                            datetime.now(UTC))


async def report_recovery(shell: Shell, namespace: str, name: str, uid: str | None, failures: int,
                          seconds: float, warned: bool, last_error: Exception | None) -> None:
    """After a streak of failures: a Normal Event that it is over, when the streak was long
    enough to be told. A Warning that could not be posted meanwhile (the API server refused
    Events too) is posted first, so the Events still say what happened."""
    if failures < FAILURES_BEFORE_WARNING:
        return
    now = datetime.now(UTC)
    involved = _involved(namespace, name, uid)
    if not warned and last_error is not None:
        message = (f"{failures} reconciles in a row failed over {seconds:.0f} s, the last: "
                   f"{describe_error(last_error)}; status was left as it was")
        await shell.applier.record_event(involved, RecordEvent("Warning", RECONCILE_FAILING, message), now)
    message = f"reconciling again after {failures} failed attempts over {seconds:.0f} s"
    await shell.applier.record_event(involved, RecordEvent("Normal", RECONCILE_RECOVERED, message), now)


def _involved(namespace: str, name: str, uid: str | None) -> dict:
    return {"metadata": {"name": name, "namespace": namespace, **({"uid": uid} if uid else {})}}


def parse(body: dict) -> Spec:
    """The spec, refused where its routing backend cannot carry it out."""
    return refuse_unsupported(parse_spec(body.get("spec")))


def target_of(body: dict, spec: Spec | None) -> Target:
    metadata = body.get("metadata") or {}
    name = metadata["name"]
    return Target(name=name, namespace=metadata["namespace"],
                  model=(spec.model.name if spec and spec.model.name else name),
                  options=spec.routing_options if spec else {}, uid=metadata.get("uid"),
                  comparison=spec.comparison if spec else Comparison())
