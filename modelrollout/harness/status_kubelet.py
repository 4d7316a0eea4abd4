"""A kubelet stand-in that only writes status: no processes. For benchmarks of the operator
with hundreds or thousands of ModelDeployments, where running a server per pod is neither
possible on one machine nor what is measured.

    with StatusKubelet(kube.kubeconfig_for("harness-kubelet"), ["bench"]) as kubelet:
        ...   # every Deployment of the operator gets ready Pods, its status, EndpointSlices

For every Deployment carrying the label ``modelrollout.io/model-deployment`` (what the
operator makes) it keeps ``spec.replicas`` Pods that are Running and Ready at once, the
Deployment's status (replicas, ready, available, observedGeneration) and, for every
Service with a selector, one EndpointSlice listing the matching Pods. The Pods' address is
127.0.0.1 and their port 1, where nothing listens: a smoke inference is refused at once
(the candidate's gate stays closed) instead of waiting out a connect timeout.

It follows the API server with the operator's own watch cache (operator/kube/cache.py),
so it writes only when something changed, from its own thread and event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Self

from modelrollout.operator.kube.cache import ChildCache
from modelrollout.serving.contract.endpoint_slices import MANAGED_BY_LABEL, SERVICE_NAME_LABEL

from . import pods as podlib
from .kube_writes import KubeletApi, write
from .status_writers import differs

log = logging.getLogger("modelrollout.harness.kubelet")

MD_LABEL = "modelrollout.io/model-deployment"
DEPLOYMENT_ANNOTATION = "harness.modelrollout.io/deployment"
SLICE_MANAGER = "harness-status-kubelet.modelrollout.io"
POD_ADDRESS, POD_PORT = "127.0.0.1", 1
_START_SECONDS = 60.0


class StatusKubelet:
    def __init__(self, kubeconfig: Path, namespaces: Sequence[str] | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.namespaces = tuple(namespaces or ())
        self._dirty: set[tuple[str, str]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._counter = 0
        self.writes = 0

    def start(self) -> Self:
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), name="status-kubelet",
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_SECONDS):
            raise TimeoutError("the status kubelet did not list the cluster in time")
        return self

    def close(self) -> None:
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        api = KubeletApi(self.kubeconfig)
        cache = ChildCache(KubeletApi(self.kubeconfig), self.namespaces,
                           lambda namespace, name: self._dirty.add((namespace, name)))
        cache.start()
        try:
            await cache.synced.wait()
            self._ready.set()
            while not self._stop.is_set():
                owners, self._dirty = self._dirty, set()
                for namespace, name in sorted(owners):
                    try:
                        self._sync(api, cache, namespace, name)
                    except Exception:  # noqa: BLE001 - a stand-in must outlive its own bugs
                        log.exception("status kubelet: syncing %s/%s failed", namespace, name)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 0.05)
        finally:
            await cache.close()
            api.close()

    def _sync(self, api: KubeletApi, cache: ChildCache, namespace: str, owner: str) -> None:
        labels = {MD_LABEL: owner}
        deployments = cache.list("Deployment", namespace, labels)
        pods = [p for p in cache.list("Pod", namespace, labels) if not _meta(p).get("deletionTimestamp")]
        wanted = {podlib.name_of(d) for d in deployments}
        for pod in pods:
            if _owner(pod) not in wanted:
                self._write(api.delete, "Pod", namespace, podlib.name_of(pod))
        for deployment in deployments:
            name = podlib.name_of(deployment)
            mine = sorted((p for p in pods if _owner(p) == name), key=podlib.name_of)
            replicas = podlib.replicas(deployment)
            for pod in mine[replicas:]:
                self._write(api.delete, "Pod", namespace, podlib.name_of(pod))
            for _ in range(replicas - len(mine)):
                self._write(api.create, "Pod", namespace, self._pod(namespace, deployment))
            status = {"observedGeneration": int(_meta(deployment).get("generation") or 1),
                      "replicas": replicas, "updatedReplicas": replicas, "readyReplicas": replicas,
                      "availableReplicas": replicas, "unavailableReplicas": 0}
            if differs(status, deployment.get("status") or {}):
                self._write(api.merge_patch, "Deployment", namespace, name, {"status": status}, "status")
        current = {podlib.name_of(s): s for s in cache.list("EndpointSlice", namespace, labels)
                   if _meta(s).get("labels", {}).get(MANAGED_BY_LABEL) == SLICE_MANAGER}
        all_pods = cache.list("Pod", namespace, labels)
        for service in cache.list("Service", namespace, labels):
            selector = (service.get("spec") or {}).get("selector")
            if not selector:
                continue
            chosen = [p for p in all_pods if not _meta(p).get("deletionTimestamp")
                      and all(_meta(p).get("labels", {}).get(k) == v for k, v in selector.items())]
            body = _slice(service, namespace, chosen)
            have = current.pop(body["metadata"]["name"], None)
            if have is None:
                self._write(api.create, "EndpointSlice", namespace, body)
            elif have.get("endpoints") != body["endpoints"]:
                self._write(api.merge_patch, "EndpointSlice", namespace, body["metadata"]["name"],
                            {"endpoints": body["endpoints"]})
        for name in current:
            self._write(api.delete, "EndpointSlice", namespace, name)

    def _pod(self, namespace: str, deployment: dict) -> dict:
        self._counter += 1
        template = (deployment.get("spec") or {}).get("template") or {}
        name = f"{podlib.name_of(deployment)}-s{self._counter:05d}"
        return {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": dict((template.get("metadata") or {}).get("labels") or {}),
                         "annotations": {DEPLOYMENT_ANNOTATION: podlib.name_of(deployment)}},
            "spec": {**(template.get("spec") or {}), "nodeName": podlib.NODE_NAME},
            "status": {"phase": "Running", "podIP": POD_ADDRESS,
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": podlib.CONTAINER, "ready": True, "restartCount": 0,
                                              "state": {"running": {"startedAt": podlib.now()}}}]},
        }

    def _write(self, call, *args) -> None:
        self.writes += 1
        write(call, *args)


def _meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def _owner(pod: dict) -> str | None:
    """The Deployment a pod of this stand-in belongs to."""
    return (_meta(pod).get("annotations") or {}).get(DEPLOYMENT_ANNOTATION)


def _slice(service: dict, namespace: str, pods: list[dict]) -> dict:
    name = podlib.name_of(service)
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{name}-status", "namespace": namespace,
                     "labels": {**(_meta(service).get("labels") or {}), SERVICE_NAME_LABEL: name,
                                MANAGED_BY_LABEL: SLICE_MANAGER}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [POD_ADDRESS], "conditions": {"ready": True},
                       "targetRef": {"kind": "Pod", "namespace": namespace, "name": podlib.name_of(p)}}
                      for p in sorted(pods, key=podlib.name_of)],
        "ports": [{"name": "http", "port": POD_PORT, "protocol": "TCP"}],
    }
