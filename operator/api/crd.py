"""The ModelDeployment CustomResourceDefinition, generated from the API module. Pure.

``document()`` is the CRD as the API server takes it; ``render()`` its YAML, as written to
manifests/crd/modeldeployments.yaml and the chart's crds/ (scripts/generate_api.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml
from modelrollout.serving.contract import resource

from . import v1alpha1
from .openapi import schema_of

HEADER = ("# This is an auto-generated file. DO NOT EDIT: the ModelDeployment API is declared in\n"
          "# operator/api/v1alpha1.py; `.venv/bin/python -P scripts/generate_api.py` writes this file.\n")


@dataclass(frozen=True)
class Column:
    """A column of `kubectl get mdep`."""

    name: str
    type: str
    json_path: str
    description: str = ""

    def document(self) -> dict:
        column = {"name": self.name, "type": self.type}
        if self.description:
            column["description"] = self.description
        return {**column, "jsonPath": self.json_path}


COLUMNS = (
    Column("Strategy", "string", ".status.strategy", "canary, blueGreen or shadow."),
    Column("Phase", "string", ".status.phase"),
    Column("Fallback", "date", ".status.fallback.since",
           "How long the guard's fallback has served all traffic (Degraded: the guard fired); empty while "
           "it stands by or there is none."),
    Column("Stable", "string", ".status.stableVersion", "Model version of the stable revision."),
    Column("Candidate", "string", ".status.candidateVersion",
           "Model version of the candidate revision, while a rollout runs."),
    Column("Step", "integer", ".status.currentStep",
           "Index of the step being worked on (canary steps; blue-green 0 preview, 1 awaiting promotion, "
           "2 scaling up, 3 switched; shadow 0 shadowing, 1 awaiting promotion, 2 scaling up)."),
    Column("Weight", "integer", ".status.traffic.candidate", "Percent of traffic sent to the candidate."),
    Column("Ready", "integer", ".status.readyReplicas",
           "Ready replicas of the stable revision, as written by the operator."),
    Column("Age", "date", ".metadata.creationTimestamp"),
)


# `kubectl scale`, an HPA or a KEDA ScaledObject set spec.replicas, the total the operator
# divides between revisions; they read the pods back through the status.
SCALE = {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
         "labelSelectorPath": ".status.selector"}


def openapi_schema() -> dict:
    """The version's openAPIV3Schema."""
    return {
        "type": "object",
        "description": "A model served by the ONNX server and rolled out progressively.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": schema_of(v1alpha1.Spec, nullable=False, defaults=True),
            "status": schema_of(v1alpha1.RolloutStatus, nullable=True, defaults=False),
        },
    }


def document() -> dict:
    api = resource  # the names; the schema is v1alpha1's
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{api.PLURAL}.{api.GROUP}"},
        "spec": {
            "group": api.GROUP,
            "scope": "Namespaced",
            "names": {"kind": api.KIND, "listKind": f"{api.KIND}List", "plural": api.PLURAL,
                      "singular": api.SINGULAR, "shortNames": list(api.SHORT_NAMES)},
            "versions": [{
                "name": api.VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}, "scale": SCALE},
                "additionalPrinterColumns": [column.document() for column in COLUMNS],
                "schema": {"openAPIV3Schema": openapi_schema()},
            }],
        },
    }


def render() -> str:
    return HEADER + yaml.safe_dump(document(), sort_keys=False, width=110, allow_unicode=True)
