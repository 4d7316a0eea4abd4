"""PromQL for analysis metrics: the builtin ones and user templates. Pure.

Templates may use {{model}}, {{namespace}}, {{revision}} and {{interval}}. Every builtin
comes with a samples query: how many requests stand behind the value, so that an idle
candidate is inconclusive (minSamples) rather than passed on no traffic.

With builtin routing the builtins read the gateway's metrics, which see what the servers
cannot: a request that fell back to the other revision because this one had no
endpoint or refused connections counts as an error of this revision. With any other
routing (an HTTPRoute, replica counts) no gateway of ours is in the path, so they read
the servers' metrics.
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
_INTERVAL = "[{{interval}}]"
_ERRORS = ',code=~"5.."'


def _series(name: str, more: str = "") -> str:
    """The series of ``name`` for the model and revision being analysed."""
    return f"{name}{{{_SELECTOR}{more}}}"


def _p99(duration: str, samples: str) -> Query:
    """The 99th percentile of a latency histogram (``duration``: its metric name)."""
    buckets = _series(f"{duration}_bucket")
    return Query(f"histogram_quantile(0.99, sum by (le) (rate({buckets}{_INTERVAL})))", samples)


def _gateway_queries() -> dict[str, Query]:
    requests = _series(f"{names.GATEWAY_REQUESTS}_total")
    errors = _series(f"{names.GATEWAY_REQUESTS}_total", _ERRORS)
    fallbacks = _series(f"{names.GATEWAY_FALLBACKS}_total")
    return {
        # (5xx answers + requests this revision could not take) / (everything sent its way)
        "error-rate": Query(
            value=(
                f"((sum(rate({errors}{_INTERVAL})) or vector(0))"
                f" + (sum(rate({fallbacks}{_INTERVAL})) or vector(0)))"
                # "or vector(0)" on every term: a revision that could not take a single request
                # has no requests series at all, and must read as 100% errors, not as no data.
                f" / ((sum(rate({requests}{_INTERVAL})) or vector(0))"
                f" + (sum(rate({fallbacks}{_INTERVAL})) or vector(0)))"
            ),
            samples=(
                f"(sum(increase({requests}{_INTERVAL})) or vector(0))"
                f" + (sum(increase({fallbacks}{_INTERVAL})) or vector(0))"
            ),
        ),
        "latency-p99": _p99(names.GATEWAY_REQUEST_DURATION,
                            f"sum(increase({requests}{_INTERVAL})) or vector(0)"),
    }


def _server_queries() -> dict[str, Query]:
    # The servers' own metrics, by the revision label the operator gives every pod
    # (MODELROLLOUT_REVISION). They cannot see a request that never reached a pod; a
    # crash-looping candidate is caught by the pod watch instead.
    requests = _series(f"{names.SERVER_REQUESTS}_total")
    errors = _series(f"{names.SERVER_REQUESTS}_total", _ERRORS)
    samples = f"sum(increase({requests}{_INTERVAL})) or vector(0)"
    return {
        "error-rate": Query(
            value=(f"(sum(rate({errors}{_INTERVAL})) or vector(0))"
                   f" / sum(rate({requests}{_INTERVAL}))"),
            samples=samples,
        ),
        "latency-p99": _p99(names.SERVER_REQUEST_DURATION, samples),
    }


# Builtin metrics by routing: the gateway's view when it routes, the servers' otherwise.
BUILTIN = {"builtin": _gateway_queries(), "server": _server_queries()}


def query_for(metric: MetricSpec, routing: str) -> Query:
    """The queries of ``metric`` for a ModelDeployment routed by ``routing``."""
    if metric.query is not None:
        return Query(metric.query, None)
    return BUILTIN["builtin" if routing == "builtin" else "server"][metric.name]


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
