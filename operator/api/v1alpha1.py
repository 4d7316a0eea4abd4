"""The ModelDeployment API, version v1alpha1: every spec and status field, declared once. Pure.

This module is the source, as Go types are for kubebuilder's controller-gen: the CRD
(manifests/crd/ and the chart's copy) and the field reference (docs/api.md) are generated
from it by ``.venv/bin/python -P scripts/generate_api.py``, and the operator parses a
spec and reads and writes its status with these same classes. A field's docstring is its
description; its default, bounds, pattern and enum are its type's; a CEL rule sits beside
the Python check that does the same. Field names follow Argo Rollouts and Flagger where
they exist. It is longer than the 400 lines a module keeps to elsewhere: it is declarations,
one per field, and one file per API version is what readers of an API expect.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, WrapValidator, model_validator

from . import checks
from .durations import bounded
from .objects import OneOf, Problem, Rule, Schema, SpecObject, StatusObject, rule

# Builtin analysis metrics (queries in analysis/queries.py). The shadow ones read what the
# gateway saw of mirrored requests, so they need a candidate receiving a mirror.
SHADOW_METRICS = ("shadow-agreement", "shadow-latency-ratio", "shadow-error-rate")
# Model-aware metrics (docs/gates.md): what the servers see of the predictions themselves.
MODEL_METRICS = ("prediction-shift", "input-drift", "input-violations", "output-violations", "accuracy",
                 "mean-abs-error")
BUILTIN_METRICS = ("error-rate", "latency-p99", *SHADOW_METRICS, *MODEL_METRICS)
MAX_WAIT_SECONDS = 30 * 24 * 3600  # pauses, a shadow's duration, deadlines and delays: 30 days

Name = Annotated[str, Field(min_length=1)]
MetricName = Annotated[str, Field(min_length=1, max_length=63)]
MetricNames = Annotated[list[MetricName], Field(max_length=16)]
Percent = Annotated[int, Field(ge=0, le=100)]
WaitSeconds = Annotated[int, Field(ge=0, le=MAX_WAIT_SECONDS)]
Preserved = Annotated[dict, Schema(**{"x-kubernetes-preserve-unknown-fields": True})]
Interval = bounded(1, 24 * 3600, "analysis.interval must be from 1s to 24h")
MetricInterval = bounded(1, 24 * 3600, "a metric's interval must be from 1s to 24h")
PauseDuration = bounded(0, MAX_WAIT_SECONDS, "a pause lasts at most 720h (30 days)")
ShadowDuration = bounded(0, MAX_WAIT_SECONDS, "a shadow lasts at most 720h (30 days)")


# --- spec: the model and its server ------------------------------------------------------


class ModelSource(SpecObject):
    """The ONNX model this ModelDeployment serves."""

    uri: Annotated[str, Field(min_length=1, max_length=2048), Schema(pattern="^(https?://|file://|/|pvc://)"),
                   AfterValidator(checks.model_uri),
                   checks.link_local_rule("model.uri points at a link-local or cloud-metadata address "
                                          "(169.254.0.0/16, fe80::/10, fd00:ec2::254, 100.100.100.200, "
                                          "metadata.google.internal): refused")]
    """Where the ONNX file is; http://, https://, file://, pvc:// or an absolute path. Never a link-local or
    cloud-metadata address."""
    version: Name
    """The model's version, shown in status and on every metric."""
    sha256: Annotated[str, Schema(pattern=checks.SHA256_PATTERN), AfterValidator(checks.sha256)] | None = None
    """Verified before the model is loaded."""
    name: Annotated[str, Field(min_length=1, max_length=63), Schema(pattern=checks.MODEL_NAME_PATTERN),
                    AfterValidator(checks.model_name)] | None = None
    """The name in /v2/models/{name}; default metadata.name. Letters, digits, '_', '.' and '-' (it goes in URL
    paths and in PromQL label values)."""


class Batching(SpecObject):
    """Dynamic batching in the server (Triton's semantics)."""

    max_batch_size: Annotated[int, Field(ge=0)] = 0
    """Most rows per inference run; 0 disables batching."""
    max_queue_delay_microseconds: Annotated[int, Field(ge=0)] = 500
    """Longest wait of the oldest request for more rows."""


class EnvVar(SpecObject):
    """An environment variable of the server container, as in a Pod."""

    name: Name
    value: str | None = None
    value_from: Preserved | None = None
    """As in a Pod's env (secretKeyRef, configMapKeyRef, fieldRef, ...)."""

    @rule("has(self.value) != has(self.valueFrom)", "an env entry needs exactly one of value or valueFrom")
    def _value_or_value_from(self) -> None:
        if (self.value is None) == (self.value_from is None):
            raise Problem("needs exactly one of value or valueFrom")


class Server(SpecObject):
    """Pod template knobs for the ONNX server."""

    image: Name
    resources: Preserved = {}
    """Container resources (requests, limits), as in a Pod."""
    env: Annotated[list[EnvVar], Field(max_length=100)] = []
    batching: Batching = Batching()


# --- spec: traffic routing ---------------------------------------------------------------


class ParentRef(SpecObject, extra="allow"):
    __crd__ = {"x-kubernetes-preserve-unknown-fields": True}
    name: Name
    namespace: str | None = None
    section_name: str | None = None


class GatewayApi(SpecObject, extra="allow"):
    """A Gateway API HTTPRoute: weighted backendRefs and a RequestMirror filter (docs/routing.md)."""

    __crd__ = {"x-kubernetes-preserve-unknown-fields": True}
    http_route: Name | None = None
    """Name of the HTTPRoute whose backendRefs weights are set."""
    parent_refs: list[ParentRef] | None = None


class TrafficRouting(SpecObject):
    """How traffic is split; default builtin (the modelrollout gateway)."""

    __one_of__ = OneOf(("builtin", "gateway_api", "replicas"), "trafficRouting")
    builtin: Preserved | None = None
    gateway_api: GatewayApi | None = Field(None, alias="gatewayAPI")
    replicas: Preserved | None = None
    """No router: the operator chooses which pods stand behind the model's entry Service (it writes its
    EndpointSlices), so weights are approximated by endpoint counts (status.replicaRouting says how closely).
    Takes no options; cannot mirror."""

    @property
    def kind(self) -> str:
        """builtin, gatewayAPI or replicas."""
        return self._chosen()[0]

    @property
    def options(self) -> dict:
        """The chosen backend's options, as the user wrote them."""
        chosen = self.gateway_api if self.gateway_api is not None else self.builtin or self.replicas or {}
        if isinstance(chosen, GatewayApi):
            return chosen.model_dump(by_alias=True, exclude_none=True)
        return dict(chosen)


# --- spec: strategies --------------------------------------------------------------------


class SetMirror(SpecObject):
    """Copy this percentage of requests to the candidate as a shadow; the copies' answers are compared with
    the served ones (builtin routing) and never reach the client. 0 stops mirroring."""

    percent: Percent


class Pause(SpecObject):
    """Without duration, waits until a person resumes or promotes."""

    duration_seconds: PauseDuration | None = Field(None, alias="duration")
    """Like 30s, 5m, 1h30m, 250ms; at most 720h."""


class StepAnalysis(SpecObject):
    metrics: Annotated[list[MetricName], Field(min_length=1, max_length=16)]
    """Names from spec.analysis.metrics, measured every interval until each has a verdict."""


class Step(SpecObject):
    __one_of__ = OneOf(("set_weight", "set_mirror", "pause", "analysis"), "a step")
    set_weight: Percent | None = None
    """Percent of traffic to send to the candidate."""
    set_mirror: SetMirror | None = None
    pause: Pause | None = None
    analysis: StepAnalysis | None = None

    @property
    def kind(self) -> str:
        """setWeight, setMirror, pause or analysis."""
        return self._chosen()[0]


class Canary(SpecObject):
    """Weights moved step by step, each gated by pauses and analysis."""

    steps: Annotated[list[Step], Field(min_length=1, max_length=50)]


class AnalysisRef(SpecObject):
    metrics: MetricNames
    """Names from spec.analysis.metrics."""


class BlueGreen(SpecObject):
    """A preview beside the active revision, reachable on purpose (status.preview says how), then all traffic
    switched in one write; the old revision kept warm."""

    preview_replicas: Annotated[int, Field(ge=0)] | None = None
    """Replicas of the preview before the switch; default spec.replicas."""
    pre_promotion_analysis: AnalysisRef | None = None
    """Measured on the preview's own traffic before the switch."""
    auto_promotion_seconds: WaitSeconds | None = None
    """Switch this long after the preview is ready; absent, a person promotes."""
    post_promotion_analysis: AnalysisRef | None = None
    """Measured after the switch; a failure switches back in one write."""
    scale_down_delay_seconds: WaitSeconds = 30
    """The old revision kept at full size after the switch."""
    abort_scale_down_delay_seconds: WaitSeconds = 30
    """An aborted preview kept this long before it goes."""


class Shadow(SpecObject):
    """The candidate answers mirrored copies of live requests only (weight 0); the gateway compares each
    answer with stable's. Then all traffic switches in one write."""

    mirror_percent: Annotated[int, Field(ge=1, le=100)] = 100
    """Share of requests copied to the candidate."""
    duration_seconds: ShadowDuration = Field("10m", alias="duration", validate_default=True)
    """Shadow at least this long; at most 720h."""
    min_comparisons: Annotated[int, Field(ge=0)] = 0
    """And at least this many compared answers."""
    analysis: AnalysisRef | None = None
    """Measured every analysis interval for the whole shadow."""
    then: Literal["promote", "manual"] = "promote"
    """On a pass, switch at once (promote) or wait for a person (manual)."""
    scale_down_delay_seconds: WaitSeconds = 30
    """The old revision kept at full size after the switch."""


class Strategy(SpecObject):
    __one_of__ = OneOf(("canary", "blue_green", "shadow"), "strategy")
    canary: Canary | None = None
    blue_green: BlueGreen | None = None
    shadow: Shadow | None = None

    @property
    def kind(self) -> str:
        """canary, blueGreen or shadow: the key its status record is written under."""
        return self._chosen()[0]


# --- spec: analysis and gates ------------------------------------------------------------


class ThresholdRange(SpecObject):
    min: float | None = None
    max: float | None = None

    @rule("has(self.min) || has(self.max)", "thresholdRange needs min, max or both")
    def _bounded(self) -> None:
        if self.min is None and self.max is None:
            raise Problem("needs min, max or both")

    @rule("!has(self.min) || !has(self.max) || self.min <= self.max",
          "thresholdRange.min must not be above max")
    def _ordered(self) -> None:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise Problem(f"min {self.min:g} is above max {self.max:g}")


class Metric(SpecObject):
    name: MetricName
    query: Annotated[str, Field(min_length=1, max_length=4096), Schema(pattern=checks.QUERY_PATTERN),
                     AfterValidator(checks.query_template)] | None = None
    """PromQL template with {{model}}, {{namespace}}, {{revision}}, {{stableRevision}} and {{interval}}; not
    needed for the builtin metrics."""
    threshold_range: ThresholdRange
    failure_limit: Annotated[int, Field(ge=0)] = 0
    """Failed measurements tolerated before the metric fails."""
    count: Annotated[int, Field(ge=1)] = 1
    """Measurements needed for a verdict."""
    interval_seconds: MetricInterval | None = Field(None, alias="interval")
    """Default analysis.interval; from 1s to 24h."""
    min_samples: Annotated[int, Field(ge=1)] = 1
    """Fewer samples behind a measurement make it inconclusive."""
    inconclusive_limit: Annotated[int, Field(ge=0, le=10)] = 2
    """Inconclusive measurements tolerated while the candidate's traffic is still arriving: measuring goes
    on, and one more pauses the rollout for a person. Inconclusive is never a pass."""

    @rule("has(self.query) || self.name in [" + ", ".join(f"'{m}'" for m in BUILTIN_METRICS) + "]",
          "a metric without query must be a builtin metric (" + ", ".join(BUILTIN_METRICS) + ")")
    def _builtin_or_query(self) -> None:
        if self.query is None and self.name not in BUILTIN_METRICS:
            raise Problem(f"is required: '{self.name}' is not a builtin metric "
                          f"({', '.join(BUILTIN_METRICS)})", ("query",))


class Prometheus(SpecObject):
    address: Annotated[str, Field(max_length=2048), Schema(pattern="^https?://"),
                       AfterValidator(checks.prometheus_address),
                       checks.link_local_rule("the Prometheus address points at a link-local or "
                                              "cloud-metadata address")] | None = None


class Analysis(SpecObject):
    interval_seconds: Interval = Field("30s", alias="interval", validate_default=True)
    """Between measurements; from 1s to 24h."""
    prometheus: Prometheus = Prometheus()
    consecutive_error_limit: Annotated[int, Field(ge=1)] = 4
    """Prometheus unreachable this many times in a row pauses the rollout."""
    metrics: Annotated[list[Metric], Field(max_length=16),
                       Schema(**{"x-kubernetes-list-type": "map",
                                 "x-kubernetes-list-map-keys": ["name"]})] = []

    @rule("!has(self.metrics) || size(self.metrics) == 0 "
          "|| (has(self.prometheus) && has(self.prometheus.address))",
          "analysis.prometheus.address is required when metrics are defined")
    def _prometheus_for_metrics(self) -> None:
        if self.metrics and self.prometheus.address is None:
            raise Problem("is required when metrics are defined", ("prometheus", "address"))

    @model_validator(mode="after")
    def _unique_names(self):  # the CRD's side: the list-map keyed by name
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise Problem(f"metric names must be unique, got {names}", ("metrics",))
        return self

    def metric(self, name: str) -> Metric | None:
        return next((m for m in self.metrics if m.name == name), None)


class Comparison(SpecObject):
    """How the gateway compares a mirrored answer with the one the client got (shadow, setMirror). Travels
    to the gateway in the route table."""

    absolute_tolerance: Annotated[float, Field(ge=0)] = 1e-5
    """Per float value, |shadow - primary| <= atol + rtol * |primary|."""
    relative_tolerance: Annotated[float, Field(ge=0)] = 1e-3
    """Per float value, the part of the tolerance relative to the primary's value."""
    match: Literal["values", "classes"] = "values"
    """values - every value within tolerance and the same class per row; classes - class scores agree when
    each row predicts the same class."""


class GoldenSet(SpecObject):
    """In the gate, before any traffic moves: replay the golden.json stored beside the candidate's model.onnx
    against the candidate and stable (docs/gates.md)."""

    min_accuracy: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Classifiers - the least accuracy on the golden set."""
    max_abs_error: Annotated[float, Field(ge=0)] | None = None
    """Regressors - the largest absolute error allowed on any example."""
    tolerance: Annotated[float, Field(ge=0)] = 0.0
    """How much worse than stable on the same examples is allowed (accuracy drop, or max abs error
    increase)."""


class RollbackWindow(SpecObject):
    """A new spec whose revision was stable within the last N revisions skips the steps after the gate and
    goes to 100% in one write (it served production before)."""

    revisions: Annotated[int, Field(ge=1)]


class SmokeTest(SpecObject):
    request: Preserved
    """A golden V2 inference request; default built from the model metadata."""


# --- spec: after the rollout -------------------------------------------------------------

GuardWindow = bounded(60, 365 * 24 * 3600, "guard.window must be from 1m to 8760h (a year)")
TriggerFor = bounded(0, 24 * 3600, "a trigger's for must be from 0s to 24h")
HealthyFor = bounded(0, 30 * 24 * 3600, "recovery.healthyFor must be from 0s to 720h")
RequestDeadline = bounded(0.001, 600, "perRequest.deadline must be from 1ms to 10m")


class GuardTrigger(SpecObject):
    """One analysis metric watched on the promoted revision; it fires when the metric has failed for ``for``
    and more than ``failureLimit`` times in a row (a Successful measurement ends the run; Inconclusive and
    Error neither count nor end it)."""

    metric: MetricName
    """A name from spec.analysis.metrics (its query and thresholdRange are used)."""
    for_seconds: TriggerFor = Field("1m", alias="for", validate_default=True)
    """How long the metric must keep failing before the trigger fires."""
    failure_limit: Annotated[int, Field(ge=0, le=10)] = 1
    """Failed measurements in a row tolerated: one bad scrape never fires the guard."""


class Recovery(SpecObject):
    """How traffic goes back to the guarded revision once the fallback serves: a person
    (`kubectl modelrollout recover`, or the Argo CD action), or on its own."""

    automatic: bool = False
    """Go back on its own once every trigger's metric has been healthy for healthyFor (measured on mirrored
    copies of the live requests, so it needs a router that mirrors)."""
    healthy_for_seconds: HealthyFor = Field("10m", alias="healthyFor", validate_default=True)


class Guard(SpecObject):
    """Watch the stable revision after it is promoted (or first deployed); when a trigger fires, all traffic
    goes to spec.fallback in one routing write (docs/guard.md)."""

    window_seconds: GuardWindow | None = Field(None, alias="window")
    """How long after a promotion the revision is watched (24h, say); absent, without end."""
    triggers: Annotated[list[GuardTrigger], Field(min_length=1, max_length=16)]
    recovery: Recovery = Recovery()


class PreviousStable(SpecObject):
    """The revision that served before the promotion, kept warm with fallback.replicas for the guard
    window."""


class FallbackModel(SpecObject):
    """A model of its own (typically a simpler, robust one), kept warm at all times, served under the same
    name with the same server."""

    uri: Annotated[str, Field(min_length=1, max_length=2048), Schema(pattern="^(https?://|file://|/|pvc://)"),
                   AfterValidator(checks.model_uri),
                   checks.link_local_rule("fallback.model.uri points at a link-local or cloud-metadata "
                                          "address: refused")]
    """As spec.model.uri."""
    version: Name
    sha256: Annotated[str, Schema(pattern=checks.SHA256_PATTERN), AfterValidator(checks.sha256)] | None = None
    """Verified before the model is loaded: a mismatch keeps the fallback unready, and it never gets
    traffic."""


class PerRequest(SpecObject):
    """The gateway answers a request from the fallback revision when the primary fails it: a 5xx answer, a
    connection error, a timeout, or this deadline. Never for a request sent with
    `x-modelrollout-idempotent: false`. Builtin routing only."""

    deadline_seconds: RequestDeadline | None = Field(None, alias="deadline")
    """Like 250ms: ask the fallback when the primary has not answered by then; absent, only failures."""


class Fallback(SpecObject):
    """Where traffic goes when the guard fires. Activation is a status transition: the spec is never
    edited."""

    __one_of__ = OneOf(("previous_stable", "model"), "fallback")
    previous_stable: PreviousStable | None = None
    model: FallbackModel | None = None
    replicas: Annotated[int, Field(ge=1)] = 1
    """Replicas kept warm while it waits; it grows to spec.replicas when it takes the traffic."""
    per_request: PerRequest | None = None


def _defined(names: list[str], analysis: Analysis, at: tuple) -> None:
    for name in names:
        if analysis.metric(name) is None:
            known = ", ".join(m.name for m in analysis.metrics) or "none"
            raise Problem(f"'{name}' is not defined in spec.analysis.metrics (defined: {known})", at)


_DEFINED = "has(self.analysis) && has(self.analysis.metrics) && self.analysis.metrics.exists(m, m.name == n)"


class Spec(SpecObject):
    __rules__ = (
        Rule("!has(self.trafficRouting) || !has(self.trafficRouting.replicas) || !has(self.strategy.shadow)",
             "strategy.shadow needs a router that copies requests; trafficRouting.replicas cannot mirror: "
             "use trafficRouting.builtin or gatewayAPI"),
        Rule("!has(self.trafficRouting) || !has(self.trafficRouting.replicas) || !has(self.strategy.canary) "
             "|| self.strategy.canary.steps.all(s, !has(s.setMirror))",
             "a setMirror step needs a router that copies requests; trafficRouting.replicas cannot mirror: "
             "use trafficRouting.builtin or gatewayAPI"),
        Rule("!has(self.trafficRouting) || !has(self.trafficRouting.gatewayAPI) || !has(self.analysis) "
             "|| !has(self.analysis.metrics) "
             "|| !self.analysis.metrics.exists(m, m.name == 'shadow-agreement')",
             "shadow-agreement needs the answers compared, which only the modelrollout gateway does "
             "(trafficRouting.builtin); a Gateway API RequestMirror throws the copies' answers away: use "
             "shadow-error-rate and shadow-latency-ratio"),
    )  # checked in Python by routing/capabilities.py, which knows what each backend can do

    model: ModelSource
    replicas: Annotated[int, Field(ge=0)] = 1
    """Replicas of each revision."""
    server: Server
    traffic_routing: TrafficRouting = TrafficRouting(builtin={})
    strategy: Strategy
    analysis: Analysis = Analysis()
    comparison: Comparison = Comparison()
    golden_set: GoldenSet | None = None
    rollback_window: RollbackWindow | None = None
    progress_deadline_seconds: Annotated[int, Field(ge=1, le=MAX_WAIT_SECONDS)] = 600
    """At most 30 days."""
    revision_history_limit: Annotated[int, Field(ge=0, le=100)] = 10
    """At most 100 (status.history keeps this many entries)."""
    smoke_test: SmokeTest | None = None
    guard: Guard | None = None
    fallback: Fallback | None = None

    @rule("!has(self.guard) || self.guard.triggers.all(t, "
          + _DEFINED.replace("== n", "== t.metric") + ")",
          "every metric named in a guard trigger must be defined in spec.analysis.metrics")
    def _trigger_metrics_defined(self) -> None:
        if self.guard is not None:
            for i, trigger in enumerate(self.guard.triggers):
                _defined([trigger.metric], self.analysis, ("guard", "triggers", i, "metric"))

    @rule("!has(self.fallback) || !has(self.fallback.perRequest) || has(self.guard)",
          "fallback.perRequest needs spec.guard (the fallback it answers from is the guard's)")
    def _per_request_guarded(self) -> None:
        if self.fallback is not None and self.fallback.per_request is not None and self.guard is None:
            raise Problem("needs spec.guard (the fallback it answers from is the guard's)",
                          ("fallback", "perRequest"))

    @rule("!has(self.strategy.canary) || self.strategy.canary.steps.all(s, !has(s.analysis) "
          f"|| s.analysis.metrics.all(n, {_DEFINED}))",
          "every metric named in an analysis step must be defined in spec.analysis.metrics")
    def _step_metrics_defined(self) -> None:
        for i, step in enumerate(self.strategy.canary.steps if self.strategy.canary else ()):
            if step.analysis is not None:
                _defined(step.analysis.metrics, self.analysis,
                         ("strategy", "canary", "steps", i, "analysis", "metrics"))

    @rule("!has(self.strategy.blueGreen) || [has(self.strategy.blueGreen.prePromotionAnalysis) "
          "? self.strategy.blueGreen.prePromotionAnalysis.metrics : [], "
          "has(self.strategy.blueGreen.postPromotionAnalysis) "
          "? self.strategy.blueGreen.postPromotionAnalysis.metrics : []]"
          f".all(names, names.all(n, {_DEFINED}))",
          "every metric named in a blue-green analysis must be defined in spec.analysis.metrics")
    def _blue_green_metrics_defined(self) -> None:
        blue_green = self.strategy.blue_green
        for key, block in (("prePromotionAnalysis", blue_green and blue_green.pre_promotion_analysis),
                           ("postPromotionAnalysis", blue_green and blue_green.post_promotion_analysis)):
            if block is not None:
                _defined(block.metrics, self.analysis, ("strategy", "blueGreen", key, "metrics"))

    @rule("!has(self.strategy.shadow) || !has(self.strategy.shadow.analysis) "
          f"|| self.strategy.shadow.analysis.metrics.all(n, {_DEFINED})",
          "every metric named in the shadow analysis must be defined in spec.analysis.metrics")
    def _shadow_metrics_defined(self) -> None:
        shadow = self.strategy.shadow
        if shadow is not None and shadow.analysis is not None:
            _defined(shadow.analysis.metrics, self.analysis, ("strategy", "shadow", "analysis", "metrics"))

    @model_validator(mode="after")
    def _comparisons_counted(self):
        shadow = self.strategy.shadow
        if shadow and shadow.min_comparisons and self.analysis.prometheus.address is None:
            raise Problem("is required to count a shadow's compared answers (strategy.shadow.minComparisons)",
                          ("analysis", "prometheus", "address"))
        return self


# --- status: what every strategy shares --------------------------------------------------
# Written by the operator only (operator/status.py reads and writes it with these classes),
# except command (kubectl modelrollout, Argo CD actions) and the routing keys (route,
# preview, replicaRouting), which their writers own: they are read here, never written back.


def _listed(value: object) -> object:
    """A list that went through Lua (an Argo CD action) may come back as an empty table: {}."""
    return [] if value == {} else value


def entries(item: type) -> type:
    return Annotated[tuple[item, ...], BeforeValidator(_listed)]


def _or_none(value: object, handler):
    try:
        return handler(value)
    except ValidationError:
        return None


def theirs(item: type) -> type:
    """A key another writer owns: read when it is well formed, never written back by the operator,
    and a malformed one (refused by the CRD's schema on a real API server) reads as absent."""
    return Annotated[item | None, WrapValidator(_or_none), Field(exclude=True)]


# The closed sets status values come from: the engine and the tools name them from here.
PHASES = ("Healthy", "Progressing", "Paused", "Degraded")
HISTORY_RESULTS = ("Deployed", "Promoted", "Aborted", "Superseded")
MEASUREMENT_PHASES = ("Successful", "Failed", "Inconclusive", "Error")
COMMANDS = ("promote", "promote-full", "abort", "pause", "resume", "retry", "recover")
BLUE_GREEN_STAGES = ("Preview", "AwaitingPromotion", "ScalingUp", "Switched")
SHADOW_STAGES = ("Shadowing", "AwaitingPromotion", "ScalingUp")
GUARD_STATES = ("Watching", "Fired", "Ended")
FALLBACK_KINDS = ("previousStable", "model")
Phase = Literal[PHASES]
HistoryResult = Literal[HISTORY_RESULTS]
Time = str  # UTC, microseconds: operator/status.py TIME_FORMAT


class Traffic(StatusObject):
    """The split: percent of requests answered by each revision, and copies sent to the candidate."""

    stable: int = 100
    candidate: int = 0
    mirror: int = 0
    """Percent of requests copied to the candidate (answers compared, never sent to a client)."""

    @model_validator(mode="after")
    def _adds_up(self):
        if self.stable + self.candidate != 100 or not 0 <= self.candidate <= 100 \
                or not 0 <= self.mirror <= 100:
            raise ValueError(f"weights must be 0..100 and add up to 100: {self}")
        return self


class Condition(StatusObject):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: str = ""
    observed_generation: int = 0


class Measurement(StatusObject):
    """One analysis measurement of one metric."""

    metric: str
    at: Time
    value: float | None = None
    """None: no data, or an error."""
    phase: Literal[MEASUREMENT_PHASES]
    message: str = ""


class HistoryEntry(StatusObject):
    revision: str
    model_version: str
    sha256: str | None = None
    result: HistoryResult
    """Deployed (the first revision), Promoted, Aborted, or Superseded (replaced by a newer spec before
    promotion)."""
    at: Time
    """When the result came."""
    started_at: Time | None = None
    """When the revision was first deployed (a candidate: created)."""
    reason: str | None = None
    """Why (AnalysisFailed, AbortedByUser, FastRevert, ...)."""
    by: str | None = None
    """Who asked, when a person did (kubectl modelrollout)."""


class ScaleDown(StatusObject):
    """A revision kept at ``replicas`` until ``at``, then scaled to 0 (keep-warm windows)."""

    revision: str
    replicas: int
    at: Time


class Command(StatusObject):
    """A manual command, written by `kubectl modelrollout` to the status subresource so that spec (and GitOps)
    never change. The operator carries it out once, then records its id in handledCommand."""

    __crd__ = {}  # exactly these fields: the plugin and Argo CD's actions write it
    action: Literal[COMMANDS]
    id: Annotated[str, Field(min_length=1, max_length=64)]
    requested_at: str | None = None
    requested_by: str | None = None


class Preview(StatusObject):
    """How to reach the candidate on purpose without touching live traffic."""

    __crd__ = {}
    header: str | None = None
    """A request header that selects it (through the gateway or the Gateway)."""
    service: str | None = None
    """A Service that selects only the candidate's pods."""


class ReplicaRouting(StatusObject):
    """With trafficRouting.replicas only: the split as it really is. The operator puts k candidate and m
    stable pods behind the entry Service, so the weight asked for is approximated by k / (k + m)."""

    __crd__ = {}
    stable_endpoints: Annotated[int, Field(ge=0)] = 0
    candidate_endpoints: Annotated[int, Field(ge=0)] = 0
    requested_weight: Percent = 0
    """Percent of traffic the current step asks for the candidate."""
    candidate_weight: Percent = 0
    """Percent of the entry Service's endpoints that are the candidate's."""


class Route(StatusObject):
    """The route the gateway serves for this model (docs/gateway-kubernetes.md); serving/contract/routes.py
    parse_model_route is its one definition."""

    model: str | None = None
    revisions: list[dict] = []
    mirror: dict | None = None
    match: list[dict] = []
    sticky: dict | None = None
    fallback: dict | None = None
    """The revision that answers a request the chosen one fails (spec.fallback.perRequest)."""


# --- status: each strategy's own record, under its own key ----------------------------


class CanaryStatus(StatusObject):
    """The canary's own state: where in spec.strategy.canary.steps it is."""

    step: int = 0
    """Index of the step being worked on."""
    step_started_at: Time | None = None
    """When it began (pause and analysis timing)."""
    promotion: str | None = None
    """Why the candidate is promoted (a person's promote-full), while it grows to every replica first."""


class BlueGreenStatus(StatusObject):
    """The blue-green strategy's own state (docs/strategies/blue-green.md)."""

    stage: Literal[BLUE_GREEN_STAGES] | None = None
    """Preview (pre-promotion analysis), AwaitingPromotion, ScalingUp (before the switch), Switched
    (post-promotion analysis); none while no preview is in flight."""
    stage_started_at: Time | None = None
    switched_at: Time | None = None
    """When all traffic moved to the candidate."""
    promote_full: bool = False
    """A person asked to switch and promote without the stages left."""
    active_revision: str | None = None
    """For people: the revision clients are answered by."""
    preview_revision: str | None = None
    """For people: the revision reachable by preview only (status.preview)."""
    scale_down_at: Time | None = None
    """For people: when the previous revision, kept warm, goes to 0."""


class ShadowStatus(StatusObject):
    """The shadow strategy's own state (docs/strategies/shadow.md)."""

    stage: Literal[SHADOW_STAGES] | None = None
    """Shadowing, AwaitingPromotion (passed with then: manual), or ScalingUp (promoted, growing to every
    replica before it takes the traffic); none while no shadow is in flight."""
    stage_started_at: Time | None = None
    since: Time | None = None
    """When the mirror started: the shadow's duration and its comparisons count from then."""
    comparisons: int = 0
    """Answers compared since the shadow began, the wait for a person included."""
    promotion: str | None = None
    """Why the candidate is promoted, while it grows to every replica first (ScalingUp)."""
    comparisons_at: Time | None = None
    """When they were last counted."""
    mirror_percent: int = 0
    """For people: the share of requests copied to the candidate now."""
    agreement: float | None = None
    """For people: the last shadow-agreement measured."""


class GuardStatus(StatusObject):
    """The guard's watch of the stable revision (spec.guard; docs/guard.md)."""

    revision: str
    """The revision watched: stable since its promotion."""
    state: Literal[GUARD_STATES] = "Watching"
    """Watching (measuring its triggers), Fired (a trigger fired: the fallback serves, or would if it were
    ready), Ended (the window is over)."""
    since: Time
    """When the watch began (the promotion, or the last recovery)."""
    until: Time | None = None
    """When the window ends; none: without end."""
    analysis: entries(Measurement) = ()
    """The triggers' last measurements."""
    fired_at: Time | None = None
    trigger: str | None = None
    """What fired it: the metric and its measurements."""
    healthy_since: Time | None = None
    """While the fallback serves: since when every trigger's metric has measured healthy (automatic
    recovery)."""
    previous_stable: str | None = None
    """The revision that served before the promotion (fallback.previousStable)."""
    next_at: Time | None = None
    """When it measures next, or its window ends: the operator wakes for it."""


class FallbackStatus(StatusObject):
    """The fallback revision: kept warm, and serving all traffic while active."""

    revision: str
    kind: Literal[FALLBACK_KINDS]
    version: str | None = None
    """Its model version."""
    active: bool = False
    """All traffic goes to it (the guard fired); the spec is unchanged."""
    since: Time | None = None
    """When it took the traffic."""
    reason: str | None = None
    """Why it took the traffic."""
    ready_replicas: int = 0
    problem: str | None = None
    """Why it is not ready, as its pods tell (a sha256 mismatch, say): it never gets traffic then."""


class RolloutStatus(StatusObject):
    """Written by the operator only (operator/status.py); a restarted operator resumes from it alone."""

    observed_generation: int = 0
    phase: Phase = "Progressing"
    """Derived from the rest (operator/status.py phase_of), for people and tools; never read back."""
    reason: str = ""
    """Why the rollout is where it is, as a CamelCase fact (operator/status.py lists them)."""
    message: str = ""
    strategy: str = ""
    """For people: canary, blueGreen or shadow (the printer column)."""
    stable_revision: str | None = None
    candidate_revision: str | None = None
    stable_version: str | None = None
    """For people: the model version of the stable revision."""
    candidate_version: str | None = None
    """For people: the model version of the candidate revision, while a rollout runs."""
    current_step: int = 0
    """For people: the canary step, or the index of the blue-green stage (0 preview, 1 awaiting promotion,
    2 scaling up, 3 switched) or of the shadow's (0 shadowing, 1 awaiting promotion, 2 scaling up)."""
    ready_replicas: int = 0
    """For people: ready replicas of the stable revision."""
    replicas: int = 0
    """Ready replicas of the stable and the candidate revision together: the scale subresource's
    status.replicas, which an HPA reads."""
    selector: str = ""
    """The label selector of every pod of this ModelDeployment, as a string: the scale subresource's
    labelSelectorPath, with which an HPA finds the pods whose metrics it averages."""
    candidate_since: Time | None = None
    """When the candidate appeared (progress deadline)."""
    gate_passed: bool = False
    """The candidate's replicas are ready and it answered the smoke test (and the golden set): traffic may
    move."""
    paused: bool = False
    """The rollout waits for a person (an untimed pause step, an inconclusive analysis, a promotion to
    approve); reason says which."""
    paused_by_user: bool = False
    traffic: Traffic = Traffic()
    aborted_revision: str | None = None
    """The candidate that was aborted; it stays until the spec changes or a person retries."""
    abort_reason: str | None = None
    fast_revert: bool = False
    """The candidate served production within spec.rollbackWindow; no steps."""
    analysis: entries(Measurement) = ()
    """Measurements of the current analysis."""
    golden_set: dict | None = None
    """The golden-set gate's scores, candidate and stable on the same examples."""
    history: entries(HistoryEntry) = ()
    """Revisions this ModelDeployment has served or tried, oldest first, at most revisionHistoryLimit
    entries."""
    scale_downs: entries(ScaleDown) = ()
    """Revisions kept warm (after a switch, after an abort), and until when."""
    conditions: entries(Condition) = ()
    revision_versions: dict[str, str] = {}
    """Model version of each revision, keyed by revision name."""
    handled_command: str | None = None
    """Id of the last manual command the operator carried out."""
    canary: CanaryStatus | None = None
    blue_green: BlueGreenStatus | None = None
    shadow: ShadowStatus | None = None
    guard: GuardStatus | None = None
    fallback: FallbackStatus | None = None
    command: theirs(Command) = None
    preview: theirs(Preview) = None
    replica_routing: theirs(ReplicaRouting) = None
    route: theirs(Route) = None
