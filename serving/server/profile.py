"""The reference profile of a model's inputs and predictions: built from a sample by
`modelrollout profile`, kept as profile.json beside model.onnx, read by the server to
check live inputs against it. Pure (numpy only); docs/gates.md describes the file.

Per feature (one column of a model input):

    numeric      range (min, max), quantile bin edges and the share of the sample in each
                 bin (for PSI), 101 quantiles (the reference CDF, for KS), missing share
    categorical  the most frequent categories (at most MAX_CATEGORIES) with their shares,
                 the share of all others, missing share

A feature is column ``index`` of input ``input`` ([N, F] inputs), or the whole input
(``index`` null: [N] or [N, 1] inputs). Bin i holds the values v with
edges[i-1] < v <= edges[i] (bin_of); values below the first edge fall in bin 0 and
values above the last in the last bin.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

FORMAT = "modelrollout.profile/v1"
FILE_NAME = "profile.json"
BINS = 10
QUANTILES = 101  # probabilities 0, 0.01, ..., 1
MAX_CATEGORIES = 256


class InvalidProfile(ValueError):
    """profile.json breaks the format, or does not fit the model; the message says where."""


@dataclass(frozen=True)
class NumericFeature:
    name: str
    input: str
    index: int | None
    missing: float  # share of the sample that was NaN
    minimum: float
    maximum: float
    edges: np.ndarray  # inner bin edges, increasing
    expected: np.ndarray  # share of the (non-missing) sample per bin, len(edges) + 1
    quantile_values: np.ndarray  # the sample's quantiles at quantile_probs
    quantile_probs: np.ndarray

    kind = "numeric"


@dataclass(frozen=True)
class CategoricalFeature:
    name: str
    input: str
    index: int | None
    missing: float
    categories: tuple[str, ...]
    expected: np.ndarray  # share per category, then the share of all other categories

    kind = "categorical"

    @property
    def is_complete(self) -> bool:
        """Every category of the sample is listed: an unlisted one was never seen."""
        return float(self.expected[-1]) == 0.0


Feature = NumericFeature | CategoricalFeature


@dataclass(frozen=True)
class Profile:
    features: tuple[Feature, ...]
    rows: int
    prediction: dict | None = None  # the model's predictions on the sample (documentation)
    reference: dict | None = None  # the model's accuracy or error on the sample, with --labels
    model_sha256: str | None = None


def bin_of(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.searchsorted(edges, values, side="left")


def numeric_feature(name: str, input_name: str, index: int | None, values: np.ndarray,
                    bins: int = BINS) -> NumericFeature:
    values = np.asarray(values, dtype=np.float64)
    missing = np.isnan(values)
    valid = values[~missing]
    if not valid.size:
        raise InvalidProfile(f"feature '{name}' has no values in the sample (all missing)")
    if not np.isfinite(valid).all():
        raise InvalidProfile(f"feature '{name}' holds infinite values; a profile needs finite ones")
    edges = np.unique(np.quantile(valid, np.linspace(0, 1, bins + 1))[1:-1])
    expected = np.bincount(bin_of(edges, valid), minlength=len(edges) + 1) / valid.size
    probs = np.linspace(0, 1, QUANTILES)
    return NumericFeature(name, input_name, index, float(missing.mean()), float(valid.min()),
                          float(valid.max()), edges, expected, np.quantile(valid, probs), probs)


def categorical_feature(name: str, input_name: str, index: int | None,
                        keys: list[str | None]) -> CategoricalFeature:
    """``keys``: each value's category_key, None (or "") for a missing one."""
    present = [k for k in keys if k]
    if not present:
        raise InvalidProfile(f"feature '{name}' has no values in the sample (all missing)")
    counts = Counter(present)
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_CATEGORIES]
    listed = sum(c for _, c in top)
    expected = np.array([c for _, c in top] + [len(present) - listed], dtype=np.float64) / len(present)
    return CategoricalFeature(name, input_name, index, 1 - len(present) / len(keys),
                              tuple(k for k, _ in top), expected)


def to_doc(profile: Profile) -> dict:
    doc: dict = {"format": FORMAT, "rows": profile.rows}
    if profile.model_sha256:
        doc["model"] = {"sha256": profile.model_sha256}
    doc["features"] = [_feature_doc(f) for f in profile.features]
    if profile.prediction is not None:
        doc["prediction"] = profile.prediction
    if profile.reference is not None:
        doc["reference"] = profile.reference
    return doc


def _feature_doc(f: Feature) -> dict:
    doc = {"name": f.name, "input": f.input, "index": f.index, "type": f.kind, "missing": f.missing}
    if isinstance(f, NumericFeature):
        doc["range"] = {"min": f.minimum, "max": f.maximum}
        doc["bins"] = {"edges": f.edges.tolist(), "expected": f.expected.tolist()}
        doc["quantiles"] = {"probabilities": f.quantile_probs.tolist(), "values": f.quantile_values.tolist()}
    else:
        doc["categories"] = {"values": list(f.categories), "expected": f.expected[:-1].tolist(),
                             "other": float(f.expected[-1])}
    return doc


def parse_profile(doc: object) -> Profile:
    if not isinstance(doc, dict):
        raise InvalidProfile("a profile is a JSON object")
    if doc.get("format") != FORMAT:
        raise InvalidProfile(f"format must be {FORMAT!r}, not {doc.get('format')!r}")
    features_doc = doc.get("features")
    if not isinstance(features_doc, list) or not features_doc:
        raise InvalidProfile("features must be a non-empty list")
    features = tuple(_feature(i, f) for i, f in enumerate(features_doc))
    names = [f.name for f in features]
    if len(set(names)) != len(names):
        raise InvalidProfile("feature names must be unique")
    model = doc.get("model") if isinstance(doc.get("model"), dict) else {}
    rows = doc.get("rows")
    return Profile(features, rows if isinstance(rows, int) else 0, doc.get("prediction"),
                   doc.get("reference"), model.get("sha256"))


def _feature(i: int, doc: object) -> Feature:
    where = f"features[{i}]"
    if not isinstance(doc, dict):
        raise InvalidProfile(f"{where} must be a mapping")
    name, input_name, index = doc.get("name"), doc.get("input"), doc.get("index")
    if not isinstance(name, str) or not name or len(name) > 128:
        raise InvalidProfile(f"{where}.name must be a non-empty string of at most 128 characters")
    if not isinstance(input_name, str) or not input_name:
        raise InvalidProfile(f"{where}.input must name an input of the model")
    if index is not None and (not isinstance(index, int) or index < 0):
        raise InvalidProfile(f"{where}.index must be a column number (or null for a one-column input)")
    missing = _number(doc.get("missing", 0.0), f"{where}.missing")
    where = f"features[{i}] ('{name}')"
    if doc.get("type") == "numeric":
        bins, quantiles, value_range = doc.get("bins"), doc.get("quantiles"), doc.get("range")
        if not all(isinstance(x, dict) for x in (bins, quantiles, value_range)):
            raise InvalidProfile(f"{where}: a numeric feature needs range, bins and quantiles")
        edges = _array(bins.get("edges"), f"{where}.bins.edges")
        expected = _array(bins.get("expected"), f"{where}.bins.expected")
        if len(expected) != len(edges) + 1 or (len(edges) > 1 and (np.diff(edges) <= 0).any()):
            raise InvalidProfile(f"{where}.bins: edges must increase and expected hold one share more")
        values = _array(quantiles.get("values"), f"{where}.quantiles.values")
        probs = _array(quantiles.get("probabilities"), f"{where}.quantiles.probabilities")
        if len(values) != len(probs) or len(values) < 2 or (np.diff(values) < 0).any() \
                or (np.diff(probs) <= 0).any():
            raise InvalidProfile(f"{where}.quantiles: values and probabilities must be as long as each "
                                 "other and increase")
        low = _number(value_range.get("min"), f"{where}.range.min")
        high = _number(value_range.get("max"), f"{where}.range.max")
        return NumericFeature(name, input_name, index, missing, low, high, edges, expected, values, probs)
    if doc.get("type") == "categorical":
        categories = doc.get("categories")
        if not isinstance(categories, dict) or not isinstance(categories.get("values"), list) \
                or not all(isinstance(v, str) for v in categories["values"]):
            raise InvalidProfile(f"{where}: a categorical feature needs categories.values (strings)")
        shares = _array(categories.get("expected"), f"{where}.categories.expected")
        if len(shares) != len(categories["values"]):
            raise InvalidProfile(f"{where}.categories: one expected share per value")
        other = _number(categories.get("other", 0.0), f"{where}.categories.other")
        return CategoricalFeature(name, input_name, index, missing, tuple(categories["values"]),
                                  np.append(shares, other))
    raise InvalidProfile(f"{where}.type must be numeric or categorical, not {doc.get('type')!r}")


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise InvalidProfile(f"{where} must be a finite number")
    return float(value)


def _array(value: object, where: str) -> np.ndarray:
    if not isinstance(value, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    ):
        raise InvalidProfile(f"{where} must be a list of numbers")
    array = np.array(value, dtype=np.float64)
    if not np.isfinite(array).all():
        raise InvalidProfile(f"{where} must hold finite numbers")
    return array
