"""The operator's own Prometheus metrics (names: serving/contract/metric_names.py)."""

from __future__ import annotations

import contextlib

from modelrollout.serving.contract import metric_names as names
from modelrollout.serving.contract.metric_names import family
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from modelrollout import build_info

from .api.v1alpha1 import FALLBACK_KINDS, GUARD_STATES
from .spec import Metric, Spec
from .status import ABORTED, PHASES, PROMOTED, Measurement, RolloutStatus, parse_time

_PROMOTE_BUCKETS = (30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200, 86400)


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        build_info.register(self.registry)
        r = self.registry
        self.phase = family(Gauge, names.ROLLOUT_PHASE, r)
        self.reason = family(Gauge, names.ROLLOUT_REASON, r)
        self.step = family(Gauge, names.ROLLOUT_STEP, r)
        self.guard = family(Gauge, names.GUARD_STATE, r)
        self.fallback = family(Gauge, names.FALLBACK_ACTIVE, r)
        self.weight = family(Gauge, names.ROLLOUT_WEIGHT, r)
        self.analysis_value = family(Gauge, names.ANALYSIS_VALUE, r)
        self.threshold = family(Gauge, names.ANALYSIS_THRESHOLD, r)
        self.measurements = family(Counter, names.ANALYSIS_MEASUREMENTS, r)
        self.aborts = family(Counter, names.ROLLOUT_ABORTS, r)
        self.promotions = family(Counter, names.ROLLOUT_PROMOTIONS, r)
        self.time_to_promote = family(Histogram, names.ROLLOUT_TIME_TO_PROMOTE, r, buckets=_PROMOTE_BUCKETS)
        self.errors = family(Counter, names.RECONCILE_ERRORS, r)
        self.duration = family(Histogram, names.RECONCILE_DURATION, r)
        # What each ModelDeployment's series carry now (strategy, reason, thresholds): a changed
        # one is removed by name, not by scanning every series (that scan made each reconcile
        # O(ModelDeployments), bench/bench_operator.py --profile).
        self._strategies: dict[tuple[str, str], str] = {}
        self._reasons: dict[tuple[str, str], str] = {}
        self._thresholds: dict[tuple[str, str], set[tuple[str, str]]] = {}

    def observe(self, namespace: str, name: str, before: RolloutStatus, after: RolloutStatus,
                spec: Spec | None = None, measurements: tuple[Measurement, ...] = ()) -> None:
        """Gauges from the new status (and the spec's thresholds); counters from what changed
        between the two statuses, and from the ``measurements`` taken this reconcile (the one
        that ends a step leaves the status in the same reconcile: it is counted all the same)."""
        strategy = after.strategy or "canary"
        old = self._strategies.get((namespace, name))
        if old is not None and old != strategy:  # the strategy changed: its old series go
            for phase in PHASES:
                with contextlib.suppress(KeyError):
                    self.phase.remove(namespace, name, old, phase)
        self._strategies[(namespace, name)] = strategy
        for phase in PHASES:
            self.phase.labels(namespace, name, strategy, phase).set(1 if after.phase == phase else 0)
        # One series per rollout: the reason it is in now (the alerts' AnalysisInconclusive ...).
        key = (namespace, name)
        reason = self._reasons.pop(key, None)
        if reason is not None and reason != after.reason:
            with contextlib.suppress(KeyError):
                self.reason.remove(namespace, name, reason)
        if after.reason:
            self.reason.labels(namespace, name, after.reason).set(1)
            self._reasons[key] = after.reason
        self.step.labels(namespace, name).set(after.current_step)
        self._guarded(namespace, name, after)
        if spec is not None:
            bounds = {(metric.name, bound): value for metric in spec.analysis.metrics
                      for bound, value in zip(names.THRESHOLD_BOUNDS, _bounds(metric), strict=True)
                      if value is not None}
            for gone in self._thresholds.get(key, set()) - bounds.keys():  # gone from the spec: goes too
                with contextlib.suppress(KeyError):
                    self.threshold.remove(namespace, name, *gone)
            for (metric_name, bound), value in bounds.items():
                self.threshold.labels(namespace, name, metric_name, bound).set(value)
            self._thresholds[key] = set(bounds)
        for role, value in (("stable", after.traffic.stable), ("candidate", after.traffic.candidate),
                            ("mirror", after.traffic.mirror)):
            self.weight.labels(namespace, name, role).set(value)
        for measurement in measurements:
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

    def _guarded(self, namespace: str, name: str, status: RolloutStatus) -> None:
        """The guard's state and the fallback's, while the spec has them."""
        guard, fallback = status.guard, status.fallback
        for state in GUARD_STATES:
            if guard is not None:
                self.guard.labels(namespace, name, state).set(1 if guard.state == state else 0)
            else:
                with contextlib.suppress(KeyError):
                    self.guard.remove(namespace, name, state)
        for kind in FALLBACK_KINDS:
            if fallback is not None and fallback.kind == kind:
                self.fallback.labels(namespace, name, kind).set(1 if fallback.active else 0)
            else:
                with contextlib.suppress(KeyError):
                    self.fallback.remove(namespace, name, kind)

    def forget(self, namespace: str, name: str) -> None:
        """A deleted ModelDeployment leaves no gauges behind."""
        for known in (self._strategies, self._reasons, self._thresholds):
            known.pop((namespace, name), None)
        for gauge in (self.phase, self.reason, self.step, self.weight, self.analysis_value, self.threshold,
                      self.guard, self.fallback):
            _forget(gauge, namespace, name)


def _bounds(metric: Metric) -> tuple[float | None, float | None]:
    return metric.threshold_range.min, metric.threshold_range.max


def _forget(gauge: Gauge, namespace: str, name: str) -> None:
    """Remove every series of one ModelDeployment from ``gauge``."""
    for labels in list(gauge._metrics):  # noqa: SLF001 - prometheus_client has no filtered remove
        if labels[:2] == (namespace, name):
            gauge.remove(*labels)
