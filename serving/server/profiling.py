"""`modelrollout profile`: a reference profile (profile.py) and a golden set
(contract/golden.py) from a sample of the model's inputs, run through the model with
onnxruntime exactly as the server runs it (runtime.py, so a skl2onnx ZipMap is cut the same
way and predictions are read by the same rules, prediction.py).

The sample is a CSV file (its first row is a header unless it holds only numbers; a sample
with text columns needs one) or a .npy array of numbers, one row per example. Its columns feed:

- a model with one [N, F] input: the F columns, in order (features named by the header,
  else ``<input>_<i>``);
- a model whose inputs are each one column ([N] or [N, 1]): the CSV columns named after them.

Missing values (empty cells, NaN, NA) are allowed: their share is recorded, and the golden
set only takes complete rows.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..contract.golden import FORMAT as GOLDEN_FORMAT
from ..contract.predictions import PredictionSpec, category_key, normalize_label
from .cpu import usable_cpus
from .dtypes import BY_V2, from_numpy
from .loading import LoadError, resolve
from .prediction import choose_ways, read
from .profile import BINS, Profile, categorical_feature, numeric_feature
from .runtime import ModelRuntime, RuntimeOptions, TensorSpec

BATCH_ROWS = 1024
_MISSING = {"", "na", "nan", "null", "none"}


class ProfileError(Exception):
    """The model, the sample or the labels cannot make a profile; the message says why."""


@dataclass(frozen=True)
class Column:
    name: str  # the feature's name
    input: str
    index: int | None
    values: np.ndarray  # float64 with NaN for numeric inputs, object (str or None) otherwise


@dataclass
class Result:
    profile: Profile
    ways: list[PredictionSpec]
    feeds: dict[str, np.ndarray]  # the whole sample as model inputs
    predictions: list  # one per row: class name or value
    labels: list | None  # normalized, one per row


def load_model(path: Path) -> tuple[ModelRuntime, str, dict, list[str] | None]:
    """The model at ``path`` (a .onnx file or a model folder): runtime, sha256 of the .onnx,
    metadata and labels.txt."""
    if not path.exists():
        raise ProfileError(f"model path {str(path)!r} does not exist")
    try:
        files = resolve(path, None)
    except LoadError as exc:
        raise ProfileError(exc.message) from None
    runtime = ModelRuntime(files.onnx_path.read_bytes(), "profile", "1",
                           RuntimeOptions(intra_op_threads=usable_cpus(), allow_nonfinite=True))
    return runtime, files.sha256, files.metadata, files.labels


def build(model: Path, data: Path, labels: Path | None = None, categorical: tuple[str, ...] = (),
          bins: int = BINS) -> Result:
    runtime, sha256, metadata, labels_txt = load_model(model)
    header, rows = read_table(data)
    columns = _columns(runtime.inputs, header, rows, set(categorical))
    unknown = set(categorical) - {c.name for c in columns}
    if unknown:
        raise ProfileError(f"--categorical names no feature: {', '.join(sorted(unknown))} (features: "
                           f"{', '.join(c.name for c in columns)})")
    feeds = _feeds(runtime.inputs, columns, len(rows))
    ways = choose_ways(runtime.outputs, runtime.labels, labels_txt, metadata)
    if not ways:
        raise ProfileError("the model has no output the server reads as a prediction; name one in its "
                           "metadata: \"prediction\": {\"output\": ..., \"kind\": ...}")
    spec = ways[0]
    found = read(spec, _run(runtime, feeds, spec.output))
    predictions = list(found.row_values(0, found.rows))
    features = tuple(_feature(c, bins) for c in columns)
    truth = None if labels is None else read_labels(labels, spec, len(rows))
    profile = Profile(features, len(rows), _prediction_summary(spec, predictions),
                      None if truth is None else reference_of(spec, truth, predictions), sha256)
    return Result(profile, ways, feeds, predictions, truth)


def _feature(column: Column, bins: int):
    if column.values.dtype == object:
        keys = [None if v is None else category_key(v) for v in column.values]
        return categorical_feature(column.name, column.input, column.index, keys)
    return numeric_feature(column.name, column.input, column.index, column.values, bins)


def read_table(path: Path) -> tuple[list[str] | None, list[list]]:
    """(header or None, rows of cells): cells are str from a CSV, numbers from a .npy."""
    if not path.is_file():
        raise ProfileError(f"data file {str(path)!r} does not exist")
    if path.suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise ProfileError(f"{path.name}: {exc} (.npy samples hold numbers; use a CSV for text)") \
                from None
        if array.ndim == 1:
            array = array.reshape(-1, 1)
        if array.ndim != 2 or not array.shape[0]:
            raise ProfileError(f"{path.name}: a sample is a [rows, columns] array, not {list(array.shape)}")
        return None, array.tolist()
    with open(path, newline="") as f:
        rows = [row for row in csv.reader(f) if row]
    if not rows:
        raise ProfileError(f"{path.name} holds no rows")
    # A first row that is not all numbers is the header: a sample with text columns needs one.
    header = None
    if not all(_is_number_or_missing(cell) for cell in rows[0]):
        header, rows = [cell.strip() for cell in rows[0]], rows[1:]
    width = len(rows[0]) if rows else 0
    bad = next((i for i, row in enumerate(rows) if len(row) != width), None)
    if not rows or bad is not None:
        raise ProfileError(f"{path.name}: every row must have the same number of cells"
                           + ("" if bad is None else f" (row {bad + 1 + (header is not None)} differs)"))
    return header, rows


def _is_number_or_missing(cell: object) -> bool:
    if not isinstance(cell, str):
        return True
    if cell.strip().lower() in _MISSING:
        return True
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _columns(inputs: list[TensorSpec], header: list[str] | None, rows: list[list],
             categorical: set[str]) -> list[Column]:
    width = len(rows[0])
    table = list(zip(*rows, strict=True))
    if len(inputs) == 1 and len(inputs[0].shape) == 2 and inputs[0].shape[1] != 1:
        spec = inputs[0]
        if spec.shape[1] not in (-1, width):
            raise ProfileError(f"input '{spec.name}' takes {spec.shape[1]} columns; the sample has {width}")
        names = header or [f"{spec.name}_{i}" for i in range(width)]
        return [_column(names[i], spec, i, table[i], names[i] in categorical) for i in range(width)]
    if header is None:
        raise ProfileError("the model has several inputs (or one of one column): the sample must be a CSV "
                           f"whose header names them ({', '.join(s.name for s in inputs)})")
    columns = []
    for spec in inputs:
        if not (len(spec.shape) == 1 or (len(spec.shape) == 2 and spec.shape[1] == 1)):
            raise ProfileError(f"input '{spec.name}' has shape {list(spec.shape)}: profiles read [N, F] "
                               "inputs of one-input models, or inputs of one column")
        if spec.name not in header:
            raise ProfileError(f"the sample has no column named '{spec.name}' (columns: {', '.join(header)})")
        i = header.index(spec.name)
        columns.append(_column(spec.name, spec, None, table[i], spec.name in categorical))
    return columns


def _column(name: str, spec: TensorSpec, index: int | None, cells: tuple, is_categorical: bool) -> Column:
    if spec.datatype in ("BYTES", "BOOL"):
        values = np.empty(len(cells), dtype=object)
        values[:] = [None if _missing(c) else (str(c).strip() if spec.datatype == "BYTES" else _bool(c, name))
                     for c in cells]
        return Column(name, spec.name, index, values)
    numbers = np.array([math.nan if _missing(c) else _number(c, name) for c in cells], dtype=np.float64)
    if not is_categorical:
        return Column(name, spec.name, index, numbers)
    # Categories are keyed on the values as the model receives them (an FP32 0.2 is "0.2"),
    # which is how the server will see them.
    typed = numbers.astype(BY_V2[spec.datatype].numpy) if spec.datatype.startswith("FP") else numbers
    values = np.empty(len(cells), dtype=object)
    values[:] = [None if math.isnan(n) else v for n, v in zip(numbers.tolist(), typed, strict=True)]
    return Column(name, spec.name, index, values)


def _missing(cell: object) -> bool:
    if isinstance(cell, str):
        return cell.strip().lower() in _MISSING
    return isinstance(cell, float) and math.isnan(cell)


def _number(cell: object, name: str) -> float:
    try:
        return float(cell)
    except (TypeError, ValueError):
        raise ProfileError(f"feature '{name}': {cell!r} is not a number") from None


def _bool(cell: object, name: str) -> bool:
    text = str(cell).strip().lower()
    if text in ("1", "true", "1.0"):
        return True
    if text in ("0", "false", "0.0"):
        return False
    raise ProfileError(f"feature '{name}': {cell!r} is not a boolean")


def _feeds(inputs: list[TensorSpec], columns: list[Column], rows: int) -> dict[str, np.ndarray]:
    """The sample as model inputs (missing values: NaN, 0 for integers, "" for text)."""
    feeds = {}
    for spec in inputs:
        own = [c for c in columns if c.input == spec.name]
        dtype = BY_V2[spec.datatype].numpy
        parts = []
        for c in own:
            values = c.values
            if dtype.kind == "O":
                values = np.array(["" if v is None else str(v) for v in values], dtype=object)
            elif values.dtype == object:
                missing = np.nan if dtype.kind == "f" else 0
                values = np.array([missing if v is None else v for v in values]).astype(dtype)
            elif dtype.kind in "iub":
                values = np.nan_to_num(values, nan=0).astype(dtype)
            else:
                values = values.astype(dtype)
            parts.append(values)
        if own[0].index is not None:  # the columns of one [N, F] input
            feeds[spec.name] = np.stack(parts, axis=1)
        else:  # a one-column input, [N] or [N, 1]
            feeds[spec.name] = parts[0].reshape(rows) if len(spec.shape) == 1 else parts[0].reshape(rows, 1)
    return feeds


def _run(runtime: ModelRuntime, feeds: dict[str, np.ndarray], output: str) -> np.ndarray:
    rows = next(iter(feeds.values())).shape[0]
    step = BATCH_ROWS if runtime.is_batchable else 1
    parts = [runtime.run({k: v[i : i + step] for k, v in feeds.items()}, [output])[0]
             for i in range(0, rows, step)]
    return np.concatenate(parts)


def read_labels(path: Path, spec: PredictionSpec, rows: int) -> list:
    header, cells = read_table(path)
    if len(cells[0]) != 1:
        raise ProfileError(f"{path.name}: labels are one column, not {len(cells[0])}")
    values = [row[0] for row in cells]
    if len(values) != rows:
        hint = (" (a first row that holds only numbers is data, not a header)"
                if len(values) == rows + 1 else "")
        raise ProfileError(f"{path.name} holds {len(values)} labels for {rows} rows of data{hint}")
    if spec.kind == "regression":
        return [_number(v, "label") for v in values]
    return [normalize_label(_class_value(v), spec.classes) for v in values]


def _class_value(cell: object) -> object:
    """A label cell as the class it names: "2" and 2.0 are the class 2 (an index when the
    model names its classes); any other text is a class name."""
    if isinstance(cell, str):
        try:
            number = float(cell)
        except ValueError:
            return cell.strip()
        cell = number
    if isinstance(cell, float) and cell.is_integer():
        return int(cell)
    return cell


def reference_of(spec: PredictionSpec, truth: list, predictions: list) -> dict:
    if spec.kind == "regression":
        errors = [abs(p - t) for p, t in zip(predictions, truth, strict=True)]
        return {"examples": len(errors), "maxAbsError": max(errors),
                "meanAbsError": sum(errors) / len(errors)}
    correct = sum(1 for p, t in zip(predictions, truth, strict=True) if p == t)
    return {"examples": len(truth), "accuracy": correct / len(truth)}


def _prediction_summary(spec: PredictionSpec, predictions: list) -> dict:
    doc = spec.to_doc()
    if spec.kind == "regression":
        values = np.array(predictions, dtype=np.float64)
        probs = np.linspace(0, 1, 11)
        doc.update(mean=float(values.mean()), min=float(values.min()), max=float(values.max()),
                   quantiles={"probabilities": probs.tolist(), "values": np.quantile(values, probs).tolist()})
        return doc
    names, counts = np.unique(np.array(predictions, dtype=object).astype(str), return_counts=True)
    doc["classFrequencies"] = {n: c / len(predictions) for n, c in zip(names.tolist(), counts.tolist(),
                                                                     strict=True)}
    return doc


def golden_set(result: Result, size: int, seed: int = 0) -> dict:
    """``size`` labelled rows of the sample (complete rows only), one V2 request each."""
    if result.labels is None:
        raise ProfileError("a golden set needs the true labels: give --labels")
    complete = np.ones(result.profile.rows, dtype=bool)
    for array in result.feeds.values():
        flat = array.reshape(result.profile.rows, -1)
        if flat.dtype.kind == "f":
            complete &= ~np.isnan(flat).any(axis=1)
        elif flat.dtype == object:
            complete &= ~(flat == "").any(axis=1)
    candidates = np.flatnonzero(complete)
    if size > len(candidates):
        raise ProfileError(f"--golden-size {size} is more than the {len(candidates)} complete rows of the "
                           "sample")
    chosen = np.sort(np.random.default_rng(seed).choice(candidates, size=size, replace=False))
    spec = result.ways[0]
    examples = []
    for n, row in enumerate(chosen.tolist()):
        inputs = [{"name": name, "datatype": _v2(array), "shape": [1, *array.shape[1:]],
                   "data": array[row : row + 1].reshape(-1).tolist()}
                  for name, array in result.feeds.items()]
        examples.append({"id": f"golden-{n}", "inputs": inputs, "expected": result.labels[row],
                         "predicted": result.predictions[row]})
    picked_truth = [result.labels[i] for i in chosen.tolist()]
    picked_predictions = [result.predictions[i] for i in chosen.tolist()]
    return {
        "format": GOLDEN_FORMAT,
        "model": {"sha256": result.profile.model_sha256},
        "prediction": spec.to_doc(),
        "reference": reference_of(spec, picked_truth, picked_predictions),
        "examples": examples,
    }


def _v2(array: np.ndarray) -> str:
    return from_numpy(array.dtype).v2
