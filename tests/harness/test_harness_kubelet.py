"""The harness's kubelet stand-in: Deployments in kmock's emulator become real `modelrollout
serve` processes, with Pods, Deployment status, EndpointSlices and a Prometheus file SD kept
true; and Prometheus itself (file SD, stop and start).

Every test runs real processes; the Deployments and Services are the operator's own bodies
(operator/kube/manifests.py), so what is tested is what the operator will create.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import numpy as np
import pytest
from modelrollout.operator.kube import manifests
from modelrollout.operator.routing import Target
from modelrollout.operator.spec import parse_spec

from modelrollout.harness.emulator import KubeEmulator
from modelrollout.harness.kubelet import FINALIZER, PORT_ANNOTATION, Kubelet
from modelrollout.harness.prometheus import PrometheusProcess
from tests.support.models import fp32_request
from tests.support.processes import wait_for as wait_until

T = TypeVar("T")

NS = "ml"
REVISION = "abc123"
X = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)
SLICE = "discovery.k8s.io/v1"
# How a kubelet reports a pod held back by its container's readiness.
UNREADY = {"type": "Ready", "status": "False", "reason": "ContainersNotReady",
           "message": "containers with unready status: [server]"}


# --- helpers ---


def wait_for(fetch: Callable[[], T], ok: Callable[[T], bool], seconds: float, what: str) -> T:
    """The first ``fetch()`` result that is ``ok``, polled for at most ``seconds``."""
    last: list = []

    def passed() -> tuple | None:
        last[:] = [fetch()]
        return (last[0],) if ok(last[0]) else None

    return wait_until(passed, seconds, lambda: f"{what}; last: {last[0] if last else None}",
                      poll_seconds=0.1)[0]


def bodies(model_uri: str, revision: str = REVISION, replicas: int = 2, name: str = "iris",
           env: tuple[dict, ...] = ()) -> tuple[dict, dict]:
    """The operator's Deployment and Service of one revision."""
    target = Target(name, NS, name, {})
    spec = parse_spec({
        "model": {"uri": model_uri, "version": "1"},
        "server": {"image": "modelrollout-server:test", "env": list(env)},
        "strategy": {"canary": {"steps": [{"setWeight": 100}]}},
    })
    return (manifests.deployment(target, spec, revision, replicas),
            manifests.revision_service_body(target, revision))


def status_of(kube: KubeEmulator, deployment: str) -> dict:
    return kube.get("apps/v1", "Deployment", deployment, NS).get("status") or {}


def pods(kube: KubeEmulator, deployment: str) -> list[dict]:
    """The Pods of ``deployment`` (named <deployment>-<5 chars>)."""
    return [p for p in kube.list("v1", "Pod", NS) if p["metadata"]["name"].rsplit("-", 1)[0] == deployment]


def slices(kube: KubeEmulator, service: str) -> list[dict]:
    return [s for s in kube.list(SLICE, "EndpointSlice", NS)
            if s["metadata"]["labels"].get("kubernetes.io/service-name") == service]


def container(pod: dict) -> dict:
    """The status of the pod's one container ({} before the first status is written)."""
    (status,) = (pod.get("status") or {}).get("containerStatuses") or [{}]
    return status


def answers(port: int) -> bool:
    try:
        return httpx.post(f"http://127.0.0.1:{port}/v2/models/iris/infer", json=fp32_request(X),
                          timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[KubeEmulator]:
    with KubeEmulator(tmp_path) as emulator:
        yield emulator


@pytest.fixture
def kubelet(kube: KubeEmulator, tmp_path: Path) -> Iterator[Kubelet]:
    # The operator's pods drain for 5 s after SIGTERM; 1 s keeps the suite short and the
    # terminating state still visible.
    with Kubelet(kube.kubeconfig, tmp_path / "kubelet", NS, file_sd=tmp_path / "targets.json",
                 env={"MODELROLLOUT_DRAIN_SECONDS": "1"}) as stand_in:
        yield stand_in


# --- tests ---


@pytest.mark.slow
def test_a_deployment_runs_as_ready_processes_behind_pods_slices_and_scrape_targets(
        kube: KubeEmulator, kubelet: Kubelet, tiny_model: Path, tmp_path: Path):
    deployment, service = bodies(tiny_model.as_uri())
    name = deployment["metadata"]["name"]
    kube.create(deployment)
    kube.create(service)

    status = wait_for(lambda: status_of(kube, name), lambda s: s.get("readyReplicas") == 2, 30,
                      "Deployment status readyReplicas 2")
    assert status == {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2,
                      "availableReplicas": 2, "unavailableReplicas": 0}

    listed = wait_for(lambda: pods(kube, name),
                      lambda found: len(found) == 2 and all(container(p).get("ready") for p in found),
                      5, "two ready Pods")
    ports = set()
    for pod in listed:
        assert len(pod["metadata"]["name"]) == len(name) + 6  # <deployment>-<5 chars>
        assert pod["metadata"]["labels"] == deployment["spec"]["template"]["metadata"]["labels"]
        assert pod["metadata"]["finalizers"] == [FINALIZER]
        assert pod["status"]["phase"] == "Running" and pod["status"]["podIP"] == "127.0.0.1"
        assert {"type": "Ready", "status": "True"} in pod["status"]["conditions"]
        assert container(pod)["restartCount"] == 0 and "running" in container(pod)["state"]
        ports.add(int(pod["metadata"]["annotations"][PORT_ANNOTATION]))
    assert ports == {p.port for p in kubelet.processes(name)}

    found = wait_for(lambda: slices(kube, name), lambda s: len(s) == 2, 5, "two EndpointSlices")
    assert {s["ports"][0]["port"] for s in found} == ports
    for endpoint_slice in found:
        assert endpoint_slice["ports"][0]["name"] == "http"
        assert endpoint_slice["addressType"] == "IPv4"
        (endpoint,) = endpoint_slice["endpoints"]
        assert endpoint["addresses"] == ["127.0.0.1"]
        assert endpoint["conditions"] == {"ready": True, "serving": True, "terminating": False}
    assert all(answers(port) for port in ports)

    def scrape_targets() -> dict:
        entries = json.loads((tmp_path / "targets.json").read_text())
        return {e["targets"][0]: e["labels"] for e in entries}

    targets = wait_for(scrape_targets, lambda t: len(t) == 2, 5, "file SD lists both")
    assert set(targets) == {f"127.0.0.1:{port}" for port in ports}
    assert all("revision" not in t for t in targets.values())  # the server's own label, not overwritten
    assert {t["model_deployment"] for t in targets.values()} == {"iris"}
    assert {t["pod"] for t in targets.values()} == {p["metadata"]["name"] for p in listed}

    # Scale down: one process gets SIGTERM. While it drains its Pod is marked deleted (our
    # finalizer holds it) and its endpoint terminating; both go once it has exited.
    kube.merge_patch("apps/v1", "Deployment", name, {"spec": {"replicas": 1}}, NS)
    def terminating_slices() -> list[dict]:
        return [s for s in slices(kube, name) if s["endpoints"][0]["conditions"]["terminating"]]

    (draining,) = wait_for(terminating_slices, bool, 5, "a terminating endpoint")
    assert draining["endpoints"][0]["conditions"] == {"ready": False, "serving": False, "terminating": True}
    (terminating,) = [p for p in pods(kube, name) if p["metadata"].get("deletionTimestamp")]
    assert terminating["metadata"]["name"] == draining["endpoints"][0]["targetRef"]["name"]
    assert UNREADY in terminating["status"]["conditions"]
    wait_until(lambda: len(pods(kube, name)) == 1, 15, "one Pod left")
    (kept,) = kubelet.processes(name)
    (stopped_port,) = ports - {kept.port}
    assert not answers(stopped_port)
    assert answers(kept.port)
    wait_until(lambda: len(slices(kube, name)) == 1, 5, "one EndpointSlice left")
    assert slices(kube, name)[0]["ports"][0]["port"] == kept.port
    wait_until(lambda: status_of(kube, name).get("replicas") == 1, 5, "status says 1 replica")
    wait_until(lambda: list(scrape_targets()) == [f"127.0.0.1:{kept.port}"], 5, "file SD lists one")

    # A crash: restarted on the same port, restartCount grows, ready again.
    kubelet.kill(kept.name)
    wait_until(lambda: container(pods(kube, name)[0]).get("restartCount") == 1, 10, "restartCount 1")
    pod = wait_for(lambda: pods(kube, name)[0], lambda p: container(p).get("ready"), 15, "ready again")
    assert container(pod)["lastState"]["terminated"]["exitCode"] == 128 + 9
    assert answers(kept.port)
    wait_until(lambda: status_of(kube, name).get("readyReplicas") == 1, 5, "Deployment ready again")

    # close(): no process outlives it, and the API shows no ghost Pods or slices.
    pids = [p.pid for p in kubelet.processes()]
    assert pids and all(pids)
    kubelet.close()
    assert not any(alive(pid) for pid in pids)
    assert pods(kube, name) == [] and slices(kube, name) == []
    assert status_of(kube, name)["readyReplicas"] == 0
    assert json.loads((tmp_path / "targets.json").read_text()) == []


@pytest.mark.slow
def test_a_process_that_keeps_exiting_reaches_crash_loop_back_off_and_a_missing_model_stays_unready(
        kube: KubeEmulator, kubelet: Kubelet, tiny_model: Path, tmp_path: Path):
    # An invalid option value makes `modelrollout serve` exit at once (click, exit code 2);
    # a missing model does not: the server stays up, live but unready, as in a cluster.
    broken, _ = bodies(tiny_model.as_uri(), revision="broken", replicas=1,
                       env=({"name": "MODELROLLOUT_WORKERS", "value": "0"},))
    missing, missing_service = bodies((tmp_path / "nowhere.onnx").as_uri(), revision="missing", replicas=1)
    kube.create(broken)
    kube.create(missing)
    kube.create(missing_service)

    def crash_looping(listed: list[dict]) -> bool:
        return bool(listed) and (container(listed[0]).get("state", {}).get("waiting") or {}).get(
            "reason") == "CrashLoopBackOff"

    # It exits at once, then waits 1 + 2 + 4 s between restarts.
    (pod,) = wait_for(lambda: pods(kube, "iris-broken"), crash_looping, 25, "CrashLoopBackOff")
    assert container(pod)["restartCount"] == 3
    assert container(pod)["ready"] is False
    assert container(pod)["lastState"]["terminated"] == {"exitCode": 2, "reason": "Error"}
    assert UNREADY in pod["status"]["conditions"]
    assert status_of(kube, "iris-broken")["readyReplicas"] == 0
    assert status_of(kube, "iris-broken")["unavailableReplicas"] == 1
    (process,) = kubelet.processes("iris-broken")
    assert process.state == "crash-loop" and process.pid is None
    assert "Invalid value for '--workers'" in process.log_path.read_text()

    (unready,) = pods(kube, "iris-missing")
    assert container(unready)["ready"] is False and "running" in container(unready)["state"]
    assert container(unready)["restartCount"] == 0
    (endpoint_slice,) = wait_until(lambda: slices(kube, "iris-missing"), 5, "a slice for the unready pod")
    assert endpoint_slice["endpoints"][0]["conditions"]["ready"] is False


@pytest.mark.slow
def test_a_new_pod_template_rolls_out_and_a_deleted_pod_is_replaced(
        kube: KubeEmulator, kubelet: Kubelet, tiny_model: Path):
    deployment, service = bodies(tiny_model.as_uri(), replicas=1)
    name = deployment["metadata"]["name"]
    kube.create(deployment)
    kube.create(service)
    (first,) = kubelet.wait_ready(name, 1, timeout=30)

    # New template (what a changed spec.server.env does): the new pod starts first, the
    # old one stops once the new one is ready.
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    patch = {"spec": {"template": {"spec": {"containers": [{
        **deployment["spec"]["template"]["spec"]["containers"][0],
        "env": [*env, {"name": "MODELROLLOUT_ACCESS_LOG", "value": "true"}],
    }]}}}}
    kube.merge_patch("apps/v1", "Deployment", name, patch, NS)
    wait_until(lambda: [p.name for p in kubelet.processes(name)] != [first.name]
               and all(p.name != first.name for p in kubelet.processes(name)), 30, "the old pod replaced")
    (second,) = kubelet.wait_ready(name, 1, timeout=30)
    wait_until(lambda: not alive(first.pid), 10, "the old process stopped")
    wait_until(lambda: [p["metadata"]["name"] for p in pods(kube, name)] == [second.name], 5, "one Pod")
    wait_until(lambda: status_of(kube, name).get("updatedReplicas") == 1
               and status_of(kube, name).get("readyReplicas") == 1, 5, "status")

    # Deleting the Pod (kubectl delete pod): graceful, through our finalizer; then a new one.
    kube.delete("v1", "Pod", second.name, NS)
    deleted = wait_for(lambda: pods(kube, name), lambda found: any(
        p["metadata"].get("deletionTimestamp") for p in found) or not found, 5, "the Pod marked deleted")
    if deleted:  # still held by the finalizer while its process stops
        assert deleted[0]["metadata"]["name"] == second.name
    (third,) = wait_for(lambda: [p for p in kubelet.processes(name) if p.ready and p.name != second.name],
                        bool, 30, "a replacement pod ready")
    wait_until(lambda: [p["metadata"]["name"] for p in pods(kube, name)] == [third.name], 10,
               "the deleted Pod gone, its replacement listed")
    wait_until(lambda: not alive(second.pid), 10, "the deleted pod's process stopped")


@pytest.mark.slow
def test_processes_live_through_an_api_outage_and_objects_catch_up(kube: KubeEmulator, kubelet: Kubelet,
                                                                     tiny_model: Path):
    deployment, service = bodies(tiny_model.as_uri(), replicas=1)
    name = deployment["metadata"]["name"]
    kube.create(deployment)
    kube.create(service)
    (pod,) = kubelet.wait_ready(name, 1, timeout=30)
    wait_until(lambda: status_of(kube, name).get("readyReplicas") == 1, 5, "ready in the API")
    with kube.outage():
        kubelet.kill(pod.name)
        time.sleep(1.0)
        (during,) = kubelet.processes(name)
        assert during.name == pod.name  # still its pod, restarted or about to be
    (after,) = kubelet.wait_ready(name, 1, timeout=30)
    assert after.restarts == 1
    wait_until(lambda: container(pods(kube, name)[0]).get("restartCount") == 1, 10,
               "the restart reaches the API")


@pytest.mark.slow
def test_prometheus_scrapes_harness_pods_by_file_sd_and_keeps_its_data_across_a_restart(
        kube: KubeEmulator, kubelet: Kubelet, tiny_model: Path, tmp_path: Path):
    deployment, _ = bodies(tiny_model.as_uri(), replicas=1)
    kube.create(deployment)
    kubelet.wait_ready(deployment["metadata"]["name"], 1, timeout=30)
    prometheus = PrometheusProcess(tmp_path / "prometheus", file_sd=tmp_path / "targets.json")
    with prometheus:
        kubelet.add_scrape_target(f"127.0.0.1:{prometheus.port}", {"job": "prometheus"})
        query = f'up{{model_deployment="iris", namespace="{NS}"}}'
        (series,) = wait_until(lambda: [s for s in prometheus.query(query) if s["value"][1] == "1"], 15,
                               "the pod scraped with its labels")
        assert series["metric"]["job"] == "modelrollout-server"
        wait_until(lambda: prometheus.query('up{job="prometheus"} == 1'), 15, "the added static target")

        port = prometheus.port
        before = float(prometheus.query(f"count_over_time({query}[1h])")[0]["value"][1])
        prometheus.stop()
        assert not prometheus.running
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{prometheus.url}/-/ready", timeout=1)
        prometheus.start()
        assert prometheus.port == port
        after = float(prometheus.query(f"count_over_time({query}[1h])")[0]["value"][1])
        assert after >= before  # the samples from before the stop are still there
        wait_until(lambda: prometheus.query(f"{query} == 1"), 15, "scraping again after the restart")


def test_a_template_without_a_server_container_is_not_run(kube: KubeEmulator, kubelet: Kubelet,
                                                          caplog: pytest.LogCaptureFixture):
    deployment, _ = bodies("file:///nowhere/model.onnx", replicas=1)
    deployment["metadata"]["name"] = "sidecars"
    (server,) = deployment["spec"]["template"]["spec"]["containers"]
    deployment["spec"]["template"]["spec"]["containers"] = [{**server, "name": "a"}, {**server, "name": "b"}]
    with caplog.at_level("WARNING", logger="modelrollout.harness.kubelet"):
        kube.create(deployment)
        wait_until(lambda: "no container named 'server'" in caplog.text, 5, "the warning")
    wait_until(lambda: status_of(kube, "sidecars").get("replicas") == 0, 5, "a status with no replicas")
    assert kubelet.processes() == [] and pods(kube, "sidecars") == []


def test_without_an_api_server_it_waits_and_closes_cleanly(tmp_path: Path):
    with KubeEmulator(tmp_path) as kube:
        kubeconfig = kube.kubeconfig  # points at a port nobody serves once the emulator stops
    with Kubelet(kubeconfig, tmp_path / "kubelet", NS, file_sd=tmp_path / "targets.json") as stand_in:
        stand_in.add_scrape_target("127.0.0.1:9", {"job": "gateway"})
        time.sleep(0.6)
        assert stand_in.processes() == []
    assert json.loads((tmp_path / "targets.json").read_text()) == [
        {"targets": ["127.0.0.1:9"], "labels": {"job": "gateway"}}]


AT_EXIT = """
import sys, time
from pathlib import Path
from modelrollout.harness.emulator import KubeEmulator
from modelrollout.harness.kubelet import Kubelet
folder, deployment = Path(sys.argv[1]), __import__("json").loads(sys.argv[2])
kube = KubeEmulator(folder).start()
kubelet = Kubelet(kube.kubeconfig, folder / "kubelet", "ml", env={"MODELROLLOUT_DRAIN_SECONDS": "0"}).start()
kube.create(deployment)
print(kubelet.wait_ready(deployment["metadata"]["name"], 1, timeout=30)[0].pid, flush=True)
# no close(): the atexit hook must stop the process
"""


@pytest.mark.slow
def test_no_process_outlives_a_program_that_forgot_close(tmp_path: Path, tiny_model: Path):
    import subprocess
    import sys

    deployment, _ = bodies(tiny_model.as_uri(), replicas=1)
    result = subprocess.run([sys.executable, "-c", AT_EXIT, str(tmp_path), json.dumps(deployment)],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    pid = int(result.stdout.strip())
    assert not alive(pid)
