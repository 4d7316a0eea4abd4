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
- Listing and watching is modelrollout.kubeclient's Informer, one per (kind, namespace),
  each on a thread of its own: a watch that ends resumes from the last resourceVersion;
  410 Gone relists at once, any other failure after the one backoff policy; a relist
  wakes the owners of whatever differs from before.
- Objects without the label (the replicas-routing entry EndpointSlices, HTTPRoutes) are
  not cached: ``Reads`` asks the API server for those.

The informers' threads store under a lock; wake-ups go to the event loop thread-safely.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Callable

from modelrollout.kubeclient import Api, Informer, newer, stop_all, version_of

from ..routing import MODEL_DEPLOYMENT_LABEL

log = logging.getLogger("modelrollout.operator")

CACHED_KINDS = ("Deployment", "Service", "Pod", "EndpointSlice")

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
        self._informers: list[Informer] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.synced = asyncio.Event()  # every (kind, namespace) listed once
        self._listed_once: set[tuple[str, str | None]] = set()

    # --- lifecycle ---

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        # The label as a server-side selector: only what the operator made is sent at all.
        self._informers = [
            Informer(self.api, kind, scope, label_selector=MODEL_DEPLOYMENT_LABEL, log=log,
                     listed=functools.partial(self._listed, kind, scope),
                     changed=functools.partial(self._changed, kind))
            for kind in CACHED_KINDS for scope in self._scopes
        ]
        for informer in self._informers:
            informer.start()

    async def close(self) -> None:
        for informer in await asyncio.to_thread(stop_all, self._informers):
            log.warning("cache: %s did not stop in time", informer.where)
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

    # --- from the informers' threads ---

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
                if have is None or version_of(have) != version_of(obj):
                    changed.add(_owner(obj))
                    if have is not None:
                        self._remove(kind, key)  # its owner label may have changed
                    self._put(kind, obj)
        self._notify(changed, listed=(kind, scope))

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
        if have is not None and newer(have, obj):
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

    def _notify(self, owners: set[tuple[str, str]], listed: tuple[str, str | None] | None = None) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: the operator is stopping
            for namespace, name in owners:
                loop.call_soon_threadsafe(self._wake, namespace, name)
            if listed is not None:
                loop.call_soon_threadsafe(self._one_listed, listed)

    def _one_listed(self, scope: tuple[str, str | None]) -> None:
        # A relist of one (a 410, say) before another's first list must not count for it.
        self._listed_once.add(scope)
        if len(self._listed_once) >= len(self._informers):
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
