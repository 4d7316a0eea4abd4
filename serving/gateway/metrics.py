"""The gateway's Prometheus metrics, on a registry of its own (one per app).

Answered requests are counted in batches: ``count`` only appends to a list, and the
list is folded into the request counter and duration histogram every ``BATCH`` requests
and whenever the registry is read (a collector registered first does it), so /metrics
is always exact. prometheus_client's ``inc`` and ``observe`` take a lock each and the
histogram walks its buckets: a few µs per request, which at concurrency 1 ran while the
client was already sending its next request.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from modelrollout import build_info

from ..contract import metric_names as names
from ..contract.metric_names import family

DIFF_BUCKETS = (0, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1, 10, 100)
BATCH = 256  # answered requests counted at a time (and on every read of the registry)


class _FlushFirst:
    """A collector with no metrics of its own: registered before the others, it folds the
    pending batch in before they are read."""

    def __init__(self, flush) -> None:
        self._flush = flush

    def describe(self) -> list:
        return []

    def collect(self) -> list:
        self._flush()
        return []


class AnsweredIdsCollector:
    """The size and evictions of the request id map (answers.py), read when scraped: the map
    counts in plain ints, so recording an answer costs no metric update."""

    def __init__(self, answers) -> None:
        self._answers = answers

    def describe(self) -> list:
        return []

    def collect(self) -> list:
        ids = names.metric(names.GATEWAY_ANSWERED_IDS)
        size = GaugeMetricFamily(ids.name, ids.help, value=len(self._answers))
        evicted = names.metric(names.GATEWAY_ANSWERED_ID_EVICTIONS)
        evictions = CounterMetricFamily(evicted.name, evicted.help, labels=evicted.labels)
        for reason, count in self._answers.evicted.items():
            evictions.add_metric([reason], count)
        return [size, evictions]


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        r.register(_FlushFirst(self.flush))
        build_info.register(r)
        self._batch: list[tuple[str, str, str, int, float]] = []
        self.requests = family(Counter, names.GATEWAY_REQUESTS, r)
        self.duration = family(Histogram, names.GATEWAY_REQUEST_DURATION, r, buckets=names.LATENCY_BUCKETS)
        self.upstream_failures = family(Counter, names.GATEWAY_UPSTREAM_FAILURES, r)
        self.fallbacks = family(Counter, names.GATEWAY_FALLBACKS, r)
        self.ejections = family(Counter, names.GATEWAY_EJECTIONS, r)
        self.weight = family(Gauge, names.GATEWAY_WEIGHT, r)
        self.ready_endpoints = family(Gauge, names.GATEWAY_READY_ENDPOINTS, r)
        self.route_updates = family(Counter, names.GATEWAY_ROUTE_UPDATES, r)
        self.mirrored = family(Counter, names.GATEWAY_MIRRORED, r)
        self.shadow_comparisons = family(Counter, names.SHADOW_COMPARISONS, r)
        self.shadow_max_abs_diff = family(Histogram, names.SHADOW_MAX_ABS_DIFF, r, buckets=DIFF_BUCKETS)
        self.shadow_duration = family(Histogram, names.SHADOW_DURATION, r, buckets=names.LATENCY_BUCKETS)
        self.shadow_primary_duration = family(Histogram, names.SHADOW_PRIMARY_DURATION, r,
                                              buckets=names.LATENCY_BUCKETS)
        self.feedback = family(Counter, names.GATEWAY_FEEDBACK, r)
        self.feedback_unrouted = family(Counter, names.GATEWAY_FEEDBACK_UNROUTED, r)
        self._children: dict[tuple, object] = {}

    def count(self, model: str, revision: str, role: str, code: int, seconds: float) -> None:
        """One answered request (counted in batches, see the module's docstring)."""
        batch = self._batch
        batch.append((model, revision, role, code, seconds))
        if len(batch) >= BATCH:
            self.flush()

    def flush(self) -> None:
        """Count the pending batch. Label children are cached: .labels() is slow."""
        batch, self._batch = self._batch, []
        children = self._children
        for model, revision, role, code, seconds in batch:
            key = (model, revision, role, code)
            pair = children.get(key)
            if pair is None:
                pair = children[key] = (
                    self.requests.labels(model, revision, role, str(code)),
                    self.duration.labels(model, revision, role),
                )
            pair[0].inc()
            pair[1].observe(seconds)

    def fail(self, model: str, revision: str, role: str, reason: str) -> None:
        self.upstream_failures.labels(model, revision, role, reason).inc()
