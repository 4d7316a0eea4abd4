"""Carry out a Decision: the actions in order, then the new status in one merge patch,
then the decision's Events.

A failed action raises before the status is written, so the stored status still says
what was true before and the next reconcile decides again from the same facts. Every
write converges: an object is created when missing, and otherwise patched where the live
object does not hold what the operator wants (converge.py), whoever changed it. A field
someone else changed is put back and told in a DriftRepaired Event.

Revisions the actions do not mention and that are neither stable nor candidate are kept
at 0 replicas; scaled-down ones beyond revisionHistoryLimit are deleted.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime

from kubernetes.client.exceptions import ApiException
from modelrollout.serving.contract.routes import REVISION_HEADER

from ..actions import EnsureRevision, RecordEvent, ScaleRevision, SetTraffic
from ..engine import Decision, buildable
from ..routing import PREVIEW, Target, builtin, gateway_api, preview_service, replicas, revision_name
from ..routing.capabilities import CAPABILITIES
from ..spec import Spec
from ..status import DRIFT_REPAIRED, RETIRED_KEYS, RolloutStatus, status_to_doc
from .api import GROUP, VERSION, Api, describe_error
from .cache import Reads
from .converge import plan, scaled, with_last_applied
from .manifests import (
    MODEL_DEPLOYMENT_LABEL,
    REVISION_LABEL,
    deployment,
    entry_service_body,
    preview_service_body,
    revision_service_body,
)
from .observe import revision_endpoints

log = logging.getLogger("modelrollout.operator")

COMPONENT = "modelrollout-operator"
ROUTING_KEYS = ("route", "replicaRouting", "preview")  # status keys the traffic writes own
UNSENT_EVENTS = 50  # refused Events kept per ModelDeployment for the next reconcile, the newest


class Applier:
    def __init__(self, api: Api, instance: str = COMPONENT, reads: Reads | None = None) -> None:
        self.api = api
        self.instance = instance
        self.reads = reads or Reads(api)  # what reconciles read their objects from (the cache)
        # Each ModelDeployment as the API server answered this operator's last write of its
        # status: the next reconcile starts from it (or from a later copy) without a GET.
        self.written: dict[tuple[str, str], dict] = {}
        # A decision's Events the API server refused, oldest first: posted again, in order,
        # after the next reconcile's status write (an Event is not decided twice).
        self.unsent: dict[tuple[str, str], list[tuple[RecordEvent, datetime]]] = {}

    def forget(self, namespace: str, name: str) -> None:
        self.written.pop((namespace, name), None)
        self.unsent.pop((namespace, name), None)

    async def _patch_status(self, target: Target, patch: dict) -> None:
        answer = await asyncio.to_thread(self.api.merge_patch, "ModelDeployment", target.namespace,
                                         target.name, {"status": patch}, "status")
        if isinstance(answer, dict) and answer.get("metadata"):
            self.written[(target.namespace, target.name)] = answer

    async def apply(self, target: Target, spec: Spec, decision: Decision, body: dict, now: datetime) -> bool:
        """Carry out ``decision`` for the ModelDeployment ``body``; True when status was written.

        Traffic is written where the engine put it in the list (before the candidate is
        scaled down on an abort, before the old stable on a promotion), so builtin routing's
        ``status.route`` is patched on its own at that point, ahead of the rest of the status."""
        routing = None
        repaired: list[str] = []
        mentioned: set[str] = set()
        events: list[RecordEvent] = []
        for action in decision.actions:
            if isinstance(action, EnsureRevision):
                mentioned.add(action.revision)
                await self._ensure_revision(target, spec, action, repaired)
            elif isinstance(action, ScaleRevision):
                mentioned.add(action.revision)
                await self._scale(target, action.revision, action.replicas, repaired)
            elif isinstance(action, SetTraffic):
                routing = await self._set_traffic(target, spec, action, body, repaired)
                if "route" in routing:
                    await self._write_route(target, body, routing["route"])
            elif isinstance(action, RecordEvent):
                events.append(action)
        await self._tidy_revisions(target, decision.status, mentioned, spec.revision_history_limit, repaired)
        for what in repaired:
            log.warning("%s/%s: drift repaired: %s", target.namespace, target.name, what)
            events.append(RecordEvent("Warning", DRIFT_REPAIRED, f"{what} (changed outside the operator)"))
        written = await self.write_status(target, body, decision.status, routing)
        # Events once status says it happened: a status write that failed is decided again
        # at the next reconcile, and its Events would otherwise be posted twice. One refused
        # waits, with the ones after it, for the next reconcile.
        key = (target.namespace, target.name)
        waiting = self.unsent.pop(key, []) + [(event, now) for event in events]
        left: list[tuple[RecordEvent, datetime]] = []
        for event, at in waiting:
            if left or not await self.record_event(body, event, at):
                left.append((event, at))
        if left:
            self.unsent[key] = left[-UNSENT_EVENTS:]
        return written

    async def write_status(self, target: Target, body: dict, status: RolloutStatus,
                           routing: dict | None = None) -> bool:
        """One merge patch of status. ``routing``: the status keys the routing backend wrote
        this time (ROUTING_KEYS); one it did not write any more is removed. None: leave them."""
        old = body.get("status") or {}
        # What an earlier operator wrote and no field holds any more goes (null in the patch).
        new = {**dict.fromkeys(RETIRED_KEYS), **status_to_doc(status)}
        if routing is not None:
            new.update(routing)
        patch = merge_diff(old, new)
        if routing is not None:
            gone = [key for key in ROUTING_KEYS if key not in routing and old.get(key) is not None]
            patch.update(dict.fromkeys(gone))
        if not patch:
            return False
        await self._patch_status(target, patch)
        return True

    async def _write_route(self, target: Target, body: dict, route: dict) -> None:
        current = (body.get("status") or {}).get("route") or {}
        patch = merge_diff(current, route)
        # The route is the backend's whole document: a part it no longer has (the mirror
        # after an abort) goes too, or the gateway would read a mirror of a gone revision.
        patch.update({key: None for key in current if key not in route})
        if patch:
            await self._patch_status(target, {"route": patch})
            body.setdefault("status", {})["route"] = route  # the final status patch leaves it be

    async def record_event(self, body: dict, event: RecordEvent, now: datetime) -> bool:
        """Post the Event; False (logged) when the API server refused it."""
        metadata = body.get("metadata") or {}
        at = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        involved = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment",
                    "name": metadata.get("name"), "namespace": metadata.get("namespace")}
        if metadata.get("uid"):
            involved["uid"] = metadata["uid"]
        doc = {
            "apiVersion": "v1", "kind": "Event",
            # A name of our own, as kubectl's events have: not every API server does generateName.
            "metadata": {"name": f"{metadata.get('name')}.{uuid.uuid4().hex[:16]}",
                         "namespace": metadata.get("namespace")},
            "involvedObject": involved, "type": event.type, "reason": event.reason, "message": event.message,
            "source": {"component": COMPONENT}, "reportingComponent": COMPONENT,
            "reportingInstance": self.instance, "firstTimestamp": at, "lastTimestamp": at, "count": 1,
        }
        try:
            await asyncio.to_thread(self.api.create, "Event", metadata.get("namespace"), doc)
        except Exception as exc:  # noqa: BLE001 - an Event is a courtesy; the status says it too
            log.warning("could not record event %s: %s", event.reason, describe_error(exc))
            return False
        return True

    # --- objects ---

    async def _ensure(self, kind: str, namespace: str, wanted: dict, repaired: list[str],
                      live: dict | None = None) -> None:
        """Create ``wanted``, or patch the live object where it does not hold it."""
        name = wanted["metadata"]["name"]
        if live is None:
            live = await self.reads.get(kind, namespace, name)
        if live is None:
            self.reads.stored(kind, await asyncio.to_thread(self.api.create, kind, namespace,
                                                            with_last_applied(wanted)))
            return
        planned = plan(wanted, live)
        if not planned.patch:
            return
        self.reads.stored(kind, await asyncio.to_thread(self.api.merge_patch, kind, namespace, name,
                                                        planned.patch))
        repaired.extend(f"{kind} {name}: {change.describe()}" for change in planned.drift)

    # --- revisions ---

    async def _ensure_revision(self, target: Target, spec: Spec, action: EnsureRevision,
                               repaired: list[str]) -> None:
        built = buildable(spec).get(action.revision)
        if built is None:
            # The spec describes the desired revision and a named fallback; an older one can be
            # scaled, not rebuilt.
            await self._scale(target, action.revision, action.replicas, repaired)
            return
        revision = action.revision
        wanted = deployment(target, built, revision, action.replicas)
        await self._ensure("Deployment", target.namespace, wanted, repaired)
        await self._ensure("Service", target.namespace, revision_service_body(target, revision), repaired)

    async def _scale(self, target: Target, revision: str, replicas: int, repaired: list[str],
                     live: dict | None = None) -> None:
        name = revision_name(target.name, revision)
        if live is None:
            live = await self.reads.get("Deployment", target.namespace, name)
        if live is None:
            log.warning("Deployment %s/%s of revision %s is missing; it cannot be rebuilt from the current "
                        "spec", target.namespace, name, revision)
            return
        await self._ensure("Deployment", target.namespace, scaled(live, replicas), repaired, live)

    async def _tidy_revisions(self, target: Target, status: RolloutStatus, mentioned: set[str], limit: int,
                              repaired: list[str]) -> None:
        """Revisions nobody wants running are kept at 0; scaled-down ones that history no
        longer lists (revisionHistoryLimit) are deleted."""
        in_service = {status.stable_revision, status.candidate_revision}
        kept_by_history = [entry.revision for entry in status.history[-limit:]] if limit else []
        keep = in_service | {status.aborted_revision} | set(kept_by_history)
        deployments = await self.reads.list("Deployment", target.namespace,
                                            {MODEL_DEPLOYMENT_LABEL: target.name})
        for item in deployments:
            revision = ((item.get("metadata") or {}).get("labels") or {}).get(REVISION_LABEL)
            running = (item.get("spec") or {}).get("replicas")
            if revision in mentioned or revision in in_service:
                continue
            if running or revision in keep:
                # Kept at 0 as the operator last wrote it: a drifted template is put back too, or
                # a revert or a keep-warm window would scale up what someone else made of it.
                await self._scale(target, revision, 0, repaired, item)
            if running:
                continue  # deleted on a later reconcile, once its pods had their drain
            if revision in keep:
                continue
            name = item["metadata"]["name"]
            log.info("deleting revision %s of %s/%s: %s", revision, target.namespace, target.name,
                     _why_forgotten(revision, status, limit))
            await self._delete("Deployment", target.namespace, name)
            await self._delete("Service", target.namespace, name)

    # --- traffic ---

    async def _set_traffic(self, target: Target, spec: Spec, action: SetTraffic, body: dict,
                           repaired: list[str]) -> dict:
        """Write the split where the routing backend keeps it; the status keys it fills in
        are returned (builtin's route lives in status; replicas routing reports its split;
        how to reach a candidate on purpose is ``preview``)."""
        routing = spec.traffic_routing.kind
        by_replicas = routing == "replicas"
        entry = entry_service_body(target, action.stable_revision, by_replicas=by_replicas)
        await self._ensure("Service", target.namespace, entry, repaired)
        written = await self._set_preview(target, spec, action, body, repaired)
        if by_replicas:
            return {**written, "replicaRouting": await self._set_replica_traffic(target, action)}
        if (body.get("status") or {}).get("replicaRouting") is not None:
            await self._sync_entry_slices(target, [])  # routing changed: the Service selects again
        if routing == "builtin":
            return {**written, "route": builtin.route(target, action)}
        if routing == "gatewayAPI":
            route = gateway_api.http_route(target, action)
            await self._ensure("HTTPRoute", target.namespace, route, repaired)
            return written
        raise ValueError(f"routing '{routing}' has no backend")

    async def _set_preview(self, target: Target, spec: Spec, action: SetTraffic, body: dict,
                           repaired: list[str]) -> dict:
        """The preview Service selects the candidate while there is one; ``status.preview``
        says how to reach it (with a header where the router reads one)."""
        name = preview_service(target.name)
        if action.candidate_revision is None:
            if (body.get("status") or {}).get("preview") is not None:
                await self._delete("Service", target.namespace, name)
            return {}
        body_of = preview_service_body(target, action.candidate_revision)
        await self._ensure("Service", target.namespace, body_of, repaired)
        preview = {"service": name}
        if CAPABILITIES[spec.traffic_routing.kind].header_preview:
            preview["header"] = f"{REVISION_HEADER}: {PREVIEW}"
        return {"preview": preview}

    async def _set_replica_traffic(self, target: Target, action: SetTraffic) -> dict:
        stable = await revision_endpoints(self.reads, target, action.stable_revision)
        candidate = ()
        if action.candidate_revision is not None:
            candidate = await revision_endpoints(self.reads, target, action.candidate_revision)
        chosen = replicas.split(action.candidate_weight, stable, candidate)
        await self._sync_entry_slices(target, replicas.entry_slices(target, chosen))
        return chosen.status()

    async def _sync_entry_slices(self, target: Target, desired: list[dict]) -> None:
        """Make the entry Service's slices of ours exactly ``desired``: new and changed ones
        first, then the ones no longer wanted, so the Service is never left empty between."""
        listed = await self.reads.list("EndpointSlice", target.namespace, replicas.slice_labels(target))
        current = {item["metadata"]["name"]: item for item in listed}
        for body in desired:
            name = body["metadata"]["name"]
            have = current.pop(name, None)
            if have is None:
                try:
                    created = await asyncio.to_thread(self.api.create, "EndpointSlice", target.namespace,
                                                      body)
                except ApiException as exc:
                    if exc.status != 409:
                        raise
                    # Written by an operator that did not label it yet (so not seen here): take it over.
                    created = await asyncio.to_thread(self.api.merge_patch, "EndpointSlice", target.namespace,
                                                      name, {key: body[key] for key in
                                                             ("metadata", "endpoints", "ports")})
                self.reads.stored("EndpointSlice", created)
            elif any(have.get(key) != body[key] for key in ("endpoints", "ports")):
                self.reads.stored("EndpointSlice", await asyncio.to_thread(
                    self.api.merge_patch, "EndpointSlice", target.namespace, name,
                    {"endpoints": body["endpoints"], "ports": body["ports"]}))
        for name in current:
            await self._delete("EndpointSlice", target.namespace, name)

    async def _delete(self, kind: str, namespace: str, name: str) -> None:
        await asyncio.to_thread(self.api.delete, kind, namespace, name)
        self.reads.forget(kind, namespace, name)


def _why_forgotten(revision: str, status: RolloutStatus, limit: int) -> str:
    """The true reason a scaled-down revision goes, for the log."""
    if limit == 0:
        return "revisionHistoryLimit is 0"
    if any(entry.revision == revision for entry in status.history):
        return f"its history entries are older than the last {limit} kept (revisionHistoryLimit)"
    return "no history entry names it"


def merge_diff(old: dict, new: dict) -> dict:
    """The RFC 7386 merge patch that turns the keys of ``new`` in ``old`` into ``new``'s values:
    changed keys only, and null for what a nested object lost. Keys only ``old`` has stay."""
    patch: dict = {}
    for key, value in new.items():
        before = old.get(key)
        if before == value:
            continue
        if isinstance(value, dict) and isinstance(before, dict):
            nested = merge_diff(before, value)
            nested.update({gone: None for gone in before if gone not in value})
            if nested:  # equal but for keys null in one and absent in the other: nothing to write
                patch[key] = nested
        else:
            patch[key] = value
    return patch
