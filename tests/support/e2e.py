"""Helpers and fixtures for the end-to-end tests (tests/conftest.py makes the fixtures
available to every module; a module with a fixture of the same name keeps its own)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from modelrollout.serving.examples import write_model_versions

from modelrollout.harness.cluster import LocalCluster, model_deployment

ERROR_RATE = {"name": "error-rate", "thresholdRange": {"max": 0.05}, "minSamples": 5}


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


def until_resumed(done: Callable[[dict], bool], cluster: LocalCluster, name: str) -> Callable[[dict], bool]:
    """``done``, and meanwhile what a person does with an analysis that had no traffic yet to
    judge (testers start once the preview answers): resume, to measure again."""
    resumed: list[str] = []

    def check(status: dict) -> bool:
        # One resume per inconclusive measurement: the message repeats, the measurement's time not.
        measured = (status.get("analysis") or [{}])[-1].get("at")
        if status.get("reason") == "AnalysisInconclusive" and measured not in resumed[-1:]:
            resumed.append(measured)
            cluster.command(name, "resume", f"{name}-resume-{len(resumed)}")
        return done(status)

    return check
