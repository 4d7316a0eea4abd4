"""The replicas backend: which endpoints stand behind the entry Service, and what share that is."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest
from hypothesis import given
from hypothesis import strategies as st
from modelrollout.operator.routing import Target
from modelrollout.operator.routing.capabilities import refuse_unsupported
from modelrollout.operator.routing.replicas import endpoint_counts, entry_slices, split
from modelrollout.operator.spec import InvalidSpec, parse_spec
from modelrollout.serving.contract.endpoint_slices import endpoints_by_service
from modelrollout.serving.contract.routes import Endpoint

from tests.support.operator_fixtures import SPEC

TARGET = Target(name="iris", namespace="ml", model="iris", options={}, uid="u-1")


def pods(prefix: str, count: int, ready: int | None = None) -> tuple[Endpoint, ...]:
    ready = count if ready is None else ready
    return tuple(Endpoint(f"10.0.{prefix}.{i}", 8080, i < ready) for i in range(count))


@pytest.mark.parametrize(("weight", "stable", "candidate", "want"), [
    (0, 3, 3, (3, 0)),  # before any weight: every stable pod, no candidate pod
    (100, 3, 3, (0, 3)),
    (50, 2, 2, (2, 2)),  # exact, with the most endpoints
    (25, 3, 3, (3, 1)),
    (30, 3, 3, (2, 1)),  # 33%: the nearest share three pods each can give
    (10, 1, 1, (1, 1)),  # one replica each: 50% is the least a candidate can get
    (75, 3, 3, (1, 3)),
    (40, 4, 0, (4, 0)),  # no ready candidate pod: stable takes everything
    (40, 0, 2, (0, 2)),  # no ready stable pod: the candidate rather than nothing
])
def test_endpoint_counts_come_nearest_the_weight(weight, stable, candidate, want):
    assert endpoint_counts(weight, stable, candidate) == want


@given(st.integers(1, 99), st.integers(1, 8), st.integers(1, 8))
def test_no_other_choice_is_nearer_and_both_revisions_serve(weight, stable, candidate):
    m, k = endpoint_counts(weight, stable, candidate)
    assert 1 <= m <= stable and 1 <= k <= candidate
    error = abs(k / (m + k) - weight / 100)
    for other_m in range(1, stable + 1):
        for other_k in range(1, candidate + 1):
            assert error <= abs(other_k / (other_m + other_k) - weight / 100) + 1e-9


def test_only_ready_endpoints_are_chosen_and_the_same_ones_every_time():
    stable, candidate = pods("1", 3, ready=2), pods("2", 3)
    chosen = split(50, stable, tuple(reversed(candidate)))
    assert all(e.ready for e in chosen.stable + chosen.candidate)
    assert len(chosen.stable) == 2 and len(chosen.candidate) == 2
    assert chosen == split(50, tuple(reversed(stable)), candidate)
    assert chosen.status() == {"stableEndpoints": 2, "candidateEndpoints": 2, "requestedWeight": 50,
                               "candidateWeight": 50}
    assert split(30, pods("1", 3), pods("2", 3)).status()["candidateWeight"] == 33


def test_entry_slices_are_valid_and_read_back_as_the_entry_service():
    chosen = split(25, pods("1", 3), pods("2", 3))
    (body,) = entry_slices(TARGET, chosen)
    kubernetes_validate.validate(body, "1.30", strict=True)
    assert body["metadata"]["labels"]["kubernetes.io/service-name"] == "iris"
    assert body["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "modelrollout.io/operator"
    assert body["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert body["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    read = endpoints_by_service([body])[("ml", "iris")]
    assert {e.host for e in read} == {"10.0.1.0", "10.0.1.1", "10.0.1.2", "10.0.2.0"}


def test_one_slice_per_port_and_family_and_none_when_nothing_is_ready():
    local = (Endpoint("127.0.0.1", 41001), Endpoint("127.0.0.1", 41002), Endpoint("fd00::5", 8080))
    bodies = entry_slices(TARGET, split(0, local, ()))
    assert [(b["metadata"]["name"], b["addressType"]) for b in bodies] == [
        ("iris-8080-v6", "IPv6"), ("iris-41001", "IPv4"), ("iris-41002", "IPv4")]
    assert entry_slices(TARGET, split(50, pods("1", 2, ready=0), pods("2", 2, ready=0))) == []


def test_what_replicas_routing_cannot_do_is_refused_with_the_field():
    spec = copy.deepcopy(SPEC)
    spec["trafficRouting"] = {"replicas": {}}
    refuse_unsupported(parse_spec(spec))
    spec["strategy"]["canary"]["steps"].insert(1, {"setMirror": {"percent": 50}})
    with pytest.raises(InvalidSpec, match=r"steps\[1\]\.setMirror.*cannot mirror"):
        refuse_unsupported(parse_spec(spec))
    spec["trafficRouting"] = {"replicas": {"sticky": {"header": "x"}}}
    with pytest.raises(InvalidSpec, match=r"trafficRouting\.replicas.*no options"):
        refuse_unsupported(parse_spec(spec))
