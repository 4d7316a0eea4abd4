"""The operator's cache of what it owns (kube/cache.py) against the harness's API server over
HTTP: filed by the ModelDeployment label, owners woken on change, its own writes read back
at once, ``synced`` once every kind was listed. Listing and watching themselves are the
shared informer's (tests/kubeclient/test_informer.py)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import pytest_asyncio
from modelrollout.operator.kube.cache import ChildCache, Reads
from modelrollout.operator.routing import MODEL_DEPLOYMENT_LABEL

from modelrollout.harness.apiserver.faults import Fault
from modelrollout.harness.emulator import KubeEmulator
from modelrollout.kubeclient import Api, configuration

WAIT_SECONDS = 10.0


def pod(name: str, owner: str | None, namespace: str = "ml") -> dict:
    labels = {MODEL_DEPLOYMENT_LABEL: owner} if owner else {}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"containers": [{"name": "server", "image": "server:test"}]}}


def names(objects: list[dict]) -> list[str]:
    return sorted(o["metadata"]["name"] for o in objects)


async def eventually(check: Callable[[], object], what: str) -> None:
    for _ in range(int(WAIT_SECONDS / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    assert check(), f"{what}: not within {WAIT_SECONDS} s"


@pytest.fixture
def kube(tmp_path) -> Iterator[KubeEmulator]:
    with KubeEmulator(tmp_path) as emulator:
        yield emulator


@pytest_asyncio.fixture
async def api(kube: KubeEmulator) -> AsyncIterator[Api]:
    client = Api(configuration(kube.kubeconfig))
    yield client
    client.close()


@pytest.mark.asyncio
async def test_owned_objects_are_filed_by_their_label_and_changes_wake_their_owner(kube, api):
    kube.create(pod("iris-a", "iris"))
    kube.create(pod("stranger", None))
    woken: list[tuple[str, str]] = []
    cache = ChildCache(Api(configuration(kube.kubeconfig)), ("ml",), lambda *owner: woken.append(owner))
    cache.start()
    try:
        await asyncio.wait_for(cache.synced.wait(), WAIT_SECONDS)
        assert names(cache.list("Pod", "ml", {MODEL_DEPLOYMENT_LABEL: "iris"})) == ["iris-a"]
        assert cache.get("Pod", "ml", "stranger") is None and len(cache) == 1
        assert ("ml", "iris") in woken

        woken.clear()
        kube.create(pod("digits-a", "digits"))
        await eventually(lambda: ("ml", "digits") in woken, "the new pod's owner woken")
        assert names(cache.list("Pod", "ml", {MODEL_DEPLOYMENT_LABEL: "digits"})) == ["digits-a"]

        # Relabelled: it moves to its new owner, which is woken.
        woken.clear()
        relabel = {"metadata": {"labels": {MODEL_DEPLOYMENT_LABEL: "digits"}}}
        kube.merge_patch("v1", "Pod", "iris-a", relabel, "ml")
        await eventually(lambda: ("ml", "digits") in woken, "the new owner woken")
        assert cache.list("Pod", "ml", {MODEL_DEPLOYMENT_LABEL: "iris"}) == []
        assert names(cache.list("Pod", "ml", {MODEL_DEPLOYMENT_LABEL: "digits"})) == ["digits-a", "iris-a"]

        woken.clear()
        kube.delete("v1", "Pod", "digits-a", "ml")
        await eventually(lambda: woken == [("ml", "digits")], "the deleted pod's owner woken")
        assert cache.get("Pod", "ml", "digits-a") is None
    finally:
        await cache.close()


@pytest.mark.asyncio
async def test_its_own_writes_are_read_back_at_once_and_never_replaced_by_an_older_version(kube, api):
    cache = ChildCache(Api(configuration(kube.kubeconfig)), ("ml",), lambda *owner: None)
    reads = Reads(api, cache)
    cache.start()
    try:
        await asyncio.wait_for(cache.synced.wait(), WAIT_SECONDS)
        made = reads.stored("Pod", api.create("Pod", "ml", pod("iris-a", "iris")))
        assert await reads.get("Pod", "ml", "iris-a") == made  # before any watch event
        annotate = {"metadata": {"annotations": {"a": "1"}}}
        patched = reads.stored("Pod", api.merge_patch("Pod", "ml", "iris-a", annotate))
        reads.stored("Pod", made)  # an older answer, arriving late
        assert await reads.get("Pod", "ml", "iris-a") == patched
        reads.forget("Pod", "ml", "iris-a")
        assert await reads.list("Pod", "ml", {MODEL_DEPLOYMENT_LABEL: "iris"}) == []
        # Not cached (no owner label asked for): straight from the API server.
        assert names(await reads.list("Pod", "ml", {})) == ["iris-a"]
    finally:
        await cache.close()


@pytest.mark.asyncio
async def test_synced_waits_for_every_kind_in_every_namespace(kube):
    kube.create(pod("iris-a", "iris", namespace="other"))
    refused = kube.inject(Fault(500, verbs={"list"}, resource="pods", count=2))
    cache = ChildCache(Api(configuration(kube.kubeconfig)), ("ml", "other"), lambda *owner: None)
    cache.start()
    try:
        await asyncio.wait_for(cache.synced.wait(), WAIT_SECONDS)
        assert refused.hits == 2  # the pods' lists were refused twice, then answered ...
        assert cache.get("Pod", "other", "iris-a") is not None  # ... and synced came after
    finally:
        await cache.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("watch-")]
