"""Helpers for the end-to-end tests: models and ModelDeployments."""

from __future__ import annotations

from pathlib import Path

from modelrollout.serving.examples import build_faulty_mlp, build_mlp


def write_models(folder: Path) -> dict[str, Path]:
    """v1 and v2: good models with different weights; v3: fails on half the real inputs."""
    folder.mkdir(parents=True, exist_ok=True)
    models = {"1.0.0": build_mlp([4, 16, 3], seed=0), "2.0.0": build_mlp([4, 16, 3], seed=1),
              "3.0.0": build_faulty_mlp([4, 16, 3], seed=2)}
    paths = {}
    for version, data in models.items():
        path = folder / f"model-{version}.onnx"
        path.write_bytes(data)
        paths[version] = path
    return paths


def model_deployment(name: str, model: Path, version: str, prometheus_url: str, steps: list,
                     interval: str = "3s", **analysis) -> dict:
    return {
        "apiVersion": "modelrollout.io/v1alpha1", "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"uri": model.as_uri(), "version": version},
            "replicas": 1,
            "server": {"image": "modelrollout-server:local"},
            "trafficRouting": {"builtin": {}},
            "strategy": {"canary": {"steps": steps}},
            "analysis": {
                "interval": interval,
                "prometheus": {"address": prometheus_url},
                "metrics": [{"name": "error-rate", "thresholdRange": {"max": 0.05}, "minSamples": 5}],
                **analysis,
            },
            "progressDeadlineSeconds": 120,
        },
    }
