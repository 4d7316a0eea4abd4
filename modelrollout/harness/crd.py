"""The ModelDeployment CRD document, from the one place that knows where it is.

Everything in the harness (and the tests) that needs the CRD calls ``model_deployment_crd()``;
when the CRD ships as package data, only ``CRD_PATH`` (an importlib.resources path) changes.
"""

from __future__ import annotations

from pathlib import Path

import yaml

CRD_PATH = Path(__file__).resolve().parents[2] / "manifests" / "crd" / "modeldeployments.yaml"


def model_deployment_crd() -> dict:
    if not CRD_PATH.exists():
        raise RuntimeError(f"the ModelDeployment CRD is not at {CRD_PATH}: install modelrollout from its "
                           "repository (pip install -e .)")
    return yaml.safe_load(CRD_PATH.read_text())
