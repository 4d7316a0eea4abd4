"""The ModelDeployment spec the engine reads, parsed once at the edge. Pure.

The types are the API's (api/v1alpha1.py declares every field once); parse_spec() turns
the spec dict as the API server stores it into a Spec, or raises InvalidSpec with the path
of the field and what to fix: the operator reports that in the InvalidSpec condition
instead of guessing.
"""

from __future__ import annotations

import annotated_types
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from .api.durations import parse_duration as _seconds
from .api.objects import Problem, SpecObject
from .api.v1alpha1 import (
    BUILTIN_METRICS,
    MODEL_METRICS,
    SHADOW_METRICS,
    Analysis,
    BlueGreen,
    Canary,
    Comparison,
    GoldenSet,
    Metric,
    ModelSource,
    Server,
    Shadow,
    Spec,
    Step,
)

__all__ = ["BUILTIN_METRICS", "MODEL_METRICS", "SHADOW_METRICS", "Analysis", "BlueGreen", "Canary",
           "Comparison", "GoldenSet", "InvalidSpec", "Metric", "ModelSource", "Server", "Shadow", "Spec",
           "Step", "parse_duration", "parse_spec"]


class InvalidSpec(ValueError):
    """What is wrong in the spec, with the path of the field: ``spec.strategy.canary.steps[2]``."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def parse_spec(doc: object) -> Spec:
    if not isinstance(doc, dict):
        raise InvalidSpec("spec", "is required and must be an object" if doc is None else "must be an object")
    try:
        return Spec.model_validate(doc)
    except ValidationError as exc:
        raise _invalid(exc.errors(include_url=False)) from None


def parse_duration(text: object, path: str) -> float:
    """"30s", "5m", "1h30m", "250ms" -> seconds."""
    try:
        return _seconds(text)
    except ValueError as exc:
        raise InvalidSpec(path, str(exc)) from None


# --- what pydantic found, said as InvalidSpec --------------------------------------------


def _invalid(errors: list[dict]) -> InvalidSpec:
    """The first error, as the path of the field and what to fix. Unknown fields of one
    object are told together, with the fields that object knows."""
    first = errors[0]
    loc = tuple(first["loc"])
    error = (first.get("ctx") or {}).get("error")
    if isinstance(error, Problem):
        return InvalidSpec(_path(loc + error.at), error.text)
    if first["type"] == "extra_forbidden":
        parent = loc[:-1]
        unknown = sorted(str(e["loc"][-1]) for e in errors
                         if e["type"] == "extra_forbidden" and tuple(e["loc"][:-1]) == parent)
        return InvalidSpec(_path(parent), f"unknown field(s) {', '.join(unknown)}; known: "
                                          f"{', '.join(_known_fields(parent))}")
    return InvalidSpec(_path(loc), _problem(first, loc))


def _problem(error: dict, loc: tuple) -> str:
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be an integer, got {value!r}"
    if kind in ("float_type", "float_parsing"):
        return f"must be a number, got {value!r}"
    if kind in ("string_type", "bool_type", "dict_type", "model_type", "list_type", "model_attributes_type"):
        wanted = {"string_type": "a string", "bool_type": "true or false", "list_type": "a list"}
        return f"must be {wanted.get(kind, 'an object')}, got {value!r}"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        low, high = _bounds(loc)
        return f"must be from {low}" + (f" to {high}" if high is not None else " up") + f", got {value!r}"
    if kind == "too_long":  # a list (strings have their own kinds below)
        return f"has {ctx.get('actual_length')} items, more than {ctx.get('max_length')}"
    if kind == "too_short":
        return "must be a non-empty list"
    if kind == "string_too_short":
        return "is required and must be a non-empty string"
    if kind == "string_too_long":
        return f"is {len(value)} characters long, more than {ctx.get('max_length')}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}, got {value!r}"
    if kind == "value_error":
        return str(ctx.get("error") or error["msg"])
    return error["msg"]


def _path(loc: tuple) -> str:
    """("strategy", "canary", "steps", 2, "setWeight") -> spec.strategy.canary.steps[2].setWeight"""
    path = "spec"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _class_at(parts: tuple) -> type | None:
    """The API class of the object at ``parts`` (JSON names and indexes) below spec."""
    cls: type | None = Spec
    for part in parts:
        if isinstance(part, int):
            continue
        name = _field_name(cls, part)
        cls = _api_class(cls.model_fields[name].annotation) if name else None
        if cls is None:
            return None
    return cls


def _field_name(cls: type, alias: str) -> str | None:
    return next((name for name, info in cls.model_fields.items() if (info.alias or name) == alias), None)


def _api_class(annotation: object) -> type | None:
    """The API class in an annotation (X, X | None, list[X])."""
    if isinstance(annotation, type) and issubclass(annotation, SpecObject):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _api_class(arg)
        if found is not None:
            return found
    return None


def _known_fields(parent: tuple) -> list[str]:
    cls = _class_at(parent)
    return [] if cls is None else [info.alias or name for name, info in cls.model_fields.items()]


def _bounds(loc: tuple) -> tuple[float, float | None]:
    """(low, high) declared on the field at ``loc``."""
    fields = [part for part in loc if not isinstance(part, int)]
    cls = _class_at(tuple(fields[:-1]))
    name = _field_name(cls, fields[-1]) if cls is not None and fields else None
    low, high = 0, None
    for item in _constraints(cls.model_fields[name]) if name else ():
        low = item.ge if isinstance(item, annotated_types.Ge) else low
        high = item.le if isinstance(item, annotated_types.Le) else high
    return low, high


def _constraints(info: FieldInfo) -> list:
    """The field's constraints, wherever the annotation put them (X | None: on X)."""
    found, pending = [], [*info.metadata, *getattr(info.annotation, "__args__", ())]
    while pending:
        item = pending.pop()
        if isinstance(item, FieldInfo):
            pending += item.metadata
        elif hasattr(item, "__metadata__"):
            pending += list(item.__metadata__)
        else:
            found.append(item)
    return found
