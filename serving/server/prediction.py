"""Which output of a model is its prediction, and reading it from arrays. Pure (numpy only).

The ways to read a prediction are in serving/contract/predictions.py. The server picks
them from the model's outputs, unless the model metadata names one
(``"prediction": {"output": "...", "kind": "classification" | "regression"}``):

1. a classifier as skl2onnx writes it: an integer or string output of shape [N] (the
   label) beside a probabilities output with class labels -> label, then argmax;
2. a float output [N, C] with C >= 2 (or unknown) -> argmax;
3. a float output [N] or [N, 1] -> value (a regressor);
4. an integer or string output [N] or [N, 1] -> label.

A request may ask for some outputs only: the first way whose output is in the answer is
used, so a classifier is read from its label or from its probabilities, whichever came.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..contract.predictions import PredictionSpec, category_key, normalize_label

_FLOATS = ("FP16", "FP32", "FP64")


class OutputLike(Protocol):
    name: str
    datatype: str
    shape: tuple[int, ...]


class InvalidPredictionConfig(ValueError):
    """The model metadata names a prediction output the model cannot give."""


@dataclass(frozen=True)
class Predictions:
    """One batch of rows read by one way: classifiers fill ``names`` and ``inverse``
    (row i predicted names[inverse[i]]), regressors fill ``values``."""

    spec: PredictionSpec
    names: list[str] | None = None
    inverse: np.ndarray | None = None
    values: np.ndarray | None = None

    @property
    def rows(self) -> int:
        return len(self.inverse) if self.inverse is not None else len(self.values)

    def row_values(self, start: int, stop: int) -> tuple:
        """The predictions of rows [start, stop) as plain Python values (class names or floats)."""
        return tuple(self.all_values()[start:stop])

    def all_values(self) -> list:
        """Every row's prediction as a plain Python value (class name or float)."""
        if self.inverse is not None:
            names = self.names
            return [names[i] for i in self.inverse.tolist()]
        return self.values.tolist()


def choose_ways(outputs: list[OutputLike], zipmap_classes: dict[str, list[str]],
                labels_txt: list[str] | None, metadata: dict) -> list[PredictionSpec]:
    """The ways to read this model's prediction, best first; empty for a model that has none
    (no class counts or score histogram then, and feedback is refused)."""
    declared = metadata.get("prediction")
    if declared is not None:
        return [_declared(declared, outputs, zipmap_classes, labels_txt)]
    by_name = {o.name: o for o in outputs}
    shared = _shared_classes(zipmap_classes, labels_txt)
    labels = [o for o in outputs if _is_label(o)]
    scores = [o for o in outputs if o.datatype in _FLOATS and len(o.shape) == 2 and o.shape[1] != 1]
    values = [o for o in outputs if o.datatype in _FLOATS and _is_column(o)]
    if labels and any(name in zipmap_classes for name in by_name):
        ways = [PredictionSpec(labels[0].name, "classification", "label", shared)]
        return ways + [PredictionSpec(o.name, "classification", "argmax", _classes_of(o, zipmap_classes,
                                                                                        labels_txt))
                       for o in scores]
    if scores:
        return [PredictionSpec(o.name, "classification", "argmax", _classes_of(o, zipmap_classes, labels_txt))
                for o in scores[:1]]
    if values:
        return [PredictionSpec(values[0].name, "regression", "value")]
    if labels:
        return [PredictionSpec(labels[0].name, "classification", "label", shared)]
    return []


def read(spec: PredictionSpec, array: np.ndarray) -> Predictions:
    """The predictions of all rows of ``array``, the output ``spec`` names."""
    rows = array.shape[0] if array.ndim else 1
    if spec.method == "value":
        return Predictions(spec, values=np.asarray(array, dtype=np.float64).reshape(rows, -1)[:, 0])
    if spec.method == "argmax":
        scores = np.asarray(array).reshape(rows, -1)
        index = scores.argmax(axis=1) if scores.shape[1] else np.zeros(rows, np.int64)
        classes = spec.classes if spec.classes is not None and len(spec.classes) == scores.shape[1] else None
        found, inverse = np.unique(index, return_inverse=True)
        names = [classes[i] if classes else str(i) for i in found.tolist()]
        return Predictions(spec, names=names, inverse=inverse.reshape(-1))
    flat = np.asarray(array).reshape(rows, -1)[:, 0]
    found, inverse = np.unique(flat, return_inverse=True)
    names = [normalize_label(_plain(v), spec.classes) for v in found.tolist()]
    return Predictions(spec, names=names, inverse=inverse.reshape(-1))


def _plain(value: object) -> object:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _declared(doc: object, outputs: list[OutputLike], zipmap_classes: dict[str, list[str]],
              labels_txt: list[str] | None) -> PredictionSpec:
    if not isinstance(doc, dict) or not isinstance(doc.get("output"), str):
        raise InvalidPredictionConfig("metadata 'prediction' must be {output: <name>, kind: "
                                      "classification | regression}")
    output = next((o for o in outputs if o.name == doc["output"]), None)
    if output is None:
        raise InvalidPredictionConfig(
            f"metadata 'prediction' names output '{doc['output']}'; the model's outputs are "
            f"{', '.join(o.name for o in outputs)}")
    kind = doc.get("kind", "classification")
    if kind == "regression":
        if output.datatype not in _FLOATS or not _is_column(output):
            raise InvalidPredictionConfig(f"a regressor's output must be a float [N] or [N, 1] tensor; "
                                          f"'{output.name}' is {output.datatype} {list(output.shape)}")
        return PredictionSpec(output.name, "regression", "value")
    if kind != "classification":
        raise InvalidPredictionConfig(f"metadata 'prediction.kind' must be classification or regression, "
                                      f"not {kind!r}")
    if _is_label(output):
        return PredictionSpec(output.name, kind, "label", _shared_classes(zipmap_classes, labels_txt))
    if output.datatype in _FLOATS and len(output.shape) == 2:
        return PredictionSpec(output.name, kind, "argmax", _classes_of(output, zipmap_classes, labels_txt))
    raise InvalidPredictionConfig(f"a classifier's output must hold labels ([N]) or class scores ([N, C]); "
                                  f"'{output.name}' is {output.datatype} {list(output.shape)}")


def _is_column(o: OutputLike) -> bool:
    return len(o.shape) == 1 or (len(o.shape) == 2 and o.shape[1] == 1)


def _is_label(o: OutputLike) -> bool:
    return o.datatype not in _FLOATS and _is_column(o)


def _classes_of(o: OutputLike, zipmap_classes: dict[str, list[str]],
                labels_txt: list[str] | None) -> tuple[str, ...] | None:
    if o.name in zipmap_classes:
        return tuple(zipmap_classes[o.name])
    width = o.shape[1] if len(o.shape) == 2 else -1
    if labels_txt and width in (-1, len(labels_txt)):
        return tuple(labels_txt)
    return None


def _shared_classes(zipmap_classes: dict[str, list[str]],
                    labels_txt: list[str] | None) -> tuple[str, ...] | None:
    if len(zipmap_classes) == 1:
        return tuple(category_key(c) for c in next(iter(zipmap_classes.values())))
    return tuple(labels_txt) if labels_txt else None
