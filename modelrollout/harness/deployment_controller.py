"""The Deployment (and ReplicaSet) controller of the kubelet stand-in: replicas of a pod
template become pods, a new template rolls out with maxSurge 100 %, maxUnavailable 0, and a
Pod deleted in the API loses its process (the Deployment gets another)."""

from __future__ import annotations

from collections.abc import Callable

from . import pods as podlib
from .pods import Pod, Template
from .supervisor import Supervisor

Warn = Callable[..., None]  # warn_once(key, message, *args)


def template_of(namespace: str, deployment: dict, stop_grace_seconds: float, warn: Warn) -> Template | None:
    """What the pod template asks of a process; None (warned) when it has no server container."""
    name = podlib.name_of(deployment)
    template = ((deployment.get("spec") or {}).get("template")) or {}
    spec = template.get("spec") or {}
    containers = spec.get("containers") or []
    chosen = next((c for c in containers if c.get("name") == podlib.CONTAINER), None)
    if chosen is None and len(containers) == 1:
        chosen = containers[0]
    if chosen is None:
        warn(f"{namespace}/{name}/containers", "Deployment %s/%s: no container named %r in its pod template: "
             "not run", namespace, name, podlib.CONTAINER)
        return None
    digest = podlib.digest(template)
    env = {}
    for entry in chosen.get("env") or []:
        if "value" in entry or "valueFrom" not in entry:
            env[entry["name"]] = str(entry.get("value") or "")
        else:
            warn(f"{namespace}/{name}/{digest}/{entry['name']}", "Deployment %s/%s: env %s uses valueFrom, "
                 "which the harness does not resolve: left out", namespace, name, entry["name"])
    if chosen.get("command"):
        warn(f"{namespace}/{name}/{digest}/command", "Deployment %s/%s: the container's command is ignored; "
             "`modelrollout serve` runs", namespace, name)
    metadata = template.get("metadata") or {}
    grace = spec.get("terminationGracePeriodSeconds")
    return Template(
        digest=digest,
        labels=dict(metadata.get("labels") or {}),
        annotations=dict(metadata.get("annotations") or {}),
        pod_spec=spec,
        env=env,
        args=[str(a) for a in chosen.get("args") or []],
        probe=chosen.get("readinessProbe"),
        grace_seconds=min(float(grace), stop_grace_seconds) if grace is not None else stop_grace_seconds,
    )


def reconcile(supervisor: Supervisor, pods: dict[tuple[str, str], Pod], namespace: str,
              deployments: list[dict],
              listed_pods: dict[str, dict], warn: Warn) -> None:
    """Start and stop the processes of ``namespace`` so its Deployments have their replicas."""
    ours = [p for p in pods.values() if p.namespace == namespace]
    for pod in ours:  # a Pod deleted in the API: its process goes, the Deployment gets another
        if pod.terminating or not pod.in_api:
            continue
        listed = listed_pods.get(pod.name)
        if listed is None:
            supervisor.terminate(pod, "its Pod is gone from the API")
        elif (listed.get("metadata") or {}).get("deletionTimestamp"):
            supervisor.terminate(pod, "its Pod was deleted")
    wanted: set[str] = set()
    for deployment in deployments:
        name = podlib.name_of(deployment)
        template = template_of(namespace, deployment, supervisor.stop_grace_seconds, warn)
        if template is None:
            continue  # its pods, if any, are stopped below
        wanted.add(name)
        replicas = podlib.replicas(deployment)
        mine = [p for p in ours if p.deployment == name and not p.terminating]
        current = [p for p in mine if p.template.digest == template.digest]
        old = [p for p in mine if p.template.digest != template.digest]
        for _ in range(replicas - len(current)):
            current.append(supervisor.start_pod(pods, namespace, name, template))
        for pod in podlib.doomed(current, len(current) - replicas):
            supervisor.terminate(pod, f"{name} scaled to {replicas}")
        ready_current = sum(1 for p in current if p.ready and not p.terminating)
        for pod in podlib.doomed(old, len(old) - max(0, replicas - ready_current)):
            supervisor.terminate(pod, f"{name} rolled to a new pod template")
    for pod in ours:
        if pod.deployment not in wanted and not pod.terminating:
            supervisor.terminate(pod, f"Deployment {pod.deployment} is gone or cannot be run")
