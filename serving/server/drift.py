"""Live inputs against the reference profile: the drift maths, the input checks and the
sliding window they run over. Pure (numpy only); the monitor thread drives it.

PSI (population stability index) of live counts a over bins with reference shares e:
``sum((a_i - e_i) * ln(a_i / e_i))`` with a_i the live shares, both floored at EPSILON so
an empty bin gives a large finite term rather than infinity. Rules of thumb: below 0.1
stable, 0.1-0.25 moderate shift, above 0.25 major shift.

KS: the one-sample Kolmogorov-Smirnov statistic of the live values against the reference
CDF, taken as the piecewise-linear curve through the profile's 101 quantiles (so it is
exact for that curve, which is within about 0.01 of the sample's own CDF for a
continuous feature; for a feature with few distinct values, read PSI instead).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..contract.predictions import category_key
from .profile import CategoricalFeature, InvalidProfile, NumericFeature, Profile, bin_of

EPSILON = 1e-4


def psi(actual_counts: np.ndarray, expected: np.ndarray) -> float:
    counts = np.asarray(actual_counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return 0.0
    a = np.maximum(counts / total, EPSILON)
    e = np.maximum(np.asarray(expected, dtype=np.float64), EPSILON)
    return float(((a - e) * np.log(a / e)).sum())


def cdf_points(quantile_values: np.ndarray, quantile_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference CDF as (x, F(x)) points for np.interp: where quantiles repeat (ties in
    the sample), the CDF takes the highest probability there, as P(X <= x) does."""
    x = np.asarray(quantile_values, dtype=np.float64)
    p = np.asarray(quantile_probs, dtype=np.float64)
    last = np.r_[x[1:] != x[:-1], True]  # the last of each run of equal values
    return x[last], p[last]


def reference_cdf(values: np.ndarray, x: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.interp(values, x, p, left=0.0, right=1.0)


def ks_statistic(sample: np.ndarray, x: np.ndarray, p: np.ndarray) -> float:
    """sup |F_live - F_ref| over the live sample (as scipy.stats.kstest computes it)."""
    values = np.sort(np.asarray(sample, dtype=np.float64))
    n = values.size
    if not n:
        return 0.0
    cdf = reference_cdf(values, x, p)
    d_plus = (np.arange(1, n + 1) / n - cdf).max()
    d_minus = (cdf - np.arange(0, n) / n).max()
    return float(max(d_plus, d_minus))


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    psi: float
    ks: float | None  # numeric features only
    rows: int  # rows of the window with a value for this feature


@dataclass
class InputBatch:
    """The monitored features of some rows: numeric values (NaN: missing) and category
    positions (-1: missing, len(categories): a category the profile does not list)."""

    numeric: np.ndarray  # [rows, numeric features] float64
    categorical: np.ndarray  # [rows, categorical features] int32

    @property
    def rows(self) -> int:
        return self.numeric.shape[0]


@dataclass(frozen=True)
class Violations:
    out_of_range: np.ndarray  # per feature, in InputChecks.features order
    missing: np.ndarray
    rows: int  # rows with at least one violation


class InputChecks:
    """A profile compiled for one model: which columns to read, and their checks."""

    def __init__(self, profile: Profile, inputs: dict[str, tuple[str, tuple[int, ...]]],
                 max_features: int) -> None:
        """``inputs``: the model's input name -> (V2 datatype, shape). Only the first
        ``max_features`` features are monitored (they are metric labels)."""
        features = profile.features[:max_features]
        for feature in features:
            _check_fits(feature, inputs)
        self.numeric = [f for f in features if isinstance(f, NumericFeature)]
        self.categorical = [f for f in features if isinstance(f, CategoricalFeature)]
        self.features: list[NumericFeature | CategoricalFeature] = [*self.numeric, *self.categorical]
        self.inputs = sorted({f.input for f in self.features})
        self._positions = [{c: i for i, c in enumerate(f.categories)} for f in self.categorical]
        self._low = np.array([f.minimum for f in self.numeric])
        self._high = np.array([f.maximum for f in self.numeric])
        self._unknown_counts = np.array([f.is_complete for f in self.categorical], dtype=bool)

    def extract(self, feeds: list[dict[str, np.ndarray]]) -> InputBatch:
        """The features of every row of ``feeds`` (one dict per request), in order."""
        arrays = {name: _stack([f[name] for f in feeds]) for name in self.inputs}
        rows = next(iter(arrays.values())).shape[0]
        numeric = np.empty((rows, len(self.numeric)), dtype=np.float64)
        for j, feature in enumerate(self.numeric):
            column = _column(arrays[feature.input], feature.index, rows)
            numeric[:, j] = np.nan if column is None else column.astype(np.float64, copy=False)
        categorical = np.empty((rows, len(self.categorical)), dtype=np.int32)
        for j, feature in enumerate(self.categorical):
            column = _column(arrays[feature.input], feature.index, rows)
            categorical[:, j] = -1 if column is None else self._positions_of(j, column)
        return InputBatch(numeric, categorical)

    def _positions_of(self, j: int, column: np.ndarray) -> np.ndarray:
        found, inverse = np.unique(column, return_inverse=True)
        positions, other = self._positions[j], len(self._positions[j])
        mapped = []
        for value in found:  # numpy scalars: a float keeps its precision (category_key)
            key = category_key(value)
            mapped.append(-1 if key == "" or value is None else positions.get(key, other))
        return np.array(mapped, dtype=np.int32)[inverse.reshape(-1)]

    def violations(self, batch: InputBatch) -> Violations:
        numeric, categorical = batch.numeric, batch.categorical
        missing_numeric = np.isnan(numeric)
        with np.errstate(invalid="ignore"):
            outside = (numeric < self._low) | (numeric > self._high)
        missing_categorical = categorical < 0
        unknown = (categorical == np.array([len(p) for p in self._positions], dtype=np.int32)) \
            & self._unknown_counts
        out_of_range = np.concatenate([outside.sum(axis=0), unknown.sum(axis=0)])
        missing = np.concatenate([missing_numeric.sum(axis=0), missing_categorical.sum(axis=0)])
        bad_rows = (outside | missing_numeric).any(axis=1) | (unknown | missing_categorical).any(axis=1)
        return Violations(out_of_range, missing, int(bad_rows.sum()))


class DriftWindow:
    """The last ``size`` rows of monitored features, and their drift against the profile."""

    def __init__(self, checks: InputChecks, size: int) -> None:
        self.checks = checks
        self.size = size
        self._numeric = np.full((size, len(checks.numeric)), np.nan)
        self._categorical = np.full((size, len(checks.categorical)), -1, dtype=np.int32)
        self._next = 0
        self.filled = 0
        self._cdfs = [cdf_points(f.quantile_values, f.quantile_probs) for f in checks.numeric]

    def add(self, batch: InputBatch) -> None:
        rows = batch.rows
        numeric, categorical = batch.numeric, batch.categorical
        if rows > self.size:
            numeric, categorical, rows = numeric[-self.size:], categorical[-self.size:], self.size
        where = (self._next + np.arange(rows)) % self.size
        self._numeric[where] = numeric
        self._categorical[where] = categorical
        self._next = (self._next + rows) % self.size
        self.filled = min(self.size, self.filled + rows)

    def drift(self) -> list[FeatureDrift]:
        """Each feature that has a value in the window, with its PSI (and KS)."""
        found = []
        for j, feature in enumerate(self.checks.numeric):
            column = self._numeric[: self.filled, j]
            values = column[~np.isnan(column)]
            if values.size:
                counts = np.bincount(bin_of(feature.edges, values), minlength=len(feature.expected))
                found.append(FeatureDrift(feature.name, psi(counts, feature.expected),
                                          ks_statistic(values, *self._cdfs[j]), values.size))
        for j, feature in enumerate(self.checks.categorical):
            column = self._categorical[: self.filled, j]
            positions = column[column >= 0]
            if positions.size:
                counts = np.bincount(positions, minlength=len(feature.expected))
                found.append(FeatureDrift(feature.name, psi(counts, feature.expected), None, positions.size))
        return found


def _stack(arrays: list[np.ndarray]) -> np.ndarray:
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _column(array: np.ndarray, index: int | None, rows: int) -> np.ndarray | None:
    """Column ``index`` of a [rows, F] array, or the whole [rows] / [rows, 1] array; None
    when the request's shape does not have it."""
    if index is None:
        return array.reshape(rows) if array.size == rows else None
    if array.ndim != 2 or index >= array.shape[1]:
        return None
    return array[:, index]


def _check_fits(feature: NumericFeature | CategoricalFeature,
                inputs: dict[str, tuple[str, tuple[int, ...]]]) -> None:
    where = f"profile feature '{feature.name}'"
    if feature.input not in inputs:
        raise InvalidProfile(f"{where} reads input '{feature.input}'; the model's inputs are "
                             f"{', '.join(inputs)}")
    datatype, shape = inputs[feature.input]
    if isinstance(feature, NumericFeature) and datatype in ("BYTES", "BOOL"):
        raise InvalidProfile(f"{where} is numeric but input '{feature.input}' is {datatype}")
    if feature.index is None:
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
            raise InvalidProfile(f"{where} has no column index, but input '{feature.input}' has shape "
                                 f"{list(shape)} (a whole input must be [N] or [N, 1])")
    elif len(shape) != 2 or (shape[1] != -1 and feature.index >= shape[1]):
        raise InvalidProfile(f"{where} reads column {feature.index} of input '{feature.input}', whose "
                             f"shape is {list(shape)}")
