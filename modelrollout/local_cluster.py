"""`modelrollout cluster`: the local cluster for the real kubectl, until Ctrl-C.

It starts the harness (emulated API server, kubelet stand-in, Prometheus, gateway and
operator, every namespace watched), builds three versions of the example model and serves
them over HTTP on loopback (so ``http://`` model URIs with a sha256 work as in a cluster),
writes a kubeconfig and ready-to-apply example ModelDeployments pointing at those models and
at the local Prometheus, prints what to type, and stops everything it started on SIGINT or
SIGTERM.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shlex
import shutil
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import yaml

from modelrollout.harness.cluster import API_VERSION, KIND, LocalCluster
from modelrollout.harness.model_files import ModelFiles
from modelrollout.operator.routing import MODEL_DEPLOYMENT_LABEL
from modelrollout.serving.examples import write_model_versions

NAME = "iris"
NAMESPACE = "ml"
# Ours, so it may be overwritten; any other kubeconfig at the chosen path is left alone.
_KUBECONFIG_MARK = "# written by modelrollout cluster\n"
_SAMPLE = ('{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", '
           '"data": [5.1, 3.5, 1.4, 0.2]}]}')


def run(folder: Path, kubeconfig: Path | None, tick_seconds: float, say: Callable[[str], None]) -> None:
    folder = folder.resolve()
    kubeconfig = (kubeconfig or folder / "kubeconfig").resolve()
    if kubeconfig.exists() and not kubeconfig.read_text(errors="replace").startswith(_KUBECONFIG_MARK):
        raise SystemExit(f"modelrollout cluster: {kubeconfig} exists and was not written by modelrollout "
                         "cluster: choose another --kubeconfig")
    for noisy in ("aiohttp.access", "aiohttp.server", "kmock", "modelrollout.harness"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    folder.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    say("starting the local cluster: API server, kubelet, Prometheus, gateway, operator ...")
    models = write_model_versions(folder / "models", stem=NAME)
    try:
        with ModelFiles(folder / "models") as files, \
                LocalCluster(folder / "cluster", namespace=NAMESPACE, tick_seconds=1.0,
                             all_namespaces=True) as cluster:
            cluster.kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
            kubeconfig.parent.mkdir(parents=True, exist_ok=True)
            kubeconfig.write_text(_KUBECONFIG_MARK + cluster.kube.kubeconfig.read_text())
            examples = write_examples(folder / "examples", models, files, cluster.prometheus.url)
            say(instructions(folder, kubeconfig, cluster, files, examples))
            stop.wait()
            say("stopping: operator, gateway, pods, Prometheus, API server ...")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    say("stopped.")


def example(models: dict[str, Path], files: ModelFiles, prometheus_url: str, version: str) -> dict:
    """The DESIGN sketch's canary (builtin routing), on this machine's model and Prometheus."""
    model = models[version]
    return {
        "apiVersion": API_VERSION, "kind": KIND,
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "spec": {
            "model": {"uri": files.url(model.name), "sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
                      "version": version},
            "replicas": 2,
            # The image is not pulled: the kubelet stand-in runs `modelrollout serve` here.
            "server": {"image": "ghcr.io/example/modelrollout-server:0.1.0"},
            "trafficRouting": {"builtin": {}},
            "strategy": {"canary": {"steps": [
                {"setWeight": 20}, {"pause": {"duration": "20s"}},
                {"setWeight": 50}, {"pause": {"duration": "20s"}},
                {"setWeight": 100},
            ]}},
            "analysis": {"interval": "10s", "prometheus": {"address": prometheus_url},
                         "metrics": [{"name": "error-rate", "thresholdRange": {"max": 0.01}},
                                     {"name": "latency-p99", "thresholdRange": {"max": 0.5}}]},
            "progressDeadlineSeconds": 300,
        },
    }


def write_examples(folder: Path, models: dict[str, Path], files: ModelFiles,
                   prometheus_url: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, version, what in (("canary-builtin.yaml", "1.0.0", "the first version"),
                                    ("canary-builtin-v2.yaml", "2.0.0", "a canary rollout to 2.0.0")):
        path = folder / filename
        header = (f"# {what}: manifests/examples/canary-builtin.yaml for `modelrollout cluster`\n"
                  "# (the model served from this machine, analysis against the local Prometheus).\n")
        doc = example(models, files, prometheus_url, version)
        path.write_text(header + yaml.safe_dump(doc, sort_keys=False))
        written.append(path)
    return written


def instructions(folder: Path, kubeconfig: Path, cluster: LocalCluster, files: ModelFiles,
                 examples: list[Path]) -> str:
    plugin = shutil.which("kubectl-modelrollout", path=os.path.dirname(sys.executable))
    bin_dir = os.path.dirname(plugin) if plugin else os.path.dirname(sys.executable)
    assert cluster.kube is not None and cluster.gateway is not None and cluster.prometheus is not None
    selector = f"{MODEL_DEPLOYMENT_LABEL}={NAME}"
    lines = [
        "",
        "The local cluster is up (Ctrl-C stops it and everything it started).",
        f"  API server   {cluster.kube.url}",
        f"  kubeconfig   {kubeconfig}",
        f"  gateway      {cluster.gateway.url}",
        f"  Prometheus   {cluster.prometheus.url}",
        f"  model files  http://127.0.0.1:{files.port}/ (iris 1.0.0, 2.0.0, 3.0.0)",
        f"  logs         {folder / 'cluster'}",
        "",
        "In another terminal:",
        f"  export KUBECONFIG={shlex.quote(str(kubeconfig))}",
        f"  export PATH={shlex.quote(bin_dir)}:$PATH   # kubectl finds the kubectl-modelrollout plugin there",
        f"  kubectl create namespace {NAMESPACE}",
        f"  kubectl apply -f {shlex.quote(str(examples[0]))}",
        f"  kubectl get mdep -n {NAMESPACE} -w",
        f"  kubectl wait mdep/{NAME} -n {NAMESPACE} --for=condition=Available --timeout=120s",
        f"  curl -s {cluster.gateway.url}/v2/models/{NAME}/infer -d {shlex.quote(_SAMPLE)}",
        f"  kubectl apply -f {shlex.quote(str(examples[1]))}   # roll to 2.0.0",
        f"  kubectl modelrollout status {NAME} -n {NAMESPACE} -w",
        f"  kubectl get deploy,svc,endpointslices -n {NAMESPACE} -l {selector}",
        f"  kubectl describe mdep {NAME} -n {NAMESPACE}",
        "",
    ]
    return "\n".join(lines)
