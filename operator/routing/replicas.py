"""Routing without a router: which pods stand behind the model's entry Service. Pure.

With no gateway in the path, the only split there is is the set of endpoints kube-proxy
spreads connections over. A label selector cannot hold a candidate back until its gate
has passed (every ready pod it selects gets traffic at once), so in this mode the entry
Service has no selector and the operator writes its EndpointSlices itself, from the
revisions' own slices:

- candidate at 0%: every ready stable endpoint, no candidate pod;
- candidate at N%: k candidate and m stable endpoints whose share k / (k + m) comes
  nearest N% (at least one of each), the most endpoints on a tie;
- candidate at 100%: every ready candidate endpoint.

Stable keeps its full replica count until promotion, the candidate has its share of the
total rounded up (engine/sizing.py); only the number of endpoints in the entry Service
changes. The weight is approximate: with 3 replicas, 30% becomes 1 candidate endpoint and
2 stable ones, 33%. ``status.replicaRouting`` says what the split really is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from modelrollout.serving.contract.endpoint_slices import MANAGED_BY_LABEL, PORT_NAME, SERVICE_NAME_LABEL
from modelrollout.serving.contract.routes import Endpoint

from ..spec import InvalidSpec
from . import MODEL_DEPLOYMENT_LABEL, Target, entry_service, owner_reference

SLICE_MANAGER = "modelrollout.io/operator"  # not the EndpointSlice controller's: it leaves these alone


def validate_options(options: dict) -> None:
    if options:
        raise InvalidSpec("spec.trafficRouting.replicas",
                          f"takes no options (got {', '.join(sorted(options))})")


def endpoint_counts(candidate_weight: int, stable_ready: int, candidate_ready: int) -> tuple[int, int]:
    """(stable, candidate) endpoints that come nearest ``candidate_weight`` percent."""
    if candidate_weight <= 0 or candidate_ready == 0:
        return stable_ready, 0
    if candidate_weight >= 100 or stable_ready == 0:
        return 0, candidate_ready
    wanted = candidate_weight / 100
    best = min(((m, k) for k in range(1, candidate_ready + 1) for m in range(1, stable_ready + 1)),
               key=lambda mk: (round(abs(mk[1] / (mk[0] + mk[1]) - wanted), 9), -(mk[0] + mk[1]), mk[0]))
    return best


@dataclass(frozen=True)
class Split:
    """The endpoints chosen for the entry Service, and what share of traffic that is."""

    stable: tuple[Endpoint, ...]
    candidate: tuple[Endpoint, ...]
    requested_weight: int

    @property
    def candidate_weight(self) -> int:
        total = len(self.stable) + len(self.candidate)
        return round(100 * len(self.candidate) / total) if total else 0

    def status(self) -> dict:
        """``status.replicaRouting``: the split as it is, next to the one asked for."""
        return {"stableEndpoints": len(self.stable), "candidateEndpoints": len(self.candidate),
                "requestedWeight": self.requested_weight, "candidateWeight": self.candidate_weight}


def split(candidate_weight: int, stable: Sequence[Endpoint], candidate: Sequence[Endpoint]) -> Split:
    """Pick ready endpoints of each revision; the same ones every time (sorted), so the
    slices only change when the pods or the weight do."""
    stable_ready = sorted((e for e in stable if e.ready), key=_address)
    candidate_ready = sorted((e for e in candidate if e.ready), key=_address)
    m, k = endpoint_counts(candidate_weight, len(stable_ready), len(candidate_ready))
    return Split(tuple(stable_ready[:m]), tuple(candidate_ready[:k]), candidate_weight)


def _address(endpoint: Endpoint) -> tuple[str, int]:
    return endpoint.host, endpoint.port


def entry_slices(target: Target, chosen: Split) -> list[dict]:
    """The entry Service's EndpointSlices: one per port (pods of a cluster share one port;
    the local harness gives every process its own), none when nothing is ready."""
    groups: dict[tuple[int, str], list[Endpoint]] = {}
    for endpoint in (*chosen.stable, *chosen.candidate):
        family = "IPv6" if ":" in endpoint.host else "IPv4"
        groups.setdefault((endpoint.port, family), []).append(endpoint)
    return [{
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": slice_name(target, port, family),
            "namespace": target.namespace,
            "labels": slice_labels(target),
            "ownerReferences": [owner_reference(target)],
        },
        "addressType": family,
        "endpoints": [{"addresses": [e.host], "conditions": {"ready": True}} for e in members],
        "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}],
    } for (port, family), members in sorted(groups.items())]


def slice_name(target: Target, port: int, family: str) -> str:
    suffix = "" if family == "IPv4" else "-v6"
    return f"{entry_service(target.name)}-{port}{suffix}"


def slice_labels(target: Target) -> dict:
    """The labels that find every entry slice this operator wrote for ``target``; the
    ModelDeployment's label among them, as on everything it owns (its watches select on it)."""
    return {SERVICE_NAME_LABEL: entry_service(target.name), MANAGED_BY_LABEL: SLICE_MANAGER,
            MODEL_DEPLOYMENT_LABEL: target.name}
