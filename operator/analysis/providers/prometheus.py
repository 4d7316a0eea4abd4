"""Prometheus instant and range queries over httpx; instant ones become analysis measurements.

Two questions a provider answers (Flagger's RunQuery and IsOnline): what does this
PromQL give now, and can Prometheus be reached at all; and one more, what did it give
over a stretch of time (range queries: the demo charts what the analysis saw). A query
that returns no series, or NaN, is "no data": the judge makes it Inconclusive. An unreachable or failing
Prometheus is an Error measurement, counted towards the consecutive-error limit.
"""

from __future__ import annotations

import math

import httpx

from ...spec import Metric
from ...status import Measurement
from ..judge import measurement_of
from ..queries import COMPARISONS, query_for, render, source


class PrometheusError(Exception):
    """Prometheus could not answer; the message says why (never the URL's credentials)."""


class PrometheusProvider:
    def __init__(self, address: str, client: httpx.AsyncClient, timeout_seconds: float = 5.0) -> None:
        self.address = address.rstrip("/")
        self._client = client
        self._timeout = timeout_seconds

    async def is_online(self) -> bool:
        try:
            response = await self._client.get(f"{self.address}/-/ready", timeout=self._timeout)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def query(self, promql: str) -> float | None:
        """The single value of an instant query; None for no series or NaN."""
        body = await self._get("/api/v1/query", {"query": promql})
        result = body.get("data", {}).get("result", [])
        if not result:
            return None
        if len(result) > 1:
            raise PrometheusError(f"query returned {len(result)} series; aggregate it to one (sum, max...)")
        value = float(result[0]["value"][1])
        return None if math.isnan(value) else value

    async def query_range(self, promql: str, start: float, end: float,
                          step: float) -> list[tuple[float, float]]:
        """(unix time, value) points of a range query that gives one series; [] for none.
        NaN points (0/0 where nothing was asked) are left out."""
        body = await self._get("/api/v1/query_range",
                               {"query": promql, "start": start, "end": end, "step": step})
        result = body.get("data", {}).get("result", [])
        if not result:
            return []
        if len(result) > 1:
            raise PrometheusError(f"query returned {len(result)} series; aggregate it to one (sum, max...)")
        points = [(float(t), float(v)) for t, v in result[0]["values"]]
        return [(t, v) for t, v in points if not math.isnan(v)]

    async def _get(self, path: str, params: dict) -> dict:
        try:
            response = await self._client.get(f"{self.address}{path}", params=params, timeout=self._timeout)
        except httpx.HTTPError as exc:
            raise PrometheusError(f"Prometheus unreachable: {type(exc).__name__}") from None
        try:
            body = response.json()
        except ValueError:
            raise PrometheusError(f"Prometheus answered {response.status_code} without JSON") from None
        if response.status_code != 200 or body.get("status") != "success":
            raise PrometheusError(f"Prometheus refused the query: {body.get('error', response.status_code)}")
        return body

    async def measure(
        self, metric: Metric, routing: str, model: str, namespace: str, revision: str,
        interval_seconds: float, at: str, stable_revision: str = "", reference: bool = False,
    ) -> Measurement:
        """One measurement of ``metric`` for ``revision``: its value, judged, with the
        number of requests behind it when the metric has a samples query. ``routing``
        (spec.trafficRouting) says whose metrics the builtins read; ``reference``: against the
        model's profile rather than ``stable_revision`` (the guard)."""
        query = query_for(metric, routing, reference)
        place = (model, namespace, revision, interval_seconds, stable_revision)
        try:
            value = await self.query(render(query.value, *place))
            samples = metric.min_samples  # custom queries: a value is taken as enough
            if query.samples is not None:
                samples = int(await self.query(render(query.samples, *place)) or 0)
        except PrometheusError as exc:
            return measurement_of(metric, at, None, 0, str(exc))
        return measurement_of(metric, at, value, samples)

    async def count_comparisons(self, routing: str, model: str, namespace: str, revision: str,
                                since_seconds: float) -> int | None:
        """Compared answers of a shadow over the last ``since_seconds``; None when
        Prometheus could not answer (the count stays where it was)."""
        try:
            value = await self.query(render(COMPARISONS[source(routing)], model, namespace, revision,
                                            since_seconds))
        except PrometheusError:
            return None
        return int(value or 0)
