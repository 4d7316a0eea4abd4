"""Which endpoint of a revision gets a request, and passive ejection of failing endpoints.

Least outstanding requests (ties broken round-robin) or plain round robin. An endpoint
that fails ``eject_after`` times in a row is left out for ``ejection_seconds``; when
every endpoint of a revision is ejected they are all tried again rather than none
(Envoy's panic mode), so an outage of the ejection logic can never cause one.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

from ..contract.routes import Endpoint
from .upstream import EndpointPool

STRATEGIES = ("least-outstanding", "round-robin")


@dataclass
class _Health:
    consecutive_failures: int = 0
    ejected_until: float = 0.0


class Balancer:
    def __init__(
        self,
        strategy: str = "least-outstanding",
        eject_after: int = 3,
        ejection_seconds: float = 10.0,
        clock=time.monotonic,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown load-balancing strategy {strategy!r}; use one of {STRATEGIES}")
        self.strategy = strategy
        self.eject_after = eject_after
        self.ejection_seconds = ejection_seconds
        self._clock = clock
        self._pools: dict[tuple[str, int], EndpointPool] = {}
        self._health: dict[tuple[str, int], _Health] = {}
        self._turn = itertools.count()

    def pool(self, endpoint: Endpoint) -> EndpointPool:
        key = (endpoint.host, endpoint.port)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = EndpointPool(endpoint.host, endpoint.port)
        return pool

    def pick(
        self, endpoints: tuple[Endpoint, ...], exclude: EndpointPool | None = None
    ) -> EndpointPool | None:
        """A pool for one of ``endpoints`` (ready ones), or None when there is none to try."""
        if len(endpoints) == 1 and exclude is None:  # the common case: one pod, nothing to weigh
            return self.pool(endpoints[0])
        now = self._clock()
        candidates = [e for e in endpoints if (e.host, e.port) != _key(exclude)]
        if not candidates:
            return None
        healthy = [e for e in candidates if self._health_of(e).ejected_until <= now]
        pools = [self.pool(e) for e in (healthy or candidates)]
        turn = next(self._turn)
        if self.strategy == "round-robin" or len(pools) == 1:
            return pools[turn % len(pools)]
        least = min(p.outstanding for p in pools)
        tied = [p for p in pools if p.outstanding == least]
        return tied[turn % len(tied)]

    def succeeded(self, pool: EndpointPool) -> None:
        if not self._health:  # the common case: nothing has failed yet
            return
        health = self._health.get((pool.host, pool.port))
        if health is not None:
            health.consecutive_failures = 0

    def failed(self, pool: EndpointPool) -> bool:
        """Count a failure; True when it ejects the endpoint now."""
        health = self._health.setdefault((pool.host, pool.port), _Health())
        health.consecutive_failures += 1
        if health.consecutive_failures >= self.eject_after and health.ejected_until <= self._clock():
            health.ejected_until = self._clock() + self.ejection_seconds
            health.consecutive_failures = 0
            return True
        return False

    def is_ejected(self, endpoint: Endpoint) -> bool:
        return self._health_of(endpoint).ejected_until > self._clock()

    def forget_except(self, keep: set[tuple[str, int]]) -> None:
        """Close the pools of endpoints no route names any more."""
        for key in list(self._pools):
            if key not in keep:
                self._pools.pop(key).close()
                self._health.pop(key, None)

    def close(self) -> None:
        self.forget_except(set())

    def _health_of(self, endpoint: Endpoint) -> _Health:
        return self._health.get((endpoint.host, endpoint.port)) or _Health()


def _key(pool: EndpointPool | None) -> tuple[str, int] | None:
    return (pool.host, pool.port) if pool is not None else None
