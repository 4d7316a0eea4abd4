"""A rollout fixture for engine tests: verbs that change the world, then tick()."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

from modelrollout.operator.actions import RecordEvent, SetTraffic
from modelrollout.operator.analysis.judge import measurement_of
from modelrollout.operator.engine import Observations, decide, due_metrics, revision_of
from modelrollout.operator.spec import parse_spec
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
        self.stable_ready = True

    # verbs that change the world
    def new_version(self, version: str) -> None:
        self.doc["model"]["uri"] = f"https://models.example.com/iris/{version}/model.onnx"
        self.doc["model"]["version"] = version
        self.spec = parse_spec(self.doc)
        self.candidate_ready, self.smoke = 0, None

    def make_candidate_ready(self) -> None:
        self.candidate_ready = self.spec.replicas

    def wait(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    # one reconcile
    def tick(self, command: str | None = None, value: float | None = 0.001, samples: int = 100,
             error: str | None = None) -> Rollout:
        at = format_time(self.now)
        measurements = tuple(
            measurement_of(self.spec.analysis.metric(name), at, value, samples, error)
            for name in due_metrics(self.spec, self.status, self.now)
        )
        smoke = self.smoke if not self.status.gate_passed and self.candidate_ready else None
        observations = Observations(
            stable_ready=self.stable_ready, candidate_ready_replicas=self.candidate_ready,
            candidate_crash_looping=self.crash_looping, smoke_test=smoke,
            measurements=measurements, command=command,
        )
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
