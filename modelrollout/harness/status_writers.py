"""Pod objects and Deployment status, written from what the stand-in's processes really do.
Writes happen only when something changed; a Pod leaves through the harness's finalizer
once its process is gone, as a kubelet's graceful deletion does."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from . import pods as podlib
from .kube_writes import FAILED, KubeletApi, write
from .pods import Pod

log = logging.getLogger("modelrollout.harness.kubelet")


def write_pods(api: KubeletApi, lock: threading.RLock, namespace: str, pods: list[Pod],
               listed: dict[str, dict]) -> None:
    ours = {p.name for p in pods}
    for name, obj in listed.items():
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        if podlib.PORT_ANNOTATION in annotations and name not in ours:
            log.info("deleting Pod %s/%s: no process of this kubelet behind it", namespace, name)
            remove_pod(api, namespace, name)
    for pod in pods:
        with lock:
            finished, terminating = pod.finished, pod.terminating
            metadata, status = pod_metadata(pod), pod_status(pod)
        current = listed.get(pod.name)
        if finished:
            if current is None or remove_pod(api, namespace, pod.name):
                pod.in_api = False
            continue
        if current is None:
            if pod.in_api:
                continue  # removed by someone else: its process is being stopped
            # status too: an API server that ignores it on create gets it patched below.
            body = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
                    "spec": {**pod.template.pod_spec, "nodeName": podlib.NODE_NAME}, "status": status}
            if write(api.create, "Pod", namespace, body) is FAILED:
                continue
            pod.in_api = True
            current = body
        if terminating and not (current.get("metadata") or {}).get("deletionTimestamp"):
            # Graceful deletion: our finalizer keeps the Pod, with a deletionTimestamp,
            # until its process is gone (remove_pod), as the API server does for a kubelet.
            write(api.delete, "Pod", namespace, pod.name)
        if differs(metadata, current.get("metadata") or {}):
            write(api.merge_patch, "Pod", namespace, pod.name, {"metadata": metadata})
        if current.get("status") != status:
            write(api.merge_patch, "Pod", namespace, pod.name, {"status": status}, "status")


def remove_pod(api: KubeletApi, namespace: str, name: str) -> bool:
    """Release our finalizer and delete the Pod: gone for good. False if refused."""
    release = {"metadata": {"finalizers": None}}
    if write(api.merge_patch, "Pod", namespace, name, release) is FAILED:
        return False
    return write(api.delete, "Pod", namespace, name) is not FAILED


def pod_metadata(pod: Pod) -> dict:
    return {
        "name": pod.name, "namespace": pod.namespace, "labels": pod.template.labels,
        "annotations": {**pod.template.annotations, podlib.PORT_ANNOTATION: str(pod.port)},
        "finalizers": [podlib.FINALIZER],
    }


def pod_status(pod: Pod) -> dict:
    ready = pod.ready and pod.running and not pod.terminating
    if pod.running:
        state: dict = {"running": {"startedAt": pod.started_at_wall}}
    elif pod.restart_at is not None and pod.restarts >= podlib.CRASH_LOOP_RESTARTS:
        state = {"waiting": {"reason": "CrashLoopBackOff",
                             "message": f"back-off {pod.backoff_seconds:.0f}s restarting failed "
                                        f"container={podlib.CONTAINER} pod={pod.name}"}}
    else:
        state = {"terminated": _terminated(pod.last_exit)}
    container = {"name": podlib.CONTAINER, "image": _image(pod.template.pod_spec), "ready": ready,
                 "started": pod.running, "restartCount": pod.restarts, "state": state}
    if pod.last_exit is not None and pod.restarts:
        container["lastState"] = {"terminated": _terminated(pod.last_exit)}
    flag = "True" if ready else "False"
    # As a kubelet words it: which containers hold the pod back (their probe's answer is not kept).
    why = {} if ready else {"reason": "ContainersNotReady",
                            "message": f"containers with unready status: [{podlib.CONTAINER}]"}
    return {
        "phase": "Running",
        "hostIP": "127.0.0.1",
        "podIP": "127.0.0.1",
        "podIPs": [{"ip": "127.0.0.1"}],
        "startTime": pod.start_time,
        "conditions": [{"type": "Ready", "status": flag, **why},
                       {"type": "ContainersReady", "status": flag, **why}],
        "containerStatuses": [container],
    }


def write_deployment_status(api: KubeletApi, lock: threading.RLock, namespace: str, deployments: list[dict],
                            pods: list[Pod]) -> None:
    for deployment in deployments:
        name = podlib.name_of(deployment)
        with lock:
            mine = [p for p in pods if p.deployment == name and not p.terminating]
            digest = podlib.digest(((deployment.get("spec") or {}).get("template")) or {})
            ready = sum(1 for p in mine if p.ready and p.running)
        desired = podlib.replicas(deployment)
        status = {
            "observedGeneration": int((deployment.get("metadata") or {}).get("generation") or 1),
            "replicas": len(mine),
            "updatedReplicas": sum(1 for p in mine if p.template.digest == digest),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": max(0, desired - ready),
        }
        if differs(status, deployment.get("status") or {}):
            write(api.merge_patch, "Deployment", namespace, name, {"status": status}, "status")


def differs(wanted: Mapping, current: Mapping) -> bool:
    """Whether ``current`` lacks anything of ``wanted`` (nested dicts compared key by key)."""
    for key, value in wanted.items():
        if isinstance(value, Mapping) and isinstance(current.get(key), Mapping):
            if differs(value, current[key]):
                return True
        elif current.get(key) != value:
            return True
    return False


def _terminated(code: int | None) -> dict:
    if code is None:
        return {"exitCode": 0, "reason": "Completed"}
    if code < 0:  # killed by a signal: what a container runtime reports as 128 + signal
        return {"exitCode": 128 - code, "reason": "Error", "signal": -code}
    return {"exitCode": code, "reason": "Completed" if code == 0 else "Error"}


def _image(pod_spec: dict) -> str:
    containers = pod_spec.get("containers") or []
    chosen = next((c for c in containers if c.get("name") == podlib.CONTAINER),
                  containers[0] if containers else {})
    return str(chosen.get("image") or "")
