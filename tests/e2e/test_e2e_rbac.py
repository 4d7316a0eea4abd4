"""RBAC proved from behaviour: the harness's API server records every call the operator and
the gateway make (apiserver/audit.py; each process has its own bearer token), and each
LocalCluster writes what it recorded to api-calls.json when it closes.

One cluster here runs what the operator and the gateway can be asked to do: every strategy,
every routing backend, a revision deleted by revisionHistoryLimit, two operator replicas
with leader election, all namespaces watched. Then:

- every call of the operator and the gateway, in this cluster and in every other cluster
  this test session closed before (the other e2e modules, in whatever order they ran), is
  granted by manifests/rbac/ (the cluster-wide or the one-namespace variant, as that
  cluster ran);
- every verb manifests/rbac/ grants them was used here: nothing is granted for nothing.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from modelrollout.serving.examples import write_model_versions

from modelrollout.harness.cluster import API_CALLS, GATEWAY, OPERATOR, LocalCluster, model_deployment
from modelrollout.harness.components import LEADER_ELECTION
from modelrollout.harness.process import wait_for
from tests.support.rbac import Grant, allowed, grants, service_account

pytestmark = pytest.mark.slow

# What each ServiceAccount is bound to, by how the operator runs (all namespaces, or one).
VARIANTS = {
    (OPERATOR, True): ["operator.yaml"],
    (OPERATOR, False): ["operator-namespaced.yaml"],
    (GATEWAY, True): ["gateway.yaml"],
    (GATEWAY, False): ["gateway.yaml"],
}
PAUSE = {"pause": {"duration": "2s"}}
ROLLOUTS = {  # name -> (strategy, trafficRouting, more spec)
    "rbac-canary": ({"canary": {"steps": [{"setWeight": 50}, PAUSE]}}, {"builtin": {}},
                    {"revisionHistoryLimit": 0}),  # the old revision is deleted once promoted
    "rbac-bg": ({"blueGreen": {"autoPromotionSeconds": 1, "scaleDownDelaySeconds": 1}}, {"replicas": {}}, {}),
    "rbac-shadow": ({"shadow": {"duration": "2s", "scaleDownDelaySeconds": 1}}, {"builtin": {}}, {}),
    "rbac-route": ({"canary": {"steps": [{"setWeight": 50}, PAUSE]}},
                   {"gatewayAPI": {"parentRefs": [{"name": "ml-gateway", "namespace": "gateways"}]}}, {}),
}


def deploy(cluster: LocalCluster, models, name: str, version: str) -> None:
    strategy, routing, more = ROLLOUTS[name]
    doc = model_deployment(name, models[version], version, cluster.prometheus.url, [], 3.0, [],
                           strategy=strategy)
    del doc["spec"]["analysis"]
    doc["spec"].update(trafficRouting=routing, **more)
    cluster.apply(doc)


MANIFEST_NAMESPACE = "ml"  # the namespace manifests/rbac/operator-namespaced.yaml's Roles are for


def recorded(path: Path) -> tuple[bool, list[dict]]:
    """(whether that cluster's operator watched all namespaces, the calls it recorded)."""
    doc = json.loads(path.read_text())
    return not doc.get("namespaces"), doc["calls"]


def granted(path: Path, account: str, cluster_wide: bool) -> set[Grant]:
    """What manifests/rbac/ grants ``account`` as that cluster ran. One namespace watched:
    the namespaced variant's Roles for ``ml``, as `modelrollout manifests --namespace N`
    renders them for the namespace that cluster watched (the demo's is ``demo``)."""
    found = grants(VARIANTS[(account, cluster_wide)], account)
    if cluster_wide:
        return found
    watched = json.loads(path.read_text()).get("namespaces") or []
    return {replace(g, namespace=namespace) if g.namespace == MANIFEST_NAMESPACE else g
            for g in found for namespace in watched}


def refused(path: Path) -> list[str]:
    """The calls of the operator and the gateway that manifests/rbac/ does not grant."""
    cluster_wide, calls = recorded(path)
    found = []
    for call in calls:
        account = service_account(call["identity"])
        if (account, cluster_wide) not in VARIANTS or call["resource"] is None:
            continue  # the kubelet stand-in, the tests themselves; discovery (everyone may)
        if not allowed(call, granted(path, account, cluster_wide)):
            found.append(f"{path.parent.name}: {account} {call['verb']} {call['group'] or 'core'}/"
                         f"{call['resource']} in {call['namespace'] or 'the cluster scope'}")
    return sorted(set(found))


def unused(calls: list[dict], account: str) -> list[Grant]:
    """What manifests/rbac/ grants ``account`` (cluster-wide) that none of ``calls`` used."""
    used = {(c["group"], c["resource"], c["verb"]) for c in calls
            if service_account(c["identity"]) == account}
    return sorted((g for g in grants(VARIANTS[(account, True)], account)
                   if (g.group, g.resource, g.verb) not in used), key=str)


def test_every_call_of_the_operator_and_the_gateway_is_granted_and_every_grant_is_used(tmp_path_factory):
    models = write_model_versions(tmp_path_factory.mktemp("models"))
    folder = tmp_path_factory.mktemp("rbac-cluster")
    with LocalCluster(folder, tick_seconds=0.5, all_namespaces=True,
                      operator_args=LEADER_ELECTION) as cluster:
        cluster.start_operator(folder / "operator-b.log", LEADER_ELECTION, OPERATOR + "#b")
        cluster.kube.define("gateway.networking.k8s.io/v1", "httproutes", "HTTPRoute")
        for name in ROLLOUTS:
            deploy(cluster, models, name, "1.0.0")
        for name in ROLLOUTS:
            cluster.wait_for(name, lambda s: s.get("phase") == "Healthy", what=f"{name} on 1.0.0")
        for name in ROLLOUTS:
            deploy(cluster, models, name, "2.0.0")
        for name in ROLLOUTS:
            cluster.wait_for(name, lambda s: s.get("phase") == "Healthy"
                             and s.get("stableVersion") == "2.0.0", timeout=120, what=f"{name} promoted")
        # Someone edits the entry Service's slice of replicas routing: the operator puts it back.
        (entry,) = [e for e in cluster.kube.list("discovery.k8s.io/v1", "EndpointSlice", cluster.namespace)
                    if e["metadata"]["labels"].get("kubernetes.io/service-name") == "rbac-bg"]
        cluster.kube.merge_patch("discovery.k8s.io/v1", "EndpointSlice", entry["metadata"]["name"],
                                 {"endpoints": [{"addresses": ["10.9.9.9"]}]}, cluster.namespace)
        wait_for(lambda: cluster.kube.get("discovery.k8s.io/v1", "EndpointSlice", entry["metadata"]["name"],
                                          cluster.namespace)["endpoints"] == entry["endpoints"], 30,
                 "the entry slice put back")
        old = next(r for r, v in cluster.status("rbac-canary")["revisionVersions"].items() if v == "1.0.0")
        wait_for(lambda: not [d for d in cluster.kube.list("apps/v1", "Deployment", cluster.namespace)
                              if d["metadata"]["name"] == f"rbac-canary-{old}"], 60,
                 "the revision beyond revisionHistoryLimit deleted")
    own = folder / API_CALLS
    clusters = sorted(tmp_path_factory.getbasetemp().rglob(API_CALLS))
    assert own in clusters
    assert [problem for path in clusters for problem in refused(path)] == []
    _, calls = recorded(own)
    assert unused(calls, OPERATOR) == []
    assert unused(calls, GATEWAY) == []
