"""The gateway's Kubernetes route source: ModelDeployment status + EndpointSlices -> routes.

Three layers: ``build_route_table`` on plain objects (pure); ``KubernetesRoutes`` in this
process against kmock's emulator over HTTP (watch, relist, outage, clean stop); and the
real `modelrollout gateway --kubernetes` process in front of real `modelrollout serve`
processes, with the emulator as its API server.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import kmock
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from modelrollout.serving.contract.routes import Endpoint, Revision
from modelrollout.serving.gateway.balancer import Balancer
from modelrollout.serving.gateway.metrics import GatewayMetrics
from modelrollout.serving.gateway.state import RouteState
from modelrollout.serving.gateway.watch import KubernetesRoutes, KubernetesRoutesError, build_route_table

from modelrollout.harness.emulator import KubeEmulator
from tests.support.models import fp32_request, reference, tiny_mlp, write
from tests.support.processes import MODELROLLOUT, ServerProcess, free_port
from tests.support.processes import wait_for as eventually

T = TypeVar("T")

MD = "modelrollout.io/v1alpha1"
SLICE = "discovery.k8s.io/v1"
# The ModelDeployment CRD as far as the emulator needs it (group, names, scope, status).
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "modeldeployments.modelrollout.io"},
    "spec": {
        "group": "modelrollout.io",
        "scope": "Namespaced",
        "names": {"plural": "modeldeployments", "singular": "modeldeployment", "kind": "ModelDeployment"},
        "versions": [{"name": "v1alpha1", "served": True, "storage": True, "subresources": {"status": {}}}],
    },
}
X = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)
POLL_SECONDS = 0.05


# --- helpers ---


def deployment(name: str, namespace: str = "ml", route: dict | None = None) -> dict:
    obj: dict = {"apiVersion": MD, "kind": "ModelDeployment",
                 "metadata": {"name": name, "namespace": namespace}}
    if route is not None:
        obj["status"] = {"route": route}
    return obj


def canary(candidate_weight: int, stable: str = "iris-v1", candidate: str = "iris-v2") -> dict:
    return {"revisions": [
        {"name": "v1", "role": "stable", "weight": 100 - candidate_weight, "service": stable},
        {"name": "v2", "role": "candidate", "weight": candidate_weight, "service": candidate},
    ]}


def single(service: str, revision: str = "v1", **extra: object) -> dict:
    return {"revisions": [{"name": revision, "role": "stable", "weight": 100, "service": service}], **extra}


def endpoint_slice(name: str, service: str, endpoints: list[dict], namespace: str = "ml",
                   ports: list[dict] | None = None) -> dict:
    return {
        "apiVersion": SLICE, "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": namespace, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports if ports is not None else [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


def pod(address: str, **conditions: bool) -> dict:
    return {"addresses": [address], **({"conditions": conditions} if conditions else {})}


def slice_to(server: ServerProcess, service: str, namespace: str = "ml") -> dict:
    return endpoint_slice(f"{service}-abcde", service, [pod("127.0.0.1", ready=True)], namespace,
                          [{"name": "http", "port": server.port, "protocol": "TCP"}])


async def eventually_async(check: Callable[[], T], seconds: float, what: str) -> T:
    result = check()
    for _ in range(int(seconds / POLL_SECONDS)):
        if result:
            return result
        await asyncio.sleep(POLL_SECONDS)
        result = check()
    assert result, f"{what}: not within {seconds}s"
    return result


def infer(gateway: ServerProcess, model: str) -> httpx.Response:
    return httpx.post(f"{gateway.url}/v2/models/{model}/infer", json=fp32_request(X), timeout=10.0)


def served_by(gateway: ServerProcess, model: str) -> str | None:
    response = infer(gateway, model)
    return response.headers.get("x-modelrollout-revision") if response.status_code == 200 else None


def probabilities(response: httpx.Response) -> np.ndarray:
    out = next(o for o in response.json()["outputs"] if o["name"] == "probabilities")
    return np.array(out["data"], dtype=np.float32).reshape(out["shape"])


def assert_all_served(gateway: ServerProcess, model: str, revision: str, model_bytes: bytes,
                      count: int = 20) -> None:
    """``count`` requests all answered by ``revision``, with the outputs of ``model_bytes``:
    the header names the revision, the numbers prove which server computed them."""
    want = reference(model_bytes, {"input": X})[0]
    for _ in range(count):
        response = infer(gateway, model)
        assert response.status_code == 200, response.text
        assert response.headers["x-modelrollout-revision"] == revision
        np.testing.assert_allclose(probabilities(response), want, rtol=1e-5, atol=1e-6)


def new_state() -> tuple[RouteState, GatewayMetrics]:
    metrics = GatewayMetrics()
    return RouteState(Balancer("round-robin"), metrics), metrics


def candidate_of(state: RouteState, model: str = "iris") -> Revision:
    return state.table.models[model].revisions[1]


def rejections(metrics: GatewayMetrics) -> float | None:
    return metrics.registry.get_sample_value(
        "modelrollout_gateway_route_updates_total", {"source": "kubernetes", "result": "rejected"}
    )


def watch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("watch-")]


# --- fixtures ---


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[KubeEmulator]:
    folder = tmp_path / "kube"
    folder.mkdir()
    with KubeEmulator(folder) as emulator:
        emulator.define_crd(CRD)
        yield emulator


@pytest.fixture
def models(tmp_path: Path) -> dict[int, tuple[Path, bytes]]:
    """Two tiny MLPs that answer differently (seeds 1 and 2): path and bytes by seed."""
    built = {seed: tiny_mlp(seed) for seed in (1, 2)}
    # Which server answered is read off the outputs, so the two must differ.
    assert not np.allclose(*(reference(raw, {"input": X})[0] for raw in built.values()), atol=1e-3)
    return {seed: (write(tmp_path / f"seed-{seed}" / "model.onnx", raw), raw) for seed, raw in built.items()}


@pytest.fixture
def kube_gateway(kube: KubeEmulator, start_server) -> Callable[..., ServerProcess]:
    """`modelrollout gateway --kubernetes` on the emulator; ready once it has a first table.
    ``kube`` comes first, so the gateways stop before the emulator does."""

    def start(*namespaces: str) -> ServerProcess:
        port = free_port()
        command = [
            MODELROLLOUT, "gateway", "--kubernetes", "--kubeconfig", str(kube.kubeconfig),
            *(arg for ns in namespaces for arg in ("--namespace", ns)),
            "--host", "127.0.0.1", "--port", str(port),
        ]
        loopback = {"NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}  # the client honours proxy variables
        return start_server([], command=command, port=port, env=loopback)

    return start


def serve(start_server, model: tuple[Path, bytes], name: str) -> ServerProcess:
    return start_server(["--model-uri", str(model[0]), "--model-name", name, "--model-version", "1"])


# --- build_route_table: pure ---


def test_revision_endpoints_come_from_its_services_slices_in_the_same_namespace():
    slices = [
        endpoint_slice("iris-v1-a", "iris-v1", [pod("10.0.0.2"), pod("10.0.0.1")]),
        endpoint_slice("iris-v1-b", "iris-v1", [pod("10.0.0.3")]),
        endpoint_slice("iris-v2-a", "iris-v2", [pod("10.0.1.1")]),
        endpoint_slice("iris-v1-x", "iris-v1", [pod("10.9.9.9")], namespace="other"),
        endpoint_slice("unrelated", "something-else", [pod("10.8.8.8")]),
    ]
    table, problems = build_route_table([deployment("iris", route=canary(10))], slices)
    assert problems == []
    v1, v2 = table.models["iris"].revisions
    assert v1.endpoints == tuple(Endpoint(f"10.0.0.{i}", 8080) for i in (1, 2, 3))
    assert v2.endpoints == (Endpoint("10.0.1.1", 8080),)
    assert (v1.weight, v2.weight, v1.service, v2.service) == (90, 10, "iris-v1", "iris-v2")


def test_the_port_named_http_else_the_first_port():
    slices = [
        endpoint_slice("a-1", "a", [pod("10.0.0.1")], ports=[{"name": "metrics", "port": 9090},
                                                             {"name": "http", "port": 8080}]),
        endpoint_slice("b-1", "b", [pod("10.0.0.2")], ports=[{"name": "grpc", "port": 9000},
                                                             {"name": "metrics", "port": 9090}]),
        endpoint_slice("c-1", "c", [pod("10.0.0.3")], ports=[]),  # no port: nothing to route to
    ]
    route = {"revisions": [
        {"name": "a", "role": "stable", "weight": 100, "service": "a"},
        {"name": "b", "role": "candidate", "weight": 0, "service": "b"},
        {"name": "c", "role": "shadow", "weight": 0, "service": "c"},
    ]}
    table, _ = build_route_table([deployment("m", route=route)], slices)
    assert [r.endpoints for r in table.models["m"].revisions] == [
        (Endpoint("10.0.0.1", 8080),), (Endpoint("10.0.0.2", 9000),), (),
    ]


def test_readiness_follows_kubernetes_endpoint_conditions():
    endpoints = [
        pod("10.0.0.1"),  # no conditions: ready
        pod("10.0.0.2", ready=True),
        pod("10.0.0.3", ready=False),  # not ready yet: known, not used
        pod("10.0.0.4", ready=False, serving=False, terminating=True),  # going away: left out
        pod("10.0.0.5", ready=False, serving=True, terminating=True),  # draining: kept, not ready
        pod("10.0.0.6", ready=False, terminating=True),  # serving unset: ready decides
        {"addresses": []},  # nothing to connect to
    ]
    table, _ = build_route_table([deployment("m", route=single("svc"))],
                                 [endpoint_slice("svc-1", "svc", endpoints)])
    (revision,) = table.models["m"].revisions
    assert [(e.host, e.ready) for e in revision.endpoints] == [
        ("10.0.0.1", True), ("10.0.0.2", True), ("10.0.0.3", False), ("10.0.0.5", False),
    ]


def test_one_pod_in_two_slices_counts_once_and_ready_if_either_says_so():
    slices = [
        endpoint_slice("svc-1", "svc", [pod("10.0.0.1", ready=False)]),
        endpoint_slice("svc-2", "svc", [pod("10.0.0.1", ready=True)]),
    ]
    table, _ = build_route_table([deployment("m", route=single("svc"))], slices)
    assert table.models["m"].revisions[0].endpoints == (Endpoint("10.0.0.1", 8080, True),)


def test_a_revision_without_a_service_keeps_the_endpoints_it_lists():
    route = {"revisions": [{"name": "ext", "role": "stable", "weight": 100, "endpoints": ["10.1.1.1:9000"]}]}
    table, _ = build_route_table([deployment("m", route=route)], [])
    assert table.models["m"].revisions[0].endpoints == (Endpoint("10.1.1.1", 9000),)


def test_the_served_name_is_route_model_else_the_deployment_name():
    named = deployment("iris-prod", route=single("a", model="iris"))
    table, problems = build_route_table([named, deployment("digits", route=single("b"))], [])
    assert sorted(table.models) == ["digits", "iris"] and problems == []


def test_no_route_yet_is_skipped_quietly_and_an_invalid_one_is_reported_without_harming_others():
    bad_weights = {"revisions": [{"name": "v1", "role": "stable", "weight": 50, "service": "a"}]}
    table, problems = build_route_table([
        deployment("pending"),
        deployment("broken", route=bad_weights),
        deployment("slashed", route=single("a", model="a/b")),
        deployment("iris", route=single("svc")),
    ], [])
    assert list(table.models) == ["iris"]
    assert len(problems) == 2
    assert problems[0].startswith("ModelDeployment ml/broken: status.route skipped: ")
    assert "add up to 100" in problems[0]
    assert problems[1].startswith("ModelDeployment ml/slashed: status.route.model")


def test_one_model_name_twice_goes_to_the_first_by_namespace_and_name():
    claims = [
        deployment("iris", namespace="team-b", route=single("b")),
        deployment("iris", namespace="team-a", route=single("a")),
        deployment("zz", namespace="team-a", route=single("z", model="iris")),
    ]
    table, problems = build_route_table(claims, [])
    assert table.models["iris"].revisions[0].service == "a"
    assert problems == [
        "ModelDeployment team-a/zz: model 'iris' is already served by ModelDeployment team-a/iris; skipped",
        "ModelDeployment team-b/iris: model 'iris' is already served by ModelDeployment team-a/iris; skipped",
    ]


def test_an_invalid_first_claim_keeps_the_name_from_passing_to_another_namespace():
    claims = [deployment("iris", namespace="a", route={"revisions": []}),
              deployment("iris", namespace="b", route=single("b"))]
    table, problems = build_route_table(claims, [])
    assert table.models == {}
    assert [p.split(":")[0] for p in problems] == ["ModelDeployment a/iris", "ModelDeployment b/iris"]


_OBJECTS = [
    deployment("iris", route=canary(30)),
    deployment("iris", namespace="other", route=single("x")),
    deployment("digits", route=single("digits-v1", sticky={"header": "x-user-id"})),
    deployment("broken", route={"revisions": "nope"}),
    endpoint_slice("iris-v1-a", "iris-v1", [pod("10.0.0.1"), pod("10.0.0.2", ready=False)]),
    endpoint_slice("iris-v1-b", "iris-v1", [pod("10.0.0.2")]),
    endpoint_slice("iris-v2-a", "iris-v2", [pod("10.0.0.3")]),
    endpoint_slice("digits-v1-a", "digits-v1", [pod("10.0.0.4")]),
]


def _split(objects: list[dict]) -> tuple[list[dict], list[dict]]:
    return ([o for o in objects if o["kind"] == "ModelDeployment"],
            [o for o in objects if o["kind"] == "EndpointSlice"])


@given(st.permutations(_OBJECTS))
def test_the_order_objects_arrive_in_changes_nothing(objects):
    table, problems = build_route_table(*_split(objects))
    assert (table, problems) == build_route_table(*_split(_OBJECTS))
    assert sorted(table.models) == ["digits", "iris"] and len(problems) == 2


# --- KubernetesRoutes in this process, against the emulator over HTTP ---


@pytest.mark.asyncio
async def test_follow_applies_each_change_within_a_second_and_stops_its_threads(kube: KubeEmulator):
    kube.create(deployment("iris", route=canary(0)))
    kube.create(deployment("broken", route={"revisions": []}))
    kube.create(endpoint_slice("iris-v1-a", "iris-v1", [pod("10.0.0.1")]))
    source = KubernetesRoutes(("ml",), str(kube.kubeconfig))
    state, metrics = new_state()
    state.update(await source.load(), source.name)
    assert [r.weight for r in state.table.models["iris"].revisions] == [100, 0]
    task = asyncio.create_task(source.follow(state))
    try:
        await eventually_async(lambda: len(watch_threads()) == 2, 5, "two watch threads")
        kube.merge_patch(MD, "ModelDeployment", "iris", {"status": {"route": canary(40)}}, "ml", "status")
        await eventually_async(lambda: candidate_of(state).weight == 40, 1, "new weights")
        kube.create(endpoint_slice("iris-v2-a", "iris-v2", [pod("10.0.0.2", ready=False)]))
        await eventually_async(lambda: candidate_of(state).endpoints, 1, "the candidate's slice")
        assert candidate_of(state).endpoints == (Endpoint("10.0.0.2", 8080, ready=False),)
        kube.create(deployment("digits", route=single("digits-v1")))
        await eventually_async(lambda: "digits" in state.table.models, 1, "a new model")
        kube.delete(MD, "ModelDeployment", "iris", "ml")
        await eventually_async(lambda: "iris" not in state.table.models, 1, "a deleted model gone")
        assert rejections(metrics) == 1  # the broken route, once, though every rebuild finds it
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    await eventually_async(lambda: not watch_threads(), 2, "watch threads ended")


@pytest.mark.asyncio
async def test_a_watch_answered_410_gone_relists(kube: KubeEmulator, caplog):
    caplog.set_level(logging.INFO, logger="modelrollout.gateway")
    kube.create(deployment("iris", route=canary(0)))
    resource = kmock.resource("modelrollout.io", "v1alpha1", "modeldeployments")
    gone = iter([({"type": "ERROR", "object": {
        "apiVersion": "v1", "kind": "Status", "status": "Failure", "code": 410, "reason": "Expired",
        "message": "too old resource version: 1 (2)",
    }},)])
    # The first watch of ModelDeployments gets 410 and ends; later ones fall through to the
    # emulator's own watch (kmock skips a reaction that answers StopIteration).
    kube.on_loop(lambda: kube.emulator[kmock.action.WATCH][resource] << (lambda: next(gone, StopIteration)))

    def lists() -> int:
        return kube.on_loop(lambda: len(kube.emulator[kmock.action.LIST][resource]))

    source = KubernetesRoutes(("ml",), str(kube.kubeconfig))
    state, _ = new_state()
    state.update(await source.load(), source.name)
    task = asyncio.create_task(source.follow(state))
    try:
        # load, the watcher's first list, and the relist after 410
        await eventually_async(lambda: lists() == 3, 2, "a relist after 410 Gone")
        assert "410 Gone" in caplog.text
        kube.merge_patch(MD, "ModelDeployment", "iris", {"status": {"route": canary(25)}}, "ml", "status")
        await eventually_async(lambda: candidate_of(state).weight == 25, 1, "changes seen after the relist")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.asyncio
async def test_an_api_server_outage_keeps_the_routes_and_a_relist_catches_up(kube: KubeEmulator, caplog):
    kube.create(deployment("iris", route=canary(0)))
    source = KubernetesRoutes(("ml",), str(kube.kubeconfig))
    state, _ = new_state()
    state.update(await source.load(), source.name)
    task = asyncio.create_task(source.follow(state))
    try:
        await eventually_async(lambda: len(watch_threads()) == 2, 5, "two watch threads")
        before = state.table
        with kube.outage():
            await eventually_async(lambda: "watch failed" in caplog.text, 3, "the outage noticed")
            await asyncio.sleep(1.0)  # a few refused reconnects
            assert state.table is before and not task.done()

            # A write the gateway cannot see while cut off (straight into the emulator's store).
            def write_while_down() -> None:
                stored = kube.emulator.objects["modelrollout.io/v1alpha1/modeldeployments", "ml", "iris"]
                stored.patch({"status": {"route": canary(60)}})

            kube.on_loop(write_while_down)
        # Reconnecting waits out at most the backoff cap (10 s, modelrollout.kubeclient.backoff).
        await eventually_async(lambda: candidate_of(state).weight == 60, 12, "caught up")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await eventually_async(lambda: not watch_threads(), 2, "watch threads ended")


@pytest.mark.asyncio
async def test_start_up_fails_clearly_when_the_crd_is_not_installed(tmp_path: Path):
    expected = (r"cannot list modeldeployments\.modelrollout\.io in namespace 'ml' "
                r"at http://127\.0\.0\.1:\d+: 404")
    with KubeEmulator(tmp_path) as bare, pytest.raises(KubernetesRoutesError, match=expected):
        await KubernetesRoutes(("ml",), str(bare.kubeconfig)).load()


@pytest.mark.asyncio
async def test_start_up_fails_clearly_without_a_usable_kubeconfig(tmp_path: Path):
    with pytest.raises(KubernetesRoutesError, match="no usable Kubernetes configuration"):
        await KubernetesRoutes((), str(tmp_path / "missing")).load()


def test_the_harness_emulates_an_api_server_restart_with_its_objects(kube: KubeEmulator):
    kube.create(deployment("iris", route=canary(0)))
    phase = [{"op": "add", "path": "/status/phase", "value": "Healthy"}]
    kube.json_patch(MD, "ModelDeployment", "iris", phase, "ml")
    with kube.outage(), pytest.raises(httpx.ConnectError):
        httpx.get(f"{kube.url}/version", timeout=2.0)
    (listed,) = kube.list(MD, "ModelDeployment", "ml")
    assert listed["status"] == {"route": canary(0), "phase": "Healthy"}
    assert kube.get(MD, "ModelDeployment", "iris", "ml") == listed


def test_the_harness_learns_resources_defined_while_it_runs(kube: KubeEmulator):
    assert kube.list(MD, "ModelDeployment") == []  # the client has done its discovery now
    kube.define("example.com/v1", "widgets", "Widget")
    kube.create({"apiVersion": "example.com/v1", "kind": "Widget",
                 "metadata": {"name": "w", "namespace": "x"}})
    assert [w["metadata"]["name"] for w in kube.list("example.com/v1", "Widget", "x")] == ["w"]


# --- The gateway process, real servers, the emulator as API server ---


@pytest.mark.slow
def test_gateway_follows_status_weights_and_endpoint_readiness(kube, kube_gateway, start_server, models):
    stable, candidate = serve(start_server, models[1], "iris"), serve(start_server, models[2], "iris")
    kube.create(deployment("iris", route=canary(0)))
    kube.create(slice_to(stable, "iris-v1"))
    kube.create(slice_to(candidate, "iris-v2"))
    gateway = kube_gateway("ml")
    assert_all_served(gateway, "iris", "v1", models[1][1])

    kube.merge_patch(MD, "ModelDeployment", "iris", {"status": {"route": canary(100)}}, "ml", "status")
    eventually(lambda: served_by(gateway, "iris") == "v2", 2, "traffic on the candidate")
    assert_all_served(gateway, "iris", "v2", models[2][1])

    # The candidate's pod turns unready: the stable revision takes its traffic.
    kube.merge_patch(SLICE, "EndpointSlice", "iris-v2-abcde",
                     {"endpoints": [pod("127.0.0.1", ready=False)]}, "ml")
    eventually(lambda: served_by(gateway, "iris") == "v1", 2, "fallback to stable")
    assert_all_served(gateway, "iris", "v1", models[1][1])


@pytest.mark.slow
def test_gateway_serves_models_as_their_deployments_come_and_go(kube, kube_gateway, start_server, models):
    iris, digits = serve(start_server, models[1], "iris"), serve(start_server, models[2], "digits")
    kube.create(deployment("iris", route=single("iris-v1")))
    kube.create(slice_to(iris, "iris-v1"))
    kube.create(deployment("pending"))  # no route yet: not served, not an error
    gateway = kube_gateway("ml")
    assert infer(gateway, "digits").status_code == 404

    kube.create(slice_to(digits, "digits-v1"))
    kube.create(deployment("digits-prod", route=single("digits-v1", revision="d1", model="digits")))
    eventually(lambda: served_by(gateway, "digits") == "d1", 2, "the new model routable")
    assert httpx.get(f"{gateway.url}/v2", timeout=5.0).json()["models"] == ["digits", "iris"]
    assert_all_served(gateway, "digits", "d1", models[2][1], count=5)

    broken = {"revisions": [{"name": "v1", "role": "stable", "weight": 40, "service": "iris-v1"}]}
    kube.create(deployment("broken", route=broken))
    eventually(lambda: "ModelDeployment ml/broken: status.route skipped" in gateway.logs(), 2,
               "the problem logged")
    assert "ml/pending" not in gateway.logs()
    assert_all_served(gateway, "iris", "v1", models[1][1], count=5)

    kube.delete(MD, "ModelDeployment", "digits-prod", "ml")
    eventually(lambda: infer(gateway, "digits").status_code == 404, 2, "the deleted model gone")
    assert infer(gateway, "iris").status_code == 200


@pytest.mark.slow
def test_gateway_watches_all_namespaces_or_only_those_given(kube, kube_gateway, start_server, models):
    iris, digits = serve(start_server, models[1], "iris"), serve(start_server, models[2], "digits")
    kube.create(slice_to(iris, "iris-v1", namespace="team-a"))
    kube.create(deployment("iris", namespace="team-a", route=single("iris-v1")))
    kube.create(slice_to(digits, "digits-v1", namespace="team-b"))
    kube.create(deployment("digits", namespace="team-b", route=single("digits-v1")))
    everywhere, team_a = kube_gateway(), kube_gateway("team-a")

    assert_all_served(everywhere, "iris", "v1", models[1][1], count=5)
    assert_all_served(everywhere, "digits", "v1", models[2][1], count=5)
    assert_all_served(team_a, "iris", "v1", models[1][1], count=5)
    assert infer(team_a, "digits").status_code == 404

    # team-b claims "iris" too: team-a/iris keeps it, and the claim is reported.
    kube.create(deployment("iris", namespace="team-b", route=single("digits-v1")))
    eventually(lambda: "ModelDeployment team-b/iris: model 'iris' is already served" in everywhere.logs(), 2,
               "the second claim reported")
    assert_all_served(everywhere, "iris", "v1", models[1][1], count=5)
