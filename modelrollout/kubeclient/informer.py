"""One kind in one namespace (or in all), kept up to date: list, then watch (an informer,
as client-go has one; the operator's child cache and the gateway's routes both use it).

    informer = Informer(api, "EndpointSlice", "ml", listed=on_list, changed=on_change, log=log)
    informer.start()     # a thread: list -> listed(objects), then each change -> changed(type, obj)
    ...
    informer.stop()      # cuts a watch blocked on a quiet stream; informer.join(5.0)

- The list's resourceVersion is where the watch starts, so nothing falls between the two;
  ``listed`` gets everything there is (replace what was known in that scope).
- A watch that ends (API servers end them after ``timeoutSeconds``, drawn from
  WATCH_SECONDS so that many clients do not end together) is resumed from the last
  resourceVersion seen, bookmarks included: nothing is listed again.
- 410 Gone (that resourceVersion is too old) relists at once. Twice in a row with nothing
  else seen between, it waits out the backoff first: a server that always answers 410
  must not get a busy loop.
- Any other failure (refused, a timeout, a 5xx, a bug in a callback) is logged, waited
  out by the one backoff policy (backoff.py), then relisted: whatever was missed, a list
  catches up. A watch that ends at once with nothing said is waited out the same way
  before it is resumed; a watch that brought something or stayed open resets the backoff.

Callbacks run on the informer's thread; hand what they get to an event loop with
``call_soon_threadsafe``. The official client is synchronous, hence a thread each.
"""

from __future__ import annotations

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

from .api import Api
from .backoff import Backoff
from .errors import describe_error, is_gone
from .paths import path, resource_name

# Real API servers end a watch after timeoutSeconds; spreading them keeps many watches from
# relisting together. The read timeout only catches a connection that died without closing.
WATCH_SECONDS = (240, 360)
READ_MARGIN_SECONDS = 30.0
QUIET_WATCH_SECONDS = 1.0  # a watch that ends sooner with nothing said is waited out as a failure is
_CHUNK_BYTES = 64 * 1024

Listed = Callable[[list[dict]], None]  # everything in the scope, replacing what was known
Changed = Callable[[str, dict], None]  # ("ADDED" | "MODIFIED" | "DELETED", the object)


class Informer:
    def __init__(self, api: Api, kind: str, namespace: str | None, *, listed: Listed, changed: Changed,
                 label_selector: str | None = None, log: logging.Logger | None = None,
                 backoff: Backoff | None = None, watch_seconds: tuple[int, int] = WATCH_SECONDS) -> None:
        """``namespace`` None: every namespace. ``log``: the process's own logger, so that its
        watch failures read like its other logs."""
        self.api = api
        self.kind = kind
        self.namespace = namespace
        self.label_selector = label_selector
        self.where = f"{resource_name(kind)} in {namespace or 'all namespaces'}"
        self._listed = listed
        self._changed = changed
        self._log = log or logging.getLogger("modelrollout.kubeclient")
        self._backoff = backoff or Backoff()
        self._watch_seconds = watch_seconds
        self._path = path(kind, namespace)
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # between stop() and the thread opening a stream
        self._response: Any = None  # the open watch, for stop() to cut
        self._saw_events = False  # this round's watch has brought something
        self.thread = threading.Thread(target=self._run, name=f"watch-{kind}-{namespace or '*'}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Make the thread end soon: a wait is cut short, and so is a read blocked on a quiet watch."""
        with self._lock:
            self._stopping.set()
            if self._response is not None:
                _cut(self._response)

    def join(self, timeout_seconds: float) -> bool:
        """Wait for the thread to end; True when it has."""
        self.thread.join(timeout_seconds)
        return not self.thread.is_alive()

    # --- on the informer's thread ---

    def _run(self) -> None:
        version: str | None = None  # None: list first
        gone_before = False  # the last failure was a 410, and nothing went well since
        while not self._stopping.is_set():
            self._saw_events = False
            watch_started: float | None = None
            try:
                if version is None:
                    listing = self.api.listing(self.kind, self.namespace, self.label_selector)
                    if self._stopping.is_set():
                        return
                    self._listed(listing.items)
                    version = listing.resource_version
                watch_started = time.monotonic()
                version = self._watch(version)
                if self._went_well(watch_started):
                    self._backoff.reset()
                    gone_before = False
                elif not self._stopping.is_set():
                    # A server that ends watches at once without a word must not get a busy loop.
                    self._stopping.wait(self._backoff.pause())
            except Exception as exc:  # noqa: BLE001 - a dead informer would freeze what its users see
                if self._stopping.is_set():
                    return
                version = None  # whatever was missed, a relist catches up
                if watch_started is not None and self._went_well(watch_started):
                    self._backoff.reset()  # a watch that served for a while broke: try again soon
                    gone_before = False
                if is_gone(exc) and not gone_before:
                    gone_before = True
                    self._log.info("watch expired (410 Gone); relisting", extra={"watch": self.where})
                    continue
                pause = self._backoff.pause()
                told = describe_error(exc)
                fields = {"watch": self.where, "error": told, "retry_seconds": round(pause, 2)}
                self._log.warning("watch failed: %s: %s; relisting in %.1f s", self.where, told, pause,
                                  extra=fields)
                self._stopping.wait(pause)

    def _went_well(self, watch_started: float) -> bool:
        """The watch brought something, or stayed open a while: the connection works."""
        return self._saw_events or time.monotonic() - watch_started >= QUIET_WATCH_SECONDS

    def _watch(self, version: str) -> str:
        """Hand over changes until the stream ends; the resourceVersion to resume from."""
        seconds = random.randint(*self._watch_seconds)
        query = [("labelSelector", self.label_selector)] if self.label_selector else []
        query += [("watch", "true"), ("allowWatchBookmarks", "true"), ("timeoutSeconds", str(seconds))]
        if version:
            query.append(("resourceVersion", version))
        response = self.api.open_stream(self._path, query, read_timeout_seconds=seconds + READ_MARGIN_SECONDS)
        with self._lock:
            if self._stopping.is_set():
                _close(response)
                return version
            self._response = response
        try:
            for event in _events(response):
                if self._stopping.is_set():
                    break
                obj = event.get("object") or {}
                kind = event.get("type")
                if kind == "ERROR":
                    raise self._refusal(obj)
                self._saw_events = True
                version = (obj.get("metadata") or {}).get("resourceVersion") or version
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self._changed(kind, obj)
        finally:
            with self._lock:
                self._response = None  # before it is closed, so stop() never cuts a reused connection
            _close(response)
        return version

    def _refusal(self, status: dict) -> ApiException:
        """An ERROR event (a Status) as the exception a refused call raises."""
        error = ApiException(status=int(status.get("code") or 500), reason=status.get("reason"))
        error.body = json.dumps(status)
        error.call = f"GET {self._path} (watch)"
        return error


def _events(response: Any) -> Iterator[dict]:
    """The watch stream's JSON lines, as they come."""
    pending = b""
    for chunk in response.stream(_CHUNK_BYTES, decode_content=True):
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)
    if pending.strip():
        yield json.loads(pending)


def _cut(response: Any) -> None:
    # Closing a response from another thread does not wake a blocked read; shutting its
    # socket down does (as kubernetes.watch.Watch.stop does).
    sock = getattr(getattr(response, "connection", None), "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)


def _close(response: Any) -> None:
    # A watch left unread must not go back to the pool as it is: close it, then release it
    # (the pool opens a new connection in its place), as kubernetes.watch.Watch does.
    with contextlib.suppress(Exception):
        response.close()
    with contextlib.suppress(Exception):
        response.release_conn()


def stop_all(informers: list[Informer], timeout_seconds: float = 5.0) -> list[Informer]:
    """Stop every informer, then wait for each thread (blocking: run it off the event loop);
    the ones that did not end within ``timeout_seconds`` each."""
    for informer in informers:
        informer.stop()
    return [informer for informer in informers if not informer.join(timeout_seconds)]
