"""An API class's structural OpenAPI schema, as a CRD carries it, from pydantic's JSON Schema. Pure.

pydantic writes JSON Schema for the types, the constraints, the enums, the descriptions
(docstrings) and the markers of objects.py; a CRD wants the structural subset of OpenAPI
v3, so the schema is reshaped here: references inlined, ``X | None`` written as X (and
``nullable: true`` in status, which the operator writes nulls into), no titles, a plain
``dict`` preserving unknown fields, defaults only where they are plain values (the API
server fills them in; a missing object stays missing).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema

# The order keys are written in, so the generated CRD reads like a hand-written one.
_ORDER = ("type", "description", "nullable", "default", "required", "enum", "minimum", "maximum", "minLength",
          "maxLength", "minItems", "maxItems", "pattern", "x-kubernetes-preserve-unknown-fields",
          "x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-validations", "properties",
          "items", "additionalProperties")


class _Generator(GenerateJsonSchema):
    def nullable_schema(self, schema) -> dict:
        inner = self.generate_inner(schema["schema"])
        return {**inner, "nullable": True}

    def field_title_should_be_set(self, schema) -> bool:
        return False


def schema_of(cls: type[BaseModel], nullable: bool, defaults: bool) -> dict:
    """The structural schema of ``cls``: ``nullable`` keeps nullable marks (status),
    ``defaults`` keeps plain defaults (spec)."""
    raw = cls.model_json_schema(by_alias=True, mode="validation", schema_generator=_Generator)
    return _shape(raw, raw.get("$defs", {}), nullable, defaults)


def _shape(node: Any, defs: dict, nullable: bool, defaults: bool) -> Any:
    if isinstance(node, list):
        return [_shape(n, defs, nullable, defaults) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:  # the referenced object, with what the field adds (description, rules)
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        rules = target.get("x-kubernetes-validations", []) + node.get("x-kubernetes-validations", [])
        if rules:
            merged["x-kubernetes-validations"] = rules
        node = merged
    out: dict = {}
    for key, value in node.items():
        if key in ("title", "$defs"):
            continue
        if key == "properties":
            out[key] = {name: _shape(sub, defs, nullable, defaults) for name, sub in value.items()}
        elif key in ("items",) or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = _shape(value, defs, nullable, defaults)
        elif key == "additionalProperties":
            if value is True:  # a plain dict: whatever it holds is kept
                out["x-kubernetes-preserve-unknown-fields"] = True
        elif key == "description":
            out[key] = " ".join(value.split())  # docstrings wrap lines: one line each
        elif key == "x-kubernetes-validations":
            out[key] = [{"rule": r["rule"], "message": r["message"]} for r in value]
        elif key == "nullable":
            if nullable:
                out[key] = True
        elif key == "default":
            if defaults and value is not None and not isinstance(value, (dict, list)):
                out[key] = value
        else:
            out[key] = value
    if "default" in out:  # kubectl explain prints the description, not the default: say it there too
        out["description"] = f"{out.get('description', '')} Default: {_shown(out['default'])}.".strip()
    return _ordered(out)


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _ordered(node: dict) -> dict:
    known = {key: node[key] for key in _ORDER if key in node}
    return {**known, **{key: value for key, value in node.items() if key not in known}}
