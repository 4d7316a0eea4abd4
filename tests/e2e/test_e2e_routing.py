"""End to end: every strategy with the other routing backends.

- replicas: blue-green with no router at all. Clients reach the model's entry Service (the
  harness's kube-proxy stand-in), testers the preview Service; the switch swaps the pods
  behind the entry Service in one write.
- gatewayAPI: the operator writes an HTTPRoute for a Gateway controller this machine does
  not have, so no request flows through it here; each stage's HTTPRoute is checked against
  the Gateway API v1.6.1 CRD (schema and CEL rules) while real pods pass the gate.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from modelrollout.harness.cluster import LocalCluster, model_deployment
from modelrollout.harness.service_proxy import ServiceProxy
from modelrollout.harness.traffic import Traffic
from tests.support.crd_validation import CrdVersion
from tests.support.e2e import ERROR_RATE, healthy_on
from tests.support.processes import wait_for

pytestmark = pytest.mark.slow

INTERVAL = 3.0
HTTPROUTE_CRD = Path(__file__).resolve().parents[3] / "shared" / "crds" / "gateway-api-v1.6.1-httproutes.yaml"
GATEWAY_API = {"gatewayAPI": {"parentRefs": [{"name": "ml-gateway", "namespace": "gateways"}]}}




def deploy(cluster: LocalCluster, models, name: str, version: str, strategy: dict, routing: dict,
           metrics: list[dict] | None = None, interval: float = INTERVAL) -> None:
    doc = model_deployment(name, models[version], version, cluster.prometheus.url, [], interval,
                           [ERROR_RATE] if metrics is None else metrics, strategy=strategy)
    doc["spec"]["trafficRouting"] = routing
    doc["metadata"]["uid"] = f"uid-{name}"  # what an API server gives every object (kmock gives none)
    cluster.apply(doc)



def test_blue_green_without_a_router_swaps_the_pods_behind_the_entry_service(cluster, models):
    name = "bg-replicas"
    routing = {"replicas": {}}
    strategy = {"blueGreen": {"prePromotionAnalysis": {"metrics": ["error-rate"]},
                              "scaleDownDelaySeconds": 2}}
    # The servers' own metrics: the preview's pod must be found (file SD) and scraped, and the
    # testers reach it through its Service, before the first measurement one interval after the gate.
    interval = 2 * INTERVAL
    deploy(cluster, models, name, "1.0.0", strategy, routing, interval=interval)
    cluster.wait_for(name, lambda s: healthy_on("1.0.0")(s)
                     and (s.get("replicaRouting") or {}).get("stableEndpoints") == 1, what="1.0.0 healthy")
    with ServiceProxy(cluster.kube, cluster.namespace, name) as entry:
        wait_for(entry.endpoints, 15, "the entry Service has an endpoint")
        clients = Traffic(entry.url, name, new_connection_per_request=True).start()
        try:
            deploy(cluster, models, name, "2.0.0", strategy, routing, interval=interval)
            preview = cluster.wait_for(name, lambda s: (s.get("preview") or {}).get("service"),
                                       timeout=120, what="the preview Service")
            assert preview["preview"] == {"service": f"{name}-preview"}  # no header without a router
            with ServiceProxy(cluster.kube, cluster.namespace, f"{name}-preview") as preview_service:
                wait_for(preview_service.endpoints, 30, "the preview Service has an endpoint")
                testers = Traffic(preview_service.url, name, rate_per_second=20,
                                  new_connection_per_request=True).start()
                try:
                    waiting = cluster.wait_for(name, lambda s: s.get("reason") == "WaitingForPromotion",
                                               timeout=120, what="pre-promotion analysis")
                finally:
                    tested = testers.stop()
            before = clients.wait_results(30, since=time.monotonic())
            cluster.command(name, "promote", "bg-replicas-1")
            final = cluster.wait_for(name, healthy_on("2.0.0"), timeout=120, what="switched and promoted")
            after = clients.wait_results(40, since=time.monotonic() + 1)
        finally:
            results = clients.stop()
    # Analysis passed on the testers' requests: the servers' own metrics, by revision.
    assert waiting["candidateVersion"] == "2.0.0" and {r.version for r in tested} == {"2.0.0"}
    assert {r.version for r in before} == {"1.0.0"} and {r.version for r in after} == {"2.0.0"}
    split = final["replicaRouting"]
    assert (split["stableEndpoints"], split["candidateEndpoints"]) == (1, 0)
    assert [r for r in results if r.status != 200] == []


@pytest.fixture(scope="module")
def httproute(cluster) -> CrdVersion:
    if not HTTPROUTE_CRD.exists():
        pytest.skip(f"the Gateway API HTTPRoute CRD is not at {HTTPROUTE_CRD} (../shared/crds, outside the "
                    "repository): nothing to check the written routes against")
    import yaml

    cluster.kube.define_crd(yaml.safe_load(HTTPROUTE_CRD.read_text()))
    return CrdVersion.load(HTTPROUTE_CRD, "v1")


def route_of(cluster: LocalCluster, crd: CrdVersion, name: str) -> dict:
    route = cluster.kube.get("gateway.networking.k8s.io/v1", "HTTPRoute", name, cluster.namespace)
    result = crd.validate(route)
    assert result.errors == [], result.errors
    return route


def weights(route: dict) -> dict[str, int]:
    traffic = next(r for r in route["spec"]["rules"] if r["name"] == "traffic")
    return {b["name"]: b["weight"] for b in traffic["backendRefs"]}


def mirror(route: dict) -> int:
    traffic = next(r for r in route["spec"]["rules"] if r["name"] == "traffic")
    return next((f["requestMirror"]["percent"] for f in traffic.get("filters", [])), 0)


STRATEGIES = {
    "canary": ({"canary": {"steps": [{"setWeight": 30}, {"pause": {}}]}},
               lambda r, old, new: weights(r) == {old: 70, new: 30}),
    "blueGreen": ({"blueGreen": {}},  # waits for a person, the preview reachable by header
                  lambda r, old, new: weights(r) == {old: 100, new: 0}
                  and any(rule["name"] == "preview" for rule in r["spec"]["rules"])),
    "shadow": ({"shadow": {"duration": "1h", "mirrorPercent": 40}},
               lambda r, old, new: weights(r) == {old: 100, new: 0} and mirror(r) == 40),
}


@pytest.mark.parametrize("kind", sorted(STRATEGIES))
def test_every_strategy_writes_a_valid_httproute_at_each_stage(cluster, models, httproute, kind):
    name = f"gw-{kind.lower()}"
    strategy, waiting_route = STRATEGIES[kind]
    deploy(cluster, models, name, "1.0.0", strategy, GATEWAY_API, metrics=[])
    first = cluster.wait_for(name, healthy_on("1.0.0"), what="1.0.0 healthy")
    old = f"{name}-{first['stableRevision']}"
    assert weights(route_of(cluster, httproute, name)) == {old: 100}
    deploy(cluster, models, name, "2.0.0", strategy, GATEWAY_API, metrics=[])
    waiting = cluster.wait_for(name, lambda s: s.get("phase") in ("Paused", "Progressing")
                               and s.get("gatePassed") and s.get("reason") not in ("CandidateReady",),
                               timeout=120, what="past the gate")
    new = f"{name}-{waiting['candidateRevision']}"
    wait_for(lambda: waiting_route(route_of(cluster, httproute, name), old, new), 15,
             f"the {kind} route while it waits")
    assert waiting["preview"] == {"header": "x-modelrollout-revision: preview", "service": f"{name}-preview"}
    cluster.command(name, "promote-full", f"{name}-1")
    cluster.wait_for(name, lambda s: s.get("stableVersion") == "2.0.0", timeout=60, what="promoted")
    wait_for(lambda: weights(route_of(cluster, httproute, name)) == {new: 100}, 15, "all traffic to 2.0.0")
    assert mirror(route_of(cluster, httproute, name)) == 0
