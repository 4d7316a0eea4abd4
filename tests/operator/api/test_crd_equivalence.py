"""The generated CRD accepts and refuses exactly what the hand-written one did.

Both CRDs validate each document the way the API server does (tests/support/crd_validation:
defaults, structural schema with unknown fields refused, list types, every CEL rule): every
example, the specs the tests, the demo and the docs apply, each table's broken documents,
and documents hypothesis derives from them by changing one field. The hand-written CRD is
kept, frozen, in tests/data/crd/.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modelrollout.operator.routing.capabilities import refuse_unsupported
from modelrollout.operator.spec import InvalidSpec, parse_spec

from tests.support.crd_validation import CrdVersion, apply_defaults
from tests.support.spec_corpus import invalid_specs, valid_specs

ROOT = Path(__file__).resolve().parents[3]
BEFORE = ROOT / "tests" / "data" / "crd" / "modeldeployments-before-api-module.yaml"
GENERATED = ROOT / "manifests" / "crd" / "modeldeployments.yaml"


def parse(spec: object):
    """What the operator makes of it (reconcile.parse, without the body around the spec)."""
    return refuse_unsupported(parse_spec(spec))


@cache
def crds() -> tuple[CrdVersion, CrdVersion]:
    return CrdVersion.load(BEFORE, "v1alpha1"), CrdVersion.load(GENERATED, "v1alpha1")


def verdicts(spec: object) -> tuple[list[str], list[str]]:
    doc = {"apiVersion": "modelrollout.io/v1alpha1", "kind": "ModelDeployment",
           "metadata": {"name": "m", "namespace": "ml"}, "spec": _without_added(_pruned(spec))}
    return tuple(_errors(crd, doc) for crd in crds())


def added_since() -> list[tuple]:
    """The spec fields the API gained after the hand-written CRD was frozen: that CRD has no
    verdict on them, so both CRDs judge a document without them (the generated one also
    judges it whole, below). Read off the two schemas, so a new field needs no edit here."""
    before, generated = (crd.schema["properties"]["spec"] for crd in crds())
    found: list[tuple] = []

    def walk(old: dict, new: dict, path: tuple) -> None:
        for name, sub in new.get("properties", {}).items():
            if name not in old.get("properties", {}):
                found.append((*path, name))
            else:
                walk(old["properties"][name], sub, (*path, name))
        if isinstance(new.get("items"), dict) and isinstance(old.get("items"), dict):
            walk(old["items"], new["items"], (*path, "*"))

    walk(before, generated, ())
    return found


def _without_added(spec: object) -> object:
    spec = copy.deepcopy(spec)
    for path in added_since():
        _drop(spec, path)
    return spec


def _drop(node: object, path: tuple) -> None:
    if not path:
        return
    head, rest = path[0], path[1:]
    if head == "*" and isinstance(node, list):
        for item in node:
            _drop(item, rest)
    elif isinstance(node, dict) and head in node:
        if rest:
            _drop(node[head], rest)
        else:
            del node[head]


def _pruned(value: object) -> object:
    """Nulls dropped, as the API server prunes a null where the schema does not say nullable."""
    if isinstance(value, dict):
        return {k: _pruned(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def _errors(crd: CrdVersion, doc: dict) -> list[str]:
    try:
        return crd.validate(doc).errors
    except (ValueError, TypeError):
        # celpy evaluating a rule on a value of the wrong type, or an integer past int64: the
        # API server refuses such a document on its structure before any rule runs.
        body = apply_defaults(crd.schema, {"spec": doc["spec"]})
        structural = [e.message for e in crd._validator.iter_errors(body)]  # noqa: SLF001
        assert structural or _too_big(doc), "celpy failed on a well-formed document"
        return structural or ["an integer past int64"]


def _too_big(value: object) -> bool:
    if isinstance(value, dict):
        return any(_too_big(v) for v in value.values())
    if isinstance(value, list):
        return any(_too_big(v) for v in value)
    return isinstance(value, int) and not -(2**63) <= value < 2**63


VALID = valid_specs()
INVALID = invalid_specs()


def test_the_fields_added_since_are_read_off_the_two_crds():
    assert ("analysis", "metrics", "*", "inconclusiveLimit") in added_since()
    assert ("replicas",) not in added_since()


def test_the_corpus_is_what_it_says():
    assert len(VALID) >= 20 and len(INVALID) >= 100
    assert any(name.startswith("docs/") for name in VALID)  # the pages' manifests are in it


@pytest.mark.parametrize("name", sorted(VALID))
def test_what_users_and_tests_apply_passes_both_and_the_operator(name):
    before, generated = verdicts(VALID[name])
    assert before == [] and generated == [], (before, generated)
    whole = {"apiVersion": "modelrollout.io/v1alpha1", "kind": "ModelDeployment",
             "metadata": {"name": "m", "namespace": "ml"}, "spec": VALID[name]}
    assert _errors(crds()[1], whole) == []
    parse(VALID[name])


@pytest.mark.parametrize("name", sorted(INVALID))
def test_a_broken_document_gets_the_same_verdict_from_both(name):
    before, generated = verdicts(INVALID[name])
    assert bool(before) == bool(generated), (before, generated)
    if generated:  # refused by the API server: refused by the operator too
        with pytest.raises(InvalidSpec):
            parse(INVALID[name])


# --- documents derived from the corpus, one field changed ------------------------------------

_REPLACEMENTS = [None, True, False, -1, 0, 1, 2, 49, 50, 51, 100, 101, 1.5, 2592000, 2592001, 10**12, "", "x",
                 "3", "0s", "1s", "500ms", "24h", "25h", "720h", "721h", "5 minutes", "s3://bucket/m.onnx",
                 "http://169.254.169.254/m", "{{model}}", [], [1], ["error-rate"], {}, {"x": 1}]


def _paths(node: object, path: tuple = ()) -> list[tuple]:
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _paths(value, (*path, i))
    return found


@st.composite
def changed_specs(draw) -> dict:
    spec = copy.deepcopy(VALID[draw(st.sampled_from(sorted(VALID)))])
    path = draw(st.sampled_from(_paths(spec)[1:]))
    parent = spec
    for part in path[:-1]:
        parent = parent[part]
    how = draw(st.sampled_from(["replace", "delete", "add"]))
    if how == "delete":
        del parent[path[-1]]
    elif how == "add" and isinstance(parent, dict):
        key = draw(st.sampled_from(["unknown", "name", "max", "pause", "shadow", "builtin", "query"]))
        parent[key] = draw(st.sampled_from(_REPLACEMENTS))
    else:
        parent[path[-1]] = draw(st.sampled_from(_REPLACEMENTS))
    return spec


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changed_specs())
def test_a_changed_document_gets_the_same_verdict_from_both(spec):
    before, generated = verdicts(spec)
    assert bool(before) == bool(generated), (before, generated)
    if generated:
        with pytest.raises(InvalidSpec):
            parse(spec)
