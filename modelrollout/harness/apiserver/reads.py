"""The read side of the harness's API server: lists and gets (as Tables when kubectl asks),
label and field selectors, and watches from a resourceVersion with a timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import kmock

from ..api import scale, tables
from ..api.selectors import field_selector, label_selector
from .requests import api_version, entry, revision_of, wants_table


class Reads:
    """Mixed into ApiServer; kmock's reactions, when a test adds some, come before these."""

    __slots__ = ()

    def _matching(self, request: kmock.Request) -> list[dict]:
        labels = label_selector(request.params.get("labelSelector"))
        fields = field_selector(request.params.get("fieldSelector"))
        found = []
        for (resource, namespace, name), obj in self.objects.items():
            if resource != request.resource or obj.deleted:
                continue
            if request.namespace is not None and namespace != request.namespace:
                continue
            if request.name is not None and name != request.name:
                continue
            raw = obj.raw
            if labels(raw) and fields(raw):
                found.append(raw)
        return sorted(found, key=lambda o: ((o.get("metadata") or {}).get("namespace") or "",
                                            (o.get("metadata") or {}).get("name") or ""))

    async def _serve_list(self, request: kmock.Request) -> kmock.Payload:
        self._check_known(request)
        async with self._lock:
            items = self._matching(request)
            revision = str(self._revision)
        if wants_table(request):
            return tables.table(items, self._columns(request.resource), datetime.now(UTC),
                                request.params.get("includeObject", "Metadata"), revision)
        info = entry(self.resources, request.resource)
        kind = (info.kind if info is not None and info.kind else request.resource.plural.capitalize())
        return {"kind": f"{kind}List", "apiVersion": api_version(request.resource),
                "metadata": {"resourceVersion": revision}, "items": items}

    async def _serve_fetch(self, request: kmock.Request) -> kmock.Payload:
        self._check_known(request)
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            stored = entry(self.objects, key)
            if stored is None or stored.deleted:
                raise self._not_found(request)
            obj = stored.raw
        columns = self._columns(request.resource)
        if request.subresource == "scale":
            obj, columns = scale.scale_of(obj, self._scale_paths(request)), tables.builtin_columns("Scale")
        if wants_table(request) and request.subresource in (None, "scale"):
            return tables.table([obj], columns, datetime.now(UTC),
                                request.params.get("includeObject", "Metadata"), revision_of(obj))
        return obj

    async def _serve_watch(self, request: kmock.Request) -> kmock.Response:
        self._check_known(request)
        labels = label_selector(request.params.get("labelSelector"))
        fields = field_selector(request.params.get("fieldSelector"))
        return kmock.Response(headers={"Content-Type": "application/json"},
                              payload=self._watch_events(request, labels, fields))

    async def _watch_events(self, request: kmock.Request, labels: Any, fields: Any) -> AsyncIterator:
        yield b""  # the headers go out now, even if nothing happens for a while
        since = request.params.get("resourceVersion") or "0"
        since_number = int(since) if since.isdigit() else 0
        timeout = request.params.get("timeoutSeconds")
        deadline = time.monotonic() + float(timeout) if timeout and timeout.isdigit() else None
        table = wants_table(request)
        columns = self._columns(request.resource) if table else []
        include = request.params.get("includeObject", "Metadata")
        bus = self._buses[request.resource]
        async with self._lock:  # writes publish under this lock: nothing falls between the two
            marker = await bus.mark()
            initial = [("ADDED", o) for o in self._matching(request)
                       if int(revision_of(o) or 0) > since_number]
            if since_number:  # deletions since that version, as a watch cache replays them
                initial += [("DELETED", o)
                            for o in self._deleted_since(request, since_number, labels, fields)]
            initial.sort(key=lambda pair: int(revision_of(pair[1]) or 0))
        try:
            for kind, obj in initial:
                yield self._event(kind, obj, table, columns, include)
            events = aiter(bus.stream(since=marker))
            while True:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return
                try:
                    event = await asyncio.wait_for(anext(events), remaining)
                except TimeoutError:
                    return
                obj = event.get("object") or {}
                meta = obj.get("metadata") or {}
                if request.namespace is not None and meta.get("namespace") != request.namespace:
                    continue
                if request.name is not None and meta.get("name") != request.name:
                    continue
                if labels(obj) and fields(obj):
                    yield self._event(event["type"], obj, table, columns, include)
        finally:
            await bus.unmark(marker)

    def _deleted_since(self, request: kmock.Request, since: int, labels: Any, fields: Any) -> list[dict]:
        """Objects of the request's resource deleted after resourceVersion ``since``, and not
        created again since (their new version is sent as it is)."""
        gone = []
        for resource, obj in self._tombstones:
            meta = obj.get("metadata") or {}
            if resource != request.resource or int(revision_of(obj) or 0) <= since:
                continue
            if request.namespace is not None and meta.get("namespace") != request.namespace:
                continue
            if request.name is not None and meta.get("name") != request.name:
                continue
            again = entry(self.objects, (resource, meta.get("namespace"), meta.get("name")))
            if again is not None and not again.deleted:
                continue
            if labels(obj) and fields(obj):
                gone.append(obj)
        return gone

    def _event(self, kind: str, obj: dict, table: bool, columns: list, include: str) -> dict:
        if not table:
            return {"type": kind, "object": obj}
        return {"type": kind, "object": tables.table([obj], columns, datetime.now(UTC), include,
                                                     revision_of(obj))}

    def _columns(self, resource: kmock.resource) -> list[tables.Column]:
        found = self._crd_versions.get(resource)
        if found is not None:
            return tables.columns_of_crd(found[1])
        info = entry(self.resources, resource)
        return tables.builtin_columns(info.kind if info is not None and info.kind else "")

    # --- discovery and OpenAPI ---
