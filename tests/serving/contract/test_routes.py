"""The route-table schema shared by the operator and the gateway."""

import pytest
import yaml
from modelrollout.serving.contract.routes import (
    Compare,
    Endpoint,
    Fallback,
    InvalidRoutes,
    parse_route_table,
    route_table_to_doc,
)

EXAMPLE = """
models:
  iris:
    revisions:
      - {name: v1, role: stable, weight: 90, endpoints: ["127.0.0.1:8001"]}
      - name: v2
        role: candidate
        weight: 10
        endpoints: ["127.0.0.1:8002", {address: "127.0.0.1:8003", ready: false}]
    mirror: {revision: v2, percent: 100, compare: {absoluteTolerance: 0.001, match: classes}}
    match:
      - {header: X-Modelrollout-Revision, value: v2, revision: v2}
    sticky: {header: X-User-Id}
"""


def test_the_documented_example_parses():
    table = parse_route_table(yaml.safe_load(EXAMPLE))
    iris = table.models["iris"]
    roles = [(r.name, r.role, r.weight) for r in iris.revisions]
    assert roles == [("v1", "stable", 90), ("v2", "candidate", 10)]
    assert iris.revision("v2").ready_endpoints == (Endpoint("127.0.0.1", 8002),)
    assert iris.mirror.revision == "v2" and iris.mirror.percent == 100
    assert iris.mirror.compare == Compare(atol=0.001, rtol=None, match="classes")  # rtol: the gateway's
    assert iris.match[0].header == "x-modelrollout-revision"  # header names compare lower-case
    assert iris.sticky.header == "x-user-id"


def test_round_trip_through_a_document_keeps_everything():
    table = parse_route_table(yaml.safe_load(EXAMPLE))
    assert parse_route_table(route_table_to_doc(table)) == table


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["revisions"][0].update(weight=80), "add up to 100"),
        (lambda m: m["revisions"][0].update(weight=True), "integer from 0 to 100"),
        (lambda m: m["revisions"][0].update(role="canary"), "stable, candidate, shadow"),
        (lambda m: m["revisions"][1].update(name="v1"), "unique"),
        (lambda m: m["revisions"][0].update(endpoints=["localhost"]), "host:port"),
        (lambda m: m["mirror"].update(revision="v9"), "'v9' is not one of"),
        (lambda m: m["mirror"].update(percent=101), "percent"),
        (lambda m: m["mirror"]["compare"].update(match="exact"), "values, classes"),
        (lambda m: m["mirror"]["compare"].update(relativeTolerance=-1), "relativeTolerance must be a number"),
        (lambda m: m["match"][0].pop("value"), "header, value, revision"),
        (lambda m: m.update(sticky={"header": "a", "cookie": "b"}), "exactly one"),
        (lambda m: m.update(revisions=[]), "non-empty"),
    ],
)
def test_invalid_routes_say_where_and_what(change, message):
    doc = yaml.safe_load(EXAMPLE)
    change(doc["models"]["iris"])
    with pytest.raises(InvalidRoutes, match=message):
        parse_route_table(doc)


def test_a_shadow_revision_takes_no_weight():
    doc = yaml.safe_load(EXAMPLE)
    doc["models"]["iris"]["revisions"].append({"name": "v3", "role": "shadow", "weight": 5})
    with pytest.raises(InvalidRoutes, match="shadow"):
        parse_route_table(doc)
    doc["models"]["iris"]["revisions"][-1]["weight"] = 0
    assert parse_route_table(doc).models["iris"].revision("v3").role == "shadow"


FALLBACK_EXAMPLE = """
models:
  iris:
    revisions:
      - {name: v2, role: stable, weight: 100, endpoints: ["127.0.0.1:8002"]}
      - {name: v1, role: fallback, weight: 0, endpoints: ["127.0.0.1:8001"]}
    fallback: {revision: v1, deadlineMs: 250}
"""


def test_a_fallback_revision_answers_for_failures_and_takes_no_weighted_traffic():
    iris = parse_route_table(yaml.safe_load(FALLBACK_EXAMPLE)).models["iris"]
    assert iris.fallback == Fallback("v1", 250)
    assert iris.fallback_revision is iris.revision("v1") and iris.fallback_revision.role == "fallback"
    assert [r.name for r in iris.served] == ["v2"]  # weights split among stable and candidate only
    assert parse_route_table(yaml.safe_load(EXAMPLE)).models["iris"].fallback is None


def test_a_fallback_round_trips_with_and_without_its_deadline():
    for deadline in (250, None):
        doc = yaml.safe_load(FALLBACK_EXAMPLE)
        if deadline is None:
            del doc["models"]["iris"]["fallback"]["deadlineMs"]
        table = parse_route_table(doc)
        assert table.models["iris"].fallback == Fallback("v1", deadline)
        assert route_table_to_doc(table)["models"]["iris"]["fallback"] == doc["models"]["iris"]["fallback"]
        assert parse_route_table(route_table_to_doc(table)) == table


def test_the_stable_revision_may_be_the_fallback_of_a_guarded_candidate():
    doc = yaml.safe_load(EXAMPLE)
    doc["models"]["iris"]["fallback"] = {"revision": "v1"}
    assert parse_route_table(doc).models["iris"].fallback == Fallback("v1", None)


BAD_DEADLINE = r"models\.iris\.fallback\.deadlineMs must be an integer from 1 to 600000"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update(fallback={"revision": "v9"}),
         r"\.fallback: revision 'v9' is not one of \['v2', 'v1'\]"),
        (lambda m: m.update(fallback="v1"), r"fallback must be \{revision, deadlineMs\}"),
        (lambda m: m.update(fallback={"deadlineMs": 250}), r"fallback must be \{revision, deadlineMs\}"),
        (lambda m: m.update(fallback={"revision": ""}), r"fallback must be \{revision, deadlineMs\}"),
        (lambda m: m["fallback"].update(deadlineMs=0), f"{BAD_DEADLINE}, got 0"),
        (lambda m: m["fallback"].update(deadlineMs=600_001), BAD_DEADLINE),
        (lambda m: m["fallback"].update(deadlineMs=True), BAD_DEADLINE),
        (lambda m: m["fallback"].update(deadlineMs=2.5), BAD_DEADLINE),
        (lambda m: m["fallback"].update(deadlineMs="250"), BAD_DEADLINE),
        (lambda m: m["revisions"][1].update(weight=10), "a fallback revision takes no weight"),
        (lambda m: m["revisions"][0].update(role="fallback", weight=0), "needs a stable or candidate"),
        (lambda m: m["revisions"][1].update(role="shadow"), r"fallback: revision 'v1' is a shadow"),
    ],
)
def test_invalid_fallbacks_say_where_and_what(change, message):
    doc = yaml.safe_load(FALLBACK_EXAMPLE)
    change(doc["models"]["iris"])
    with pytest.raises(InvalidRoutes, match=message) as raised:
        parse_route_table(doc)
    assert str(raised.value).startswith("models.iris")
