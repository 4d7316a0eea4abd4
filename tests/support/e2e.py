"""Helpers and fixtures for the end-to-end tests (tests/conftest.py makes the fixtures
available to every module; a module with a fixture of the same name keeps its own)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from modelrollout.serving.examples import write_model_versions

from modelrollout.harness.cluster import LocalCluster, model_deployment

# A loaded machine may scrape a candidate's first requests an interval or more late: measuring
# goes on meanwhile (inconclusiveLimit) instead of pausing for a person.
ERROR_RATE = {"name": "error-rate", "thresholdRange": {"max": 0.05}, "minSamples": 5, "inconclusiveLimit": 10}


def rollout_of(name: str, model: Path, version: str, prometheus_url: str, steps: list,
               interval_seconds: float, **analysis) -> dict:
    """A ModelDeployment whose analysis steps check the builtin error rate."""
    return model_deployment(name, model, version, prometheus_url, steps, interval_seconds, [ERROR_RATE],
                            **analysis)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[LocalCluster]:
    """The whole system on this machine, one per test module."""
    with LocalCluster(tmp_path_factory.mktemp("cluster"), tick_seconds=0.5) as local:
        yield local


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """The example model versions (serving/examples.py), version -> file."""
    return write_model_versions(tmp_path_factory.mktemp("models"))


def healthy_on(version: str) -> Callable[[dict], bool]:
    return lambda s: s.get("phase") == "Healthy" and s.get("stableVersion") == version
