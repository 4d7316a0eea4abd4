"""The Prometheus alert rules, as code: `python monitoring/alerts.py` writes
charts/modelrollout/files/alerts.yaml (`--check` only compares). Tooling, not shipped in the wheel.

The file is a Prometheus rules file (``groups:``); the chart wraps it in a PrometheusRule. Every
query is written with the metric catalogue's ``selector()`` (serving/contract/metric_names.py),
and every alert's ``runbook_url`` points at its paragraph in docs/alerts.md. promtool checks and
unit-tests the file (tests/monitoring/test_alerts.py, tests/promtool/).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from modelrollout.serving.contract import metric_names as names
from modelrollout.serving.contract.metric_names import selector

OUTPUT = Path(__file__).resolve().parent.parent / "charts" / "modelrollout" / "files" / "alerts.yaml"
RUNBOOKS = "https://github.com/modelrollout/modelrollout/blob/main/docs/alerts.md"
WINDOW = "[5m]"

# Thresholds (docs/alerts.md says the same).
ERROR_RATIO_MARGIN = 0.05  # candidate error ratio above stable's by 5 percentage points
LATENCY_RATIO = 1.5  # candidate p99 over stable p99
LATENCY_FLOOR_SECONDS = 0.025  # below this p99 a ratio is noise, whatever its size
MIN_REQUESTS_PER_SECOND = 0.1  # a candidate with less traffic is not judged
SHADOW_DISAGREEMENT = 0.01  # disagreeing over compared mirrored answers
STUCK_WINDOW = "30m"  # no step and no weight change for this long while Progressing
# Reasons of a Progressing rollout that wait on purpose: a shadow's duration, a keep-warm window.
WAITING_REASONS = ("Shadowing", "ScaleDownDelay")
# The guard fired on a promoted revision (docs/guard.md): Degraded, but not an abort.
GUARD_REASONS = ("GuardFired", "FallbackActive", "FallbackNotReady")
# Degraded for a reason that is not an abort the operator decided: a person's, an invalid spec,
# the guard's (alerted on by ModelFallbackActive and ModelGuardFiredWithoutFallback).
NOT_AUTOMATED_ABORTS = ("AbortedByUser", "SpecInvalid", *GUARD_REASONS)


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    duration: str  # the rule's "for"
    severity: str  # critical pages; warning goes to a ticket or a channel
    summary: str
    description: str

    @property
    def anchor(self) -> str:
        """The heading id of the alert's runbook paragraph in docs/alerts.md (its name, lowercase)."""
        return self.name.lower()

    def rule(self) -> dict:
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.duration,
            "labels": {"severity": self.severity},
            "annotations": {"summary": self.summary, "description": self.description,
                            "runbook_url": f"{RUNBOOKS}#{self.anchor}"},
        }


def _eq(value: str) -> str:
    return f'="{value}"'


def _any_of(values: tuple[str, ...]) -> str:
    return f'=~"{"|".join(values)}"'


def _none_of(values: tuple[str, ...]) -> str:
    return f'!~"{"|".join(values)}"'


def _gauge_is(name: str, by: str, **matchers: str) -> str:
    """Series of a 0/1 gauge that are 1, one per ``by``."""
    return f"(max by ({by}) ({selector(name, **matchers)}) == 1)"


def _rate(name: str, suffix: str = "total", **matchers: str) -> str:
    return f"rate({selector(name, suffix, **matchers)}{WINDOW})"


def _error_ratio(role: str) -> str:
    """The builtin error-rate (operator/analysis/queries.py) of every model's revision in
    ``role``: 5xx answers plus requests it could not take, over both. ``or 0 * ...``: a revision
    without a single 5xx has no 5xx series and must read 0, not nothing."""
    every = f"sum by (model) ({_rate(names.GATEWAY_REQUESTS, role=_eq(role))})"
    errors = f"sum by (model) ({_rate(names.GATEWAY_REQUESTS, role=_eq(role), code=_any_of(('5..',)))})"
    fallbacks = f"sum by (model) ({_rate(names.GATEWAY_FALLBACKS, role=_eq(role))})"
    return f"((({errors}) or 0 * {every}) + {fallbacks}) / ({every} + {fallbacks})"


def _p99(role: str) -> str:
    buckets = _rate(names.GATEWAY_REQUEST_DURATION, "bucket", role=_eq(role))
    return f"histogram_quantile(0.99, sum by (le, model) ({buckets}))"


def _busy(role: str) -> str:
    """Models whose revision in ``role`` gets enough requests to be judged."""
    return f"(sum by (model) ({_rate(names.GATEWAY_REQUESTS, role=_eq(role))}) > {MIN_REQUESTS_PER_SECOND})"


def alerts() -> tuple[Alert, ...]:
    """Every alert, as plain data (what docs/alerts.md and the tests go through)."""
    rollout = "namespace, name"
    aborted = _gauge_is(names.ROLLOUT_REASON, f"{rollout}, reason", reason=_none_of(NOT_AUTOMATED_ABORTS))
    degraded = _gauge_is(names.ROLLOUT_PHASE, rollout, phase=_eq("Degraded"))
    progressing = _gauge_is(names.ROLLOUT_PHASE, rollout, phase=_eq("Progressing"))
    waiting = _gauge_is(names.ROLLOUT_REASON, rollout, reason=_any_of(WAITING_REASONS))
    stepped = f"(changes({selector(names.ROLLOUT_STEP)}[{STUCK_WINDOW}]) > 0)"
    moved = f"(sum by ({rollout}) (changes({selector(names.ROLLOUT_WEIGHT)}[{STUCK_WINDOW}])) > 0)"
    shadow = "model, revision"
    disagreed = _rate(names.SHADOW_COMPARISONS, result=_eq("disagree"))
    compared = _rate(names.SHADOW_COMPARISONS, result=_any_of(("agree", "disagree")))
    load_failures = selector(names.SERVER_FAILURES, "total", reason=_any_of(names.LOAD_FAILURE_REASONS))
    server = "namespace, pod, model, version, revision"
    unready = f"(max by (namespace, pod) ({selector(names.SERVER_MODEL_READY)}) == 0)"
    up = f'up{{job="{names.JOB_OPERATOR}"}}'
    return (
        Alert("ModelRolloutAborted", f"{aborted} and on ({rollout}) {degraded}",
              "0m", "warning",
              "Rollout of {{ $labels.namespace }}/{{ $labels.name }} aborted: {{ $labels.reason }}",
              "The operator aborted the candidate and sent all traffic back to stable (reason "
              "{{ $labels.reason }}). The ModelDeployment stays Degraded until its spec changes."),
        Alert("ModelRolloutStuck",
              # "offset": only a rollout followed for the whole window, not one that just began.
              f"{progressing} and on ({rollout}) {selector(names.ROLLOUT_STEP)} offset {STUCK_WINDOW}"
              f" unless on ({rollout}) {waiting}"
              f" unless on ({rollout}) {stepped} unless on ({rollout}) {moved}",
              "5m", "warning",
              "Rollout of {{ $labels.namespace }}/{{ $labels.name }} makes no progress",
              f"Progressing, but neither its step nor any traffic weight changed in {STUCK_WINDOW}: past "
              "any progress deadline, the operator is not moving it on."),
        Alert("ModelRolloutAnalysisInconclusive",
              _gauge_is(names.ROLLOUT_REASON, rollout, reason=_eq("AnalysisInconclusive")),
              "15m", "warning",
              "Analysis of {{ $labels.namespace }}/{{ $labels.name }} inconclusive for 15 minutes",
              "The rollout is paused: its analysis had too few samples (or no data) to judge the "
              "candidate. It waits for a person to resume, promote or abort."),
        Alert("ModelFallbackActive",
              _gauge_is(names.ROLLOUT_REASON, rollout, reason=_eq("FallbackActive")),
              "0m", "warning",
              "{{ $labels.namespace }}/{{ $labels.name }} is served by its fallback",
              "The guard fired on the promoted revision and all traffic went to the fallback "
              "(status.fallback). Clients are served; the guarded model needs a look before traffic "
              "goes back to it."),
        Alert("ModelGuardFiredWithoutFallback",
              _gauge_is(names.ROLLOUT_REASON, f"{rollout}, reason",
                        reason=_any_of(("GuardFired", "FallbackNotReady"))),
              "0m", "critical",
              "The guard fired on {{ $labels.namespace }}/{{ $labels.name }} with nowhere to fall back",
              "The guard fired on the promoted revision, but there is no fallback ({{ $labels.reason }}): "
              "the failing revision still serves every client."),
        Alert("ModelCandidateErrorRatioHigher",
              f"({_error_ratio('candidate')} - {_error_ratio('stable')} > {ERROR_RATIO_MARGIN})"
              f" and on (model) {_busy('candidate')}",
              "5m", "critical",
              "Candidate of {{ $labels.model }} fails more requests than stable",
              f"The candidate's error ratio (5xx answers and requests it could not take) is more than "
              f"{ERROR_RATIO_MARGIN:.0%} above stable's."),
        Alert("ModelCandidateSlower",
              f"({_p99('candidate')} > {LATENCY_RATIO} * {_p99('stable')})"
              f" and on (model) ({_p99('candidate')} > {LATENCY_FLOOR_SECONDS})"
              f" and on (model) {_busy('candidate')}",
              "10m", "warning",
              "Candidate of {{ $labels.model }} is slower than stable",
              f"The candidate's p99 at the gateway is over {LATENCY_RATIO} times stable's and above "
              f"{LATENCY_FLOOR_SECONDS * 1000:g} ms."),
        Alert("ModelShadowDisagreement",
              f"sum by ({shadow}) ({disagreed}) / sum by ({shadow}) ({compared}) > {SHADOW_DISAGREEMENT}",
              "5m", "warning",
              "Shadow {{ $labels.revision }} of {{ $labels.model }} disagrees with stable",
              f"More than {SHADOW_DISAGREEMENT:.0%} of the mirrored answers compared differ from the "
              "served ones."),
        Alert("ModelRevisionNoReadyEndpoint",
              f"({selector(names.GATEWAY_READY_ENDPOINTS)} == 0)"
              f" and on (model, revision, role) ({selector(names.GATEWAY_WEIGHT)} > 0)",
              "2m", "critical",
              "Revision {{ $labels.revision }} of {{ $labels.model }} has no ready endpoint",
              "The gateway sends {{ $labels.role }} traffic to this revision but no pod of it is ready: "
              "its requests fall back to the other revision or fail."),
        Alert("ModelServerNotReady",
              f"{selector(names.SERVER_MODEL_READY)} == 0",
              "5m", "warning",
              "Model server {{ $labels.namespace }}/{{ $labels.pod }} not ready",
              "The server of {{ $labels.model }} {{ $labels.version }} has not had its model loaded, warmed "
              "up and serving for 5 minutes."),
        Alert("ModelRolloutOperatorDown",
              f"absent({up} == 1)",
              "5m", "critical",
              "The modelrollout operator is down",
              "No operator replica has answered a scrape for 5 minutes: no rollout moves, none is "
              "aborted, and analysis stops."),
        Alert("ModelRolloutReconcileErrors",
              f"sum by ({rollout}) ({_rate(names.RECONCILE_ERRORS)}) > 0",
              "10m", "warning",
              "Reconciles of {{ $labels.namespace }}/{{ $labels.name }} keep failing",
              "The operator's reconciles of this ModelDeployment have failed again and again for 10 "
              "minutes (it retries); its status and traffic are not kept up to date."),
        Alert("ModelLoadFailures",
              # Not a rate: a pod that fails at start has its counter at 1 from its first scrape
              # on. The server never retries a load, so the pod stays unready while this holds.
              f"(max by ({server}, reason) ({load_failures}) > 0)"
              f" and on (namespace, pod) {unready}",
              "0m", "critical",
              "{{ $labels.namespace }}/{{ $labels.pod }} cannot load its model: {{ $labels.reason }}",
              "The model server failed to download the model, found a sha256 other than the spec's, or "
              "could not load the file (reason {{ $labels.reason }}); the pod never becomes ready."),
    )


def render() -> str:
    groups = [{"name": "modelrollout", "rules": [alert.rule() for alert in alerts()]}]
    header = "# Generated by monitoring/alerts.py from serving/contract/metric_names.py: do not edit.\n"
    return header + yaml.safe_dump({"groups": groups}, sort_keys=False, width=10_000, allow_unicode=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=f"Write {OUTPUT.name} (the Prometheus alert rules).")
    parser.add_argument("--check", action="store_true", help="only say whether the file is up to date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT} is out of date: run python monitoring/alerts.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
