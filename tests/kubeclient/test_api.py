"""The thin client against the harness's API server over HTTP: plain dicts in and out."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException

from modelrollout.harness.emulator import KubeEmulator
from modelrollout.harness.process import wait_for
from modelrollout.install_manifests import model_deployment_crd
from modelrollout.kubeclient import Api, RateLimiter, configuration
from tests.kubeclient.test_ratelimit import Clock


def service(name: str, **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "ml", "labels": labels},
            "spec": {"ports": [{"port": 80}]}}


@pytest.fixture(scope="module")
def kube(tmp_path_factory) -> Iterator[KubeEmulator]:
    with KubeEmulator(Path(tmp_path_factory.mktemp("kube"))) as emulator:
        emulator.define_crd(model_deployment_crd())
        yield emulator


@pytest.fixture
def api(kube: KubeEmulator) -> Iterator[Api]:
    client = Api(configuration(kube.kubeconfig))
    yield client
    client.close()


def test_create_get_patch_list_and_delete(api: Api):
    made = api.create("Service", "ml", service("iris", app="iris"))
    assert made["metadata"]["resourceVersion"]
    api.create("Service", "ml", service("digits", app="digits"))
    patched = api.merge_patch("Service", "ml", "iris", {"metadata": {"annotations": {"a": "1"}}})
    assert patched["metadata"]["annotations"] == {"a": "1"}
    assert api.get("Service", "ml", "iris")["metadata"]["annotations"] == {"a": "1"}
    assert [s["metadata"]["name"] for s in api.list("Service", "ml", {"app": "iris"})] == ["iris"]
    listing = api.listing("Service", "ml", "app")
    assert sorted(s["metadata"]["name"] for s in listing.items) == ["digits", "iris"]
    assert int(listing.resource_version) >= int(patched["metadata"]["resourceVersion"])
    api.delete("Service", "ml", "iris")
    api.delete("Service", "ml", "iris")  # already gone: nothing to do
    assert api.get("Service", "ml", "iris") is None
    api.delete("Service", "ml", "digits")


def test_replace_takes_the_resource_version_as_a_precondition(api: Api):
    lease = api.create("Lease", "ml", {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                       "metadata": {"name": "l", "namespace": "ml"},
                                       "spec": {"holderIdentity": "a"}})
    api.replace("Lease", "ml", "l", {**lease, "spec": {"holderIdentity": "b"}})
    with pytest.raises(ApiException) as refused:
        api.replace("Lease", "ml", "l", {**lease, "spec": {"holderIdentity": "c"}})  # a stale version
    assert refused.value.status == 409
    assert refused.value.call == "PUT /apis/coordination.k8s.io/v1/namespaces/ml/leases/l"
    assert api.get("Lease", "ml", "l")["spec"] == {"holderIdentity": "b"}


def test_the_status_subresource_and_every_namespace(api: Api):
    api.create("ModelDeployment", "a", {"apiVersion": "modelrollout.io/v1alpha1", "kind": "ModelDeployment",
                                        "metadata": {"name": "iris", "namespace": "a"},
                                        "spec": {"model": {"uri": "file:///m.onnx", "version": "1"},
                                                 "server": {"image": "server:test"},
                                                 "strategy": {"canary": {"steps": [{"setWeight": 50}]}}}})
    api.merge_patch("ModelDeployment", "a", "iris", {"status": {"phase": "Healthy"}}, "status")
    assert api.get("ModelDeployment", "a", "iris", "status")["status"] == {"phase": "Healthy"}
    assert [(m["metadata"]["namespace"], m["status"]) for m in api.list("ModelDeployment", None)] == \
        [("a", {"phase": "Healthy"})]


def test_a_limiter_holds_every_call_back_to_its_rate(kube: KubeEmulator):
    """A burst of two, then one a second: the third call reaches the API server only when
    the clock (the test's) gives its token."""
    clock = Clock()
    limiter = RateLimiter(qps=1, burst=2, clock=clock)
    client = Api(configuration(kube.kubeconfig_for("limited")), limiter=limiter)

    def arrived() -> int:
        return sum(row["count"] for row in kube.audit() if row["identity"] == "limited")

    try:
        calls = threading.Thread(target=lambda: [client.get("Service", "ml", f"none-{i}") for i in range(3)],
                                 daemon=True)
        calls.start()
        wait_for(lambda: arrived() == 2, 5, "the burst's two calls")
        calls.join(0.5)
        assert calls.is_alive() and arrived() == 2  # the third waits for a token
        clock.now += 1.0
        calls.join(5)
        assert not calls.is_alive() and arrived() == 3
    finally:
        client.close()
