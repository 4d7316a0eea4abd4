"""The EndpointSlice controller of the kubelet stand-in: a Service with a selector gets one
slice per selected pod (``<service>-<pod suffix>``, since every process has its own loopback
port), carrying the Service's labels (as the real controller copies them), every Service
port mapped to the process's real port."""

from __future__ import annotations

import threading

from modelrollout.serving.contract.endpoint_slices import MANAGED_BY_LABEL, SERVICE_NAME_LABEL

from . import pods as podlib
from .kube_writes import KubeletApi, write
from .pods import Pod
from .status_writers import differs

SLICE_MANAGER = "harness-kubelet.modelrollout.io"


def write_slices(api: KubeletApi, lock: threading.RLock, namespace: str, services: list[dict],
                 pods: list[Pod],
                 listed: dict[str, dict]) -> None:
    desired: dict[str, dict] = {}
    with lock:
        live = [p for p in pods if not p.finished]
        for service in services:
            spec = service.get("spec") or {}
            selector = spec.get("selector") or {}
            if not selector or spec.get("type") == "ExternalName":
                continue
            service_name = podlib.name_of(service)
            for pod in live:
                if all(pod.template.labels.get(k) == v for k, v in selector.items()):
                    body = endpoint_slice(service_name, namespace, spec.get("ports") or [], pod,
                                          (service.get("metadata") or {}).get("labels") or {})
                    desired[body["metadata"]["name"]] = body
    for name, obj in listed.items():
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if labels.get(MANAGED_BY_LABEL) == SLICE_MANAGER and name not in desired:
            write(api.delete, "EndpointSlice", namespace, name)
    for name, body in desired.items():
        current = listed.get(name)
        if current is None:
            write(api.create, "EndpointSlice", namespace, body)
        elif differs(body, current):
            patch = {key: body[key] for key in ("metadata", "addressType", "endpoints", "ports")}
            write(api.merge_patch, "EndpointSlice", namespace, name, patch)


def endpoint_slice(service: str, namespace: str, ports: list[dict], pod: Pod,
                   labels: dict | None = None) -> dict:
    serving = pod.ready and pod.running
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": f"{service}-{pod.suffix}", "namespace": namespace,
                     "labels": {**(labels or {}), SERVICE_NAME_LABEL: service,
                                MANAGED_BY_LABEL: SLICE_MANAGER}},
        "addressType": "IPv4",
        "endpoints": [{
            "addresses": ["127.0.0.1"],
            "conditions": {"ready": serving and not pod.terminating, "serving": serving,
                           "terminating": pod.terminating},
            "nodeName": podlib.NODE_NAME,
            "targetRef": {"kind": "Pod", "namespace": namespace, "name": pod.name},
        }],
        "ports": [{"name": p.get("name") or "", "port": pod.port, "protocol": p.get("protocol") or "TCP"}
                  for p in ports] or [{"name": "", "port": pod.port, "protocol": "TCP"}],
    }
