"""The Grafana dashboard "modelrollout", as code: `python monitoring/dashboard.py` writes
charts/modelrollout/files/dashboard.json (`--check` only compares). Tooling, not shipped in the wheel.

It answers "is the new model worse, and what is the rollout doing?" (docs/dashboard.md): one row
per question, every query written with the metric catalogue's ``selector()`` (the names and
labels of serving/contract/metric_names.py, checked), built with grafana-foundation-sdk.

Which labels select one ModelDeployment, per process:
- the operator's metrics: ``namespace`` and ``name`` (its own labels);
- the gateway's: ``model`` (the served name, which is the ModelDeployment's name unless its route
  names another);
- the servers': ``namespace`` and ``model_deployment``, the labels the scrape puts on every pod.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common, dashboard
from grafana_foundation_sdk.models.prometheus import PromQueryFormat
from modelrollout.serving.contract import metric_names as names
from modelrollout.serving.contract.metric_names import selector

OUTPUT = Path(__file__).resolve().parent.parent / "charts" / "modelrollout" / "files" / "dashboard.json"
UID = "modelrollout"
TITLE = "modelrollout: rollouts and model health"
DATASOURCE = dashboard.DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "[$__rate_interval]"

# The label matchers of one ModelDeployment (or several: the variables are multi-valued).
OPERATOR = {"namespace": '=~"$namespace"', "name": '=~"$model"'}
GATEWAY = {"model": '=~"$model"'}
SERVERS = {"namespace": '=~"$namespace"', "model_deployment": '=~"$model"'}
BY_REVISION = "model, revision, role"
FIVE_XX = '=~"5.."'


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str
    table: bool = False  # an instant query shown as a table (one row per series)


@dataclass(frozen=True)
class Panel:
    title: str
    description: str  # what the panel answers (docs/dashboard.md says the same)
    targets: tuple[Target, ...]
    kind: str = "timeseries"  # timeseries, stat or table
    unit: str = "short"
    width: int = 8
    max: float | None = None


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...] = field(default_factory=tuple)


def _op(name: str, suffix: str = "") -> str:
    """An operator metric's series for the ModelDeployments the variables select."""
    return selector(name, suffix, **OPERATOR)


def _rate(name: str, suffix: str = "total", **matchers: str) -> str:
    return f"rate({selector(name, suffix, **matchers)}{RATE})"


def _quantile(q: float, name: str, by: str, matchers: dict[str, str]) -> str:
    return f"histogram_quantile({q}, sum by (le, {by}) ({_rate(name, 'bucket', **matchers)}))"


def _ratio(numerator: str, denominator: str, by: str) -> str:
    return f"sum by ({by}) ({numerator}) / sum by ({by}) ({denominator})"


def _gateway_error_ratio() -> str:
    """The builtin error-rate's formula (operator/analysis/queries.py) per revision: 5xx answers
    plus requests the revision could not take, over both. A revision with no 5xx at all has no
    such series: ``or 0 * ...`` gives it a 0 instead of leaving it off the panel."""
    every = f"sum by ({BY_REVISION}) ({_rate(names.GATEWAY_REQUESTS, **GATEWAY)})"
    errors = f"sum by ({BY_REVISION}) ({_rate(names.GATEWAY_REQUESTS, code=FIVE_XX, **GATEWAY)})"
    fallbacks = f"sum by ({BY_REVISION}) ({_rate(names.GATEWAY_FALLBACKS, **GATEWAY)})"
    return f"(({errors} or 0 * {every}) + {fallbacks}) / ({every} + {fallbacks})"


def _rows() -> tuple[Row, ...]:
    shadow_p99 = _quantile(0.99, names.SHADOW_DURATION, "model, revision", GATEWAY)
    primary_p99 = _quantile(0.99, names.SHADOW_PRIMARY_DURATION, "model, revision", GATEWAY)
    monitored = _rate(names.SERVER_MONITORED_ROWS, **SERVERS)
    return (
        Row("Rollout: what is it doing?", (
            Panel("Phase", "The phase of each ModelDeployment (Healthy, Progressing, Paused, Degraded).",
                  (Target(f"max by (name, strategy, phase) ({_op(names.ROLLOUT_PHASE)} == 1)",
                          "{{name}} ({{strategy}}): {{phase}}"),), kind="stat", width=6),
            Panel("Reason", "Why the phase is what it is (status.reason): Shadowing, AnalysisInconclusive, "
                  "WaitingForPromotion, ProgressDeadlineExceeded ...",
                  (Target(f"max by (name, reason) ({_op(names.ROLLOUT_REASON)} == 1)",
                          "{{name}}: {{reason}}"),), kind="stat", width=6),
            Panel("Canary step", "Index of the canary step being worked on.",
                  (Target(_op(names.ROLLOUT_STEP), "{{name}}"),), width=6),
            Panel("Promotions and aborts", "Candidates promoted and rollouts aborted (by reason) over the "
                  "dashboard's time range.",
                  (Target(f"sum by (name, strategy) "
                          f"(increase({_op(names.ROLLOUT_PROMOTIONS, 'total')}[$__range]))",
                          "{{name}} promoted ({{strategy}})"),
                   Target(f"sum by (name, reason) (increase({_op(names.ROLLOUT_ABORTS, 'total')}[$__range]))",
                          "{{name}} aborted: {{reason}}")),
                  kind="stat", width=6),
            Panel("Traffic weights (operator)", "The share of traffic the operator gives each role: stable, "
                  "candidate, and the mirrored percentage of a shadow.",
                  (Target(_op(names.ROLLOUT_WEIGHT), "{{name}} {{role}}"),),
                  unit="percent", width=12, max=100),
            Panel("Traffic weights (gateway)", "The weights the gateway routes by, per revision: what the "
                  "operator asked for, as the gateway applied it.",
                  (Target(selector(names.GATEWAY_WEIGHT, **GATEWAY), "{{model}} {{revision}} ({{role}})"),),
                  unit="percent", width=12, max=100),
        )),
        Row("Is the new model worse? Requests per revision, at the gateway", (
            Panel("Requests per second", "Answered requests per revision.",
                  (Target(f"sum by ({BY_REVISION}) ({_rate(names.GATEWAY_REQUESTS, **GATEWAY)})",
                          "{{revision}} ({{role}})"),), unit="reqps", width=6),
            Panel("Error ratio", "5xx answers plus requests the revision could not take (fallbacks), over "
                  "all of them: the builtin error-rate gate, per revision.",
                  (Target(_gateway_error_ratio(), "{{revision}} ({{role}})"),), unit="percentunit", width=6),
            Panel("Latency p50 and p99", "Request duration at the gateway per revision, body read to "
                  "response.",
                  (Target(_quantile(0.5, names.GATEWAY_REQUEST_DURATION, BY_REVISION, GATEWAY),
                          "p50 {{revision}} ({{role}})"),
                   Target(_quantile(0.99, names.GATEWAY_REQUEST_DURATION, BY_REVISION, GATEWAY),
                          "p99 {{revision}} ({{role}})")), unit="s", width=6),
            Panel("Ready endpoints and fallbacks", "Ready endpoints of each revision behind the gateway (0: "
                  "its requests fall back or fail), and requests per second it could not take.",
                  (Target(selector(names.GATEWAY_READY_ENDPOINTS, **GATEWAY),
                          "ready {{revision}} ({{role}})"),
                   Target(f"sum by ({BY_REVISION}) ({_rate(names.GATEWAY_FALLBACKS, **GATEWAY)})",
                          "fallbacks/s {{revision}} ({{role}})")), width=6),
        )),
        Row("Analysis: measured values against their thresholds", (
            Panel("Analysis values and thresholds", "The last value of each analysis metric and the bounds "
                  "of its thresholdRange (dashed): a value past its bound fails the measurement.",
                  (Target(selector(names.ANALYSIS_VALUE, **OPERATOR), "{{name}} {{metric}}"),
                   Target(selector(names.ANALYSIS_THRESHOLD, **OPERATOR), "{{name}} {{metric}} {{bound}}")),
                  width=16),
            Panel("Measurements by verdict", "Analysis measurements taken, by metric and verdict "
                  "(Successful, Failed, Inconclusive, Error).",
                  (Target(f"sum by (name, metric, phase) (increase("
                          f"{selector(names.ANALYSIS_MEASUREMENTS, 'total', **OPERATOR)}[$__range]))",
                          "{{name}} {{metric}} {{phase}}"),), kind="stat", width=8),
        )),
        Row("After the rollout: the guard and the fallback (docs/guard.md)", (
            Panel("Guard", "The state of the guard on the promoted revision: Watching (its triggers measured "
                  "every interval), Fired, Ended (its window is over). Its measurements are in the Analysis "
                  "row.",
                  (Target(f"max by (name, state) ({_op(names.GUARD_STATE)} == 1)", "{{name}}: {{state}}"),),
                  kind="stat", width=12),
            Panel("Fallback serving", "1 while the fallback serves all traffic (the guard fired), 0 while it "
                  "stands by, warm.",
                  (Target(_op(names.FALLBACK_ACTIVE), "{{name}} fallback ({{kind}})"),), width=12, max=1),
        )),
        Row("Shadow: does the candidate agree with stable on the same requests?", (
            Panel("Shadow agreement", "Mirrored answers equal to the served one, over the answers compared.",
                  (Target(_ratio(_rate(names.SHADOW_COMPARISONS, result='="agree"', **GATEWAY),
                                 _rate(names.SHADOW_COMPARISONS, result='=~"agree|disagree"', **GATEWAY),
                                 "model, revision"), "{{revision}}"),), unit="percentunit", width=8, max=1),
            Panel("Shadow latency ratio", "p99 of the shadow over p99 of the served revision, on the same "
                  "mirrored requests (1: as fast).",
                  (Target(f"{shadow_p99} / {primary_p99}", "{{revision}}"),), width=8),
            Panel("Mirrored copies", "Copies sent to the shadow, dropped (queue full) or failed, per second.",
                  (Target(f"sum by (model, revision, result) ({_rate(names.GATEWAY_MIRRORED, **GATEWAY)})",
                          "{{revision}} {{result}}"),), unit="reqps", width=8),
        )),
        Row("Model servers", (
            Panel("Model info", "What each pod serves: version, sha256 of the .onnx file, opset, provider.",
                  (Target(f"max by (namespace, model_deployment, pod, revision, version, sha256, opset, "
                          f"provider) ({selector(names.SERVER_MODEL_INFO, **SERVERS)})", "", table=True),),
                  kind="table", width=24),
            Panel("Model ready", "1 when a pod's model is loaded, warmed up and serving.",
                  (Target(selector(names.SERVER_MODEL_READY, **SERVERS), "{{pod}} {{revision}}"),), width=6),
            Panel("Batch size", "Rows per onnxruntime run, mean and p99, per revision.",
                  (Target(_ratio(_rate(names.SERVER_BATCH_SIZE, "sum", **SERVERS),
                                 _rate(names.SERVER_BATCH_SIZE, "count", **SERVERS), "revision"),
                          "mean {{revision}}"),
                   Target(_quantile(0.99, names.SERVER_BATCH_SIZE, "revision", SERVERS), "p99 {{revision}}")),
                  width=6),
            Panel("Queue depth and in flight", "Requests waiting for an inference slot, and being handled.",
                  (Target(f"sum by (revision) ({selector(names.SERVER_QUEUE_DEPTH, **SERVERS)})",
                          "queued {{revision}}"),
                   Target(f"sum by (revision) ({selector(names.SERVER_INFLIGHT, **SERVERS)})",
                          "in flight {{revision}}")), width=6),
            Panel("Server failures", "Failures by reason per second: bad requests, overload, inference "
                  "errors, and a model that could not be downloaded, verified (sha256) or loaded.",
                  (Target(f"sum by (revision, reason) ({_rate(names.SERVER_FAILURES, **SERVERS)})",
                          "{{revision}} {{reason}}"),), unit="reqps", width=6),
        )),
        Row("Model signals: does the candidate predict differently? (docs/gates.md)", (
            Panel("Predicted class shares", "Each class's share of a revision's predictions: the "
                  "distributions the prediction-shift gate compares.",
                  (Target(f"sum by (revision, class) ({_rate(names.SERVER_PREDICTIONS, **SERVERS)}) "
                          f"/ on (revision) group_left sum by (revision) "
                          f"({_rate(names.SERVER_PREDICTIONS, **SERVERS)})", "{{revision}} {{class}}"),),
                  unit="percentunit", width=8, max=1),
            Panel("Input drift", "PSI of each feature over the drift window against the profile (above 0.2: "
                  "a large shift), and the KS statistic of numeric features.",
                  (Target(f"max by (revision, feature) ({selector(names.SERVER_INPUT_DRIFT_PSI, **SERVERS)})",
                          "PSI {{revision}} {{feature}}"),
                   Target(f"max by (revision, feature) ({selector(names.SERVER_INPUT_DRIFT_KS, **SERVERS)})",
                          "KS {{revision}} {{feature}}")), width=8),
            Panel("Input and output violations", "Share of monitored rows with an input outside the "
                  "profile (or missing), and with an output outside the declared outputBounds.",
                  (Target(_ratio(_rate(names.SERVER_INPUT_VIOLATING_ROWS, **SERVERS), monitored, "revision"),
                          "inputs {{revision}}"),
                   Target(_ratio(_rate(names.SERVER_OUTPUT_VIOLATIONS, **SERVERS), monitored, "revision"),
                          "outputs {{revision}}")), unit="percentunit", width=8),
        )),
    )


def rows() -> tuple[Row, ...]:
    """The dashboard's rows and panels, as plain data (what the tests run)."""
    return _rows()


def _query(target: Target, ref: str) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(target.expr).ref_id(ref).datasource(DATASOURCE)
    if target.table:
        return query.format(PromQueryFormat.TABLE).instant()
    return query.legend_format(target.legend).range()


def _panel(panel: Panel, panel_id: int):
    kinds = {"timeseries": timeseries.Panel, "stat": stat.Panel, "table": table.Panel}
    built = (kinds[panel.kind]().id(panel_id).title(panel.title).description(panel.description)
             .unit(panel.unit).datasource(DATASOURCE).span(panel.width).height(8))
    for i, target in enumerate(panel.targets):
        built = built.with_target(_query(target, chr(ord("A") + i)))
    if panel.max is not None:
        built = built.min(0).max(panel.max)
    if panel.kind == "stat":
        built = built.text_mode(common.BigValueTextMode.VALUE_AND_NAME).reduce_options(
            common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
    if panel.kind == "timeseries" and any(t.expr.startswith(names.ANALYSIS_THRESHOLD) for t in panel.targets):
        built = built.with_override(
            dashboard.MatcherConfig(id_val="byFrameRefID", options="B"),
            [dashboard.DynamicConfigValue(id_val="custom.lineStyle",
                                          value={"fill": "dash", "dash": [10, 10]})])
    return built


def _variable(name: str, label: str, query: str) -> builders.QueryVariable:
    return (builders.QueryVariable(name).label(label).query(query).datasource(DATASOURCE)
            .multi(True).include_all(True).all_value(".*").refresh(dashboard.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dashboard.VariableSort.ALPHABETICAL_ASC))


def build() -> dict:
    """The dashboard as Grafana's JSON model."""
    board = (builders.Dashboard(TITLE).uid(UID).tags(["modelrollout"]).refresh("30s").time("now-1h", "now")
             .description("Is the new model worse, and what is the rollout doing? (docs/dashboard.md)")
             .with_variable(builders.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
             .with_variable(_variable("namespace", "Namespace",
                                      f"label_values({names.ROLLOUT_PHASE}, namespace)"))
             .with_variable(_variable("model", "ModelDeployment", "label_values("
                                      f'{names.ROLLOUT_PHASE}{{namespace=~"$namespace"}}, name)')))
    ids = iter(range(1, 1000))  # Grafana wants each panel's id unique within the dashboard
    for row in rows():
        board = board.with_row(builders.Row(row.title).id(next(ids)))
        for panel in row.panels:
            board = board.with_panel(_panel(panel, next(ids)))
    return json.loads(json.dumps(board.build(), cls=JSONEncoder))


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=f"Write {OUTPUT.name} (the Grafana dashboard).")
    parser.add_argument("--check", action="store_true", help="only say whether the file is up to date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT} is out of date: run python monitoring/dashboard.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
