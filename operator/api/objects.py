"""The base of every API object, and what one may declare beyond its types. Pure.

These are kubebuilder's markers, as Python values: the CRD generator (openapi.py) reads
them, and the same declaration checks the value when the operator parses a spec.

    Rule(cel, message)   a CEL rule (x-kubernetes-validations): on a field as Annotated
                         metadata, on an object in ``__rules__`` (checked in Python
                         elsewhere: the routing backends' capabilities)
    @rule(cel, message)  an object's CEL rule and, in the method it decorates, the same
                         check in Python; it raises Problem to refuse
    OneOf(fields, what)  exactly one of these fields is set: a CEL rule, and the check
    Schema(**keys)       keys for the CRD only: a pattern whose Python validator says more,
                         x-kubernetes-preserve-unknown-fields, list types

SpecObject is what a person writes: strict types (a "3" is not 3), unknown fields refused.
StatusObject is what the operator writes and reads back: lax (a status that went through
an Argo CD action's Lua comes back with 2.0 for 2 and without its nulls), unknown fields
ignored (other writers' keys: status.command, the routing backends').
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic.alias_generators import to_camel


class Problem(ValueError):
    """A check that refuses a value; ``at`` is the path below the object checked (field
    names as JSON writes them, indexes as ints), so the error names the exact field."""

    def __init__(self, text: str, at: tuple[str | int, ...] = ()) -> None:
        super().__init__(text)
        self.text = text
        self.at = at


@dataclass(frozen=True)
class Rule:
    cel: str
    message: str

    def document(self) -> dict:
        return {"rule": self.cel, "message": self.message}

    def __get_pydantic_json_schema__(self, core_schema, handler) -> dict:
        schema = handler(core_schema)
        schema.setdefault("x-kubernetes-validations", []).append(self.document())
        return schema


@dataclass(frozen=True, eq=False)  # hashed by identity: Annotated metadata in a union must hash
class Schema:
    """Keys the field has in the CRD beyond what its type says."""

    keys: dict

    def __init__(self, **keys: Any) -> None:
        object.__setattr__(self, "keys", keys)

    def __get_pydantic_json_schema__(self, core_schema, handler) -> dict:
        schema = handler(core_schema)
        schema.update(self.keys)
        return schema


@dataclass(frozen=True)
class OneOf:
    fields: tuple[str, ...]  # Python names
    what: str  # how messages name the object: "trafficRouting", "a step"


def rule(cel: str, message: str) -> Callable:
    """Declare an object's CEL rule on the method that checks the same in Python."""

    def mark(check: Callable) -> Callable:
        check.rule = Rule(cel, message)
        return check

    return mark


def _aliases(cls: type[BaseModel], names: tuple[str, ...]) -> list[str]:
    return [cls.model_fields[name].alias or name for name in names]


def _object_schema(schema: dict, cls: type[ApiObject]) -> None:
    """The object's own rules and CRD keys, added to its JSON schema."""
    rules = []
    if cls.__one_of__ is not None:
        keys = _aliases(cls, cls.__one_of__.fields)
        rules.append(Rule("[" + ", ".join(f"has(self.{k})" for k in keys) + "].exists_one(x, x)",
                          f"{cls.__one_of__.what} needs exactly one of {', '.join(keys)}"))
    rules += [check.rule for check in cls._checks()] + list(cls.__rules__)
    if rules:
        schema["x-kubernetes-validations"] = [r.document() for r in rules]
    schema.update(cls.__crd__)


class ApiObject(BaseModel):
    __rules__: ClassVar[tuple[Rule, ...]] = ()
    __one_of__: ClassVar[OneOf | None] = None
    __crd__: ClassVar[dict] = {}

    @classmethod
    def _checks(cls) -> list[Callable]:
        """The @rule methods of the class and its bases, found once per class."""
        checks = cls.__dict__.get("_found_checks")
        if checks is None:
            found: dict[str, Callable] = {}
            for klass in reversed(cls.__mro__):
                for name, value in vars(klass).items():
                    if callable(value) and hasattr(value, "rule"):
                        found[name] = value
            checks = list(found.values())
            type.__setattr__(cls, "_found_checks", checks)
        return checks

    def _chosen(self) -> list[str]:
        """The JSON names of the OneOf fields that are set (one, once validated)."""
        cls = type(self)
        return _aliases(cls, tuple(name for name in cls.__one_of__.fields if getattr(self, name) is not None))

    @model_validator(mode="after")
    def _declared_checks(self):
        one_of = type(self).__one_of__
        if one_of is not None:
            chosen = self._chosen()
            if len(chosen) != 1:
                keys = ", ".join(_aliases(type(self), one_of.fields))
                raise Problem(f"needs exactly one of {keys}, got {len(chosen)}")
        for check in type(self)._checks():
            check(self)
        return self

    def with_(self, **changes: Any):
        """A copy with ``changes`` (field names), as dataclasses.replace makes one."""
        return self.model_copy(update=changes)


_COMMON = {"frozen": True, "alias_generator": to_camel, "populate_by_name": True,
           "use_attribute_docstrings": True, "json_schema_extra": _object_schema}


class SpecObject(ApiObject):
    model_config = ConfigDict(extra="forbid", strict=True, **_COMMON)


class StatusObject(ApiObject):
    model_config = ConfigDict(extra="ignore", strict=False, **_COMMON)
    __crd__: ClassVar[dict] = {"x-kubernetes-preserve-unknown-fields": True}
