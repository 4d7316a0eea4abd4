"""operator/api/objects.py and openapi.py: one declaration gives the CRD its schema and rules and the
operator the same checks; a new field is one edit."""

from __future__ import annotations

from typing import Annotated

import pytest
from modelrollout.operator.api.objects import OneOf, Problem, Rule, Schema, SpecObject, rule
from modelrollout.operator.api.openapi import schema_of
from modelrollout.operator.api.v1alpha1 import RolloutStatus, Spec
from modelrollout.operator.spec import InvalidSpec, parse_spec
from modelrollout.operator.status import status_from_doc, status_to_doc
from pydantic import Field, ValidationError

from tests.support.crd_validation import cel_violations
from tests.support.operator_fixtures import SPEC


class Window(SpecObject):
    """A window of time."""

    __one_of__ = OneOf(("hours", "days"), "window")
    hours: Annotated[int, Field(ge=1, le=24)] | None = None
    """Hours of it."""
    days: int | None = None


class Toy(SpecObject):
    __rules__ = (Rule("self.name != 'forbidden'", "checked elsewhere"),)
    name: Annotated[str, Field(min_length=1), Schema(pattern="^[a-z]+$")]
    window: Window = Window(hours=1)
    extra: dict = {}
    limit: Annotated[int, Field(ge=0)] = 3
    """How many."""

    @rule("self.limit < 10 || self.name == 'big'", "only big may go past 9")
    def _small(self) -> None:
        if self.limit >= 10 and self.name != "big":
            raise Problem("only big may go past 9", ("limit",))


def test_a_declaration_is_the_crds_schema():
    schema = schema_of(Toy, nullable=False, defaults=True)
    assert schema["required"] == ["name"]
    assert [r["message"] for r in schema["x-kubernetes-validations"]] == ["only big may go past 9",
                                                                          "checked elsewhere"]
    name, limit, window = (schema["properties"][k] for k in ("name", "limit", "window"))
    assert (name["type"], name["minLength"], name["pattern"]) == ("string", 1, "^[a-z]+$")
    assert (limit["type"], limit["minimum"], limit["default"]) == ("integer", 0, 3)
    assert limit["description"] == "How many. Default: 3."
    assert "default" not in window  # an object's default is the operator's: the API server leaves it out
    assert window["x-kubernetes-validations"] == [{
        "rule": "[has(self.hours), has(self.days)].exists_one(x, x)",
        "message": "window needs exactly one of hours, days"}]
    assert window["properties"]["hours"] == {"type": "integer", "description": "Hours of it.", "minimum": 1,
                                             "maximum": 24}
    assert schema["properties"]["extra"] == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert "nullable" not in window["properties"]["hours"]
    assert schema_of(Window, nullable=True, defaults=False)["properties"]["days"]["nullable"] is True


@pytest.mark.parametrize(("doc", "loc", "words"), [
    ({"name": "a", "window": {"hours": 1, "days": 2}}, ("window",), "exactly one of hours, days"),
    ({"name": "a", "window": {}}, ("window",), "exactly one"),
    ({"name": "a", "window": {"hours": 25}}, ("window", "hours"), "less than or equal"),
    ({"name": "a", "limit": 10}, (), "only big may go past 9"),
    ({"name": "a", "limit": "3"}, ("limit",), "valid integer"),  # strict: a "3" is not 3
    ({"name": "a", "unknown": 1}, ("unknown",), "Extra inputs"),
])
def test_the_same_declaration_checks_in_python(doc, loc, words):
    with pytest.raises(ValidationError) as caught:
        Toy.model_validate(doc)
    (error,) = caught.value.errors()
    assert tuple(error["loc"]) == loc and words in str((error.get("ctx") or {}).get("error") or error["msg"])


def test_the_cel_rules_and_the_python_checks_agree():
    schema = schema_of(Toy, nullable=False, defaults=True)
    for doc in ({"name": "a", "limit": 10}, {"name": "big", "limit": 10}, {"name": "a", "limit": 2}):
        try:
            Toy.model_validate(doc)
            python = []
        except ValidationError as exc:
            python = [str(e["ctx"]["error"]) for e in exc.errors()]
        cel = [message for _, message in cel_violations(schema, doc)]
        assert python == cel


class WithNewField(Spec):
    cooldown_seconds: Annotated[int, Field(ge=5, le=3600)] = 60
    """Seconds to wait after a promotion before the next rollout may start."""


class StatusWithNewField(RolloutStatus):
    cooldown_until: str | None = None
    """When the cooldown after the last promotion ends."""


def test_a_new_optional_field_with_a_default_a_bound_and_a_status_counterpart_is_one_declaration():
    field = schema_of(WithNewField, nullable=False, defaults=True)["properties"]["cooldownSeconds"]
    assert (field["type"], field["default"], field["minimum"], field["maximum"]) == ("integer", 60, 5, 3600)
    assert field["description"].startswith("Seconds to wait")
    assert WithNewField.model_validate(SPEC).cooldown_seconds == 60
    assert WithNewField.model_validate({**SPEC, "cooldownSeconds": 30}).cooldown_seconds == 30
    with pytest.raises(ValidationError, match="cooldownSeconds"):
        WithNewField.model_validate({**SPEC, "cooldownSeconds": 1})
    status = StatusWithNewField(cooldown_until="2026-12-01T00:00:00.000000Z")
    doc = status.model_dump(by_alias=True, mode="json")
    assert doc["cooldownUntil"] == "2026-12-01T00:00:00.000000Z"
    assert StatusWithNewField.model_validate(doc) == status
    assert schema_of(StatusWithNewField, nullable=True, defaults=False)["properties"]["cooldownUntil"] == {
        "type": "string", "description": "When the cooldown after the last promotion ends.", "nullable": True}


def test_the_real_spec_and_status_round_trip():
    spec = parse_spec(SPEC)
    assert parse_spec(spec.model_dump(by_alias=True, exclude_none=True, mode="json")) == spec
    status = status_from_doc({"stableRevision": "a", "canary": {"step": 2}, "traffic": {"stable": 90,
                                                                                       "candidate": 10}})
    assert status_from_doc(status_to_doc(status)) == status


def test_an_invalid_value_names_the_field_by_its_json_path():
    with pytest.raises(InvalidSpec) as caught:
        parse_spec({**SPEC, "analysis": {**SPEC["analysis"], "consecutiveErrorLimit": 0}})
    assert caught.value.path == "spec.analysis.consecutiveErrorLimit"
    assert caught.value.problem == "must be from 1 up, got 0"
