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
server only over HTTP with the official client, polling every ``poll_seconds`` (no watch),
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
objects catch up when it answers again. Run one Kubelet per namespace: it deletes Pods
carrying its port annotation that it did not start (left over by an earlier one).
``close()`` stops every process; an atexit hook does it if the program ends without.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Self

import httpx
import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from modelrollout.operator.kube.manifests import MODEL_DEPLOYMENT_LABEL
from modelrollout.serving.contract.endpoint_slices import MANAGED_BY_LABEL, SERVICE_NAME_LABEL

from .ports import free_port

log = logging.getLogger("modelrollout.harness.kubelet")

PORT_ANNOTATION = "modelrollout.io/harness-port"
FINALIZER = "harness.modelrollout.io/process"  # holds a deleted Pod until its process has exited
SLICE_MANAGER = "harness-kubelet.modelrollout.io"
CONTAINER = "server"
NODE_NAME = "harness"
SCRAPE_JOB = "modelrollout-server"
# series <- pod label. Not the revision: the server puts that on its metrics itself (--revision).
SCRAPE_LABELS = {"model_deployment": MODEL_DEPLOYMENT_LABEL}

CRASH_LOOP_RESTARTS = 3  # restarts after which a waiting container reports CrashLoopBackOff
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 10.0
BACKOFF_RESET_SECONDS = 10.0  # up this long: the next crash starts the backoff over
PROBE_TIMEOUT_SECONDS = 1.0
API_TIMEOUT_SECONDS = 5.0
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the one Kubernetes uses for generated names
_MERGE_PATCH = "application/merge-patch+json"


@dataclass(frozen=True)
class PodProcess:
    """One pod as the stand-in runs it, at the moment ``Kubelet.processes`` was called."""

    name: str
    namespace: str
    deployment: str
    port: int
    pid: int | None  # None while waiting to restart or once stopped
    ready: bool
    restarts: int
    state: str  # "running", "waiting" (backoff), "crash-loop" (backoff after >= 3 restarts), "terminating"
    log_path: Path


class _ApiDown(Exception):
    """The API server did not answer (connection refused, timeout)."""


class _Api:
    """The few REST calls the stand-in makes: plain dicts over the official ApiClient."""

    _PATHS = {
        "deployments": "/apis/apps/v1/namespaces/{ns}/deployments",
        "pods": "/api/v1/namespaces/{ns}/pods",
        "services": "/api/v1/namespaces/{ns}/services",
        "endpointslices": "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
    }

    def __init__(self, kubeconfig: Path) -> None:
        configuration = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration,
                                persist_config=False)
        configuration.retries = 0  # the next poll is the retry
        self._client = client.ApiClient(configuration)

    def close(self) -> None:
        self._client.close()

    def list(self, resource: str, namespace: str) -> list[dict]:
        return self._call("GET", self._path(resource, namespace)).get("items") or []

    def create(self, resource: str, namespace: str, body: dict) -> dict:
        return self._call("POST", self._path(resource, namespace), body)

    def merge_patch(self, resource: str, namespace: str, name: str, patch: dict,
                    subresource: str | None = None) -> dict:
        path = f"{self._path(resource, namespace)}/{name}" + (f"/{subresource}" if subresource else "")
        return self._call("PATCH", path, patch, _MERGE_PATCH)

    def delete(self, resource: str, namespace: str, name: str) -> None:
        """Deleted, or was not there."""
        try:
            self._call("DELETE", f"{self._path(resource, namespace)}/{name}")
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _path(self, resource: str, namespace: str) -> str:
        return self._PATHS[resource].format(ns=namespace)

    def _call(self, method: str, path: str, body: object = None,
              content_type: str = "application/json") -> dict:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        method, url, headers, body, _ = self._client.param_serialize(
            method, path, header_params=headers, body=body, auth_settings=["BearerToken"])
        try:
            response = self._client.call_api(method, url, header_params=headers, body=body,
                                             _request_timeout=API_TIMEOUT_SECONDS)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _ApiDown(f"{type(exc).__name__}: {exc}") from exc
        data = response.read()
        if not 200 <= response.status < 300:
            raise ApiException(status=response.status, reason=response.reason, body=data)
        return json.loads(data) if data else {}


@dataclass(frozen=True)
class _Template:
    """What a Deployment's pod template asks of a process; ``digest`` tells templates apart."""

    digest: str
    labels: dict
    annotations: dict
    pod_spec: dict
    env: dict
    args: list
    probe: dict | None  # the readinessProbe
    grace_seconds: float


@dataclass(eq=False)
class _Pod:
    name: str
    namespace: str
    deployment: str
    template: _Template
    port: int
    log_path: Path
    created: float  # monotonic
    start_time: str  # RFC 3339, the Pod's status.startTime
    proc: subprocess.Popen | None = None
    log_file: IO[bytes] | None = None
    started_at: float = 0.0  # monotonic, of the current process
    started_at_wall: str = ""
    ready: bool = False
    restarts: int = 0
    crashes: int = 0  # consecutive ones, for the backoff
    restart_at: float | None = None
    backoff_seconds: float = 0.0
    last_exit: int | None = None
    terminating: bool = False
    kill_at: float = 0.0
    finished: bool = False  # terminating and the process is gone: delete the Pod
    in_api: bool = False  # its Pod object was created and is not known to be deleted

    @property
    def suffix(self) -> str:
        return self.name.rsplit("-", 1)[-1]

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Kubelet:
    """Runs the Deployments of ``namespaces`` as local processes; see the module docstring."""

    def __init__(self, kubeconfig: Path, work: Path, namespaces: str | Sequence[str] = ("default",), *,
                 file_sd: Path | None = None, poll_seconds: float = 0.25, stop_grace_seconds: float = 10.0,
                 env: Mapping[str, str] | None = None, command: Sequence[str] | None = None) -> None:
        """``env`` is laid over every container's env (e.g. a shorter MODELROLLOUT_DRAIN_SECONDS
        for tests); ``command`` replaces `modelrollout serve` (the container's args follow it)."""
        self.kubeconfig = Path(kubeconfig)
        self.work = Path(work)
        self.namespaces = (namespaces,) if isinstance(namespaces, str) else tuple(namespaces)
        self.file_sd = file_sd
        self.poll_seconds = poll_seconds
        self.stop_grace_seconds = stop_grace_seconds
        self.command = list(command) if command else [_modelrollout_executable(), "serve"]
        self.env = dict(env or {})
        self._pods: dict[tuple[str, str], _Pod] = {}  # (namespace, name)
        self._scrape_targets: dict[str, dict] = {}  # address -> labels
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._api: _Api | None = None
        self._api_up: bool | None = None
        self._warned: set[str] = set()
        self._written_sd: str | None = None
        # No keep-alive: a restarted process on the same port must not meet a dead connection.
        self._probe = httpx.Client(timeout=PROBE_TIMEOUT_SECONDS,
                                   limits=httpx.Limits(max_keepalive_connections=0))
        self._closed = False

    # --- lifecycle ---

    def start(self) -> Self:
        if self._thread is not None:
            return self
        (self.work / "pods").mkdir(parents=True, exist_ok=True)
        (self.work / "cache").mkdir(parents=True, exist_ok=True)
        if self.file_sd is not None:
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
            pods = list(self._pods.values())
            for pod in pods:
                if pod.running:
                    assert pod.proc is not None
                    with contextlib.suppress(ProcessLookupError):
                        pod.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + self.stop_grace_seconds
            for pod in pods:
                if pod.proc is not None:
                    try:
                        pod.proc.wait(max(0.0, deadline - time.monotonic()))
                    except subprocess.TimeoutExpired:
                        log.warning("pod %s did not stop within %.0f s: SIGKILL", pod.name,
                                    self.stop_grace_seconds)
                        pod.proc.kill()
                        pod.proc.wait()
                    pod.proc = None
                if pod.log_file is not None:
                    pod.log_file.close()
                    pod.log_file = None
                pod.ready = False
                pod.terminating = pod.finished = True
        if self._thread is not None:  # never started: nothing was written
            self._release()
        if self.file_sd is not None and self._thread is not None:
            self._write_file_sd()  # only what add_scrape_target listed is left
        self._probe.close()
        self._forget_api()

    def _release(self) -> None:
        """Best effort, once the processes are gone: delete our Pods and EndpointSlices and
        say so in Deployment status, so an API server that lives on shows no ghost pods."""
        try:
            api = self._client()
            for namespace in self.namespaces:
                pods = [p for p in self._pods.values() if p.namespace == namespace]
                listed = {_name(p): p for p in api.list("pods", namespace)}
                self._write_pods(api, namespace, pods, listed)
                slices = {_name(s): s for s in api.list("endpointslices", namespace)}
                self._write_slices(api, namespace, api.list("services", namespace), pods, slices)
                self._write_deployment_status(api, namespace, api.list("deployments", namespace), pods)
        except _ApiDown as exc:
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
            return [self._snapshot(p) for p in pods
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
        deadline = time.monotonic() + timeout
        while True:
            ready = [p for p in self.processes(deployment, namespace) if p.ready and p.state == "running"]
            if len(ready) >= replicas:
                return ready
            if time.monotonic() > deadline:
                raise TimeoutError(f"{deployment}: {len(ready)} of {replicas} pods ready after "
                                   f"{timeout:.0f} s: {self.processes(deployment, namespace)}")
            time.sleep(0.05)

    def add_scrape_target(self, address: str, labels: Mapping[str, str]) -> None:
        """List ``address`` ("host:port") in the file SD too, e.g. the gateway or the operator."""
        with self._lock:
            self._scrape_targets[address] = dict(labels)
        if self.file_sd is not None:
            self._write_file_sd()

    def remove_scrape_target(self, address: str) -> None:
        with self._lock:
            self._scrape_targets.pop(address, None)
        if self.file_sd is not None:
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
        now = time.monotonic()
        with self._lock:
            self._supervise(now)
            to_probe = [p for p in self._pods.values() if p.running]
        readiness = {id(p): self._is_ready(p) for p in to_probe}
        with self._lock:
            for pod in to_probe:
                pod.ready = readiness[id(pod)] and pod.running and not pod.terminating
        if self._stopping.is_set():
            return
        for namespace in self.namespaces:
            try:
                self._sync_namespace(namespace)
            except _ApiDown as exc:
                self._api_state(False, str(exc))
                self._forget_api()
                break
            else:
                self._api_state(True)
        if self.file_sd is not None:
            self._write_file_sd()

    def _api_state(self, up: bool, why: str = "") -> None:
        if up != self._api_up:
            if up:
                log.info("API server reachable%s", " again" if self._api_up is False else "")
            else:
                log.warning("API server unreachable (%s): processes keep running, retrying", why)
        self._api_up = up

    def _client(self) -> _Api:
        if self._api is None:
            self._api = _Api(self.kubeconfig)
        return self._api

    def _forget_api(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None

    # --- processes ---

    def _supervise(self, now: float) -> None:
        for pod in self._pods.values():
            if pod.proc is not None and pod.proc.poll() is not None:
                self._reap(pod, now)
            if pod.running and now - pod.started_at >= BACKOFF_RESET_SECONDS:
                pod.crashes = 0
            if pod.terminating:
                if pod.proc is None:
                    pod.finished = True
                elif now >= pod.kill_at:
                    log.warning("pod %s did not stop within its grace: SIGKILL", pod.name)
                    with contextlib.suppress(ProcessLookupError):
                        pod.proc.kill()
            elif pod.proc is None and pod.restart_at is not None and now >= pod.restart_at:
                pod.restarts += 1
                pod.restart_at = None
                log.info("restarting pod %s (restart %d)", pod.name, pod.restarts)
                self._spawn(pod)

    def _reap(self, pod: _Pod, now: float) -> None:
        assert pod.proc is not None
        code = pod.proc.returncode
        pod.proc = None
        pod.ready = False
        pod.last_exit = code
        if pod.log_file is not None:
            pod.log_file.close()
            pod.log_file = None
        if pod.terminating:
            log.info("pod %s stopped (exit code %s)", pod.name, code)
            return
        if now - pod.started_at >= BACKOFF_RESET_SECONDS:
            pod.crashes = 0
        pod.crashes += 1
        pod.backoff_seconds = _backoff(pod.crashes)
        pod.restart_at = now + pod.backoff_seconds
        log.warning("pod %s exited with %s; restarting in %.0f s (log: %s)", pod.name, code,
                    pod.backoff_seconds, pod.log_path)

    def _spawn(self, pod: _Pod) -> None:
        env = {**os.environ, **pod.template.env, **self.env,
               "MODELROLLOUT_HOST": "127.0.0.1", "MODELROLLOUT_PORT": str(pod.port),
               "MODELROLLOUT_CACHE_DIR": str(self.work / "cache"), "HOSTNAME": pod.name}
        pod.log_file = open(pod.log_path, "ab")  # noqa: SIM115 - closed when the process is reaped
        banner = f"--- harness: pod {pod.name}, restart {pod.restarts}, port {pod.port}\n"
        pod.log_file.write(banner.encode())
        pod.log_file.flush()
        pod.started_at = time.monotonic()
        pod.started_at_wall = _now()
        pod.ready = False
        try:
            # A session of its own: a terminal's Ctrl-C reaches the harness, which stops the pods.
            pod.proc = subprocess.Popen([*self.command, *pod.template.args], env=env,
                                        stdin=subprocess.DEVNULL, stdout=pod.log_file,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:  # like a container that cannot start: back off and retry
            log.error("pod %s: cannot start %s: %s", pod.name, self.command[0], exc)
            pod.log_file.write(f"--- harness: cannot start: {exc}\n".encode())
            pod.log_file.close()
            pod.log_file = None
            pod.crashes += 1
            pod.last_exit = 128
            pod.backoff_seconds = _backoff(pod.crashes)
            pod.restart_at = time.monotonic() + pod.backoff_seconds

    def _start_pod(self, namespace: str, deployment: str, template: _Template) -> _Pod:
        taken = {p.suffix for p in self._pods.values() if p.namespace == namespace}
        suffix = "".join(random.choices(_SUFFIX_ALPHABET, k=5))
        while suffix in taken:
            suffix = "".join(random.choices(_SUFFIX_ALPHABET, k=5))
        name = f"{deployment}-{suffix}"
        pod = _Pod(name=name, namespace=namespace, deployment=deployment, template=template, port=free_port(),
                   log_path=self.work / "pods" / f"{name}.log", created=time.monotonic(), start_time=_now())
        self._pods[(namespace, name)] = pod
        log.info("starting pod %s of %s on port %d", name, deployment, pod.port)
        self._spawn(pod)
        return pod

    def _terminate(self, pod: _Pod, why: str) -> None:
        if pod.terminating:
            return
        log.info("stopping pod %s: %s", pod.name, why)
        pod.terminating = True
        pod.ready = False
        pod.restart_at = None
        pod.kill_at = time.monotonic() + pod.template.grace_seconds
        if pod.running:
            assert pod.proc is not None
            with contextlib.suppress(ProcessLookupError):
                pod.proc.send_signal(signal.SIGTERM)
        else:
            pod.finished = True

    def _is_ready(self, pod: _Pod) -> bool:
        probe = pod.template.probe
        if probe is None:
            return True
        if "httpGet" in probe:
            path = (probe.get("httpGet") or {}).get("path") or "/"
            try:
                # As the kubelet: 2xx and 3xx are success (redirects are not followed).
                return 200 <= self._probe.get(f"http://127.0.0.1:{pod.port}{path}").status_code < 400
            except httpx.HTTPError:
                return False
        if "tcpSocket" in probe:
            try:
                with socket.create_connection(("127.0.0.1", pod.port), timeout=PROBE_TIMEOUT_SECONDS):
                    return True
            except OSError:
                return False
        return True  # exec and grpc probes are not run: ready while running

    # --- Deployments -> processes, and the API objects ---

    def _sync_namespace(self, namespace: str) -> None:
        api = self._client()
        deployments = api.list("deployments", namespace)
        listed_pods = {_name(p): p for p in api.list("pods", namespace)}
        services = api.list("services", namespace)
        slices = {_name(s): s for s in api.list("endpointslices", namespace)}
        with self._lock:
            self._reconcile_deployments(namespace, deployments, listed_pods)
            pods = [p for p in self._pods.values() if p.namespace == namespace]
        self._write_pods(api, namespace, pods, listed_pods)
        self._write_deployment_status(api, namespace, deployments, pods)
        self._write_slices(api, namespace, services, pods, slices)
        with self._lock:
            for pod in pods:
                if pod.finished and not pod.in_api:
                    self._pods.pop((namespace, pod.name), None)

    def _reconcile_deployments(self, namespace: str, deployments: list[dict], listed_pods: dict) -> None:
        ours = [p for p in self._pods.values() if p.namespace == namespace]
        for pod in ours:  # a Pod deleted in the API: its process goes, the Deployment gets another
            if pod.terminating or not pod.in_api:
                continue
            listed = listed_pods.get(pod.name)
            if listed is None:
                self._terminate(pod, "its Pod is gone from the API")
            elif (listed.get("metadata") or {}).get("deletionTimestamp"):
                self._terminate(pod, "its Pod was deleted")
        wanted: set[str] = set()
        for deployment in deployments:
            name = _name(deployment)
            template = self._template(namespace, deployment)
            if template is None:
                continue  # its pods, if any, are stopped below
            wanted.add(name)
            replicas = _replicas(deployment)
            mine = [p for p in ours if p.deployment == name and not p.terminating]
            current = [p for p in mine if p.template.digest == template.digest]
            old = [p for p in mine if p.template.digest != template.digest]
            for _ in range(replicas - len(current)):
                current.append(self._start_pod(namespace, name, template))
            for pod in _doomed(current, len(current) - replicas):
                self._terminate(pod, f"{name} scaled to {replicas}")
            ready_current = sum(1 for p in current if p.ready and not p.terminating)
            for pod in _doomed(old, len(old) - max(0, replicas - ready_current)):
                self._terminate(pod, f"{name} rolled to a new pod template")
        for pod in ours:
            if pod.deployment not in wanted and not pod.terminating:
                self._terminate(pod, f"Deployment {pod.deployment} is gone or cannot be run")

    def _template(self, namespace: str, deployment: dict) -> _Template | None:
        name = _name(deployment)
        template = ((deployment.get("spec") or {}).get("template")) or {}
        spec = template.get("spec") or {}
        containers = spec.get("containers") or []
        chosen = next((c for c in containers if c.get("name") == CONTAINER), None)
        if chosen is None and len(containers) == 1:
            chosen = containers[0]
        if chosen is None:
            self._warn_once(f"{namespace}/{name}/containers",
                            "Deployment %s/%s: no container named %r in its pod template: not run",
                            namespace, name, CONTAINER)
            return None
        digest = _digest(template)
        env = {}
        for entry in chosen.get("env") or []:
            if "value" in entry or "valueFrom" not in entry:
                env[entry["name"]] = str(entry.get("value") or "")
            else:
                self._warn_once(f"{namespace}/{name}/{digest}/{entry['name']}",
                                "Deployment %s/%s: env %s uses valueFrom, which the harness does not "
                                "resolve: left out", namespace, name, entry["name"])
        if chosen.get("command"):
            self._warn_once(f"{namespace}/{name}/{digest}/command",
                            "Deployment %s/%s: the container's command is ignored; `modelrollout serve` runs",
                            namespace, name)
        metadata = template.get("metadata") or {}
        grace = spec.get("terminationGracePeriodSeconds")
        return _Template(
            digest=digest,
            labels=dict(metadata.get("labels") or {}),
            annotations=dict(metadata.get("annotations") or {}),
            pod_spec=spec,
            env=env,
            args=[str(a) for a in chosen.get("args") or []],
            probe=chosen.get("readinessProbe"),
            grace_seconds=min(float(grace), self.stop_grace_seconds) if grace is not None
            else self.stop_grace_seconds,
        )

    def _write_pods(self, api: _Api, namespace: str, pods: list[_Pod], listed: dict[str, dict]) -> None:
        ours = {p.name for p in pods}
        for name, obj in listed.items():
            annotations = (obj.get("metadata") or {}).get("annotations") or {}
            if PORT_ANNOTATION in annotations and name not in ours:
                log.info("deleting Pod %s/%s: no process of this kubelet behind it", namespace, name)
                self._remove_pod(api, namespace, name)
        for pod in pods:
            with self._lock:
                finished, terminating = pod.finished, pod.terminating
                metadata, status = self._pod_metadata(pod), self._pod_status(pod)
            current = listed.get(pod.name)
            if finished:
                if current is None or self._remove_pod(api, namespace, pod.name):
                    pod.in_api = False
                continue
            if current is None:
                if pod.in_api:
                    continue  # removed by someone else: its process is being stopped
                # status too: an API server that ignores it on create gets it patched below.
                body = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
                        "spec": {**pod.template.pod_spec, "nodeName": NODE_NAME}, "status": status}
                if self._api_write(api.create, "pods", namespace, body) is _FAILED:
                    continue
                pod.in_api = True
                current = body
            if terminating and not (current.get("metadata") or {}).get("deletionTimestamp"):
                # Graceful deletion: our finalizer keeps the Pod, with a deletionTimestamp,
                # until its process is gone (_remove_pod), as the API server does for a kubelet.
                self._api_write(api.delete, "pods", namespace, pod.name)
            if _differs(metadata, current.get("metadata") or {}):
                self._api_write(api.merge_patch, "pods", namespace, pod.name, {"metadata": metadata})
            if current.get("status") != status:
                self._api_write(api.merge_patch, "pods", namespace, pod.name, {"status": status}, "status")

    def _remove_pod(self, api: _Api, namespace: str, name: str) -> bool:
        """Release our finalizer and delete the Pod: gone for good. False if refused."""
        release = {"metadata": {"finalizers": None}}
        if self._api_write(api.merge_patch, "pods", namespace, name, release) is _FAILED:
            return False
        return self._api_write(api.delete, "pods", namespace, name) is not _FAILED

    def _pod_metadata(self, pod: _Pod) -> dict:
        return {
            "name": pod.name, "namespace": pod.namespace, "labels": pod.template.labels,
            "annotations": {**pod.template.annotations, PORT_ANNOTATION: str(pod.port)},
            "finalizers": [FINALIZER],
        }

    def _pod_status(self, pod: _Pod) -> dict:
        ready = pod.ready and pod.running and not pod.terminating
        if pod.running:
            state: dict = {"running": {"startedAt": pod.started_at_wall}}
        elif pod.restart_at is not None and pod.restarts >= CRASH_LOOP_RESTARTS:
            state = {"waiting": {"reason": "CrashLoopBackOff",
                                 "message": f"back-off {pod.backoff_seconds:.0f}s restarting failed "
                                            f"container={CONTAINER} pod={pod.name}"}}
        else:
            state = {"terminated": _terminated(pod.last_exit)}
        container = {"name": CONTAINER, "image": _image(pod.template.pod_spec), "ready": ready,
                     "started": pod.running, "restartCount": pod.restarts, "state": state}
        if pod.last_exit is not None and pod.restarts:
            container["lastState"] = {"terminated": _terminated(pod.last_exit)}
        flag = "True" if ready else "False"
        return {
            "phase": "Running",
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": pod.start_time,
            "conditions": [{"type": "Ready", "status": flag}, {"type": "ContainersReady", "status": flag}],
            "containerStatuses": [container],
        }

    def _write_deployment_status(self, api: _Api, namespace: str, deployments: list[dict],
                                 pods: list[_Pod]) -> None:
        for deployment in deployments:
            name = _name(deployment)
            with self._lock:
                mine = [p for p in pods if p.deployment == name and not p.terminating]
                digest = _digest(((deployment.get("spec") or {}).get("template")) or {})
                ready = sum(1 for p in mine if p.ready and p.running)
            desired = _replicas(deployment)
            status = {
                "observedGeneration": int((deployment.get("metadata") or {}).get("generation") or 1),
                "replicas": len(mine),
                "updatedReplicas": sum(1 for p in mine if p.template.digest == digest),
                "readyReplicas": ready,
                "availableReplicas": ready,
                "unavailableReplicas": max(0, desired - ready),
            }
            if _differs(status, deployment.get("status") or {}):
                self._api_write(api.merge_patch, "deployments", namespace, name, {"status": status}, "status")

    def _write_slices(self, api: _Api, namespace: str, services: list[dict], pods: list[_Pod],
                      listed: dict[str, dict]) -> None:
        desired: dict[str, dict] = {}
        with self._lock:
            live = [p for p in pods if not p.finished]
            for service in services:
                spec = service.get("spec") or {}
                selector = spec.get("selector") or {}
                if not selector or spec.get("type") == "ExternalName":
                    continue
                service_name = _name(service)
                for pod in live:
                    if all(pod.template.labels.get(k) == v for k, v in selector.items()):
                        body = _endpoint_slice(service_name, namespace, spec.get("ports") or [], pod)
                        desired[body["metadata"]["name"]] = body
        for name, obj in listed.items():
            labels = (obj.get("metadata") or {}).get("labels") or {}
            if labels.get(MANAGED_BY_LABEL) == SLICE_MANAGER and name not in desired:
                self._api_write(api.delete, "endpointslices", namespace, name)
        for name, body in desired.items():
            current = listed.get(name)
            if current is None:
                self._api_write(api.create, "endpointslices", namespace, body)
            elif _differs(body, current):
                patch = {key: body[key] for key in ("metadata", "addressType", "endpoints", "ports")}
                self._api_write(api.merge_patch, "endpointslices", namespace, name, patch)

    def _api_write(self, call: Callable[..., object], *args: object) -> object:
        """The call's result, or _FAILED when the API server refused it (logged). _ApiDown propagates."""
        try:
            return call(*args)
        except ApiException as exc:
            # 404: deleted since the list (the operator removing a revision); the next poll knows.
            log.log(logging.DEBUG if exc.status == 404 else logging.WARNING, "API %s %s refused: %s %s",
                    call.__name__, args[:3], exc.status, exc.reason)
            return _FAILED

    # --- Prometheus file SD ---

    def _write_file_sd(self) -> None:
        assert self.file_sd is not None
        with self._lock:
            entries = [{"targets": [address], "labels": labels}
                       for address, labels in sorted(self._scrape_targets.items())]
            for pod in sorted(self._pods.values(), key=lambda p: (p.namespace, p.name)):
                if pod.finished:
                    continue
                labels = {"job": SCRAPE_JOB, "namespace": pod.namespace, "pod": pod.name}
                for key, label in SCRAPE_LABELS.items():
                    if label in pod.template.labels:
                        labels[key] = str(pod.template.labels[label])
                entries.append({"targets": [f"127.0.0.1:{pod.port}"], "labels": labels})
            text = json.dumps(entries, indent=1) + "\n"
            if text == self._written_sd:
                return
            self.file_sd.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.file_sd.with_name(f".{self.file_sd.name}.tmp")
            temporary.write_text(text)
            os.replace(temporary, self.file_sd)  # Prometheus never reads half a file
            self._written_sd = text

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    def _snapshot(self, pod: _Pod) -> PodProcess:
        if pod.terminating:
            state = "terminating"
        elif pod.running:
            state = "running"
        elif pod.restarts >= CRASH_LOOP_RESTARTS:
            state = "crash-loop"
        else:
            state = "waiting"
        return PodProcess(name=pod.name, namespace=pod.namespace, deployment=pod.deployment, port=pod.port,
                          pid=pod.proc.pid if pod.running and pod.proc is not None else None,
                          ready=pod.ready and pod.running and not pod.terminating, restarts=pod.restarts,
                          state=state, log_path=pod.log_path)


_FAILED = object()


def _modelrollout_executable() -> str:
    found = shutil.which("modelrollout", path=os.path.dirname(sys.executable)) or shutil.which("modelrollout")
    if found is None:
        raise RuntimeError("the modelrollout command is not installed next to this Python nor on PATH")
    return found


def _name(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("name") or ""


def _backoff(crashes: int) -> float:
    """Seconds to wait before restarting after ``crashes`` consecutive exits: 1, 2, 4 ... 10."""
    return min(BACKOFF_FIRST_SECONDS * 2 ** (crashes - 1), BACKOFF_MAX_SECONDS)


def _digest(template: dict) -> str:
    """Tells pod templates apart, as the pod-template-hash label of a ReplicaSet does."""
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def _replicas(deployment: dict) -> int:
    value = (deployment.get("spec") or {}).get("replicas")
    try:
        return max(0, int(value)) if value is not None else 1  # the API server's default
    except (TypeError, ValueError):
        return 0


def _doomed(pods: list[_Pod], count: int) -> list[_Pod]:
    """The ``count`` pods a ReplicaSet would remove first: unready ones, then the newest."""
    if count <= 0:
        return []
    return sorted(pods, key=lambda p: (p.ready, -p.created))[:count]


def _differs(wanted: Mapping, current: Mapping) -> bool:
    """Whether ``current`` lacks anything of ``wanted`` (nested dicts compared key by key)."""
    for key, value in wanted.items():
        if isinstance(value, Mapping) and isinstance(current.get(key), Mapping):
            if _differs(value, current[key]):
                return True
        elif current.get(key) != value:
            return True
    return False


def _endpoint_slice(service: str, namespace: str, ports: list[dict], pod: _Pod) -> dict:
    serving = pod.ready and pod.running
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": f"{service}-{pod.suffix}", "namespace": namespace,
                     "labels": {SERVICE_NAME_LABEL: service, MANAGED_BY_LABEL: SLICE_MANAGER}},
        "addressType": "IPv4",
        "endpoints": [{
            "addresses": ["127.0.0.1"],
            "conditions": {"ready": serving and not pod.terminating, "serving": serving,
                           "terminating": pod.terminating},
            "nodeName": NODE_NAME,
            "targetRef": {"kind": "Pod", "namespace": namespace, "name": pod.name},
        }],
        "ports": [{"name": p.get("name") or "", "port": pod.port, "protocol": p.get("protocol") or "TCP"}
                  for p in ports] or [{"name": "", "port": pod.port, "protocol": "TCP"}],
    }


def _terminated(code: int | None) -> dict:
    if code is None:
        return {"exitCode": 0, "reason": "Completed"}
    if code < 0:  # killed by a signal: what a container runtime reports as 128 + signal
        return {"exitCode": 128 - code, "reason": "Error", "signal": -code}
    return {"exitCode": code, "reason": "Completed" if code == 0 else "Error"}


def _image(pod_spec: dict) -> str:
    containers = pod_spec.get("containers") or []
    chosen = next((c for c in containers if c.get("name") == CONTAINER), containers[0] if containers else {})
    return str(chosen.get("image") or "")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
