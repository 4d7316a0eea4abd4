"""What the model-aware gates need from a model folder, read once at load (docs/gates.md):

- profile.json (the reference profile: input checks and drift), checked against the model;
- golden.json (labelled examples the operator replays), checked and kept to be served;
- from the model metadata: ``prediction`` (which output is the prediction, when the
  server's own choice is not the right one), ``outputBounds`` ({output: {min, max}}) and
  ``scoreBuckets`` (a regressor's histogram buckets; the same on every revision compared).

Anything that does not fit fails the load with a message saying what to fix: a profile
or golden set that silently did nothing would pass every gate.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import orjson

from ..contract import metric_names as names
from ..contract.golden import FILE_NAME as GOLDEN_FILE
from ..contract.golden import InvalidGoldenSet, parse_golden_set
from .drift import InputChecks
from .loading import LoadError
from .monitor import MonitorConfig
from .prediction import InvalidPredictionConfig, choose_ways
from .profile import FILE_NAME as PROFILE_FILE
from .profile import InvalidProfile, parse_profile
from .runtime import ModelRuntime
from .settings import ServerSettings


@dataclass(frozen=True)
class Companions:
    """The gate files of a model folder, as read (served as they are, with their digests)."""

    profile: bytes | None = None
    golden: bytes | None = None

    @property
    def profile_sha256(self) -> str | None:
        return hashlib.sha256(self.profile).hexdigest() if self.profile is not None else None

    @property
    def golden_sha256(self) -> str | None:
        return hashlib.sha256(self.golden).hexdigest() if self.golden is not None else None


def read_companions(folder: Path | None) -> Companions:
    if folder is None:
        return Companions()

    def read(name: str) -> bytes | None:
        path = folder / name
        return path.read_bytes() if path.is_file() else None

    return Companions(read(PROFILE_FILE), read(GOLDEN_FILE))


def monitor_config(settings: ServerSettings, runtime: ModelRuntime, metadata: dict,
                   labels_txt: list[str] | None, companions: Companions) -> MonitorConfig:
    """The monitor's configuration for this model; LoadError("load", ...) when a gate file
    or the metadata does not fit it."""
    try:
        ways = choose_ways(runtime.outputs, runtime.labels, labels_txt, metadata)
    except InvalidPredictionConfig as exc:
        raise LoadError("load", str(exc)) from None
    checks, shares = None, {}
    if companions.profile is not None:
        try:
            profile = parse_profile(_json(companions.profile, PROFILE_FILE))
            shares = _reference_shares(profile.prediction)
            inputs = {spec.name: (spec.datatype, spec.shape) for spec in runtime.inputs}
            checks = InputChecks(profile, inputs, names.MAX_FEATURE_LABELS)
        except InvalidProfile as exc:
            raise LoadError("load", f"{PROFILE_FILE} does not fit the model: {exc}") from None
    if companions.golden is not None:
        try:
            golden = parse_golden_set(_json(companions.golden, GOLDEN_FILE))
        except InvalidGoldenSet as exc:
            raise LoadError("load", f"{GOLDEN_FILE} is not valid: {exc}") from None
        if golden.prediction.output not in {spec.name for spec in runtime.outputs}:
            raise LoadError("load", f"{GOLDEN_FILE} reads output '{golden.prediction.output}', which the "
                                    "model does not have")
    return MonitorConfig(
        ways=ways,
        known_classes=_known_classes(ways, runtime),
        checks=checks,
        profile_sha256=companions.profile_sha256,
        reference_shares=shares,
        output_bounds=_output_bounds(metadata.get("outputBounds"), {s.name for s in runtime.outputs}),
        score_buckets=_score_buckets(metadata.get("scoreBuckets")),
        window_rows=settings.drift_window_rows,
        store_rows=settings.feedback_store_size,
        ttl_seconds=settings.feedback_ttl_seconds,
    )


def _reference_shares(prediction: object) -> dict[str, float]:
    """The class shares of the profile's predictions (classifiers); {} for anything else."""
    frequencies = prediction.get("classFrequencies") if isinstance(prediction, dict) else None
    if not isinstance(frequencies, dict):
        return {}
    return {str(name): float(share) for name, share in frequencies.items()
            if isinstance(share, (int, float)) and not isinstance(share, bool)}


def _json(raw: bytes, name: str) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise LoadError("load", f"{name} is not valid JSON: {exc}") from None


def _known_classes(ways, runtime: ModelRuntime) -> tuple[str, ...]:
    if not ways or ways[0].kind != "classification":
        return ()
    if ways[0].classes is not None:
        return ways[0].classes[: names.MAX_CLASS_LABELS]
    spec = runtime.output_spec(ways[0].output)
    width = spec.shape[1] if ways[0].method == "argmax" and len(spec.shape) == 2 else -1
    return tuple(str(i) for i in range(min(max(width, 0), names.MAX_CLASS_LABELS)))


def _output_bounds(doc: object, outputs: set[str]) -> dict[str, tuple[float, float]]:
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise LoadError("load", "metadata 'outputBounds' must map output names to {min, max}")
    bounds = {}
    for name, limits in doc.items():
        if name not in outputs:
            raise LoadError("load", f"metadata 'outputBounds' names output '{name}'; the model's outputs "
                                    f"are {', '.join(sorted(outputs))}")
        if not isinstance(limits, dict) or not ({"min", "max"} & set(limits)):
            raise LoadError("load", f"metadata 'outputBounds.{name}' must give min, max or both")
        low, high = limits.get("min", -math.inf), limits.get("max", math.inf)
        for value in (low, high):
            if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
                raise LoadError("load", f"metadata 'outputBounds.{name}': min and max must be numbers")
        if low > high:
            raise LoadError("load", f"metadata 'outputBounds.{name}': min is above max")
        bounds[name] = (float(low), float(high))
    return bounds


MAX_SCORE_BUCKETS = 100


def _score_buckets(doc: object) -> tuple[float, ...]:
    if doc is None:
        return names.SCORE_BUCKETS
    if not isinstance(doc, list) or not doc or len(doc) > MAX_SCORE_BUCKETS or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in doc
    ):
        raise LoadError("load", f"metadata 'scoreBuckets' must be a list of 1 to {MAX_SCORE_BUCKETS} "
                                "finite numbers")
    if any(b <= a for a, b in zip(doc, doc[1:], strict=False)):
        raise LoadError("load", "metadata 'scoreBuckets' must increase")
    return tuple(float(v) for v in doc)
