"""The route table the gateway serves from, swapped whole on every update.

A request reads the table once, at its start, so an update never changes the route
of a request in flight.
"""

from __future__ import annotations

import logging

from ..contract.routes import RouteTable
from .balancer import Balancer
from .metrics import GatewayMetrics

log = logging.getLogger("modelrollout.gateway")


class RouteState:
    def __init__(self, balancer: Balancer, metrics: GatewayMetrics) -> None:
        self.table = RouteTable()
        self.is_loaded = False  # ready only once a first table arrived
        self._balancer = balancer
        self._metrics = metrics

    def update(self, table: RouteTable, source: str) -> None:
        self.table = table
        self.is_loaded = True
        self._metrics.route_updates.labels(source, "applied").inc()
        self._metrics.weight.clear()  # revisions gone from the table lose their gauges
        self._metrics.ready_endpoints.clear()
        for model, route in table.models.items():
            for revision in route.revisions:
                self._metrics.weight.labels(model, revision.name, revision.role).set(revision.weight)
                self._metrics.ready_endpoints.labels(model, revision.name, revision.role).set(
                    len(revision.ready_endpoints))
                # Counters a rollout is judged by start at 0, so rate() and increase() count
                # a revision's first requests too (a series that appears at 5 reads as +0).
                self._metrics.requests.labels(model, revision.name, revision.role, "200")
                self._metrics.fallbacks.labels(model, revision.name, revision.role)
        named = {
            (e.host, e.port)
            for route in table.models.values() for r in route.revisions for e in r.endpoints
        }
        self._balancer.forget_except(named)
        log.info(
            "routes updated",
            extra={"source": source, "models": {
                name: {r.name: r.weight for r in route.revisions} for name, route in table.models.items()
            }},
        )

    def reject(self, source: str, error: str, outcome: str = "keeping the current routes") -> None:
        self._metrics.route_updates.labels(source, "rejected").inc()
        log.error(f"route update rejected; {outcome}", extra={"source": source, "error": error})
