"""operator/api/reference.py: docs/api.md lists every field of the schema, with what bounds it."""

from __future__ import annotations

from modelrollout.operator.api import reference
from modelrollout.operator.api.crd import openapi_schema


def _paths(node: dict, path: str):
    yield path
    for name, sub in node.get("properties", {}).items():
        yield from _paths(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict) and node["items"].get("properties"):
        yield from _paths(node["items"], f"{path}[]")


def test_every_field_of_spec_and_status_has_a_row():
    text = reference.render()
    schema = openapi_schema()["properties"]
    paths = [p for top in ("spec", "status") for p in _paths(schema[top], top)]
    assert len(paths) > 150
    for path in paths:
        assert f"| `{path}` |" in text, path


def test_a_row_says_the_default_the_bounds_and_the_rules():
    lines = reference.render().splitlines()
    rows = {line.split("|")[1].strip(): line for line in lines if line.startswith("| `")}
    assert "`1`" in rows["`spec.replicas`"] and "0.." in rows["`spec.replicas`"]
    interval = rows["`spec.analysis.interval`"]
    assert "`30s`" in interval and "analysis.interval must be from 1s to 24h" in interval
    assert "one of `promote`, `manual`" in rows["`spec.strategy.shadow.then`"]
    assert "required" in rows["`spec.model.uri`"] and "pattern" in rows["`spec.model.uri`"]
    assert "unique name" in rows["`spec.analysis.metrics`"]
