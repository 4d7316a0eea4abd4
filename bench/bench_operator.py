"""Operator scale benchmark: 10, 100, 1,000 ModelDeployments live at once.

The harness's API server (kmock made honest, in this process), a kubelet stand-in that only
writes status (harness/status_kubelet.py: ready Pods, Deployment status, EndpointSlices; no
server processes), and the real `modelrollout operator` as its own process. For each size,
the ModelDeployments are added until there are that many, all Healthy, and then:

* CPU seconds spent while growing to that size: by the operator process, and by this one
  (the API server emulator, the status kubelet and the bench's own polling): which side
  limits how fast ModelDeployments become Healthy;
* RSS of the operator process, and its CPU (all threads) over ``--idle-seconds`` with
  nothing changing: as a share of one core, with the reconciles that ran in that window
  (the operator's reconcile-duration count). A settled ModelDeployment is reconciled every
  ``--resync-seconds`` (the operator's flag, default 300): a window shorter than that sees
  only part of the resyncs, so run once with a short resync (e.g. 30, the window as long)
  to price them: the steady-state idle CPU at the default is the quiet part plus
  size / 300 reconciles a second;
* one scrape of the operator's /metrics (its series grow with every ModelDeployment):
  seconds, size, and the operator's CPU for it;
* reaction: ``--changes`` times, one ModelDeployment picked at random gets a new model
  version (a new revision) while all the others stay live; the time from sending that
  spec change to the operator's first write that follows it (its candidate's Deployment,
  as the API server's audit log sees it arriving), p50 and p99. Each change is then put
  back and the ModelDeployment left to settle before the next one.

`--mid-rollout`: once grown to a size, every ModelDeployment gets a new version whose
candidate never passes its gate (the status kubelet's pods refuse the smoke inference), so
all of them are in the middle of a rollout, reconciled every ``--tick-seconds``; the idle
window and the reactions are measured that way, and the report gives the operator's API
calls a second in the idle window, by verb (the API server's audit).

`--profile DIR` profiles one run with cProfile (slower: use it for where the time goes, not
for the figures): the operator's main thread (its event loop, through a sitecustomize.py
on its PYTHONPATH; written when it exits) to DIR/operator.prof, and the emulator's loop
thread in this process to DIR/emulator.prof; the top functions of each are printed.

`--operator-source REV` runs the operator from another git revision instead (its tree
extracted to a temporary folder, the rest of the harness as it is now): before and after.

Usage (from the repository root):

    .venv/bin/python bench/bench_operator.py [--sizes 10,100,1000] [--idle-seconds 30]
                                             [--changes 30] [--resync-seconds 300]
                                             [--operator-source 0d31e3d] [--profile DIR]
                                             [--mid-rollout]

Prints a markdown report and writes it to bench/results/operator-<timestamp>.md.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import math
import os
import platform
import pstats
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

import psutil
from modelrollout.serving.contract.metric_names import RECONCILE_DURATION
from prometheus_client.parser import text_string_to_metric_families

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
    """Add ModelDeployments up to ``size``; (seconds until the added ones are Healthy, or until
    ``timeout``; how many of all were Healthy, or mid-rollout from an earlier size, then)."""
    started = time.monotonic()
    have = len(phases(kube))
    for i in range(have, size):
        kube.create(model_deployment(f"m{i:04d}", "1.0.0"))
    healthy = 0
    while time.monotonic() - started < timeout:
        healthy = sum(p == "Healthy" or (int(name[1:]) < have and p is not None)
                      for name, p in phases(kube).items())
        if healthy >= size:
            break
        time.sleep(2.0)
    return time.monotonic() - started, healthy


MID_ROLLOUT_VERSION = "1.1.0"


def start_rollouts(kube: KubeEmulator, timeout: float) -> float:
    """Every Healthy ModelDeployment gets a new version whose candidate never passes its gate
    (the status kubelet's pods refuse the smoke inference): all of them mid-rollout, ticked
    every --tick-seconds for good. Seconds until every one has its candidate."""
    started = time.monotonic()
    for name, phase in sorted(phases(kube).items()):
        if phase == "Healthy":
            kube.merge_patch(MD, "ModelDeployment", name,
                             {"spec": {"model": spec(MID_ROLLOUT_VERSION)["model"]}}, NAMESPACE)
    with contextlib.suppress(TimeoutError):
        wait_for(lambda: all(candidate for candidate in candidates(kube).values()), timeout,
                 "every ModelDeployment mid-rollout", poll_seconds=1.0)
        # The candidates' Deployments, Services and Events made: from here on, only ticks.
        wait_for(lambda: not any(w.identity == OPERATOR and w.verb == "create"
                                 for w in kube.writes(since=time.time() - 5)), timeout,
                 "the rollouts' objects made", poll_seconds=1.0)
    return time.monotonic() - started


def candidates(kube: KubeEmulator) -> dict[str, str | None]:
    """name -> status.candidateRevision, read in the emulator's store (as phases())."""
    def read(emulator) -> dict[str, str | None]:
        return {name: (obj.raw.get("status") or {}).get("candidateRevision")
                for (resource, namespace, name), obj in emulator._objects.items()
                if resource.plural == "modeldeployments" and namespace == NAMESPACE and not obj.deleted}

    return kube.on_loop(read, kube.emulator)


def operator_calls(kube: KubeEmulator) -> dict[str, int]:
    """The operator's API calls so far, by verb (the API server's audit)."""
    found: dict[str, int] = {}
    for row in kube.audit():
        if row["identity"] == OPERATOR:
            found[row["verb"]] = found.get(row["verb"], 0) + row["count"]
    return found


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def scrape(url: str) -> tuple[float, int, str]:
    """(seconds, bytes, text) of one GET of the operator's /metrics."""
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=60) as answer:
        body = answer.read()
    return time.monotonic() - started, len(body), body.decode()


def reconciles(text: str) -> float:
    """Reconciles the operator has run so far: its reconcile-duration histogram's counts."""
    return sum(sample.value for family in text_string_to_metric_families(text)
               if family.name == RECONCILE_DURATION
               for sample in family.samples if sample.name.endswith("_count"))


def idle(process: psutil.Process, metrics_url: str, seconds: float) -> dict:
    """The operator over ``seconds`` of nothing changing: CPU share of one core, RSS MiB,
    reconciles run; then one /metrics scrape (seconds, KiB, operator CPU seconds). The
    scrapes that count the reconciles fall outside the CPU window."""
    _, _, text = scrape(metrics_url)
    count = reconciles(text)
    before = cpu_seconds(process)
    time.sleep(seconds)
    cpu = (cpu_seconds(process) - before) / seconds
    rss = process.memory_info().rss / 2**20
    before = cpu_seconds(process)
    took, size, text = scrape(metrics_url)
    return {"idle_cpu": max(0.0, cpu), "rss_mib": rss, "idle_reconciles": reconciles(text) - count,
            "scrape_seconds": took, "scrape_kib": size / 1024, "scrape_cpu": cpu_seconds(process) - before}


def react(kube: KubeEmulator, changes: int, rng: random.Random, timeout: float,
          mid_rollout: bool = False) -> list[float]:
    """Seconds from a spec change to the operator's first write after it, ``changes`` times,
    each to a ModelDeployment picked at random among the Healthy ones (``mid_rollout``: among
    all, each in the middle of a rollout); ``math.inf`` when no write came within ``timeout``
    (counted, and the run goes on)."""
    found = []
    for i in range(changes):
        name = rng.choice(sorted(n for n, phase in phases(kube).items() if mid_rollout or phase == "Healthy"))
        sent = time.time()
        kube.merge_patch(MD, "ModelDeployment", name, {"spec": {"model": spec(f"2.0.{i}")["model"]}},
                         NAMESPACE)
        try:
            found.append(wait_for(lambda name=name, sent=sent: first_write(kube, name, sent), timeout,
                                  f"the operator to react to {name}", poll_seconds=0.01))
        except TimeoutError:
            found.append(math.inf)
        if mid_rollout:  # back to its rollout; the next change goes to another one
            kube.merge_patch(MD, "ModelDeployment", name,
                             {"spec": {"model": spec(MID_ROLLOUT_VERSION)["model"]}}, NAMESPACE)
            time.sleep(1.0)
            continue
        kube.merge_patch(MD, "ModelDeployment", name, {"spec": {"model": spec("1.0.0")["model"]}}, NAMESPACE)
        with contextlib.suppress(TimeoutError):  # a slow settle delays the next change, nothing more
            wait_for(lambda name=name: settled(kube, name), timeout, f"{name} settled again",
                     poll_seconds=0.1)
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


PROFILE_SITE = """\
import atexit, cProfile
_profile = cProfile.Profile()
_profile.enable()
atexit.register(lambda: (_profile.disable(), _profile.dump_stats({path!r})))
"""


def profile_environment(folder: Path, work: Path, pythonpath: str | None) -> dict[str, str]:
    """PYTHONPATH entries for a sitecustomize.py that profiles the operator's main thread."""
    site = work / "profile-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(PROFILE_SITE.format(path=str(folder / "operator.prof")))
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), pythonpath]))}


def profile_on_loop(kube: KubeEmulator, profile: cProfile.Profile, on: bool) -> None:
    """cProfile follows one thread: switch it on (or off) from the emulator's own loop."""
    async def switch() -> None:
        if on:
            profile.enable()
        else:
            profile.disable()

    kube.on_loop_async(switch)


def print_profile(path: Path, title: str) -> None:
    print(f"\n## {title}: {path}\n", flush=True)
    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(25)


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
    parser.add_argument("--resync-seconds", type=float, default=300.0, help="the operator's default")
    parser.add_argument("--operator-source", default=None, help="git revision to run the operator from")
    parser.add_argument("--react-timeout", type=float, default=60.0,
                        help="a change with no write from the operator this long after it counts as missed")
    parser.add_argument("--profile", type=Path, default=None, help="folder for cProfile output")
    parser.add_argument("--grow-timeout", type=float, default=600.0,
                        help="measure anyway when not all are Healthy this long after they were added")
    parser.add_argument("--mid-rollout", action="store_true",
                        help="once grown, put every ModelDeployment in the middle of a rollout that never "
                        "ends (its candidate never passes the gate), then measure")
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
            if args.profile:
                args.profile.mkdir(parents=True, exist_ok=True)
                extra = profile_environment(args.profile.resolve(), work, extra.get("PYTHONPATH"))
                emulator_profile = cProfile.Profile()
                profile_on_loop(kube, emulator_profile, True)
            os.environ.update(extra)  # the operator process inherits it
            with StatusKubelet(kube.kubeconfig_for(KUBELET), [NAMESPACE]) as kubelet:
                flags = () if args.operator_source else ("--resync-seconds", f"{args.resync_seconds:g}")
                operator = OperatorProcess(kube.kubeconfig_for(OPERATOR), NAMESPACE, work / "operator.log",
                                           args.tick_seconds, flags)
                os.environ.clear()
                os.environ.update(env_before)
                try:
                    operator.wait_healthy(60)
                    process, this = psutil.Process(operator.pid), psutil.Process()
                    for size in sizes:
                        operator_cpu, own_cpu = cpu_seconds(process), cpu_seconds(this)
                        took, healthy = grow(kube, size, timeout=args.grow_timeout)
                        operator_cpu = cpu_seconds(process) - operator_cpu
                        own_cpu = cpu_seconds(this) - own_cpu
                        rollouts = {}
                        if args.mid_rollout:
                            rollouts["rollouts_seconds"] = start_rollouts(kube, args.grow_timeout)
                        time.sleep(5)  # the last writes' wake-ups settle
                        calls = operator_calls(kube)
                        quiet = idle(process, operator.metrics_url, args.idle_seconds)
                        after = operator_calls(kube)
                        window = {verb: (after.get(verb, 0) - calls.get(verb, 0)) / args.idle_seconds
                                  for verb in after}
                        reactions = react(kube, args.changes, rng, args.react_timeout, args.mid_rollout)
                        row = {"size": size, "grow_seconds": took, "healthy": healthy, **quiet, **rollouts,
                               "calls_per_second": window,
                               "grow_cpu_operator": operator_cpu, "grow_cpu_emulator": own_cpu,
                               "p50": statistics.median(reactions), "p99": percentile(reactions, 0.99),
                               "max": max(reactions), "kubelet_writes": kubelet.writes}
                        rows.append(row)
                        print(f"{size}: {row}", flush=True)
                        # Written after every size: a larger size that breaks keeps the smaller ones.
                        (results / f"operator-{stamp}.md").write_text(render(args, rows, stamp))
                finally:
                    operator.stop()
                    if args.profile:
                        profile_on_loop(kube, emulator_profile, False)
                        emulator_profile.dump_stats(str(args.profile / "emulator.prof"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.profile:
        print_profile(args.profile / "operator.prof", "operator, main thread")
        print_profile(args.profile / "emulator.prof", "emulator's loop thread")
    report = render(args, rows, stamp)
    (results / f"operator-{stamp}.md").write_text(report)
    print(report)
    return 0


def calls_text(per_second: dict[str, float]) -> str:
    total = sum(per_second.values())
    parts = ", ".join(f"{verb} {rate:.1f}" for verb, rate in sorted(per_second.items()) if rate)
    return f"{total:.1f} ({parts})" if parts else "0"


def seconds(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else "missed"


def render(args, rows: list[dict], stamp: str) -> str:
    lines = [f"# Operator scale, run operator-{stamp}", "",
             f"operator: {'git ' + args.operator_source if args.operator_source else 'this tree'}; "
             f"--tick-seconds {args.tick_seconds:g}; --resync-seconds {args.resync_seconds:g}; "
             f"idle window {args.idle_seconds:g} s; "
             f"{args.changes} spec changes per size"
             + ("; every ModelDeployment mid-rollout (--mid-rollout)" if args.mid_rollout else ""), "",
             f"machine: {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
             f"load average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}", "",
             "| ModelDeployments | to all Healthy s | growth CPU s: operator / emulator+kubelet "
             "| operator RSS MiB | idle CPU (share of one core) | reconciles in idle window "
             "| /metrics scrape s, KiB, operator CPU s | reaction p50 s | reaction p99 s | max s "
             "| operator API calls/s in the idle window |",
             "|---:|---:|---|---:|---:|---:|---|---:|---:|---:|---|"]
    for r in rows:
        grown = f"{r['grow_seconds']:.1f}" if r["healthy"] >= r["size"] else \
            f"> {r['grow_seconds']:.0f} ({r['healthy']} Healthy)"
        lines.append(f"| {r['size']} | {grown} | "
                     f"{r['grow_cpu_operator']:.1f} / {r['grow_cpu_emulator']:.1f} | "
                     f"{r['rss_mib']:.0f} | {r['idle_cpu']:.3f} | {r['idle_reconciles']:.0f} | "
                     f"{r['scrape_seconds']:.3f}, {r['scrape_kib']:.0f}, {r['scrape_cpu']:.2f} | "
                     f"{seconds(r['p50'])} | {seconds(r['p99'])} | {seconds(r['max'])} | "
                     f"{calls_text(r['calls_per_second'])} |")
    last = next((r for r in rows if r["size"] == 1000), None)
    if last:
        lines += ["", "Targets at 1,000 (this machine):",
                  f"- RSS <= 300 MiB: {'MET' if last['rss_mib'] <= 300 else 'NOT MET'} "
                  f"({last['rss_mib']:.0f} MiB)",
                  f"- idle CPU <= 10% of one core: {'MET' if last['idle_cpu'] <= 0.10 else 'NOT MET'} "
                  f"({100 * last['idle_cpu']:.1f}%)",
                  f"- p99 reaction <= 5 s: {'MET' if last['p99'] <= 5 else 'NOT MET'} "
                  f"({seconds(last['p99'])} s)"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
