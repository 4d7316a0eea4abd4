"""The builtin backend: status.route in the gateway's own schema."""

from __future__ import annotations

import pytest
from modelrollout.operator.actions import SetTraffic
from modelrollout.operator.routing import Target
from modelrollout.operator.routing.builtin import route, validate_options
from modelrollout.operator.spec import Comparison, InvalidSpec
from modelrollout.serving.contract.routes import Compare, parse_model_route
from modelrollout.serving.gateway.split import choose

TARGET = Target(name="iris", namespace="ml", model="iris-classifier", options={})


def test_split_mirror_and_preview_rules_read_back_by_the_gateway_schema():
    doc = route(TARGET, SetTraffic("aaa", "bbb", 70, 30, 50))
    parsed = parse_model_route(doc["model"], doc)
    weights = {r.name: (r.role, r.weight, r.service) for r in parsed.revisions}
    assert weights == {"aaa": ("stable", 70, "iris-aaa"), "bbb": ("candidate", 30, "iris-bbb")}
    assert (parsed.mirror.revision, parsed.mirror.percent) == ("bbb", 50)
    assert doc["model"] == "iris-classifier"
    # The preview header picks a revision whatever the weights say, by its name or as "preview".
    for value in ("bbb", "preview"):
        choice = choose(parsed, {"x-modelrollout-revision": value}, None)
        assert (choice.wanted.name, choice.reason) == ("bbb", "match")
    assert choose(parsed, {"x-modelrollout-revision": "aaa"}, None).wanted.name == "aaa"


def test_the_mirror_carries_the_comparison_tolerances_of_the_spec():
    tolerances = Comparison(absolute_tolerance=0.01, relative_tolerance=0.0, match="classes")
    target = Target("iris", "ml", "iris", {}, comparison=tolerances)
    parsed = parse_model_route("iris", route(target, SetTraffic("aaa", "bbb", 100, 0, 100)))
    assert parsed.mirror.compare == Compare(0.01, 0.0, "classes")


def test_no_candidate_means_one_revision_and_no_mirror():
    doc = route(TARGET, SetTraffic("aaa", None, 100, 0, 40))
    assert [r["name"] for r in doc["revisions"]] == ["aaa"] and "mirror" not in doc
    parse_model_route("iris", doc)


def test_sticky_option_is_carried_into_the_route():
    target = Target("iris", "ml", "iris", {"sticky": {"header": "X-User-Id"}})
    parsed = parse_model_route("iris", route(target, SetTraffic("a", "b", 50, 50)))
    assert parsed.sticky.header == "x-user-id"


@pytest.mark.parametrize(("options", "path"), [
    ({"weights": 1}, "spec.trafficRouting.builtin"),
    ({"sticky": {"header": "a", "cookie": "b"}}, "spec.trafficRouting.builtin.sticky"),
    ({"sticky": {"header": ""}}, "spec.trafficRouting.builtin.sticky"),
])
def test_bad_options_name_the_field(options, path):
    with pytest.raises(InvalidSpec) as caught:
        validate_options(options)
    assert caught.value.path == path
