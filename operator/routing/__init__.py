"""Routing backends: where a SetTraffic decision is written. One file per backend. Pure.

    builtin.py      the route of the model in ModelDeployment ``status.route``, read by
                    ``modelrollout gateway --kubernetes`` (serving/contract/routes.py schema)
    gateway_api.py  a Gateway API HTTPRoute with weighted backendRefs and a RequestMirror filter
    replicas.py     no router: replica counts behind the entry Service approximate the weight

Every backend turns the same two values, a Target (which ModelDeployment) and a
SetTraffic (the whole split, every part spelled out), into the document it owns; the
shell (kube/apply.py) writes that document. Names of the child objects live here, once.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelrollout.serving.contract.endpoint_slices import PORT_NAME
from modelrollout.serving.contract.resource import API_VERSION, KIND

from ..spec import Comparison

__all__ = ["MANAGED_BY_LABELS", "MODEL_DEPLOYMENT_LABEL", "PORT_NAME", "PREVIEW", "REVISION_LABEL",
           "SERVER_PORT", "Target", "entry_service", "owner_reference", "pod_selector", "preview_service",
           "revision_name"]

SERVER_PORT = 8080  # the port `modelrollout serve` listens on in a pod (Dockerfile.server)
MANAGED_BY_LABELS = {"app.kubernetes.io/managed-by": "modelrollout"}  # on every object the operator creates
MODEL_DEPLOYMENT_LABEL = "modelrollout.io/model-deployment"  # the ModelDeployment a child belongs to
REVISION_LABEL = "modelrollout.io/revision"
PREVIEW = "preview"  # x-modelrollout-revision: preview reaches the candidate, whatever its name


@dataclass(frozen=True)
class Target:
    """The ModelDeployment whose traffic is being routed."""

    name: str  # metadata.name
    namespace: str
    model: str  # the served name, /v2/models/{model}
    options: dict  # spec.trafficRouting.<kind>, as the user wrote it
    uid: str | None = None  # for ownerReferences; None where the API server sets none
    comparison: Comparison = Comparison()  # spec.comparison: how mirrored answers are compared


def revision_name(name: str, revision: str) -> str:
    """The name of one revision's Deployment and of its Service (ModelDeployment ``name``)."""
    return f"{name}-{revision}"


def pod_selector(name: str) -> str:
    """The label selector, as a string, of every pod of ModelDeployment ``name`` (status.selector)."""
    return f"{MODEL_DEPLOYMENT_LABEL}={name}"


def preview_service(name: str) -> str:
    """The Service that selects only the candidate's pods while there is one (every routing)."""
    return f"{name}-preview"


def entry_service(name: str) -> str:
    """The model's entry Service: in-cluster clients that bypass the router reach stable here."""
    return name


def owner_reference(target: Target) -> dict:
    """Children are owned by the ModelDeployment, so deleting it deletes them."""
    reference = {"apiVersion": API_VERSION, "kind": KIND,
                 "name": target.name, "controller": True, "blockOwnerDeletion": True}
    if target.uid:
        reference["uid"] = target.uid
    return reference
