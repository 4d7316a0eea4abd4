"""The golden set: labelled examples stored with a model, replayed against a revision.

Written by `modelrollout profile --golden-set golden.json` (serving/server/profiling.py),
kept beside model.onnx, served by `modelrollout serve` at GET /v2/models/{name}/golden, and
read by the operator's golden-set gate. docs/gates.md describes the file; in short:

    {"format": "modelrollout.golden/v1",
     "model": {"sha256": "<sha256 of the model.onnx it was built with>"},
     "prediction": {"output": "output_label", "kind": "classification", "method": "label",
                    "classes": ["0", "1", "2"]},
     "reference": {"examples": 50, "accuracy": 0.96},     # that model on these examples
     "examples": [{"id": "golden-0",
                   "inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4],
                               "data": [5.1, 3.5, 1.4, 0.2]}],
                   "expected": "0",                       # the true class (name) or value
                   "predicted": "0"}, ...]}               # what that model answered

One example is one row and one V2 request (``request_of``); a regressor's ``expected`` is
a number and its reference holds maxAbsError and meanAbsError instead of accuracy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .predictions import InvalidPrediction, PredictionSpec, normalize_label, parse_prediction_spec

FORMAT = "modelrollout.golden/v1"
FILE_NAME = "golden.json"


class InvalidGoldenSet(ValueError):
    """The document is not a golden set this version reads; the message says where."""


@dataclass(frozen=True)
class GoldenExample:
    id: str
    inputs: tuple[dict, ...]  # V2 JSON input tensors, one row each
    expected: str | float
    predicted: str | float | None = None


@dataclass(frozen=True)
class GoldenSet:
    prediction: PredictionSpec
    examples: tuple[GoldenExample, ...]
    model_sha256: str | None = None
    reference: dict | None = None


@dataclass(frozen=True)
class GoldenScore:
    """How a revision did on a golden set. ``accuracy`` for classifiers, the errors for
    regressors; ``failed`` counts examples the revision gave no usable answer for (they
    count as wrong, and as an infinite error)."""

    examples: int
    correct: int = 0
    failed: int = 0
    accuracy: float | None = None
    max_abs_error: float | None = None
    mean_abs_error: float | None = None


def parse_golden_set(doc: object) -> GoldenSet:
    if not isinstance(doc, dict):
        raise InvalidGoldenSet("a golden set is a JSON object")
    if doc.get("format") != FORMAT:
        raise InvalidGoldenSet(f"format must be {FORMAT!r}, not {doc.get('format')!r}")
    try:
        spec = parse_prediction_spec(doc.get("prediction"))
    except InvalidPrediction as exc:
        raise InvalidGoldenSet(str(exc)) from None
    examples_doc = doc.get("examples")
    if not isinstance(examples_doc, list) or not examples_doc:
        raise InvalidGoldenSet("examples must be a non-empty list")
    examples = tuple(_example(i, e, spec) for i, e in enumerate(examples_doc))
    model = doc.get("model") if isinstance(doc.get("model"), dict) else {}
    reference = doc.get("reference") if isinstance(doc.get("reference"), dict) else None
    return GoldenSet(spec, examples, model.get("sha256"), reference)


def _example(i: int, doc: object, spec: PredictionSpec) -> GoldenExample:
    where = f"examples[{i}]"
    if not isinstance(doc, dict):
        raise InvalidGoldenSet(f"{where} must be a mapping")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs or not all(
        isinstance(t, dict) and isinstance(t.get("name"), str) and isinstance(t.get("data"), list)
        for t in inputs
    ):
        raise InvalidGoldenSet(f"{where}.inputs must be a list of V2 input tensors (name, datatype, "
                               "shape, data)")
    expected = doc.get("expected")
    if spec.kind == "regression":
        if isinstance(expected, bool) or not isinstance(expected, int | float) or not math.isfinite(expected):
            raise InvalidGoldenSet(f"{where}.expected must be a finite number for a regressor")
        expected = float(expected)
    else:
        if not isinstance(expected, str | int) or isinstance(expected, bool):
            raise InvalidGoldenSet(f"{where}.expected must be a class name (or index)")
        expected = normalize_label(expected, spec.classes)
    return GoldenExample(str(doc.get("id", f"golden-{i}")), tuple(inputs), expected, doc.get("predicted"))


def request_of(example: GoldenExample, spec: PredictionSpec) -> dict:
    """The V2 JSON infer body that replays ``example``, asking only for the prediction output."""
    return {"id": example.id, "inputs": list(example.inputs), "outputs": [{"name": spec.output}]}


def score(spec: PredictionSpec, expected: list[str | float],
          predicted: list[str | float | None]) -> GoldenScore:
    """Compare answers with the expected values, example by example; None is a failed answer."""
    if len(expected) != len(predicted):
        raise ValueError("one prediction per example")
    n = len(expected)
    failed = sum(1 for p in predicted if p is None)
    if spec.kind == "classification":
        correct = sum(1 for e, p in zip(expected, predicted, strict=True) if p is not None and p == e)
        return GoldenScore(n, correct, failed, accuracy=correct / n if n else None)
    errors = [math.inf if p is None else abs(float(p) - float(e))
              for e, p in zip(expected, predicted, strict=True)]
    return GoldenScore(n, 0, failed, max_abs_error=max(errors) if errors else None,
                       mean_abs_error=sum(errors) / n if n else None)
