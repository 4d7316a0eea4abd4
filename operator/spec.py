"""The ModelDeployment spec as frozen dataclasses, parsed once at the edge. Pure.

parse_spec() turns the spec dict (as the API server stores it) into a Spec or raises
InvalidSpec with the field path and what to fix: the operator reports that in the
InvalidSpec condition instead of guessing. Field names follow Argo Rollouts and
Flagger where they exist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from modelrollout.serving.server.download_policy import blocked_host, host_of

ROUTING_KINDS = ("builtin", "gatewayAPI", "replicas")
STRATEGY_KINDS = ("canary", "blueGreen", "shadow")
STEP_KINDS = ("setWeight", "setMirror", "pause", "analysis")
# Builtin analysis metrics (queries in analysis/queries.py). The shadow ones read what the
# gateway saw of mirrored requests, so they need a candidate receiving a mirror.
SHADOW_METRICS = ("shadow-agreement", "shadow-latency-ratio", "shadow-error-rate")
# Model-aware metrics (docs/gates.md): what the servers see of the predictions themselves.
MODEL_METRICS = ("prediction-shift", "input-drift", "input-violations", "output-violations", "accuracy",
                 "mean-abs-error")
BUILTIN_METRICS = ("error-rate", "latency-p99", *SHADOW_METRICS, *MODEL_METRICS)
THEN = ("promote", "manual")  # what a shadow does once it passed
MATCHES = ("values", "classes")  # how a mirrored answer is compared (Comparison.match)
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
# Bounds on what a ModelDeployment may ask, the same as the CRD's (maxItems, maximum, CEL):
# a hostile or mistaken spec must not grow status past what the API server stores, keep the
# operator busy, or overflow a date.
MAX_STEPS = 50
MAX_METRICS = 16  # in spec.analysis.metrics, and names per analysis block
MAX_ENV = 100
MAX_QUERY_LENGTH = 4096
MAX_URI_LENGTH = 2048
MAX_REVISION_HISTORY = 100  # entries in status.history
MAX_WAIT_SECONDS = 30 * 24 * 3600  # pauses, a shadow's duration, deadlines and delays: 30 days
MIN_INTERVAL_SECONDS, MAX_INTERVAL_SECONDS = 1.0, 24 * 3600.0  # between analysis measurements
PLACEHOLDERS = ("model", "namespace", "revision", "stableRevision", "interval")  # in query templates
# A model name travels in URL paths (/v2/models/{name}) and in PromQL label values.
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class InvalidSpec(ValueError):
    """What is wrong in the spec, with the path of the field: ``spec.strategy.canary.steps[2]``."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


@dataclass(frozen=True)
class ModelSpec:
    uri: str
    version: str
    sha256: str | None = None
    name: str | None = None  # the name in /v2/models/{name}; default: metadata.name


@dataclass(frozen=True)
class Batching:
    max_batch_size: int = 0
    max_queue_delay_us: int = 500


@dataclass(frozen=True)
class ServerSpec:
    image: str
    resources: dict = field(default_factory=dict)
    env: tuple[dict, ...] = ()
    batching: Batching = Batching()


@dataclass(frozen=True)
class Step:
    kind: str  # one of STEP_KINDS
    weight: int | None = None  # setWeight
    mirror_percent: int | None = None  # setMirror: copies of requests sent to the candidate
    pause_seconds: float | None = None  # pause; None: until a person resumes or promotes
    metrics: tuple[str, ...] = ()  # analysis: names from spec.analysis.metrics


@dataclass(frozen=True)
class Canary:
    """Weights moved step by step, each gated by pauses and analysis."""

    steps: tuple[Step, ...]
    kind: str = "canary"


@dataclass(frozen=True)
class BlueGreen:
    """A full preview next to the active revision, then all traffic switched at once."""

    preview_replicas: int | None = None  # None: spec.replicas
    pre_promotion_metrics: tuple[str, ...] = ()
    auto_promotion_seconds: float | None = None  # None: wait for a person to promote
    post_promotion_metrics: tuple[str, ...] = ()
    scale_down_delay_seconds: float = 30.0  # the old revision kept at full size after the switch
    abort_scale_down_delay_seconds: float = 30.0  # an aborted preview kept this long
    kind: str = "blueGreen"


@dataclass(frozen=True)
class Shadow:
    """The candidate answers mirrored copies only; clients are answered by stable alone."""

    mirror_percent: int = 100
    duration_seconds: float = 600.0  # at least this long ...
    min_comparisons: int = 0  # ... and at least this many compared answers
    metrics: tuple[str, ...] = ()
    then: str = "promote"  # one of THEN
    scale_down_delay_seconds: float = 30.0  # after the switch, as blue-green
    kind: str = "shadow"


Strategy = Canary | BlueGreen | Shadow


@dataclass(frozen=True)
class Comparison:
    """How the gateway compares a mirrored answer with the one the client got."""

    atol: float = 1e-5  # |shadow - primary| <= atol + rtol * |primary| per float value
    rtol: float = 1e-3
    match: str = "values"  # "classes": class scores agree when each row predicts the same class


@dataclass(frozen=True)
class GoldenSetGate:
    """Replay the golden set stored with the model against the candidate and stable, in the
    gate: accuracy (classifiers) or max absolute error (regressors) against a threshold,
    and no worse than stable's on the same examples by more than ``tolerance``."""

    min_accuracy: float = 0.0
    max_abs_error: float | None = None  # None: no absolute bound, only the comparison with stable
    tolerance: float = 0.0


@dataclass(frozen=True)
class MetricSpec:
    name: str
    query: str | None = None  # PromQL template; None for the builtin metrics
    min: float | None = None  # thresholdRange
    max: float | None = None
    failure_limit: int = 0  # failed measurements tolerated before the metric fails
    count: int = 1  # measurements needed for a verdict
    interval_seconds: float | None = None  # default: analysis.interval
    min_samples: int = 1  # fewer samples behind a measurement: inconclusive, never passed


@dataclass(frozen=True)
class AnalysisSpec:
    interval_seconds: float = 30.0
    prometheus_address: str | None = None
    metrics: tuple[MetricSpec, ...] = ()
    consecutive_error_limit: int = 4  # Prometheus unreachable this many times in a row: pause

    def metric(self, name: str) -> MetricSpec | None:
        return next((m for m in self.metrics if m.name == name), None)


@dataclass(frozen=True)
class Spec:
    model: ModelSpec
    server: ServerSpec
    routing: str  # one of ROUTING_KINDS
    routing_options: dict
    strategy: Strategy
    analysis: AnalysisSpec
    replicas: int = 1
    progress_deadline_seconds: int = 600
    revision_history_limit: int = 10
    smoke_request: dict | None = None  # a golden V2 request; default: built from metadata
    comparison: Comparison = Comparison()
    rollback_window: int = 0  # a revision promoted within the last N comes back without steps
    golden_set: GoldenSetGate | None = None  # the golden-set gate, when asked for

    @property
    def steps(self) -> tuple[Step, ...]:
        """The canary steps; other strategies have none."""
        return self.strategy.steps if isinstance(self.strategy, Canary) else ()

    def strategy_metrics(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(field path, metric names) of every place the strategy names analysis metrics."""
        strategy = self.strategy
        if isinstance(strategy, Canary):
            return tuple((f"spec.strategy.canary.steps[{i}].analysis.metrics", step.metrics)
                         for i, step in enumerate(strategy.steps) if step.kind == "analysis")
        if isinstance(strategy, BlueGreen):
            path = "spec.strategy.blueGreen"
            return ((f"{path}.prePromotionAnalysis.metrics", strategy.pre_promotion_metrics),
                    (f"{path}.postPromotionAnalysis.metrics", strategy.post_promotion_metrics))
        return (("spec.strategy.shadow.analysis.metrics", strategy.metrics),)


def parse_duration(text: object, path: str) -> float:
    """"30s", "5m", "1h30m", "250ms" -> seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool) and text >= 0:
        return float(text)
    # fullmatch: "5m\n" is not a duration (the API server's Go regexp refuses it too).
    match = _DURATION.fullmatch(text) if isinstance(text, str) and text else None
    if match is None or not any(match.groups()):
        raise InvalidSpec(path, f"{text!r} is not a duration like 30s, 5m, 1h30m or 250ms")
    hours, minutes, seconds, millis = (int(g) if g else 0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def _bounded_duration(text: object, path: str, low: float = 0.0, high: float = MAX_WAIT_SECONDS) -> float:
    seconds = parse_duration(text, path)
    if not low <= seconds <= high:
        raise InvalidSpec(path, f"{text!r} is out of range: from {_human(low)} to {_human(high)}")
    return seconds


def _human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size:g}{unit}"
    return f"{seconds:g}s"


def parse_spec(doc: object) -> Spec:
    spec = _mapping(doc, "spec")
    analysis = _analysis(spec.get("analysis"), "spec.analysis")
    routing, routing_options = _one_of(spec.get("trafficRouting", {"builtin": {}}),
                                       "spec.trafficRouting", ROUTING_KINDS)
    strategy = _strategy(spec.get("strategy"), analysis)
    smoke = spec.get("smokeTest")
    smoke_request = None
    if smoke is not None:
        smoke_request = _mapping(_mapping(smoke, "spec.smokeTest").get("request"), "spec.smokeTest.request")
    return Spec(
        model=_model(spec.get("model"), "spec.model"),
        server=_server(spec.get("server"), "spec.server"),
        routing=routing,
        routing_options=routing_options,
        strategy=strategy,
        analysis=analysis,
        replicas=_int(spec.get("replicas", 1), "spec.replicas", low=0),
        progress_deadline_seconds=_int(spec.get("progressDeadlineSeconds", 600),
                                       "spec.progressDeadlineSeconds", low=1, high=MAX_WAIT_SECONDS),
        revision_history_limit=_int(spec.get("revisionHistoryLimit", 10), "spec.revisionHistoryLimit", low=0,
                                    high=MAX_REVISION_HISTORY),
        smoke_request=smoke_request,
        comparison=_comparison(spec.get("comparison", {}), "spec.comparison"),
        rollback_window=_rollback_window(spec.get("rollbackWindow"), "spec.rollbackWindow"),
        golden_set=_golden_set(spec.get("goldenSet"), "spec.goldenSet"),
    )


def _model(doc: object, path: str) -> ModelSpec:
    model = _mapping(doc, path)
    uri = _string(model.get("uri"), f"{path}.uri")
    if len(uri) > MAX_URI_LENGTH:
        raise InvalidSpec(f"{path}.uri", f"is {len(uri)} characters long, more than {MAX_URI_LENGTH}")
    if not re.match(r"^(https?://|file://|/|pvc://)", uri):
        raise InvalidSpec(f"{path}.uri", f"{uri!r} must start with http://, https://, file://, pvc:// or /")
    _not_link_local(uri, f"{path}.uri", "model")
    sha256 = model.get("sha256")
    if sha256 is not None and (not isinstance(sha256, str) or not _SHA256.match(sha256)):
        raise InvalidSpec(f"{path}.sha256", "must be 64 hexadecimal characters")
    name = model.get("name")
    if name is not None:
        name = _string(name, f"{path}.name")
        if not _MODEL_NAME.match(name):
            raise InvalidSpec(f"{path}.name", f"{name!r} must be 1 to 63 letters, digits, '_', '.' or '-', "
                                              "starting with a letter or digit (it goes in URLs and queries)")
    return ModelSpec(uri=uri, version=_string(model.get("version"), f"{path}.version"),
                     sha256=sha256.lower() if sha256 else None, name=name)


def _server(doc: object, path: str) -> ServerSpec:
    server = _mapping(doc, path)
    env = server.get("env", [])
    if not isinstance(env, list) or not all(
        isinstance(e, dict) and isinstance(e.get("name"), str) for e in env
    ):
        raise InvalidSpec(f"{path}.env", "must be a list of {name, value} entries")
    if len(env) > MAX_ENV:
        raise InvalidSpec(f"{path}.env", f"has {len(env)} entries, more than {MAX_ENV}")
    batching = _mapping(server.get("batching", {}), f"{path}.batching")
    return ServerSpec(
        image=_string(server.get("image"), f"{path}.image"),
        resources=_mapping(server.get("resources", {}), f"{path}.resources"),
        env=tuple(env),
        batching=Batching(
            max_batch_size=_int(batching.get("maxBatchSize", 0), f"{path}.batching.maxBatchSize", low=0),
            max_queue_delay_us=_int(batching.get("maxQueueDelayMicroseconds", 500),
                                    f"{path}.batching.maxQueueDelayMicroseconds", low=0),
        ),
    )


def _strategy(doc: object, analysis: AnalysisSpec) -> Strategy:
    kind, body = _one_of(_mapping(doc, "spec.strategy"), "spec.strategy", STRATEGY_KINDS)
    path = f"spec.strategy.{kind}"
    body = _mapping(body, path)
    if kind == "canary":
        return Canary(_steps(body, path, analysis))
    if kind == "blueGreen":
        _known(body, path, ("previewReplicas", "prePromotionAnalysis", "autoPromotionSeconds",
                            "postPromotionAnalysis", "scaleDownDelaySeconds", "abortScaleDownDelaySeconds"))
        preview = body.get("previewReplicas")
        auto = body.get("autoPromotionSeconds")
        return BlueGreen(
            preview_replicas=None if preview is None else _int(preview, f"{path}.previewReplicas", low=0),
            pre_promotion_metrics=_analysis_metrics(body.get("prePromotionAnalysis"),
                                                    f"{path}.prePromotionAnalysis", analysis),
            auto_promotion_seconds=None if auto is None else float(
                _int(auto, f"{path}.autoPromotionSeconds", low=0, high=MAX_WAIT_SECONDS)),
            post_promotion_metrics=_analysis_metrics(body.get("postPromotionAnalysis"),
                                                     f"{path}.postPromotionAnalysis", analysis),
            scale_down_delay_seconds=float(_int(body.get("scaleDownDelaySeconds", 30),
                                                f"{path}.scaleDownDelaySeconds", low=0,
                                                high=MAX_WAIT_SECONDS)),
            abort_scale_down_delay_seconds=float(_int(body.get("abortScaleDownDelaySeconds", 30),
                                                      f"{path}.abortScaleDownDelaySeconds", low=0,
                                                      high=MAX_WAIT_SECONDS)),
        )
    _known(body, path, ("mirrorPercent", "duration", "minComparisons", "analysis", "then",
                        "scaleDownDelaySeconds"))
    then = body.get("then", "promote")
    if body.get("minComparisons") and analysis.prometheus_address is None:
        raise InvalidSpec("spec.analysis.prometheus.address",
                          "is required to count a shadow's compared answers (strategy.shadow.minComparisons)")
    if then not in THEN:
        raise InvalidSpec(f"{path}.then", f"must be one of {', '.join(THEN)}, got {then!r}")
    return Shadow(
        mirror_percent=_int(body.get("mirrorPercent", 100), f"{path}.mirrorPercent", low=1, high=100),
        duration_seconds=_bounded_duration(body.get("duration", "10m"), f"{path}.duration"),
        min_comparisons=_int(body.get("minComparisons", 0), f"{path}.minComparisons", low=0),
        metrics=_analysis_metrics(body.get("analysis"), f"{path}.analysis", analysis),
        then=then,
        scale_down_delay_seconds=float(_int(body.get("scaleDownDelaySeconds", 30),
                                            f"{path}.scaleDownDelaySeconds", low=0, high=MAX_WAIT_SECONDS)),
    )


def _steps(canary: dict, path: str, analysis: AnalysisSpec) -> tuple[Step, ...]:
    steps_doc = canary.get("steps")
    if not isinstance(steps_doc, list) or not steps_doc:
        raise InvalidSpec(f"{path}.steps", "must be a non-empty list")
    if len(steps_doc) > MAX_STEPS:
        raise InvalidSpec(f"{path}.steps", f"has {len(steps_doc)} steps, more than {MAX_STEPS}")
    steps = []
    for i, item in enumerate(steps_doc):
        step_path = f"{path}.steps[{i}]"
        step_kind, body = _one_of(item, step_path, STEP_KINDS)
        if step_kind == "setWeight":
            steps.append(Step("setWeight", weight=_int(body, f"{step_path}.setWeight", low=0, high=100)))
        elif step_kind == "setMirror":
            percent = _mapping(body, f"{step_path}.setMirror").get("percent")
            steps.append(Step("setMirror", mirror_percent=_int(percent, f"{step_path}.setMirror.percent",
                                                               low=0, high=100)))
        elif step_kind == "pause":
            pause = _mapping(body, f"{step_path}.pause")
            duration = pause.get("duration")
            steps.append(Step("pause", pause_seconds=None if duration is None
                              else _bounded_duration(duration, f"{step_path}.pause.duration")))
        else:
            metrics = _analysis_metrics(body, f"{step_path}.analysis", analysis)
            if not metrics:
                raise InvalidSpec(f"{step_path}.analysis.metrics", "must be a non-empty list of metric names")
            steps.append(Step("analysis", metrics=metrics))
    return tuple(steps)


def _analysis_metrics(doc: object, path: str, analysis: AnalysisSpec) -> tuple[str, ...]:
    """The metric names of an analysis block ({metrics: [names]}); each must be defined."""
    if doc is None:
        return ()
    names = _mapping(doc, path).get("metrics", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise InvalidSpec(f"{path}.metrics", "must be a list of metric names")
    if len(names) > MAX_METRICS:
        raise InvalidSpec(f"{path}.metrics", f"names {len(names)} metrics, more than {MAX_METRICS}")
    for name in names:
        if analysis.metric(name) is None:
            known = ", ".join(m.name for m in analysis.metrics) or "none"
            raise InvalidSpec(f"{path}.metrics",
                              f"'{name}' is not defined in spec.analysis.metrics (defined: {known})")
    return tuple(names)


def _comparison(doc: object, path: str) -> Comparison:
    comparison = _mapping(doc, path)
    _known(comparison, path, ("absoluteTolerance", "relativeTolerance", "match"))
    tolerances = []
    for key in ("absoluteTolerance", "relativeTolerance"):
        value = comparison.get(key, getattr(Comparison(), "atol" if key[0] == "a" else "rtol"))
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise InvalidSpec(f"{path}.{key}", f"must be a number from 0 up, got {value!r}")
        tolerances.append(float(value))
    match = comparison.get("match", "values")
    if match not in MATCHES:
        raise InvalidSpec(f"{path}.match", f"must be one of {', '.join(MATCHES)}, got {match!r}")
    return Comparison(atol=tolerances[0], rtol=tolerances[1], match=match)


def _golden_set(doc: object, path: str) -> GoldenSetGate | None:
    if doc is None:
        return None
    gate = _mapping(doc, path)
    _known(gate, path, ("minAccuracy", "maxAbsError", "tolerance"))
    values = {}
    for key, low, high in (("minAccuracy", 0.0, 1.0), ("maxAbsError", 0.0, None), ("tolerance", 0.0, None)):
        value = gate.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low or (
                high is not None and value > high):
            bounds = f"from {low:g}" + (f" to {high:g}" if high is not None else " up")
            raise InvalidSpec(f"{path}.{key}", f"must be a number {bounds}, got {value!r}")
        values[key] = float(value)
    return GoldenSetGate(min_accuracy=values.get("minAccuracy", 0.0), max_abs_error=values.get("maxAbsError"),
                         tolerance=values.get("tolerance", 0.0))


def _rollback_window(doc: object, path: str) -> int:
    if doc is None:
        return 0
    window = _mapping(doc, path)
    _known(window, path, ("revisions",))
    return _int(window.get("revisions"), f"{path}.revisions", low=1)


def _known(doc: dict, path: str, fields: tuple[str, ...]) -> None:
    unknown = sorted(set(doc) - set(fields))
    if unknown:
        raise InvalidSpec(path, f"unknown field(s) {', '.join(unknown)}; known: {', '.join(fields)}")


def _analysis(doc: object, path: str) -> AnalysisSpec:
    if doc is None:
        return AnalysisSpec()
    analysis = _mapping(doc, path)
    interval = _bounded_duration(analysis.get("interval", "30s"), f"{path}.interval", MIN_INTERVAL_SECONDS,
                                 MAX_INTERVAL_SECONDS)
    prometheus = _mapping(analysis.get("prometheus", {}), f"{path}.prometheus")
    address = prometheus.get("address")
    if address is not None and not (isinstance(address, str) and re.match(r"^https?://", address)):
        raise InvalidSpec(f"{path}.prometheus.address", "must be an http(s):// URL")
    if address is not None:
        _not_link_local(address, f"{path}.prometheus.address", "Prometheus")
    metrics_doc = analysis.get("metrics", [])
    if not isinstance(metrics_doc, list):
        raise InvalidSpec(f"{path}.metrics", "must be a list")
    if len(metrics_doc) > MAX_METRICS:
        raise InvalidSpec(f"{path}.metrics", f"has {len(metrics_doc)} metrics, more than {MAX_METRICS}")
    metrics = tuple(_metric(m, f"{path}.metrics[{i}]") for i, m in enumerate(metrics_doc))
    names = [m.name for m in metrics]
    if len(set(names)) != len(names):
        raise InvalidSpec(f"{path}.metrics", f"metric names must be unique, got {names}")
    if metrics and address is None:
        raise InvalidSpec(f"{path}.prometheus.address", "is required when metrics are defined")
    return AnalysisSpec(
        interval_seconds=interval,
        prometheus_address=address,
        metrics=metrics,
        consecutive_error_limit=_int(analysis.get("consecutiveErrorLimit", 4),
                                     f"{path}.consecutiveErrorLimit", low=1),
    )


def _metric(doc: object, path: str) -> MetricSpec:
    metric = _mapping(doc, path)
    name = _string(metric.get("name"), f"{path}.name")
    query = metric.get("query")
    if query is None and name not in BUILTIN_METRICS:
        raise InvalidSpec(f"{path}.query", f"is required: '{name}' is not a builtin metric "
                                           f"({', '.join(BUILTIN_METRICS)})")
    if query is not None:
        query = _string(query, f"{path}.query")
        _check_template(query, f"{path}.query")
    threshold = _mapping(metric.get("thresholdRange", {}), f"{path}.thresholdRange")
    low, high = threshold.get("min"), threshold.get("max")
    for bound, value in (("min", low), ("max", high)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise InvalidSpec(f"{path}.thresholdRange.{bound}", "must be a number")
    if low is None and high is None:
        raise InvalidSpec(f"{path}.thresholdRange", "needs min, max or both")
    if low is not None and high is not None and low > high:
        raise InvalidSpec(f"{path}.thresholdRange", f"min {low} is above max {high}")
    interval = metric.get("interval")
    return MetricSpec(
        name=name,
        query=query,
        min=None if low is None else float(low),
        max=None if high is None else float(high),
        failure_limit=_int(metric.get("failureLimit", 0), f"{path}.failureLimit", low=0),
        count=_int(metric.get("count", 1), f"{path}.count", low=1),
        interval_seconds=None if interval is None else _bounded_duration(
            interval, f"{path}.interval", MIN_INTERVAL_SECONDS, MAX_INTERVAL_SECONDS),
        min_samples=_int(metric.get("minSamples", 1), f"{path}.minSamples", low=1),
    )


def _check_template(query: str, path: str) -> None:
    """Braces in a query template: PromQL's own (label matchers, single) or one of the
    PLACEHOLDERS written exactly (``{{model}}``). Anything else between double braces would
    reach Prometheus unreplaced, or be read as a placeholder that is not one."""
    if len(query) > MAX_QUERY_LENGTH:
        raise InvalidSpec(path, f"is {len(query)} characters long, more than {MAX_QUERY_LENGTH}")
    known = ", ".join("{{" + p + "}}" for p in PLACEHOLDERS)
    i, depth = 0, 0
    while i < len(query):
        if query.startswith("{{", i):
            end = query.find("}}", i + 2)
            name = query[i + 2:end] if end >= 0 else ""
            if name not in PLACEHOLDERS:
                shown = query[i:end + 2] if end >= 0 and end - i < 40 else query[i:i + 20] + "..."
                raise InvalidSpec(path, f"unknown placeholder {shown!r}; templates may use {known}")
            i = end + 2
            continue
        char = query[i]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth < 0:
                raise InvalidSpec(path, f"unbalanced '}}' at character {i}")
        i += 1
    if depth:
        raise InvalidSpec(path, "unbalanced '{': a label matcher is not closed")


def _not_link_local(uri: str, path: str, what: str) -> None:
    """A URI whose host is a link-local or cloud-metadata address: fetching from there hands
    the node's cloud credentials to whoever wrote the spec (SSRF)."""
    try:
        host = host_of(uri) if "://" in uri else ""
    except ValueError:
        raise InvalidSpec(path, f"{what} URI cannot be parsed") from None
    reason = blocked_host(host) if host else None
    if reason is not None:
        raise InvalidSpec(path, f"{what} URI points at {reason}: refused")


def _one_of(doc: object, path: str, kinds: tuple[str, ...]) -> tuple[str, dict | int]:
    mapping = _mapping(doc, path)
    present = [k for k in mapping if k in kinds]
    unknown = [k for k in mapping if k not in kinds]
    if unknown:
        raise InvalidSpec(
            path, f"unknown field(s) {', '.join(unknown)}; use exactly one of {', '.join(kinds)}"
        )
    if len(present) != 1:
        raise InvalidSpec(path, f"needs exactly one of {', '.join(kinds)}, got {len(present)}")
    kind = present[0]
    body = mapping[kind]
    return kind, ({} if body is None else body)


def _mapping(doc: object, path: str) -> dict:
    if not isinstance(doc, dict):
        raise InvalidSpec(path, "is required and must be an object" if doc is None else "must be an object")
    return doc


def _string(value: object, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidSpec(path, "is required and must be a non-empty string")
    return value


def _int(value: object, path: str, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSpec(path, f"must be an integer, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"from {low}" + (f" to {high}" if high is not None else " up")
        raise InvalidSpec(path, f"must be {bounds}, got {value}")
    return value
