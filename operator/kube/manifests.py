"""The bodies of the objects the operator owns, built from the spec. Pure.

Per revision (a hash of the model and the pod template, engine.revision_of) one
Deployment of `modelrollout serve` and one Service, both named ``<name>-<revision>``;
per ModelDeployment one entry Service named like it. Every body carries the
ownerReference of its ModelDeployment. These are what the operator wants; converge.py
plans the writes that make the live objects hold them.
"""

from __future__ import annotations

from ..routing import (
    MANAGED_BY_LABELS,
    MODEL_DEPLOYMENT_LABEL,
    PORT_NAME,
    REVISION_LABEL,
    SERVER_PORT,
    Target,
    entry_service,
    owner_reference,
    preview_service,
    revision_name,
)
from ..spec import Spec

MODEL_VERSION = "modelrollout.io/model-version"
CONTAINER = "server"
_CACHE_DIR = "/var/cache/modelrollout"  # a writable emptyDir: the root filesystem is read-only
_UID = 10001  # Dockerfile.server's user
DRAIN_SECONDS = 5
_GRACE_SECONDS = 30  # the server's default --grace-seconds


def revision_labels(target: Target, revision: str) -> dict:
    return {MODEL_DEPLOYMENT_LABEL: target.name, REVISION_LABEL: revision}


def deployment(target: Target, spec: Spec, revision: str, replicas: int) -> dict:
    """The revision's Deployment; ``replicas`` is what the engine asked for."""
    labels = {**MANAGED_BY_LABELS, "app.kubernetes.io/name": "modelrollout-server",
              **revision_labels(target, revision)}
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(target, revision_name(target.name, revision), labels,
                              {MODEL_VERSION: spec.model.version}),
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 0,  # revisions are ours; ReplicaSets of old templates are noise
            "selector": {"matchLabels": revision_labels(target, revision)},
            "template": {
                "metadata": {"labels": labels, "annotations": {MODEL_VERSION: spec.model.version}},
                "spec": _pod_spec(target, spec, revision),
            },
        },
    }
    return body


def revision_service_body(target: Target, revision: str) -> dict:
    name = revision_name(target.name, revision)
    return _service(target, name, revision_labels(target, revision), {**MANAGED_BY_LABELS,
                    **revision_labels(target, revision)})


def preview_service_body(target: Target, candidate_revision: str) -> dict:
    """``<name>-preview``: the candidate's pods only, under a name that stays put."""
    return _service(target, preview_service(target.name), revision_labels(target, candidate_revision),
                    {**MANAGED_BY_LABELS, MODEL_DEPLOYMENT_LABEL: target.name})


def entry_service_body(target: Target, stable_revision: str, by_replicas: bool) -> dict:
    """Selects the stable revision; with replicas routing it selects nothing, and the
    operator writes its EndpointSlices (routing/replicas.py)."""
    selector = None if by_replicas else {MODEL_DEPLOYMENT_LABEL: target.name, REVISION_LABEL: stable_revision}
    return _service(target, entry_service(target.name), selector,
                    {**MANAGED_BY_LABELS, MODEL_DEPLOYMENT_LABEL: target.name})


def _pod_spec(target: Target, spec: Spec, revision: str) -> dict:
    model = spec.model
    env = [
        {"name": "MODELROLLOUT_MODEL_URI", "value": model.uri},
        {"name": "MODELROLLOUT_MODEL_NAME", "value": target.model},
        {"name": "MODELROLLOUT_MODEL_VERSION", "value": model.version},
        # The revision label of the server's metrics: what server-side analysis selects on.
        {"name": "MODELROLLOUT_REVISION", "value": revision},
        {"name": "MODELROLLOUT_HOST", "value": "0.0.0.0"},
        {"name": "MODELROLLOUT_PORT", "value": str(SERVER_PORT)},
        {"name": "MODELROLLOUT_CACHE_DIR", "value": _CACHE_DIR},
        # After SIGTERM the server stays up (unready) while routers stop sending it requests.
        {"name": "MODELROLLOUT_DRAIN_SECONDS", "value": str(DRAIN_SECONDS)},
        {"name": "MODELROLLOUT_MAX_BATCH_SIZE", "value": str(spec.server.batching.max_batch_size)},
        {"name": "MODELROLLOUT_MAX_QUEUE_DELAY_US",
         "value": str(spec.server.batching.max_queue_delay_microseconds)},
    ]
    if model.sha256:
        env.append({"name": "MODELROLLOUT_SHA256", "value": model.sha256})
    ours = {e["name"] for e in env}
    env += [e.model_dump(by_alias=True, exclude_none=True) for e in spec.server.env
            if e.name not in ours]  # ours win: they wire the pod up

    def probe(path: str, period: int, failures: int) -> dict:
        return {"httpGet": {"path": path, "port": PORT_NAME}, "periodSeconds": period,
                "failureThreshold": failures, "timeoutSeconds": 2}

    return {
        "automountServiceAccountToken": False,  # the server never talks to the API server
        "terminationGracePeriodSeconds": DRAIN_SECONDS + _GRACE_SECONDS,
        "securityContext": {"runAsNonRoot": True, "runAsUser": _UID, "runAsGroup": _UID, "fsGroup": _UID,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": CONTAINER,
            "image": spec.server.image,
            "env": env,
            "ports": [{"name": PORT_NAME, "containerPort": SERVER_PORT, "protocol": "TCP"}],
            "resources": dict(spec.server.resources),
            # Loading (and downloading) a model can take a while: the startup probe allows
            # it five minutes before liveness may restart the pod.
            "startupProbe": probe("/v2/health/live", 5, 60),
            "livenessProbe": probe("/v2/health/live", 10, 3),
            "readinessProbe": probe("/v2/health/ready", 2, 2),
            "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": [{"name": "model-cache", "mountPath": _CACHE_DIR},
                             {"name": "tmp", "mountPath": "/tmp"}],
        }],
        "volumes": [{"name": "model-cache", "emptyDir": {}},
                    {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}],
    }


def _service(target: Target, name: str, selector: dict | None, labels: dict) -> dict:
    """A ClusterIP Service; without a selector when ``selector`` is None."""
    body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(target, name, labels, {}),
        "spec": {
            "type": "ClusterIP",
            "ports": [{"name": PORT_NAME, "port": SERVER_PORT, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }
    if selector is not None:
        body["spec"]["selector"] = selector
    return body


def _metadata(target: Target, name: str, labels: dict, annotations: dict) -> dict:
    return {"name": name, "namespace": target.namespace, "labels": labels, "annotations": annotations,
            "ownerReferences": [owner_reference(target)]}
