"""PromQL for analysis metrics: the builtin ones and user templates. Pure.

Templates may use {{model}}, {{namespace}}, {{revision}} (the candidate's),
{{stableRevision}} and {{interval}}. Every builtin comes with a samples query: how many
requests stand behind the value, so that an idle candidate is inconclusive (minSamples)
rather than passed on no traffic.

The shadow metrics read what the gateway saw of mirrored requests: every copy's answer
compared with the one the client got (shadow-agreement: agreeing over compared answers;
shadow-error-rate: copies the candidate failed; shadow-latency-ratio: the candidate's p99
over stable's p99 on the very same requests). Behind a Gateway API route the copies'
answers are thrown away, so the error rate and latency come from the servers' metrics,
and agreement cannot be measured (routing/capabilities.py refuses it).

The model-aware metrics read what every server sees of its own predictions, whatever the
routing (docs/gates.md): prediction-shift (the Jensen-Shannon divergence of the two
revisions' class shares on the same traffic, or for a regressor the largest gap between
their score distributions; for the guard, of the class shares against the profile's),
input-drift (the largest per-feature PSI against the profile), input- and output-violations
(shares of the monitored rows), accuracy and mean-abs-error
(from labels sent back as feedback).

With builtin routing the builtins read the gateway's metrics, which see what the servers
cannot: a request that fell back to the other revision because this one had no
endpoint or refused connections counts as an error of this revision. With any other
routing (an HTTPRoute, replica counts) no gateway of ours is in the path, so they read
the servers' metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelrollout.serving.contract import metric_names as names

from ..spec import Metric


@dataclass(frozen=True)
class Query:
    value: str  # PromQL giving the metric's value
    samples: str | None  # PromQL giving the number of requests behind it; None: not known


_SELECTOR = 'model="{{model}}",revision="{{revision}}"'
_STABLE = 'model="{{model}}",revision="{{stableRevision}}"'
_INTERVAL = "[{{interval}}]"
_ERRORS = ',code=~"5.."'


def _series(name: str, more: str = "", selector: str = _SELECTOR) -> str:
    """The series of ``name`` for the model and revision being analysed."""
    return f"{name}{{{selector}{more}}}"


def _p99_of(duration: str, selector: str = _SELECTOR) -> str:
    buckets = _series(f"{duration}_bucket", selector=selector)
    return f"histogram_quantile(0.99, sum by (le) (rate({buckets}{_INTERVAL})))"


def _p99(duration: str, samples: str) -> Query:
    """The 99th percentile of a latency histogram (``duration``: its metric name)."""
    return Query(_p99_of(duration), samples)


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
        **_shadow_queries(),
    }


def _shadow_queries() -> dict[str, Query]:
    compared = _series(f"{names.SHADOW_COMPARISONS}_total", ',result=~"agree|disagree"')
    agreed = _series(f"{names.SHADOW_COMPARISONS}_total", ',result="agree"')
    copies = _series(f"{names.SHADOW_COMPARISONS}_total")
    failed = _series(f"{names.SHADOW_COMPARISONS}_total", ',result="error"')
    timed = _series(f"{names.SHADOW_DURATION}_count")
    return {
        # A disagreement is an answer that differs; a copy that failed is an error, below.
        "shadow-agreement": Query(
            value=f"(sum(rate({agreed}{_INTERVAL})) or vector(0)) / sum(rate({compared}{_INTERVAL}))",
            samples=f"sum(increase({compared}{_INTERVAL})) or vector(0)",
        ),
        "shadow-error-rate": Query(
            value=f"(sum(rate({failed}{_INTERVAL})) or vector(0)) / sum(rate({copies}{_INTERVAL}))",
            samples=f"sum(increase({copies}{_INTERVAL})) or vector(0)",
        ),
        # Both histograms carry the shadow's revision: the same mirrored requests, both sides.
        "shadow-latency-ratio": Query(
            value=f"{_p99_of(names.SHADOW_DURATION)} / {_p99_of(names.SHADOW_PRIMARY_DURATION)}",
            samples=f"sum(increase({timed}{_INTERVAL})) or vector(0)",
        ),
    }


def _server_queries() -> dict[str, Query]:
    # The servers' own metrics, by the revision label the operator gives every pod
    # (MODELROLLOUT_REVISION). They cannot see a request that never reached a pod; a
    # crash-looping candidate is caught by the pod watch instead.
    requests = _series(f"{names.SERVER_REQUESTS}_total")
    errors = _series(f"{names.SERVER_REQUESTS}_total", _ERRORS)
    samples = f"sum(increase({requests}{_INTERVAL})) or vector(0)"
    error_rate = Query(
        value=f"(sum(rate({errors}{_INTERVAL})) or vector(0)) / sum(rate({requests}{_INTERVAL}))",
        samples=samples,
    )
    return {
        "error-rate": error_rate,
        "latency-p99": _p99(names.SERVER_REQUEST_DURATION, samples),
        # Mirrored copies reach the candidate's pods like any request: its own error rate and
        # its p99 over stable's (the same requests when the mirror is 100%).
        "shadow-error-rate": error_rate,
        "shadow-latency-ratio": Query(
            value=f"{_p99_of(names.SERVER_REQUEST_DURATION)}"
                  f" / {_p99_of(names.SERVER_REQUEST_DURATION, _STABLE)}",
            samples=samples,
        ),
    }


def _share(revision_selector: str, floor: str) -> str:
    """Each class's share of a revision's predictions over the window, floored (a class a
    revision never predicts would otherwise make the logarithm infinite)."""
    rows = f"{names.SERVER_PREDICTIONS}_total{{{revision_selector}}}"
    return (f"clamp_min(sum by (class) (rate({rows}{_INTERVAL})) / scalar(sum(rate({rows}{_INTERVAL}))), "
            f"{floor})")


def _score_cdf(revision_selector: str) -> str:
    """A regressor's predicted values as a distribution over the histogram's bounds."""
    buckets = f"{names.SERVER_PREDICTION_SCORE}_bucket{{{revision_selector}}}"
    count = f"{names.SERVER_PREDICTION_SCORE}_count{{{revision_selector}}}"
    return f"sum by (le) (rate({buckets}{_INTERVAL})) / scalar(sum(rate({count}{_INTERVAL})))"


def _model_queries() -> dict[str, Query]:
    p, q = _share(_SELECTOR, "1e-12"), _share(_STABLE, "1e-12")
    # Jensen-Shannon divergence in nats (0 to ln 2) for classifiers; for a regressor (no
    # class series at all) the KS distance of the score histograms.
    js = f"0.5 * sum({p} * ln(2 * {p} / ({p} + {q}))) + 0.5 * sum({q} * ln(2 * {q} / ({p} + {q})))"
    ks = f"max(abs({_score_cdf(_SELECTOR)} - {_score_cdf(_STABLE)}))"
    predicted = _series(f"{names.SERVER_PREDICTIONS}_total")
    scored = _series(f"{names.SERVER_PREDICTION_SCORE}_count")
    monitored = _series(f"{names.SERVER_MONITORED_ROWS}_total")
    rows = f"sum(increase({monitored}{_INTERVAL})) or vector(0)"
    feedback = _series(f"{names.SERVER_FEEDBACK}_total")
    correct = _series(f"{names.SERVER_FEEDBACK}_total", ',result="correct"')
    violating = _series(f"{names.SERVER_INPUT_VIOLATING_ROWS}_total")
    out_of_bounds = _series(f"{names.SERVER_OUTPUT_VIOLATIONS}_total")
    errors = _series(f"{names.SERVER_FEEDBACK_ABS_ERROR}_sum")
    errors_count = _series(f"{names.SERVER_FEEDBACK_ABS_ERROR}_count")
    return {
        "prediction-shift": Query(
            value=f"({js}) or ({ks})",
            samples=(f"(sum(increase({predicted}{_INTERVAL})) or sum(increase({scored}{_INTERVAL})))"
                     " or vector(0)"),
        ),
        "input-drift": Query(
            value=f"max({_series(names.SERVER_INPUT_DRIFT_PSI)})",
            samples=f"min({_series(names.SERVER_INPUT_DRIFT_WINDOW_ROWS)}) or vector(0)",
        ),
        "input-violations": Query(
            value=f"(sum(rate({violating}{_INTERVAL})) or vector(0)) / sum(rate({monitored}{_INTERVAL}))",
            samples=rows,
        ),
        "output-violations": Query(
            value=f"(sum(rate({out_of_bounds}{_INTERVAL})) or vector(0)) / sum(rate({monitored}{_INTERVAL}))",
            samples=rows,
        ),
        # Labels that arrived in the window, joined to predictions the revision made.
        "accuracy": Query(
            value=f"(sum(rate({correct}{_INTERVAL})) or vector(0)) / sum(rate({feedback}{_INTERVAL}))",
            samples=f"sum(increase({feedback}{_INTERVAL})) or vector(0)",
        ),
        "mean-abs-error": Query(
            value=f"sum(rate({errors}{_INTERVAL})) / sum(rate({errors_count}{_INTERVAL}))",
            samples=f"sum(increase({errors_count}{_INTERVAL})) or vector(0)",
        ),
    }


def _reference_queries() -> dict[str, Query]:
    """After the rollout (the guard) there is no other revision on the same traffic: the
    promoted revision's predictions are compared with its profile's (the class shares of its
    predictions on the profile's sample, exported by its servers)."""
    p = _share(_SELECTOR, "1e-12")
    q = f"clamp_min(max by (class) ({_series(names.SERVER_REFERENCE_PREDICTIONS)}), 1e-12)"
    js = f"0.5 * sum({p} * ln(2 * {p} / ({p} + {q}))) + 0.5 * sum({q} * ln(2 * {q} / ({p} + {q})))"
    predicted = _series(f"{names.SERVER_PREDICTIONS}_total")
    samples = f"sum(increase({predicted}{_INTERVAL})) or vector(0)"
    return {"prediction-shift": Query(value=js, samples=samples)}


# Against the profile rather than another revision: what the guard measures (engine/guard.py).
REFERENCE = _reference_queries()

# Builtin metrics by routing: the gateway's view when it routes, the servers' otherwise;
# the model-aware ones are the servers' whatever the routing.
BUILTIN = {"builtin": {**_gateway_queries(), **_model_queries()},
           "server": {**_server_queries(), **_model_queries()}}


# Compared answers of a shadow over {{interval}} (rendered as the time since it began):
# what minComparisons counts. Behind a Gateway API route, the requests its pods answered.
COMPARISONS = {
    "builtin": f"sum(increase({_series(f'{names.SHADOW_COMPARISONS}_total')}{_INTERVAL})) or vector(0)",
    "server": f"sum(increase({_series(f'{names.SERVER_REQUESTS}_total')}{_INTERVAL})) or vector(0)",
}


def source(routing: str) -> str:
    """Whose metrics the builtins read: the gateway's when it routes, the servers' otherwise."""
    return "builtin" if routing == "builtin" else "server"


def query_for(metric: Metric, routing: str, reference: bool = False) -> Query:
    """The queries of ``metric`` for a ModelDeployment routed by ``routing``; ``reference``:
    measured against the model's profile where a builtin compares two revisions (the guard)."""
    if metric.query is not None:
        return Query(metric.query, None)
    if reference and metric.name in REFERENCE:
        return REFERENCE[metric.name]
    return BUILTIN[source(routing)][metric.name]


def render(template: str, model: str, namespace: str, revision: str, interval_seconds: float,
           stable_revision: str = "") -> str:
    """Fill a template's placeholders; values are escaped for PromQL string literals."""
    values = {
        "model": _escape(model),
        "namespace": _escape(namespace),
        "revision": _escape(revision),
        "stableRevision": _escape(stable_revision),
        "interval": f"{max(1, round(interval_seconds))}s",
    }
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", value)
    return template


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
