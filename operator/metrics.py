"""The operator's own Prometheus metrics (names: serving/contract/metric_names.py)."""

from __future__ import annotations

import contextlib

from modelrollout.serving.contract import metric_names as names
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from modelrollout import build_info

from .status import ABORTED, PHASES, PROMOTED, RolloutStatus, parse_time

_PROMOTE_BUCKETS = (30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200, 86400)


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        build_info.register(self.registry)
        labels = ("namespace", "name")
        self.phase = Gauge(names.ROLLOUT_PHASE, "1 for the rollout's current phase",
                           [*labels, "strategy", "phase"], registry=self.registry)
        self.step = Gauge(names.ROLLOUT_STEP, "Index of the canary step being worked on", labels,
                          registry=self.registry)
        self.weight = Gauge(names.ROLLOUT_WEIGHT, "Traffic percentage by role", [*labels, "role"],
                            registry=self.registry)
        self.analysis_value = Gauge(names.ANALYSIS_VALUE, "Last measured value of an analysis metric",
                                    [*labels, "metric"], registry=self.registry)
        self.measurements = Counter(names.ANALYSIS_MEASUREMENTS, "Analysis measurements by verdict",
                                    [*labels, "metric", "phase"], registry=self.registry)
        self.aborts = Counter(names.ROLLOUT_ABORTS, "Rollouts aborted, by reason",
                              [*labels, "strategy", "reason"], registry=self.registry)
        self.promotions = Counter(names.ROLLOUT_PROMOTIONS, "Candidates promoted", [*labels, "strategy"],
                                  registry=self.registry)
        self.time_to_promote = Histogram(names.ROLLOUT_TIME_TO_PROMOTE,
                                         "From a candidate's appearance to its promotion",
                                         [*labels, "strategy"], buckets=_PROMOTE_BUCKETS,
                                         registry=self.registry)
        self.errors = Counter(names.RECONCILE_ERRORS, "Reconciles that failed and will be retried", labels,
                              registry=self.registry)
        self.duration = Histogram(names.RECONCILE_DURATION, "Time of one reconcile", labels,
                                  registry=self.registry)
        # The strategy each ModelDeployment's phase series carry: a changed one is removed by
        # name, not by scanning every series (that scan made each reconcile O(ModelDeployments),
        # bench/bench_operator.py --profile).
        self._strategies: dict[tuple[str, str], str] = {}

    def observe(self, namespace: str, name: str, before: RolloutStatus, after: RolloutStatus) -> None:
        """Gauges from the new status; counters from what changed between the two."""
        strategy = after.strategy or "canary"
        old = self._strategies.get((namespace, name))
        if old is not None and old != strategy:  # the strategy changed: its old series go
            for phase in PHASES:
                with contextlib.suppress(KeyError):
                    self.phase.remove(namespace, name, old, phase)
        self._strategies[(namespace, name)] = strategy
        for phase in PHASES:
            self.phase.labels(namespace, name, strategy, phase).set(1 if after.phase == phase else 0)
        self.step.labels(namespace, name).set(after.current_step)
        for role, value in (("stable", after.traffic.stable), ("candidate", after.traffic.candidate),
                            ("mirror", after.traffic.mirror)):
            self.weight.labels(namespace, name, role).set(value)
        taken = {(m.metric, m.at) for m in before.analysis}
        for measurement in after.analysis:
            if (measurement.metric, measurement.at) in taken:
                continue
            self.measurements.labels(namespace, name, measurement.metric, measurement.phase).inc()
            if measurement.value is not None:
                self.analysis_value.labels(namespace, name, measurement.metric).set(measurement.value)
        recorded = {(h.revision, h.at) for h in before.history}
        for entry in (h for h in after.history if (h.revision, h.at) not in recorded):
            # Deployed (a first revision) and Superseded (a newer spec) are neither.
            if entry.result == PROMOTED:
                self.promotions.labels(namespace, name, strategy).inc()
                if before.candidate_since:
                    self.time_to_promote.labels(namespace, name, strategy).observe(
                        (parse_time(entry.at) - parse_time(before.candidate_since)).total_seconds())
            elif entry.result == ABORTED:
                self.aborts.labels(namespace, name, strategy, entry.reason or after.reason or "Unknown").inc()

    def forget(self, namespace: str, name: str) -> None:
        """A deleted ModelDeployment leaves no gauges behind."""
        self._strategies.pop((namespace, name), None)
        for gauge in (self.phase, self.step, self.weight, self.analysis_value):
            for labels in list(gauge._metrics):  # noqa: SLF001 - prometheus_client has no filtered remove
                if labels[:2] == (namespace, name):
                    gauge.remove(*labels)
