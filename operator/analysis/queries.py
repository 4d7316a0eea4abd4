"""PromQL for analysis metrics: the builtin ones and user templates. Pure.

Templates may use {{model}}, {{namespace}}, {{revision}} and {{interval}}. Every builtin
comes with a samples query: how many requests stand behind the value, so that an idle
candidate is inconclusive (minSamples) rather than passed on no traffic.

The builtins read the gateway's metrics (builtin routing), which see what the servers
cannot: a request that fell back to the other revision because this one had no
endpoint or refused connections counts as an error of this revision.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelrollout.serving.contract import metric_names as names

from ..spec import MetricSpec


@dataclass(frozen=True)
class Query:
    value: str  # PromQL giving the metric's value
    samples: str | None  # PromQL giving the number of requests behind it; None: not known


_SELECTOR = 'model="{{model}}",revision="{{revision}}"'
_REQUESTS = f"{names.GATEWAY_REQUESTS}_total{{{_SELECTOR}}}"
_ERRORS = f'{names.GATEWAY_REQUESTS}_total{{{_SELECTOR},code=~"5.."}}'
_FALLBACKS = f"{names.GATEWAY_FALLBACKS}_total{{{_SELECTOR}}}"
_BUCKETS = f"{names.GATEWAY_REQUEST_DURATION}_bucket{{{_SELECTOR}}}"

BUILTIN = {
    # (5xx answers + requests this revision could not take) / (everything sent its way)
    "error-rate": Query(
        value=(
            f"((sum(rate({_ERRORS}[{{{{interval}}}}])) or vector(0))"
            f" + (sum(rate({_FALLBACKS}[{{{{interval}}}}])) or vector(0)))"
            # "or vector(0)" on every term: a revision that could not take a single request
            # has no requests series at all, and must read as 100% errors, not as no data.
            f" / ((sum(rate({_REQUESTS}[{{{{interval}}}}])) or vector(0))"
            f" + (sum(rate({_FALLBACKS}[{{{{interval}}}}])) or vector(0)))"
        ),
        samples=(
            f"(sum(increase({_REQUESTS}[{{{{interval}}}}])) or vector(0))"
            f" + (sum(increase({_FALLBACKS}[{{{{interval}}}}])) or vector(0))"
        ),
    ),
    "latency-p99": Query(
        value=f"histogram_quantile(0.99, sum by (le) (rate({_BUCKETS}[{{{{interval}}}}])))",
        samples=f"sum(increase({_REQUESTS}[{{{{interval}}}}])) or vector(0)",
    ),
}


def query_for(metric: MetricSpec) -> Query:
    if metric.query is not None:
        return Query(metric.query, None)
    return BUILTIN[metric.name]


def render(template: str, model: str, namespace: str, revision: str, interval_seconds: float) -> str:
    """Fill a template's placeholders; values are escaped for PromQL string literals."""
    values = {
        "model": _escape(model),
        "namespace": _escape(namespace),
        "revision": _escape(revision),
        "interval": f"{max(1, round(interval_seconds))}s",
    }
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", value)
    return template


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
