"""A kubelet stand-in: runs the Deployments of an API server as local `modelrollout serve`
processes and keeps Pods, Deployment status, EndpointSlices and a Prometheus file SD true.

    with KubeEmulator(tmp) as kube, Kubelet(kube.kubeconfig, tmp / "kubelet", ["ml"],
                                            file_sd=tmp / "targets.json") as kubelet:
        kube.create(deployment)                       # apps/v1, one container "server"
        kubelet.wait_ready("iris-abc", 2)             # two processes answer their readiness probe
        kubelet.processes("iris-abc")                 # [PodProcess(name, port, ready, restarts, ...)]
        kubelet.kill("iris-abc-x7k2q")                # SIGKILL: a crash; restarted with backoff

It plays the parts of a cluster that turn a Deployment into reachable, scraped pods: the
Deployment and ReplicaSet controllers, the kubelet (processes, readiness, restarts), the
EndpointSlice controller and Prometheus' Kubernetes service discovery. It talks to the API
server only over HTTP with the operator's own client, polling every ``poll_seconds`` (no watch),
so it works against any API server, kmock's emulator included, whose limits it respects:
lists are filtered on this side (no labelSelector), objects are created and then changed
by merge patch (no PUT), and nothing relies on uid, resourceVersion or generation.

What each object means here:

- A Deployment's pod template must have one container (the one named ``server`` if there
  are several): it stands for `modelrollout serve` whatever its image. Its ``env`` (values
  only; ``valueFrom`` entries are skipped with a warning, ``$(VAR)`` is not expanded) and
  ``args`` configure a local process, with MODELROLLOUT_HOST=127.0.0.1, a free
  MODELROLLOUT_PORT and MODELROLLOUT_CACHE_DIR=<work>/cache imposed (a pod's own port and
  cache path cannot be used on one machine). Its ``command`` is ignored.
- A Pod is one process: named ``<deployment>-<5 chars>``, labels and annotations of the
  template, annotation ``modelrollout.io/harness-port`` with the process's real port,
  status Running with podIP 127.0.0.1, a Ready condition and one container status
  (ready, restartCount, state running / terminated / waiting CrashLoopBackOff). A process
  keeps its port across restarts, as a pod keeps its IP. Deleting a Pod in the API stops
  its process, and the Deployment gets a new one.
- Readiness: the readinessProbe's httpGet path (or tcpSocket connect) on the process's
  port, every poll rather than every periodSeconds, one answer deciding (thresholds are
  not counted); no readinessProbe means ready while running. Liveness and startup probes
  are NOT enforced: a hung process stays up. A process that exits is restarted after
  1 s, 2 s, 4 s ... at most 10 s (reset once it stayed up 10 s); while it waits after 3 or
  more restarts its state is ``waiting: CrashLoopBackOff``.
- Scale down (fewer replicas, Deployment deleted, Pod deleted): the pods to go are chosen
  unready first, then newest; SIGTERM, SIGKILL after terminationGracePeriodSeconds (at
  most ``stop_grace_seconds``). Until the process exits the Pod carries a
  deletionTimestamp, is not Ready, and its endpoints say terminating. Then the Pod and its
  EndpointSlices are deleted.
- A changed pod template (its hash) is rolled out with maxSurge 100 %, maxUnavailable 0:
  all new pods start at once and old ones stop as new ones become ready. The strategy
  field, paused, minReadySeconds and the Deployment's selector are ignored (a Deployment's
  pods are the ones this stand-in started for it).
- Deployment status (status subresource, merge patch): replicas, updatedReplicas,
  readyReplicas, availableReplicas (= ready), unavailableReplicas (desired - available),
  observedGeneration (metadata.generation, or 1 where the API server sets none). No
  conditions.
- A Service with a selector gets one EndpointSlice per selected pod of this stand-in
  (``<service>-<pod suffix>``, since every process has its own loopback port), labelled
  ``kubernetes.io/service-name`` and ``endpointslice.kubernetes.io/managed-by``, with every
  Service port mapped to the process's real port (targetPort is not looked at). Slices are
  written only when what they should say changed.
- ``file_sd``: a Prometheus file SD JSON listing every pod (target 127.0.0.1:<port>,
  labels job, namespace, pod, model_deployment) plus what
  ``add_scrape_target`` added; rewritten atomically when it changes.

If the API server cannot be reached the processes keep running (and restarting); the
objects catch up when it answers again. Run one Kubelet per namespace (``namespaces=None``:
one for every namespace): it deletes Pods carrying its port annotation that it did not
start (left over by an earlier one). ``deployment_labels`` limits it to the Deployments
carrying those labels (`modelrollout cluster` runs only what the operator made, so an
applied operator Deployment is stored, not run). ``close()`` stops every process; an atexit
hook does it if the program ends without.

One job per module: supervisor.py (processes), deployment_controller.py (replicas and
rollouts), status_writers.py (Pods and Deployment status), endpoint_slices.py, file_sd.py
(Prometheus targets), kube_writes.py (the operator's API client, without retries); this
module runs them in one polling loop.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Self

from . import deployment_controller, status_writers
from . import pods as podlib
from .endpoint_slices import SLICE_MANAGER, write_slices
from .file_sd import FileSD
from .kube_writes import API_TIMEOUT_SECONDS, ApiDown, KubeletApi
from .pods import FINALIZER, PORT_ANNOTATION, Pod, PodProcess
from .process import wait_for
from .supervisor import PROBE_TIMEOUT_SECONDS, Supervisor

log = logging.getLogger("modelrollout.harness.kubelet")

__all__ = ["FINALIZER", "PORT_ANNOTATION", "SLICE_MANAGER", "Kubelet", "PodProcess"]


class Kubelet:
    """Runs the Deployments of ``namespaces`` as local processes; see the module docstring."""

    def __init__(self, kubeconfig: Path, work: Path, namespaces: str | Sequence[str] | None = ("default",), *,
                 file_sd: Path | None = None, poll_seconds: float = 0.25, stop_grace_seconds: float = 10.0,
                 env: Mapping[str, str] | None = None, command: Sequence[str] | None = None,
                 deployment_labels: Mapping[str, str] | None = None) -> None:
        """``env`` is laid over every container's env (e.g. a shorter MODELROLLOUT_DRAIN_SECONDS
        for tests); ``command`` replaces `modelrollout serve` (the container's args follow it);
        ``namespaces=None`` watches every namespace."""
        self.kubeconfig = Path(kubeconfig)
        self.work = Path(work)
        self.namespaces = (namespaces,) if isinstance(namespaces, str) else \
            (None if namespaces is None else tuple(namespaces))
        self.file_sd = file_sd
        self.poll_seconds = poll_seconds
        self.stop_grace_seconds = stop_grace_seconds
        self.deployment_labels = dict(deployment_labels or {})
        self._supervisor = Supervisor(list(command) if command else [_modelrollout_executable(), "serve"],
                                      self.work, env or {}, stop_grace_seconds)
        self._pods: dict[tuple[str, str], Pod] = {}  # (namespace, name)
        self._scrape_targets: dict[str, dict] = {}  # address -> labels
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._api: KubeletApi | None = None
        self._api_up: bool | None = None
        self._warned: set[str] = set()
        self._file_sd = FileSD(file_sd) if file_sd is not None else None
        self._closed = False

    # --- lifecycle ---

    def start(self) -> Self:
        if self._thread is not None:
            return self
        (self.work / "pods").mkdir(parents=True, exist_ok=True)
        (self.work / "cache").mkdir(parents=True, exist_ok=True)
        self._write_file_sd()
        atexit.register(self.close)
        self._thread = threading.Thread(target=self._run, name="harness-kubelet", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop polling, then every process: SIGTERM, SIGKILL after the grace. Idempotent."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(API_TIMEOUT_SECONDS * 4 + PROBE_TIMEOUT_SECONDS * 2)
            if self._thread.is_alive():
                log.error("the kubelet thread did not stop; stopping its processes anyway")
        with self._lock:
            self._supervisor.stop_all(list(self._pods.values()))
        if self._thread is not None:  # never started: nothing was written
            self._release()
            self._write_file_sd()  # only what add_scrape_target listed is left
        self._supervisor.close()
        self._forget_api()

    def _release(self) -> None:
        """Best effort, once the processes are gone: delete our Pods and EndpointSlices and
        say so in Deployment status, so an API server that lives on shows no ghost pods."""
        try:
            api = self._client()
            namespaces = self.namespaces if self.namespaces is not None else \
                sorted({p.namespace for p in self._pods.values()})
            for namespace in namespaces:
                mine = [p for p in self._pods.values() if p.namespace == namespace]
                self._sync_objects(api, namespace, mine, *self._listed(api, namespace))
        except ApiDown as exc:
            log.info("API server unreachable at close (%s): Pods and EndpointSlices left as they were", exc)
        except Exception:  # noqa: BLE001 - closing must finish
            log.exception("cleaning up the API objects at close failed")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- for tests and the demo ---

    def processes(self, deployment: str | None = None, namespace: str | None = None) -> list[PodProcess]:
        """The pods of ``deployment`` (every Deployment when None), oldest first; finished ones left out."""
        with self._lock:
            pods = sorted((p for p in self._pods.values() if not p.finished), key=lambda p: p.created)
            return [podlib.snapshot(p) for p in pods
                    if (deployment is None or p.deployment == deployment)
                    and (namespace is None or p.namespace == namespace)]

    def kill(self, pod_name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (SIGKILL: a crash) to the pod's process; the stand-in restarts it."""
        with self._lock:
            pod = next((p for p in self._pods.values() if p.name == pod_name and not p.finished), None)
            if pod is None:
                raise KeyError(f"no pod {pod_name}")
            if pod.proc is None or not pod.running:
                raise ProcessLookupError(f"pod {pod_name} has no running process")
            pod.proc.send_signal(sig)

    def wait_ready(self, deployment: str, replicas: int, namespace: str | None = None,
                   timeout: float = 60.0) -> list[PodProcess]:
        """Waits until ``replicas`` pods of ``deployment`` (none terminating) are ready; returns them."""
        def ready() -> list[PodProcess]:
            found = [p for p in self.processes(deployment, namespace) if p.ready and p.state == "running"]
            return found if len(found) >= replicas else []

        return wait_for(ready, timeout, lambda: f"{deployment}: {replicas} pods ready; "
                                                 f"{self.processes(deployment, namespace)}")

    def add_scrape_target(self, address: str, labels: Mapping[str, str]) -> None:
        """List ``address`` ("host:port") in the file SD too, e.g. the gateway or the operator."""
        with self._lock:
            self._scrape_targets[address] = dict(labels)
        self._write_file_sd()

    def remove_scrape_target(self, address: str) -> None:
        with self._lock:
            self._scrape_targets.pop(address, None)
        self._write_file_sd()

    # --- the loop ---

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._tick()
            except Exception:  # noqa: BLE001 - the stand-in must outlive its own bugs
                log.exception("kubelet poll failed")
            self._stopping.wait(self.poll_seconds)

    def _tick(self) -> None:
        with self._lock:
            self._supervisor.supervise(list(self._pods.values()), time.monotonic())
            to_probe = [p for p in self._pods.values() if p.running]
        readiness = {id(p): self._supervisor.is_ready(p) for p in to_probe}
        with self._lock:
            for pod in to_probe:
                pod.ready = readiness[id(pod)] and pod.running and not pod.terminating
        if self._stopping.is_set():
            return
        try:
            self._sync()
        except ApiDown as exc:
            self._api_state(False, str(exc))
            self._forget_api()
        else:
            self._api_state(True)
        self._write_file_sd()

    def _sync(self) -> None:
        api = self._client()
        if self.namespaces is not None:
            for namespace in self.namespaces:
                self._sync_namespace(api, namespace, *self._listed(api, namespace))
            return
        # Every namespace: one list of each kind, grouped by namespace.
        everything = self._listed(api, None)
        with self._lock:
            namespaces = {p.namespace for p in self._pods.values()}
        for group in everything:
            objects = group.values() if isinstance(group, dict) else group
            namespaces |= {podlib.namespace_of(o) for o in objects}
        for namespace in sorted(namespaces):
            self._sync_namespace(api, namespace, *(_in_namespace(group, namespace) for group in everything))

    def _listed(self, api: KubeletApi, namespace: str | None) -> tuple[list, dict, list, dict]:
        deployments = [d for d in api.list("Deployment", namespace)
                       if all(((d.get("metadata") or {}).get("labels") or {}).get(k) == v
                              for k, v in self.deployment_labels.items())]
        pods = {(podlib.namespace_of(p), podlib.name_of(p)): p for p in api.list("Pod", namespace)}
        services = api.list("Service", namespace)
        slices = {(podlib.namespace_of(s), podlib.name_of(s)): s
                  for s in api.list("EndpointSlice", namespace)}
        if namespace is not None:
            pods = {name: p for (_, name), p in pods.items()}
            slices = {name: s for (_, name), s in slices.items()}
        return deployments, pods, services, slices

    def _sync_namespace(self, api: KubeletApi, namespace: str, deployments: list[dict], listed_pods: dict,
                        services: list[dict], slices: dict) -> None:
        with self._lock:
            deployment_controller.reconcile(self._supervisor, self._pods, namespace, deployments, listed_pods,
                                            self._warn_once)
            pods = [p for p in self._pods.values() if p.namespace == namespace]
        self._sync_objects(api, namespace, pods, deployments, listed_pods, services, slices)
        with self._lock:
            for pod in pods:
                if pod.finished and not pod.in_api:
                    self._pods.pop((namespace, pod.name), None)

    def _sync_objects(self, api: KubeletApi, namespace: str, pods: list[Pod], deployments: list[dict],
                      listed_pods: dict, services: list[dict], slices: dict) -> None:
        status_writers.write_pods(api, self._lock, namespace, pods, listed_pods)
        status_writers.write_deployment_status(api, self._lock, namespace, deployments, pods)
        write_slices(api, self._lock, namespace, services, pods, slices)

    def _api_state(self, up: bool, why: str = "") -> None:
        if up != self._api_up:
            if up:
                log.info("API server reachable%s", " again" if self._api_up is False else "")
            else:
                log.warning("API server unreachable (%s): processes keep running, retrying", why)
        self._api_up = up

    def _client(self) -> KubeletApi:
        if self._api is None:
            self._api = KubeletApi(self.kubeconfig)
        return self._api

    def _forget_api(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None

    def _write_file_sd(self) -> None:
        if self._file_sd is not None:
            with self._lock:
                self._file_sd.write(self._scrape_targets, list(self._pods.values()))

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)


def _in_namespace(group: list | dict, namespace: str) -> list | dict:
    if isinstance(group, dict):
        return {name: obj for (ns, name), obj in group.items() if ns == namespace}
    return [obj for obj in group if podlib.namespace_of(obj) == namespace]


def _modelrollout_executable() -> str:
    found = shutil.which("modelrollout", path=os.path.dirname(sys.executable)) or shutil.which("modelrollout")
    if found is None:
        raise RuntimeError("the modelrollout command is not installed next to this Python nor on PATH")
    return found
