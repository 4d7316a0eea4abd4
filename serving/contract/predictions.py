"""What "the prediction" of a model is, and how a class is named: one rule for the server's
metrics and feedback join, the profile, the golden set and the operator's replay of it.

A prediction is read from one output of the model, in one of three ways:

    label    the output holds the class itself ([N] or [N, 1], integers or strings)
    argmax   the output holds one score per class ([N, C] floats); the class is the
             position of the highest score, named by ``classes`` when the model has them
    value    the output holds the predicted number ([N] or [N, 1] floats): a regressor

Classes are compared by name: ``category_key`` turns 2, 2.0, b"2" and "2" into "2",
and a float into its shortest text in its own precision (an FP32 0.2 is "0.2"),
and ``normalize_label`` also accepts a class's index when the model names its classes
("setosa" and 0 are the same class of a model whose classes are setosa, versicolor, ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

KINDS = ("classification", "regression")
METHODS = ("label", "argmax", "value")


class InvalidPrediction(ValueError):
    """A document or an answer does not fit the prediction spec; the message says why."""


@dataclass(frozen=True)
class PredictionSpec:
    output: str
    kind: str  # one of KINDS
    method: str  # one of METHODS ("value" for regression, "label" or "argmax" for classification)
    classes: tuple[str, ...] | None = None  # class names by index, when the model has them

    def to_doc(self) -> dict:
        doc: dict = {"output": self.output, "kind": self.kind, "method": self.method}
        if self.classes is not None:
            doc["classes"] = list(self.classes)
        return doc


def parse_prediction_spec(doc: object, where: str = "prediction") -> PredictionSpec:
    if not isinstance(doc, dict):
        raise InvalidPrediction(f"{where} must be a mapping with output, kind and method")
    output, kind, method = doc.get("output"), doc.get("kind"), doc.get("method")
    if not isinstance(output, str) or not output:
        raise InvalidPrediction(f"{where}.output must name an output of the model")
    if kind not in KINDS:
        raise InvalidPrediction(f"{where}.kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if method not in METHODS:
        raise InvalidPrediction(f"{where}.method must be one of {', '.join(METHODS)}, not {method!r}")
    if (kind == "regression") != (method == "value"):
        raise InvalidPrediction(f"{where}: method 'value' goes with kind 'regression' and only with it")
    classes = doc.get("classes")
    if classes is not None:
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise InvalidPrediction(f"{where}.classes must be a list of class names")
        classes = tuple(classes)
    return PredictionSpec(output, kind, method, classes)


def category_key(value: object) -> str:
    """The canonical text of a class or category value: integral numbers without a
    fraction ("2", not "2.0"), booleans as true/false, bytes decoded as UTF-8."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    if type(value).__name__ in ("bool", "bool_"):  # Python's and numpy's booleans
        return "true" if value else "false"
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    if math.isfinite(number) and number.is_integer():
        return str(int(number))
    dtype = getattr(value, "dtype", None)
    if dtype is not None and dtype.kind == "f":
        # numpy's shortest text for the value in its own precision: FP32 0.2 is "0.2",
        # not the "0.20000000298023224" of the same value widened to a Python float.
        return str(value)
    return repr(number)


def normalize_label(label: object, classes: tuple[str, ...] | None) -> str:
    """A true class as given by a user (a name, or an index into ``classes``) -> its name."""
    key = category_key(label)
    if classes is None or key in classes:
        return key
    if isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(classes):
        return classes[label]
    return key


def prediction_of(response: dict, spec: PredictionSpec) -> str | float:
    """The prediction for the first row of a V2 JSON infer answer (golden-set replay sends
    one example per request)."""
    outputs = response.get("outputs") if isinstance(response, dict) else None
    if not isinstance(outputs, list):
        raise InvalidPrediction("the answer has no outputs")
    tensor = next((o for o in outputs if isinstance(o, dict) and o.get("name") == spec.output), None)
    if tensor is None:
        raise InvalidPrediction(f"the answer has no output '{spec.output}'")
    data, shape = tensor.get("data"), tensor.get("shape")
    if not isinstance(data, list) or not data or not isinstance(shape, list) or not shape:
        raise InvalidPrediction(f"output '{spec.output}' has no JSON data (ask for it without binary_data)")
    if spec.method == "label":
        return normalize_label(data[0], spec.classes)
    if spec.method == "value":
        return float(data[0])
    width = int(shape[-1]) if len(shape) >= 2 else len(data)
    row = data[:width]
    best = max(range(len(row)), key=row.__getitem__)
    if spec.classes is not None and len(spec.classes) == width:
        return spec.classes[best]
    return str(best)
