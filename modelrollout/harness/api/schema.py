"""Structural-schema validation of custom resources, with the API server's own messages.

    problems = validate(obj, crd_version["schema"]["openAPIV3Schema"])
    # ['spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0']
    unknown_fields(obj, schema)   # ['spec.foo'], what fieldValidation=Strict refuses

What the real API server checks of a structural schema: type (and nullable), required,
properties / additionalProperties / items, enum, pattern, minLength / maxLength, minimum /
maximum (and their exclusive forms), multipleOf, minItems / maxItems, minProperties /
maxProperties, x-kubernetes-int-or-string and x-kubernetes-preserve-unknown-fields.
CEL rules (x-kubernetes-validations), formats and defaults are NOT applied here.
"""

from __future__ import annotations

import json
import re

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
    or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}


def validate(obj: object, schema: dict) -> list[str]:
    problems: list[str] = []
    _check(obj, schema, "", problems, top=True)
    return problems


def unknown_fields(obj: object, schema: dict) -> list[str]:
    found: list[str] = []
    _unknown(obj, schema, "", found, top=True)
    return found


def invalid_message(kind: str, name: str, problems: list[str]) -> str:
    """The text of the API server's 422 Invalid: one problem, or a bracketed list."""
    detail = problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]"
    return f'{kind} "{name}" is invalid: {detail}'


def _shown(value: object) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if value is None:
        return '"null"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _number(value: float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _check(value: object, schema: dict, path: str, problems: list[str], top: bool = False) -> None:
    where = path or "<root>"
    if value is None:
        if not schema.get("nullable") and "type" in schema:
            problems.append(f"{where}: Invalid value: \"null\": {where} in body must be of type "
                            f"{schema['type']}: \"null\"")
        return
    if schema.get("x-kubernetes-int-or-string"):
        if not (_TYPES["integer"](value) or isinstance(value, str)):
            problems.append(f"{where}: Invalid value: {_shown(value)}: {where} in body must be of type "
                            f"integer or string: {_shown(value)}")
            return
    elif "type" in schema and not _TYPES.get(schema["type"], lambda _v: True)(value):
        actual = _json_type(value)
        problems.append(f"{where}: Invalid value: {_shown(value)}: {where} in body must be of type "
                        f"{schema['type']}: \"{actual}\"")
        return
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(_shown(v) for v in schema["enum"])
        problems.append(f"{where}: Unsupported value: {_shown(value)}: supported values: {supported}")
    if isinstance(value, str):
        _check_string(value, schema, where, problems)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _check_number(value, schema, where, problems)
    elif isinstance(value, list):
        _check_array(value, schema, path, where, problems)
    elif isinstance(value, dict):
        _check_object(value, schema, path, where, problems, top)


def _check_string(value: str, schema: dict, where: str, problems: list[str]) -> None:
    if "minLength" in schema and len(value) < schema["minLength"]:
        problems.append(f"{where}: Invalid value: {_shown(value)}: {where} in body should be at least "
                        f"{schema['minLength']} chars long")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        problems.append(f"{where}: Too long: may not be more than {schema['maxLength']} bytes")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        problems.append(f"{where}: Invalid value: {_shown(value)}: {where} in body should match "
                        f"'{schema['pattern']}'")


def _check_number(value: float, schema: dict, where: str, problems: list[str]) -> None:
    shown = _shown(value)
    if "minimum" in schema:
        low = schema["minimum"]
        if schema.get("exclusiveMinimum") is True and value <= low:
            problems.append(f"{where}: Invalid value: {shown}: {where} in body should be greater than "
                            f"{_number(low)}")
        elif value < low:
            problems.append(f"{where}: Invalid value: {shown}: {where} in body should be greater than or "
                            f"equal to {_number(low)}")
    if "maximum" in schema:
        high = schema["maximum"]
        if schema.get("exclusiveMaximum") is True and value >= high:
            problems.append(f"{where}: Invalid value: {shown}: {where} in body should be less than "
                            f"{_number(high)}")
        elif value > high:
            problems.append(f"{where}: Invalid value: {shown}: {where} in body should be less than or "
                            f"equal to {_number(high)}")
    step = schema.get("multipleOf")
    if step and (value / step) != int(value / step):
        problems.append(f"{where}: Invalid value: {shown}: {where} in body should be a multiple of "
                        f"{_number(step)}")


def _check_array(value: list, schema: dict, path: str, where: str, problems: list[str]) -> None:
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        problems.append(f"{where}: Too many: {len(value)}: must have at most {schema['maxItems']} items")
    if "minItems" in schema and len(value) < schema["minItems"]:
        problems.append(f"{where}: Invalid value: {len(value)}: {where} in body should have at least "
                        f"{schema['minItems']} items")
    items = schema.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(value):
            _check(item, items, f"{path}[{index}]", problems)


def _check_object(value: dict, schema: dict, path: str, where: str, problems: list[str], top: bool) -> None:
    for name in schema.get("required") or []:
        if name not in value:
            problems.append(f"{_join(path, name)}: Required value")
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        problems.append(f"{where}: Too many: {len(value)}: must have at most {schema['maxProperties']} items")
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        problems.append(f"{where}: Invalid value: {len(value)}: {where} in body should have at least "
                        f"{schema['minProperties']} properties")
    properties = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        if top and key in ("apiVersion", "kind", "metadata"):
            continue  # the API machinery's own, not the schema's
        if key in properties:
            _check(item, properties[key], _join(path, key), problems)
        elif isinstance(extra, dict):
            _check(item, extra, _join(path, key), problems)


def _unknown(value: object, schema: dict, path: str, found: list[str], top: bool = False) -> None:
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            _unknown(item, schema["items"], f"{path}[{index}]", found)
    if not isinstance(value, dict):
        return
    properties = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        if top and key in ("apiVersion", "kind", "metadata"):
            continue
        if key in properties:
            _unknown(item, properties[key], _join(path, key), found)
        elif isinstance(extra, dict):
            _unknown(item, extra, _join(path, key), found)
        elif extra is not True and ("properties" in schema or extra is False):
            found.append(_join(path, key))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _json_type(value: object) -> str:
    for name in ("boolean", "string", "array", "object"):
        if _TYPES[name](value):
            return name
    return "integer" if isinstance(value, int) else "number"
