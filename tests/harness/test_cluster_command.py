"""`modelrollout cluster` as a user runs it: a real process, driven with the real kubectl
exactly as the README's "Try it with kubectl" lists, then stopped with Ctrl-C (SIGINT)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from modelrollout.harness.process import wait_for
from modelrollout.harness.traffic import wait_serving
from modelrollout.install_manifests import model_deployment_crd
from tests.support.kubectl import kubectl_binary, kubectl_env, run_kubectl
from tests.support.processes import MODELROLLOUT

pytestmark = pytest.mark.slow

STARTUP_SECONDS = 120


@dataclass
class Running:
    proc: subprocess.Popen
    output: list[str]
    env: dict[str, str]
    folder: Path
    gateway: str
    commands: list[str]  # the "In another terminal" lines, as printed


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``, read from /proc (children of children too)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, ValueError, IndexError):
            continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Running]:
    work = tmp_path_factory.mktemp("user")
    # Relative --folder and --kubeconfig, from a folder that is not the repository.
    proc = subprocess.Popen([MODELROLLOUT, "cluster", "--folder", "mc", "--kubeconfig", "config/kubeconfig"],
                            cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    try:
        wait_for(lambda: any("kubectl describe mdep" in line for line in output) or proc.poll() is not None,
                 STARTUP_SECONDS, "the next commands")
        assert proc.poll() is None, "".join(output)
        text = "".join(output)
        kubeconfig = re.search(r"export KUBECONFIG=(\S+)", text).group(1)
        assert kubeconfig == str(work / "config" / "kubeconfig")
        gateway = re.search(r"gateway +(http://127\.0\.0\.1:\d+)", text).group(1)
        commands = [line.strip() for line in text[text.index("In another terminal:"):].splitlines()[1:]
                    if line.strip()]
        env = kubectl_env(Path(kubeconfig), work)
        yield Running(proc, output, env, work / "mc", gateway, commands)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def kubectl(cluster: Running, *args: str, stdin: str | None = None, ok: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess:
    return run_kubectl(cluster.env, *args, stdin=stdin, ok=ok, timeout=timeout)


def printed(cluster: Running, prefix: str) -> list[str]:
    """The printed command starting with ``prefix``, split as a shell would (no quotes in it)."""
    line = next(c for c in cluster.commands if c.startswith(prefix))
    return line.split("#")[0].split()


def test_the_command_list_works_with_the_real_kubectl(cluster):
    # Printed for the user: the plugin's folder goes on PATH (kubectl_env does the same).
    assert any(c.startswith("export PATH=") and "kubectl finds the kubectl-modelrollout plugin" in c
               for c in cluster.commands)
    created = kubectl(cluster, *printed(cluster, "kubectl create namespace")[1:]).stdout
    assert "namespace/ml created" in created
    first = printed(cluster, "kubectl apply -f")
    assert "modeldeployment.modelrollout.io/iris created" in kubectl(cluster, *first[1:]).stdout  # validated

    header = kubectl(cluster, "get", "mdep", "-n", "ml").stdout.splitlines()[0].split()
    columns = model_deployment_crd()["spec"]["versions"][0]["additionalPrinterColumns"]
    assert header == ["NAME", *(c["name"].upper() for c in columns if not c.get("priority"))]

    waited = kubectl(cluster, *printed(cluster, "kubectl wait")[1:], timeout=150)
    assert "modeldeployment.modelrollout.io/iris condition met" in waited.stdout
    kubectl(cluster, "wait", "mdep/iris", "-n", "ml", "--for=jsonpath={.status.readyReplicas}=2",
            "--timeout=120s", timeout=150)
    wait_serving(cluster.gateway, "iris", timeout=60)

    # The rollout to 2.0.0, watched with `kubectl get -w` (bounded) and the plugin.
    second = [c for c in cluster.commands if c.startswith("kubectl apply -f")][1].split("#")[0].split()
    watcher = subprocess.Popen([kubectl_binary(), "get", "mdep", "-n", "ml", "-w"], env=cluster.env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    rows: list[str] = []
    threading.Thread(target=lambda: rows.extend(iter(watcher.stdout.readline, "")), daemon=True).start()
    try:
        assert "configured" in kubectl(cluster, *second[1:]).stdout
        wait_for(lambda: any(" 2.0.0 " in row and "Progressing" in row for row in rows), 90,
                 lambda: f"the candidate in `kubectl get mdep -w`: {rows}")
    finally:
        watcher.terminate()
        watcher.wait(10)
    status = kubectl(cluster, "modelrollout", "status", "iris", "-n", "ml", "-w", "--timeout", "3").stdout
    assert "Name:       ml/iris" in status and "(2.0.0)" in status
    kubectl(cluster, "wait", "mdep/iris", "-n", "ml", "--for=jsonpath={.status.stableVersion}=2.0.0",
            "--timeout=180s", timeout=200)

    made = kubectl(cluster, *printed(cluster, "kubectl get deploy,svc,endpointslices")[1:]).stdout
    assert "deployment.apps/iris-" in made and "service/iris " in made
    assert "endpointslice.discovery.k8s.io/iris-" in made

    described = kubectl(cluster, *printed(cluster, "kubectl describe mdep")[1:]).stdout
    events = described[described.index("Events:"):]
    assert "NewRevision" in events and "modelrollout-operator" in events


def test_an_invalid_model_deployment_is_refused_by_kubectl_apply_with_the_schemas_message(cluster):
    doc = yaml.safe_load((cluster.folder / "examples" / "canary-builtin.yaml").read_text())
    doc["metadata"]["name"] = "broken"
    doc["spec"]["model"]["sha256"] = "not-a-digest"
    done = kubectl(cluster, "apply", "-f", "-", stdin=yaml.safe_dump(doc), ok=False)
    assert done.returncode != 0
    assert 'spec.model.sha256: Invalid value: "not-a-digest": spec.model.sha256 in body should match' \
        in done.stderr
    assert kubectl(cluster, "get", "mdep", "broken", "-n", "ml", ok=False).returncode != 0


def test_a_dry_run_writes_nothing(cluster):
    before = kubectl(cluster, "get", "mdep", "iris", "-n", "ml", "-o",
                     "jsonpath={.metadata.generation}").stdout
    doc = yaml.safe_load((cluster.folder / "examples" / "canary-builtin-v2.yaml").read_text())
    doc["spec"]["replicas"] = 5
    assert "(server dry run)" in kubectl(cluster, "apply", "--dry-run=server", "-f", "-",
                                         stdin=yaml.safe_dump(doc)).stdout
    after = kubectl(cluster, "get", "mdep", "iris", "-n", "ml", "-o",
                    "jsonpath={.metadata.generation} {.spec.replicas}").stdout
    assert after == f"{before} 2"


def test_a_users_own_namespace_and_a_file_uri_work(cluster):
    kubectl(cluster, "create", "namespace", "team-b")
    doc = yaml.safe_load((cluster.folder / "examples" / "canary-builtin.yaml").read_text())
    model = cluster.folder / "models" / "iris-3.0.0.onnx"
    doc["metadata"] = {"name": "local-file", "namespace": "team-b"}
    doc["spec"]["model"] = {"uri": model.as_uri(), "version": "3.0.0"}
    doc["spec"]["replicas"] = 1
    kubectl(cluster, "apply", "-f", "-", stdin=yaml.safe_dump(doc))
    kubectl(cluster, "wait", "mdep/local-file", "-n", "team-b", "--for=jsonpath={.status.readyReplicas}=1",
            "--timeout=120s", timeout=150)
    pods = kubectl(cluster, "get", "pods", "-n", "team-b").stdout
    assert "1/1" in pods and "Running" in pods


def test_kubectl_scale_changes_the_pods_and_the_scale_reads_them_back(cluster):
    kubectl(cluster, "create", "namespace", "scaling")
    doc = yaml.safe_load((cluster.folder / "examples" / "canary-builtin.yaml").read_text())
    doc["metadata"] = {"name": "scaled", "namespace": "scaling"}
    doc["spec"]["replicas"] = 1
    kubectl(cluster, "apply", "-f", "-", stdin=yaml.safe_dump(doc))
    kubectl(cluster, "wait", "mdep/scaled", "-n", "scaling", "--for=jsonpath={.status.readyReplicas}=1",
            "--timeout=120s", timeout=150)
    revision = kubectl(cluster, "get", "mdep/scaled", "-n", "scaling", "-o",
                       "jsonpath={.status.stableRevision}").stdout
    kubectl(cluster, "scale", "mdep/scaled", "-n", "scaling", "--replicas", "3")
    kubectl(cluster, "wait", "mdep/scaled", "-n", "scaling", "--for=jsonpath={.status.replicas}=3",
            "--timeout=120s", timeout=150)
    scale = yaml.safe_load(kubectl(cluster, "get", "mdep/scaled", "-n", "scaling", "--subresource=scale",
                                   "-o", "yaml").stdout)
    assert scale["spec"]["replicas"] == 3 and scale["status"]["replicas"] == 3
    pods = kubectl(cluster, "get", "pods", "-n", "scaling", "-l", scale["status"]["selector"], "-o",
                   "name").stdout.split()
    assert len(pods) == 3
    # The same revision, scaled: no new rollout.
    assert kubectl(cluster, "get", "mdep/scaled", "-n", "scaling", "-o",
                   "jsonpath={.status.stableRevision} {.status.phase}").stdout == f"{revision} Healthy"
    kubectl(cluster, "scale", "mdep/scaled", "-n", "scaling", "--replicas", "1")
    kubectl(cluster, "wait", "mdep/scaled", "-n", "scaling", "--for=jsonpath={.status.replicas}=1",
            "--timeout=120s", timeout=150)


def test_ctrl_c_stops_everything_it_started(cluster):
    started = descendants(cluster.proc.pid)
    assert len(started) >= 5  # gateway, operator, Prometheus, model servers
    cluster.proc.send_signal(signal.SIGINT)
    assert cluster.proc.wait(90) == 0
    assert "stopped." in "".join(cluster.output)
    wait_for(lambda: not [pid for pid in started if alive(pid)], 30, "every started process to be gone")
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{cluster.gateway}/v2/health/live", timeout=2)
