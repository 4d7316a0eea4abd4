"""Helpers for the end-to-end tests."""

from __future__ import annotations

from pathlib import Path

from modelrollout.harness.cluster import model_deployment

ERROR_RATE = {"name": "error-rate", "thresholdRange": {"max": 0.05}, "minSamples": 5}


def rollout_of(name: str, model: Path, version: str, prometheus_url: str, steps: list,
               interval_seconds: float, **analysis) -> dict:
    """A ModelDeployment whose analysis steps check the builtin error rate."""
    return model_deployment(name, model, version, prometheus_url, steps, interval_seconds, [ERROR_RATE],
                            **analysis)
