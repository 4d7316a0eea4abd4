"""The gateway's pure revision choice: weights, stickiness, header rules, fallback."""

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st
from modelrollout.serving.contract.routes import parse_route_table
from modelrollout.serving.gateway.split import BUCKETS, bucket_of, choose


def route(candidate_weight: int, sticky=None, match=None, candidate_ready=True, stable_ready=True):
    doc = {
        "revisions": [
            {"name": "v1", "role": "stable", "weight": 100 - candidate_weight,
             "endpoints": [{"address": "127.0.0.1:1", "ready": stable_ready}]},
            {"name": "v2", "role": "candidate", "weight": candidate_weight,
             "endpoints": [{"address": "127.0.0.1:2", "ready": candidate_ready}]},
        ]
    }
    if sticky:
        doc["sticky"] = sticky
    if match:
        doc["match"] = match
    return parse_route_table({"models": {"m": doc}}).models["m"]


@given(weight=st.integers(0, 100), draw=st.floats(0, 1, exclude_max=True))
def test_the_draw_lands_on_candidate_exactly_below_its_weight(weight, draw):
    chosen = choose(route(weight), {}, draw=draw).revision.name
    assert chosen == ("v2" if int(draw * BUCKETS) < weight * BUCKETS // 100 else "v1")


def test_random_split_follows_the_weights():
    counts = Counter(choose(route(30), {}).revision.name for _ in range(20_000))
    # 30% of 20 000 = 6000, binomial sd ~65: 5 sd either side fails 1 in ~3.5 million runs.
    assert abs(counts["v2"] - 6000) < 330


def test_sticky_users_keep_their_revision_and_few_move_when_weight_rises():
    users = [f"user-{i}" for i in range(5000)]
    sticky = {"header": "x-user-id"}
    at_10 = {u: choose(route(10, sticky), {"x-user-id": u}).revision.name for u in users}
    again = {u: choose(route(10, sticky), {"x-user-id": u}).revision.name for u in users}
    at_20 = {u: choose(route(20, sticky), {"x-user-id": u}).revision.name for u in users}
    assert at_10 == again
    moved = [u for u in users if at_10[u] != at_20[u]]
    # Only stable -> candidate moves, and only about the 10% the new weight asks for.
    assert all(at_10[u] == "v1" and at_20[u] == "v2" for u in moved)
    assert 0.07 < len(moved) / len(users) < 0.13


def test_sticky_by_cookie():
    r = route(50, {"cookie": "uid"})
    picks = {choose(r, {}, {"uid": "alice"}).revision.name for _ in range(50)}
    assert len(picks) == 1 and choose(r, {}, {"uid": "alice"}).reason == "sticky"


def test_header_rule_wins_over_weights():
    r = route(0, match=[{"header": "x-modelrollout-revision", "value": "v2", "revision": "v2"}])
    assert choose(r, {"x-modelrollout-revision": "v2"}).revision.name == "v2"
    assert choose(r, {"x-modelrollout-revision": "v1"}).revision.name == "v1"


def test_revision_without_ready_endpoint_falls_back_and_says_so():
    choice = choose(route(100, candidate_ready=False), {})
    assert choice.revision.name == "v1" and choice.wanted.name == "v2" and choice.is_fallback


def test_buckets_spread_evenly():
    counts = Counter(bucket_of(f"k{i}") * 10 // BUCKETS for i in range(10_000))
    assert all(850 < n < 1150 for n in counts.values())
