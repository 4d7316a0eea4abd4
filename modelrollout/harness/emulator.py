"""A Kubernetes API for the harness (`modelrollout cluster`, the demo, the tests): the
harness's ApiServer (apiserver/: kmock's KubernetesEmulator made honest for kubectl)
served over HTTP on 127.0.0.1.

    with KubeEmulator(tmp_path) as kube:            # serving, with tmp_path/kubeconfig written
        kube.define_crd(crd_document)               # install a CRD (or kube.define(...) a resource)
        kube.create({"apiVersion": ..., "kind": ..., "metadata": {...}})
        kube.merge_patch("modelrollout.io/v1alpha1", "ModelDeployment", "iris", {...},
                         namespace="ml", subresource="status")
        subprocess.run(["kubectl", "--kubeconfig", str(kube.kubeconfig), "get", "mdep", "-A"])
        with kube.outage(): ...                     # the API server restarts, objects kept
        kube.on_loop(lambda: kube.emulator[...] << reaction)   # kmock's own DSL, thread-safely

The emulator runs on an event loop in a thread of its own, so synchronous tests and the
processes they start (the gateway, the operator, kubectl) all reach it over real HTTP.
Objects are created, read, patched and deleted here with the official ``kubernetes``
client (its DynamicClient), the same wire path as the code under test.

It is only the API server: objects are stored and served, nothing acts on them. No
controller turns a Deployment into Pods and no kubelet runs them (``harness/kubelet.py``
does both for ``modelrollout serve`` pods), no endpoints controller writes EndpointSlices
(the same stand-in does), no scheduler. What the API server does and does not do is in
apiserver/'s docstring and in docs/harness.md's table.

Added here: ``outage()`` takes the HTTP server down and brings it back on the same port
with the same objects, and stopping cuts open watches at once instead of waiting out
aiohttp's 60-second shutdown grace. And the request history is bounded: kmock keeps every
request for assertions and matches each new one against its own reactions by walking
that history, so an unbounded one makes every request slower than the last (tens of ms
per request after a few thousand, enough to stall a minutes-long rollout). Only the
last ``REQUEST_HISTORY`` requests are kept; a reaction or count over requests sees those.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self, TypeVar

import aiohttp.test_utils
import aiohttp.web
import kmock
import yaml
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.dynamic import DynamicClient

from .apiserver import ApiServer
from .apiserver.audit import Write
from .apiserver.faults import Fault

T = TypeVar("T")

_START_SECONDS = 10.0
# Open watches never finish by themselves: give them this long, then cancel them.
_SHUTDOWN_GRACE_SECONDS = 0.2
REQUEST_HISTORY = 100
_DEFAULT_VERBS = frozenset({"create", "delete", "get", "list", "patch", "update", "watch"})


class _QuickStopServer(aiohttp.test_utils.RawTestServer):
    async def _make_runner(self, debug: bool = True, **kwargs: Any) -> aiohttp.web.ServerRunner:
        runner = await super()._make_runner(debug=debug, **kwargs)
        # aiohttp takes this only through the constructor that kmock does not expose.
        runner._shutdown_timeout = _SHUTDOWN_GRACE_SECONDS
        return runner


class KubeEmulator:
    """kmock's KubernetesEmulator on 127.0.0.1, a kubeconfig for it, and a client to fill it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.kubeconfig = folder / "kubeconfig"
        self.port = 0  # chosen at start, kept across outages
        self.emulator: ApiServer | None = None  # touch it only through on_loop()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: kmock.Server | None = None
        self._done: asyncio.Event | None = None
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self._pending: list[Callable[[kmock.KubernetesEmulator], None]] = []
        self._client: DynamicClient | None = None
        self._discovery_cache = folder / "discovery-cache.json"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- lifecycle ---

    def start(self) -> Self:
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), name="kube-emulator",
                                        daemon=True)
        self._thread.start()
        if not self._started.wait(_START_SECONDS):
            raise TimeoutError(f"the Kubernetes emulator did not start within {_START_SECONDS}s")
        if self._failure is not None:
            raise RuntimeError("the Kubernetes emulator failed to start") from self._failure
        self._write_kubeconfig()
        return self

    def stop(self) -> None:
        self._forget_client()
        if self._loop is not None and self._done is not None and self._thread is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._done.set)
            self._thread.join(_START_SECONDS)
            if self._thread.is_alive():
                raise RuntimeError("the Kubernetes emulator thread did not stop")
        self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """The API server is unreachable inside the block (connections refused, open watches
        cut); after it, it serves again on the same port with the objects it had."""
        self.on_loop_async(self._close_server)
        try:
            yield
        finally:
            self.on_loop_async(self._open_server)

    # --- what the emulator knows ---

    def define(self, api_version: str, plural: str, kind: str, *, namespaced: bool = True,
               subresources: tuple[str, ...] = ("status",), singular: str | None = None) -> None:
        """Declare a resource (what installing its CRD does), so discovery and lists know it."""
        info = kmock.ResourceInfo(kind=kind, singular=singular or kind.lower(), namespaced=namespaced,
                                  verbs=set(_DEFAULT_VERBS), subresources=set(subresources))

        def declare(emulator: kmock.KubernetesEmulator) -> None:
            emulator.resources[f"{api_version}/{plural}"] = info

        if self.emulator is None:
            self._pending.append(declare)
        else:
            self.on_loop(declare, self.emulator)
            self._forget_client()  # its discovery cache predates the new resource

    def define_crd(self, crd: dict) -> None:
        """Install a CustomResourceDefinition document: its served versions become resources
        (names, short names, printer columns, schema) and the CRD object is stored."""
        def install(emulator: ApiServer) -> None:
            emulator.store_crd(crd)

        if self.emulator is None:
            self._pending.append(install)
        else:
            self.on_loop(install, self.emulator)
            self._forget_client()  # its discovery cache predates the new resource

    # --- objects, through the official client over HTTP ---

    @property
    def client(self) -> DynamicClient:
        if self._client is None:
            configuration = k8s_client.Configuration()
            k8s_config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=configuration,
                                        persist_config=False)
            self._client = DynamicClient(k8s_client.ApiClient(configuration),
                                         cache_file=str(self._discovery_cache))
        return self._client

    def _forget_client(self) -> None:
        if self._client is not None:
            self._client.client.close()
            self._client = None
        self._discovery_cache.unlink(missing_ok=True)

    def create(self, obj: dict) -> dict:
        resource = self.client.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        namespace = obj.get("metadata", {}).get("namespace")
        return resource.create(body=obj, namespace=namespace).to_dict()

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict:
        resource = self.client.resources.get(api_version=api_version, kind=kind)
        return resource.get(name=name, namespace=namespace).to_dict()

    def list(self, api_version: str, kind: str, namespace: str | None = None) -> list[dict]:
        resource = self.client.resources.get(api_version=api_version, kind=kind)
        response = resource.get(namespace=namespace, serialize=False)
        return json.loads(response.data)["items"]

    def merge_patch(self, api_version: str, kind: str, name: str, patch: dict, namespace: str | None = None,
                    subresource: str | None = None) -> dict:
        """RFC 7386 merge patch (kmock merges dicts, replaces lists, deletes on null)."""
        return self._patch(api_version, kind, name, patch, namespace, subresource,
                           "application/merge-patch+json")

    def json_patch(self, api_version: str, kind: str, name: str, operations: list[dict],
                   namespace: str | None = None, subresource: str | None = None) -> dict:
        return self._patch(api_version, kind, name, operations, namespace, subresource,
                           "application/json-patch+json")

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> None:
        resource = self.client.resources.get(api_version=api_version, kind=kind)
        resource.delete(name=name, namespace=namespace)

    def _patch(self, api_version: str, kind: str, name: str, body: object, namespace: str | None,
               subresource: str | None, content_type: str) -> dict:
        resource = self.client.resources.get(api_version=api_version, kind=kind)
        target = resource.subresources[subresource] if subresource else resource
        return target.patch(body=body, name=name, namespace=namespace, content_type=content_type).to_dict()

    # --- callers, what they did, and faults ---

    def kubeconfig_for(self, identity: str) -> Path:
        """A kubeconfig whose bearer token is ``identity``: the API server records the calls
        made with it under that name (apiserver/audit.py). Written next to ``kubeconfig``."""
        path = self.folder / f"kubeconfig-{identity}"
        self._write_kubeconfig(path, identity)
        return path

    def audit(self) -> list[dict]:
        """Every distinct call so far: identity, verb, group, resource, namespace, count."""
        return self.on_loop(lambda emulator: emulator.audit.summary(), self.emulator)

    def writes(self, since: float = 0.0) -> list[Write]:
        """The writes (create, update, patch, delete) that arrived after ``since`` (time.time())."""
        def newer(emulator: ApiServer) -> list[Write]:
            found = []
            for write in reversed(emulator.audit.writes):  # newest first: stop at the first older one
                if write.at <= since:
                    break
                found.append(write)
            return found[::-1]

        return self.on_loop(newer, self.emulator)

    def inject(self, fault: Fault) -> Fault:
        """Refuse the calls ``fault`` matches (apiserver/faults.py) until it ends or is cleared."""
        return self.on_loop(lambda emulator: emulator.faults.add(fault), self.emulator)

    def clear_faults(self) -> None:
        self.on_loop(lambda emulator: emulator.faults.clear(), self.emulator)

    # --- the emulator itself, for kmock reactions and assertions on what it received ---

    def on_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the emulator's loop: kmock objects are not thread-safe."""
        async def call() -> T:
            return fn(*args)

        return self.on_loop_async(call)

    def on_loop_async(self, fn: Callable[[], Any]) -> Any:
        if self._loop is None:
            raise RuntimeError("the Kubernetes emulator is not running")
        return asyncio.run_coroutine_threadsafe(fn(), self._loop).result(_START_SECONDS)

    # --- internals (on the emulator's loop) ---

    async def _main(self) -> None:
        try:
            self._loop = asyncio.get_running_loop()
            self._done = asyncio.Event()
            self.emulator = ApiServer()
            self.emulator._requests = collections.deque(maxlen=REQUEST_HISTORY)  # see the docstring
            with warnings.catch_warnings():  # kmock 0.8 reads it with a deprecated importlib call
                warnings.simplefilter("ignore", DeprecationWarning)
                self.emulator.resources.load_bundled()
            for declare in self._pending:
                declare(self.emulator)
            async with self.emulator:
                await self._open_server()
                self._started.set()
                await self._done.wait()
                await self._close_server()
        except BaseException as exc:
            self._failure = exc
            raise
        finally:
            self._started.set()

    async def _open_server(self) -> None:
        assert self.emulator is not None
        self._server = kmock.Server(self.emulator, host="127.0.0.1", port=self.port or None,
                                    server_cls=_QuickStopServer)
        await self._server.__aenter__()
        self.port = self._server.port

    async def _close_server(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            await server.__aexit__(None, None, None)

    def _write_kubeconfig(self, path: Path | None = None, token: str | None = None) -> None:
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "tests", "user": {"token": token} if token else {}}],
            "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "tests"}}],
            "current-context": "emulator",
        }
        (path or self.kubeconfig).write_text(yaml.safe_dump(doc))
