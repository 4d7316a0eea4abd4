"""What the operator owns, kept in memory from watches (an informer, as client-go has).

Deployments, Services, Pods and EndpointSlices carrying the label
``modelrollout.io/model-deployment`` are listed once and then watched, with that label as
a server-side selector; reconciles read them from here instead of asking the API server
at every tick. Every change seen wakes the reconcile loop of the ModelDeployment the
object belongs to (its label), so a drifted Deployment or a pod that turned ready is
handled at once, and a ModelDeployment with nothing going on costs nothing between
changes.

- Read your own writes: what a create or patch answered is stored at once (the watch
  brings the same object a moment later; an older version never replaces a newer one).
- A watch that ends resumes from the last resourceVersion; 410 Gone or any failure
  relists (after a backoff) and wakes the owners of whatever differs from before.
- Objects without the label (the replicas-routing entry EndpointSlices, HTTPRoutes) are
  not cached: ``Reads`` asks the API server for those.

The official client is synchronous, so each (kind, namespace) has a thread that lists,
then watches, and stores under a lock; wake-ups go to the event loop thread-safely.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes.client.exceptions import ApiException

from ..routing import MODEL_DEPLOYMENT_LABEL
from .api import Api, describe_error

log = logging.getLogger("modelrollout.operator")

CACHED_KINDS = ("Deployment", "Service", "Pod", "EndpointSlice")
_WATCH_SECONDS = (240, 360)  # spread, so that many watches do not relist together
_READ_MARGIN_SECONDS = 30.0
_BACKOFF_FIRST_SECONDS = 0.5
_BACKOFF_MAX_SECONDS = 30.0
_QUIET_WATCH_SECONDS = 1.0

Wake = Callable[[str, str], None]  # (namespace, ModelDeployment name)


class ChildCache:
    """``namespaces`` empty: every namespace. ``wake`` is called on the event loop."""

    def __init__(self, api: Api, namespaces: tuple[str, ...], wake: Wake) -> None:
        self.api = api
        self._scopes: tuple[str | None, ...] = tuple(dict.fromkeys(namespaces)) or (None,)
        self._wake = wake
        self._lock = threading.Lock()
        # kind -> (namespace, name) -> object, and kind -> (namespace, ModelDeployment) -> names.
        self._objects: dict[str, dict[tuple[str, str], dict]] = {k: {} for k in CACHED_KINDS}
        self._owned: dict[str, dict[tuple[str, str], set[str]]] = {k: {} for k in CACHED_KINDS}
        self._watchers: list[_Watcher] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.synced = asyncio.Event()
        self._pending = 0

    # --- lifecycle ---

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._watchers = [_Watcher(self, kind, scope) for kind in CACHED_KINDS for scope in self._scopes]
        self._pending = len(self._watchers)
        for watcher in self._watchers:
            watcher.thread.start()

    async def close(self) -> None:
        for watcher in self._watchers:
            watcher.stop()
        await asyncio.to_thread(_join, self._watchers)
        self.api.close()

    def __len__(self) -> int:
        with self._lock:
            return sum(len(objects) for objects in self._objects.values())

    # --- reads (on the event loop; the lock keeps them whole) ---

    def get(self, kind: str, namespace: str, name: str) -> dict | None:
        with self._lock:
            return self._objects[kind].get((namespace, name))

    def list(self, kind: str, namespace: str, labels: dict) -> list[dict]:
        """Objects of ``kind`` in ``namespace`` with every label of ``labels``, which must name
        the ModelDeployment (MODEL_DEPLOYMENT_LABEL): that is how they are filed."""
        owner = labels[MODEL_DEPLOYMENT_LABEL]
        with self._lock:
            names = self._owned[kind].get((namespace, owner), ())
            objects = [self._objects[kind][(namespace, name)] for name in names]
        return [o for o in objects if all(_labels(o).get(k) == v for k, v in labels.items())]

    # --- what the operator wrote or deleted ---

    def stored(self, kind: str, obj: dict) -> None:
        """A create's or patch's answer: the object as it now is."""
        if kind in CACHED_KINDS and isinstance(obj, dict) and _owner(obj):
            with self._lock:
                self._put(kind, obj)

    def forget(self, kind: str, namespace: str, name: str) -> None:
        if kind in CACHED_KINDS:
            with self._lock:
                self._remove(kind, (namespace, name))

    # --- from the watcher threads ---

    def _listed(self, kind: str, scope: str | None, objects: list[dict]) -> None:
        """A (re)list: replace what was known in the scope; wake the owners of what differs."""
        fresh = {(_namespace(o), _name(o)): o for o in objects if _owner(o) is not None}
        changed: set[tuple[str, str]] = set()
        with self._lock:
            known = self._objects[kind]
            for key in [k for k in known if scope is None or k[0] == scope]:
                if key not in fresh:
                    changed.add(_owner(known[key]))
                    self._remove(kind, key)
            for key, obj in fresh.items():
                have = known.get(key)
                if have is None or _version(have) != _version(obj):
                    changed.add(_owner(obj))
                    if have is not None:
                        self._remove(kind, key)  # its owner label may have changed
                    self._put(kind, obj)
        self._notify(changed, first_list=True)

    def _changed(self, kind: str, event_type: str, obj: dict) -> None:
        owner = _owner(obj)
        if owner is None:
            return
        with self._lock:
            if event_type == "DELETED":
                self._remove(kind, (_namespace(obj), _name(obj)))
            elif not self._put(kind, obj):
                return  # older than what a write of ours already stored: nothing new
        self._notify({owner})

    def _put(self, kind: str, obj: dict) -> bool:
        """Store ``obj`` unless a newer version is there; True when stored. Under the lock."""
        key = (_namespace(obj), _name(obj))
        have = self._objects[kind].get(key)
        if have is not None and _newer(have, obj):
            return False
        if have is not None and _owner(have) != _owner(obj):
            self._remove(kind, key)
        self._objects[kind][key] = obj
        self._owned[kind].setdefault(_owner(obj), set()).add(key[1])
        return True

    def _remove(self, kind: str, key: tuple[str, str]) -> None:
        obj = self._objects[kind].pop(key, None)
        if obj is not None:
            names = self._owned[kind].get(_owner(obj))
            if names is not None:
                names.discard(key[1])
                if not names:
                    del self._owned[kind][_owner(obj)]

    def _notify(self, owners: set[tuple[str, str]], first_list: bool = False) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: the operator is stopping
            for namespace, name in owners:
                loop.call_soon_threadsafe(self._wake, namespace, name)
            if first_list:
                loop.call_soon_threadsafe(self._one_synced)

    def _one_synced(self) -> None:
        self._pending -= 1
        if self._pending <= 0:
            self.synced.set()


class Reads:
    """Where a reconcile reads the objects it owns: the cache when it has them, the API
    server otherwise (no cache: unit tests, tools; a kind or a selector it does not keep)."""

    def __init__(self, api: Api, cache: ChildCache | None = None) -> None:
        self.api = api
        self.cache = cache

    async def get(self, kind: str, namespace: str, name: str) -> dict | None:
        if self.cache is not None and kind in CACHED_KINDS:
            return self.cache.get(kind, namespace, name)
        return await asyncio.to_thread(self.api.get, kind, namespace, name)

    async def list(self, kind: str, namespace: str, labels: dict) -> list[dict]:
        if self.cache is not None and kind in CACHED_KINDS and MODEL_DEPLOYMENT_LABEL in labels:
            return self.cache.list(kind, namespace, labels)
        return await asyncio.to_thread(self.api.list, kind, namespace, labels)

    def stored(self, kind: str, obj: dict) -> dict:
        """What a create or patch answered, kept for the next read."""
        if self.cache is not None:
            self.cache.stored(kind, obj)
        return obj

    def forget(self, kind: str, namespace: str, name: str) -> None:
        if self.cache is not None:
            self.cache.forget(kind, namespace, name)


class _Watcher:
    """List, then watch, one kind in one namespace (or all), on a thread of its own."""

    def __init__(self, cache: ChildCache, kind: str, scope: str | None) -> None:
        self.cache = cache
        self.kind = kind
        self.scope = scope
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._response: Any = None
        self.thread = threading.Thread(target=self._run, name=f"cache-{kind}-{scope or '*'}", daemon=True)

    def stop(self) -> None:
        with self._lock:
            self._stopping.set()
            if self._response is not None:
                _cut(self._response)

    def _run(self) -> None:
        where = f"{self.kind}s in {self.scope or 'all namespaces'}"
        delay = _BACKOFF_FIRST_SECONDS
        version: str | None = None
        while not self._stopping.is_set():
            try:
                if version is None:
                    objects, version = self._list()
                    self.cache._listed(self.kind, self.scope, objects)
                started = time.monotonic()
                version, saw_events = self._watch(version)
                if saw_events:
                    delay = _BACKOFF_FIRST_SECONDS
                elif time.monotonic() - started < _QUIET_WATCH_SECONDS:
                    self._stopping.wait(delay)  # a watch that ends at once must not spin
                    delay = min(delay * 2, _BACKOFF_MAX_SECONDS)
            except Exception as exc:  # noqa: BLE001 - a dead watcher would freeze what reconciles see
                if self._stopping.is_set():
                    return
                version = None  # whatever was missed, a relist catches up
                if isinstance(exc, ApiException) and exc.status == 410:
                    continue
                pause = delay * random.uniform(0.5, 1.0)
                log.warning("watching %s failed (%s); relisting in %.1f s", where, describe_error(exc), pause)
                self._stopping.wait(pause)
                delay = min(delay * 2, _BACKOFF_MAX_SECONDS)

    def _list(self) -> tuple[list[dict], str]:
        doc = self.cache.api.call("GET", self.cache.api.path(self.kind, self.scope),
                                  query=[("labelSelector", MODEL_DEPLOYMENT_LABEL)])
        items = [i for i in doc.get("items") or [] if isinstance(i, dict)]
        return items, str((doc.get("metadata") or {}).get("resourceVersion") or "")

    def _watch(self, version: str) -> tuple[str, bool]:
        seconds = random.randint(*_WATCH_SECONDS)
        query = [("labelSelector", MODEL_DEPLOYMENT_LABEL), ("watch", "true"),
                 ("allowWatchBookmarks", "true"), ("timeoutSeconds", str(seconds))]
        if version:
            query.append(("resourceVersion", version))
        response = self.cache.api.open_stream(self.cache.api.path(self.kind, self.scope), query,
                                              read_timeout_seconds=seconds + _READ_MARGIN_SECONDS)
        with self._lock:
            if self._stopping.is_set():
                response.release_conn()
                return version, False
            self._response = response
        saw_events = False
        try:
            for event in _events(response):
                if self._stopping.is_set():
                    break
                saw_events = True
                obj = event.get("object") or {}
                kind = event.get("type")
                if kind == "ERROR":
                    raise ApiException(status=int(obj.get("code") or 500), reason=obj.get("reason"))
                version = (obj.get("metadata") or {}).get("resourceVersion") or version
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self.cache._changed(self.kind, kind, obj)
        finally:
            with self._lock:
                self._response = None
            with contextlib.suppress(Exception):
                response.release_conn()
        return version, saw_events


def _events(response: Any) -> Iterator[dict]:
    """The watch stream's JSON lines, as they come."""
    pending = b""
    for chunk in response.stream(64 * 1024, decode_content=True):
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)
    if pending.strip():
        yield json.loads(pending)


def _labels(obj: dict) -> dict:
    return (obj.get("metadata") or {}).get("labels") or {}


def _owner(obj: dict) -> tuple[str, str] | None:
    name = _labels(obj).get(MODEL_DEPLOYMENT_LABEL)
    namespace = (obj.get("metadata") or {}).get("namespace")
    return (namespace, name) if name and namespace else None


def _namespace(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("namespace") or ""


def _name(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("name") or ""


def _version(obj: dict) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _newer(have: dict, other: dict) -> bool:
    """True when ``have`` is a later version than ``other``. resourceVersions are opaque to
    clients in principle; every API server in use (etcd's revisions, the harness's counter)
    gives increasing integers, and anything else is taken as new."""
    mine, theirs = _version(have), _version(other)
    return mine.isdigit() and theirs.isdigit() and int(mine) > int(theirs)


def _cut(response: Any) -> None:
    # Closing a response from another thread does not wake a blocked read; shutting its
    # socket down does (as kubernetes.watch.Watch.stop does).
    sock = getattr(getattr(response, "connection", None), "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _join(watchers: list[_Watcher]) -> None:
    for watcher in watchers:
        watcher.thread.join(5.0)
