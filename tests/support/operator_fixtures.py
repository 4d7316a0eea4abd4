"""A rollout fixture for engine tests: verbs that change the world, then tick()."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from modelrollout.operator.actions import EnsureRevision, RecordEvent, ScaleRevision, SetTraffic
from modelrollout.operator.analysis.judge import measurement_of
from modelrollout.operator.engine import (
    Observations,
    comparisons_due,
    decide,
    due_metrics,
    fallback_of,
    revision_of,
)
from modelrollout.operator.spec import Metric, parse_spec
from modelrollout.operator.status import RolloutStatus, format_time

SPEC = {
    "model": {"uri": "https://models.example.com/iris/1.0.0/model.onnx", "version": "1.0.0"},
    "replicas": 2,
    "server": {"image": "modelrollout-server:0.1.0"},
    "strategy": {"canary": {"steps": [
        {"setWeight": 10},
        {"analysis": {"metrics": ["error-rate"]}},
        {"setWeight": 50},
        {"pause": {"duration": "5m"}},
        {"setWeight": 100},
    ]}},
    "analysis": {"interval": "30s", "prometheus": {"address": "http://127.0.0.1:9090"},
                 "metrics": [{"name": "error-rate", "thresholdRange": {"max": 0.01}, "count": 2,
                              "minSamples": 10}]},
    "progressDeadlineSeconds": 600,
}

_METRICS = [{"name": "error-rate", "thresholdRange": {"max": 0.01}, "minSamples": 10},
            {"name": "shadow-agreement", "thresholdRange": {"min": 0.99}, "minSamples": 10},
            {"name": "shadow-latency-ratio", "thresholdRange": {"max": 1.5}, "minSamples": 10}]
BLUE_GREEN = {**SPEC, "strategy": {"blueGreen": {
    "previewReplicas": 1,
    "prePromotionAnalysis": {"metrics": ["error-rate"]},
    "autoPromotionSeconds": 120,
    "postPromotionAnalysis": {"metrics": ["error-rate"]},
    "scaleDownDelaySeconds": 60,
    "abortScaleDownDelaySeconds": 30,
}}, "analysis": {**SPEC["analysis"], "metrics": _METRICS}}
SHADOW = {**SPEC, "strategy": {"shadow": {
    "mirrorPercent": 100, "duration": "10m", "minComparisons": 500,
    "analysis": {"metrics": ["shadow-agreement", "shadow-latency-ratio"]}, "then": "promote",
}}, "analysis": {**SPEC["analysis"], "metrics": _METRICS}}


def metric(name: str, min: float | None = None, max: float | None = None, **fields) -> Metric:  # noqa: A002
    """A spec.analysis.metrics entry, its thresholdRange given as min and max."""
    return Metric(name=name, threshold_range={"min": min, "max": max}, **fields)


class Rollout:
    def __init__(self, spec: dict | None = None) -> None:
        self.doc = copy.deepcopy(spec or SPEC)
        self.spec = parse_spec(self.doc)
        self.status = RolloutStatus()
        self.now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
        self.actions: tuple = ()
        self.candidate_ready = 0
        self.smoke: bool | str | None = None
        self.crash_looping = False
        self.problem: str | None = None  # what unready candidate pods say is wrong
        self.stable_ready = True
        self.comparisons = 0  # what the gateway compared of a shadow's answers so far
        self.golden = None  # the golden-set replay's result the shell would hand over
        self.fallback_ready = 1  # ready replicas of the fallback revision (spec.fallback)
        self.fallback_problem: str | None = None  # what its unready pods say

    # verbs that change the world
    def new_version(self, version: str) -> None:
        self.doc["model"]["uri"] = f"https://models.example.com/iris/{version}/model.onnx"
        self.doc["model"]["version"] = version
        self.spec = parse_spec(self.doc)
        self.candidate_ready, self.smoke = 0, None

    def make_candidate_ready(self, replicas: int | None = None) -> None:
        self.candidate_ready = self.spec.replicas if replicas is None else replicas

    def wait(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    # one reconcile
    def tick(self, command: str | None = None, value: float | None = 0.001, samples: int = 100,
             error: str | None = None, by: str | None = None, values: dict | None = None) -> Rollout:
        """One reconcile; ``value`` is what every due metric measures, ``values`` per metric."""
        at = format_time(self.now)
        values = values or {}
        measurements = tuple(
            measurement_of(self.spec.analysis.metric(name), at, values.get(name, value), samples, error)
            for name in due_metrics(self.spec, self.status, self.now)
        )
        counted = self.comparisons if comparisons_due(self.spec, self.status, self.now) else None
        smoke = self.smoke if not self.status.gate_passed and self.candidate_ready else None
        observations = Observations(
            # as the shell sees it: no stable revision yet, nothing of it ready
            stable_ready_replicas=self.spec.replicas if self.stable_ready and self.status.stable_revision
            else 0,
            candidate_ready_replicas=self.candidate_ready,
            candidate_crash_looping=self.crash_looping, smoke_test=smoke, candidate_problem=self.problem,
            measurements=measurements, command=command, command_by=by if command else None,
            shadow_comparisons=counted,
            golden_set=self.golden if smoke is True and self.spec.golden_set is not None else None,
        )
        fallback = fallback_of(self.spec, self.status)
        if fallback is not None:
            observations = replace(observations, fallback_revision=fallback[0],
                                   fallback_ready_replicas=self.fallback_ready,
                                   fallback_problem=None if self.fallback_ready else self.fallback_problem)
        self.measured = measurements  # what the shell measured this reconcile
        decision = decide(self.spec, self.status, observations, self.now)
        self.status, self.actions = decision.status, decision.actions
        return self

    # tiny assertion helpers
    @property
    def revision(self) -> str:
        return revision_of(self.spec)

    def traffic(self) -> tuple[int, int]:
        return self.status.traffic.stable, self.status.traffic.candidate

    def set_traffic(self) -> list[SetTraffic]:
        return [a for a in self.actions if isinstance(a, SetTraffic)]

    def events(self) -> list[str]:
        return [a.reason for a in self.actions if isinstance(a, RecordEvent)]

    def replicas_asked(self) -> dict[str, int]:
        """Revision -> replicas, as this reconcile's actions ask (ensure or scale)."""
        scaling = (EnsureRevision, ScaleRevision)
        return {a.revision: a.replicas for a in self.actions if isinstance(a, scaling)}

    def roll_to(self, version: str) -> Rollout:
        """A new spec, its candidate ready and answering, the gate passed."""
        self.new_version(version)
        self.tick()
        self.make_candidate_ready()
        self.smoke = True
        self.tick()
        return self


# --- after the rollout: a guarded spec, promoted, and its guard fired (engine/guard.py) ---

BAD = 0.5  # error-rate: above its max 0.01
GUARD = {"triggers": [{"metric": "error-rate", "for": "1m", "failureLimit": 1}]}
FALLBACK_MODEL = {"uri": "https://models.example.com/iris-simple/1/model.onnx", "version": "simple-1"}


def guarded(base: dict = SPEC, guard: dict | None = None, fallback: dict | None = None) -> dict:
    doc = copy.deepcopy(base)
    doc["guard"] = copy.deepcopy(guard or GUARD)
    doc["fallback"] = copy.deepcopy(fallback or {"previousStable": {}})
    return doc


def promoted(r: Rollout, version: str = "2.0.0") -> Rollout:
    r.tick()
    r.roll_to(version)
    r.tick(command="promote-full")
    assert r.status.stable_revision == r.revision, r.status.message
    return r


def fire(r: Rollout) -> Rollout:
    """Failed measurements every interval until the guard fires (bounded)."""
    for _ in range(10):
        r.wait(30)
        r.tick(value=BAD)
        if r.status.guard.state == "Fired":
            return r
    raise AssertionError(f"the guard never fired: {r.status.message}")
