"""Operator scale benchmark: 10, 100, 1,000 ModelDeployments live at once.

The harness's API server (kmock made honest, in this process), a kubelet stand-in that only
writes status (harness/status_kubelet.py: ready Pods, Deployment status, EndpointSlices; no
server processes), and the real `modelrollout operator` as its own process. For each size,
the ModelDeployments are added until there are that many, all Healthy, and then:

* RSS of the operator process, and its CPU (all threads) over ``--idle-seconds`` with
  nothing changing: as a share of one core;
* reaction: ``--changes`` times, one ModelDeployment picked at random gets a new model
  version (a new revision) while all the others stay live; the time from sending that
  spec change to the operator's first write that follows it (its candidate's Deployment,
  as the API server's audit log sees it arriving), p50 and p99. Each change is then put
  back and the ModelDeployment left to settle before the next one.

`--operator-source REV` runs the operator from another git revision instead (its tree
extracted to a temporary folder, the rest of the harness as it is now): before and after.

Usage (from the repository root):

    .venv/bin/python bench/bench_operator.py [--sizes 10,100,1000] [--idle-seconds 30]
                                             [--changes 30] [--operator-source 0d31e3d]

Prints a markdown report and writes it to bench/results/operator-<timestamp>.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

import psutil

from modelrollout.harness.cluster import GATEWAY, KUBELET, OPERATOR
from modelrollout.harness.components import OperatorProcess
from modelrollout.harness.emulator import KubeEmulator
from modelrollout.harness.process import wait_for
from modelrollout.harness.status_kubelet import StatusKubelet
from modelrollout.install_manifests import model_deployment_crd

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "bench"
MD = "modelrollout.io/v1alpha1"
assert GATEWAY  # the gateway is not part of this benchmark


def spec(version: str) -> dict:
    return {"model": {"uri": f"https://models.example.com/bench/{version}/model.onnx",
                      "version": version},
            "replicas": 1, "server": {"image": "modelrollout-server:bench"},
            "trafficRouting": {"builtin": {}}, "strategy": {"canary": {"steps": [{"setWeight": 50}]}}}


def model_deployment(name: str, version: str) -> dict:
    return {"apiVersion": MD, "kind": "ModelDeployment", "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": spec(version)}


def phases(kube: KubeEmulator) -> dict[str, str]:
    """name -> status.phase of every ModelDeployment, read in the emulator's own store: a list
    over HTTP of 1,000 of them would cost this process (the emulator's) more than the
    operator's whole reaction."""
    def read(emulator) -> dict[str, str]:
        found = {}
        for (resource, namespace, name), obj in emulator._objects.items():
            if resource.plural == "modeldeployments" and namespace == NAMESPACE and not obj.deleted:
                found[name] = (obj.raw.get("status") or {}).get("phase")
        return found

    return kube.on_loop(read, kube.emulator)


def grow(kube: KubeEmulator, size: int, timeout: float) -> tuple[float, int]:
    """Add ModelDeployments up to ``size``; (seconds until all are Healthy, or until
    ``timeout``; how many were Healthy then)."""
    started = time.monotonic()
    have = len(phases(kube))
    for i in range(have, size):
        kube.create(model_deployment(f"m{i:04d}", "1.0.0"))
    healthy = 0
    while time.monotonic() - started < timeout:
        healthy = sum(p == "Healthy" for p in phases(kube).values())
        if healthy >= size:
            break
        time.sleep(2.0)
    return time.monotonic() - started, healthy


def idle(process: psutil.Process, seconds: float) -> tuple[float, float]:
    """(CPU share of one core, RSS MiB) of the operator over ``seconds`` of nothing happening."""
    before = process.cpu_times()
    time.sleep(seconds)
    after = process.cpu_times()
    cpu = (after.user + after.system - before.user - before.system) / seconds
    return cpu, process.memory_info().rss / 2**20


def react(kube: KubeEmulator, size: int, changes: int, rng: random.Random) -> list[float]:
    """Seconds from a spec change to the operator's first write after it, ``changes`` times."""
    found = []
    for i in range(changes):
        name = f"m{rng.randrange(size):04d}"
        sent = time.time()
        kube.merge_patch(MD, "ModelDeployment", name, {"spec": {"model": spec(f"2.0.{i}")["model"]}},
                         NAMESPACE)
        found.append(wait_for(lambda name=name, sent=sent: first_write(kube, name, sent), 60,
                              f"the operator to react to {name}", poll_seconds=0.01))
        kube.merge_patch(MD, "ModelDeployment", name, {"spec": {"model": spec("1.0.0")["model"]}}, NAMESPACE)
        wait_for(lambda name=name: settled(kube, name), 60, f"{name} settled again", poll_seconds=0.1)
    return found


def first_write(kube: KubeEmulator, name: str, sent: float) -> float | None:
    """Seconds after ``sent`` of the operator's first write to ``name`` or what it owns."""
    for write in kube.writes(since=sent):
        if write.identity == OPERATOR and write.namespace == NAMESPACE and \
                (write.name == name or (write.name or "").startswith(f"{name}-")):
            return write.at - sent
    return None


def settled(kube: KubeEmulator, name: str) -> bool:
    def read(emulator) -> dict:
        for (resource, namespace, found), obj in emulator._objects.items():
            if resource.plural == "modeldeployments" and namespace == NAMESPACE and found == name:
                return obj.raw.get("status") or {}
        return {}

    status = kube.on_loop(read, kube.emulator)
    return status.get("phase") == "Healthy" and status.get("candidateRevision") is None


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def operator_source(revision: str, work: Path) -> dict[str, str]:
    """An environment whose PYTHONPATH finds modelrollout (with .operator and .serving) as it was
    at ``revision``: the package folders mapped as pyproject.toml maps them."""
    tree = work / "source"
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], capture_output=True,
                             check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")
    package = work / "path" / "modelrollout"
    shutil.copytree(tree / "modelrollout", package)
    for name, folder in (("operator", "operator"), ("serving", "serving"), ("manifests", "manifests")):
        shutil.rmtree(package / name, ignore_errors=True)
        (package / name).symlink_to(tree / folder)
    return {"PYTHONPATH": str(work / "path")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--changes", type=int, default=30)
    parser.add_argument("--tick-seconds", type=float, default=2.0, help="the operator's default")
    parser.add_argument("--operator-source", default=None, help="git revision to run the operator from")
    parser.add_argument("--grow-timeout", type=float, default=600.0,
                        help="measure anyway when not all are Healthy this long after they were added")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-operator-"))
    rng = random.Random(0)
    rows = []
    env_before = dict(os.environ)
    try:
        with KubeEmulator(work) as kube:
            kube.define_crd(model_deployment_crd())
            extra = {}
            if args.operator_source:
                extra = operator_source(args.operator_source, work)
                os.environ.update(extra)  # the operator process inherits it
            with StatusKubelet(kube.kubeconfig_for(KUBELET), [NAMESPACE]) as kubelet:
                flags = () if args.operator_source else ("--resync-seconds", "300")
                operator = OperatorProcess(kube.kubeconfig_for(OPERATOR), NAMESPACE, work / "operator.log",
                                           args.tick_seconds, flags)
                os.environ.clear()
                os.environ.update(env_before)
                try:
                    operator.wait_healthy(60)
                    process = psutil.Process(operator.pid)
                    for size in sizes:
                        took, healthy = grow(kube, size, timeout=args.grow_timeout)
                        time.sleep(5)  # the last writes' wake-ups settle
                        cpu, rss = idle(process, args.idle_seconds)
                        reactions = react(kube, size, args.changes, rng)
                        row = {"size": size, "grow_seconds": took, "healthy": healthy, "idle_cpu": cpu,
                               "rss_mib": rss,
                               "p50": statistics.median(reactions), "p99": percentile(reactions, 0.99),
                               "max": max(reactions), "kubelet_writes": kubelet.writes}
                        rows.append(row)
                        print(f"{size}: {row}", flush=True)
                finally:
                    operator.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = render(args, rows, stamp)
    (results / f"operator-{stamp}.md").write_text(report)
    print(report)
    return 0


def render(args, rows: list[dict], stamp: str) -> str:
    lines = [f"# Operator scale, run operator-{stamp}", "",
             f"operator: {'git ' + args.operator_source if args.operator_source else 'this tree'}; "
             f"--tick-seconds {args.tick_seconds:g}; idle window {args.idle_seconds:g} s; "
             f"{args.changes} spec changes per size", "",
             f"machine: {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
             f"load average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}", "",
             "| ModelDeployments | to all Healthy s | operator RSS MiB | idle CPU (share of one core) "
             "| reaction p50 s | reaction p99 s | max s |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        grown = f"{r['grow_seconds']:.1f}" if r["healthy"] >= r["size"] else \
            f"> {r['grow_seconds']:.0f} ({r['healthy']} Healthy)"
        lines.append(f"| {r['size']} | {grown} | {r['rss_mib']:.0f} | {r['idle_cpu']:.3f} | "
                     f"{r['p50']:.3f} | {r['p99']:.3f} | {r['max']:.3f} |")
    last = rows[-1] if rows else None
    if last and last["size"] >= 1000:
        lines += ["", "Targets at 1,000 (this machine):",
                  f"- RSS <= 300 MiB: {'MET' if last['rss_mib'] <= 300 else 'NOT MET'} "
                  f"({last['rss_mib']:.0f} MiB)",
                  f"- idle CPU <= 10% of one core: {'MET' if last['idle_cpu'] <= 0.10 else 'NOT MET'} "
                  f"({100 * last['idle_cpu']:.1f}%)",
                  f"- p99 reaction <= 5 s: {'MET' if last['p99'] <= 5 else 'NOT MET'} ({last['p99']:.2f} s)"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
