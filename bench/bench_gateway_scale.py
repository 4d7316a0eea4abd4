"""Gateway with 1,000 models in its route table: per-request cost, route changes, memory.

Four `modelrollout gateway` processes in front of one `modelrollout serve` (the tiny model,
served as ``m0000``: the gateway forwards the model name as the client sent it),
all running at once: route table from a file with 1 model and with 1,000, and from the
Kubernetes API (the harness's API server in this process: ModelDeployments whose
status.route the bench writes, and EndpointSlices) with 1 and with 1,000. Every model's
one revision points at the same server; requests go to one model (``m0000``).

* Per-request cost: wrk (bench/post.lua, ``-c<concurrency>``) against each gateway in
  interleaved rounds; 2xx/s, p50, p99, and the gateway's CPU per request (its process's
  utime + stime over the measured seconds / requests). The 1,000-model gateway is compared
  with the 1-model one of the same source, round by round.
* Route change: ``--changes`` times, the last model's (``m0999``) revision is renamed (the weight all
  on the new name; the route file rewritten atomically, or status.route patched), and a
  client asks that model every 5 ms until an answer carries the new name in
  X-Modelrollout-Revision: the time from the write to that answer.
* Memory: RSS of each gateway process after the load.

Usage (from the repository root; wrk from Debian's package):

    .venv/bin/python bench/bench_gateway_scale.py [--models 1000] [--rounds 3] [--seconds 5]
                                                  [--concurrency 8] [--changes 10]

Prints a markdown report and writes it to bench/results/gateway-scale-<timestamp>.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gateway import Proc, upstream_server  # noqa: E402 - bench helpers, by path
from bench_server import HOST, VENV_BIN, free_port, run_wrk, write_model_and_body  # noqa: E402

from modelrollout.harness.emulator import KubeEmulator  # noqa: E402
from modelrollout.install_manifests import model_deployment_crd  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "bench"
MD = "modelrollout.io/v1alpha1"
MEASURED = "m0000"  # the model every measured request asks for


def models(count: int) -> list[str]:
    return [f"m{i:04d}" for i in range(count)]


def last(count: int) -> str:
    """The model whose route the change timings rename (m0999 of 1,000)."""
    return models(count)[-1]


def file_routes(path: Path, count: int, endpoint: str, changed: str | None = None) -> None:
    def revision(name: str) -> dict:
        return {"name": changed if changed and name == renamed else "stable", "role": "stable",
                "weight": 100, "endpoints": [endpoint]}

    renamed = last(count)

    doc = {"models": {name: {"revisions": [revision(name)]} for name in models(count)}}
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(doc))
    os.replace(partial, path)  # atomic: the gateway never reads half a file


def route_of(name: str, revision: str) -> dict:
    return {"model": name, "revisions": [{"name": revision, "role": "stable", "weight": 100,
                                          "service": f"{name}-svc"}]}


def add_model(kube: KubeEmulator, name: str, namespace: str, port: int) -> None:
    """A ModelDeployment with the route the operator would write, and its revision's slice."""
    kube.create({"apiVersion": MD, "kind": "ModelDeployment",
                 "metadata": {"name": name, "namespace": namespace},
                 "spec": {"model": {"uri": "https://models.example.com/m.onnx", "version": "1"},
                          "server": {"image": "x"}, "strategy": {"canary": {"steps": [{"setWeight": 1}]}}}})
    set_route(kube, name, namespace, "stable")
    kube.create({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                 "metadata": {"name": f"{name}-svc-x", "namespace": namespace,
                              "labels": {"kubernetes.io/service-name": f"{name}-svc"}},
                 "addressType": "IPv4", "endpoints": [{"addresses": [HOST], "conditions": {"ready": True}}],
                 "ports": [{"name": "http", "port": port, "protocol": "TCP"}]})


def set_route(kube: KubeEmulator, name: str, namespace: str, revision: str) -> None:
    kube.merge_patch(MD, "ModelDeployment", name, {"status": {"route": route_of(name, revision)}}, namespace,
                     "status")


def gateway(label: str, source: list[str], log: Path) -> Proc:
    port = free_port()
    cmd = [str(VENV_BIN / "modelrollout"), "gateway", *source, "--host", HOST, "--port", str(port),
           "--grace-seconds", "2"]
    return Proc(label, cmd, port, log)


def served_status(port: int, body: bytes) -> int:
    connection = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        connection.request("POST", f"/v2/models/{MEASURED}/infer", body, {"Content-Type": "application/json"})
        answer = connection.getresponse()
        answer.read()
        return answer.status
    finally:
        connection.close()


def served_revision(port: int, model: str, body: bytes) -> str | None:
    connection = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        connection.request("POST", f"/v2/models/{model}/infer", body, {"Content-Type": "application/json"})
        answer = connection.getresponse()
        answer.read()
        return answer.getheader("x-modelrollout-revision")
    finally:
        connection.close()


def time_change(port: int, body: bytes, model: str, change, new: str) -> float:
    """Seconds from ``change()`` (the write) to the first answer from revision ``new``."""
    started = time.monotonic()
    change()
    while time.monotonic() - started < 30:
        if served_revision(port, model, body) == new:
            return time.monotonic() - started
        time.sleep(0.005)
    raise TimeoutError(f"revision {new} not served within 30 s")


@dataclass
class Contender:
    label: str
    process: Proc
    slices: list[dict] = field(default_factory=list)

    def measure(self, body_file: Path, concurrency: int, seconds: int) -> None:
        url = f"{self.process.base}/v2/models/{MEASURED}/infer"
        run_wrk(url, body_file, concurrency, 1)  # warm-up
        cpu0 = self.process.cpu_seconds()
        parsed, _ = run_wrk(url, body_file, concurrency, seconds)
        cpu = self.process.cpu_seconds() - cpu0
        parsed["cpu_us"] = 1e6 * cpu / max(1, parsed["requests"])
        self.slices.append(parsed)
        print(f"  {self.label:16} {parsed['requests'] / parsed['duration_s']:7.0f} req/s  "
              f"p50 {parsed['p50_ms']:.3f} ms  p99 {parsed['p99_ms']:.3f} ms  "
              f"CPU {parsed['cpu_us']:.0f} µs/req  non-2xx {parsed['non2xx']}", flush=True)

    def total(self, key: str) -> float:
        return sum(s[key] for s in self.slices)

    @property
    def rps(self) -> float:
        return (self.total("requests") - self.total("non2xx")) / self.total("duration_s")

    @property
    def cpu_us(self) -> float:
        return statistics.median(s["cpu_us"] for s in self.slices)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--changes", type=int, default=10)
    args = parser.parse_args()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-gateway-scale-"))
    _, model_path, body_file = write_model_and_body(work, "tiny")
    body = body_file.read_bytes()
    started: list[Proc] = []
    (work / "kube").mkdir()
    try:
        with KubeEmulator(work / "kube") as kube:
            kube.define_crd(model_deployment_crd())
            upstream = upstream_server(model_path, work / "server.log", MEASURED)
            started.append(upstream)
            try:
                upstream.start()
                upstream.wait_ready()
                endpoint = f"{HOST}:{upstream.port}"
                one, many = work / "routes-1.json", work / "routes-many.json"
                file_routes(one, 1, endpoint)
                file_routes(many, args.models, endpoint)
                t0 = time.monotonic()
                for name in models(args.models):
                    add_model(kube, name, NAMESPACE, upstream.port)
                add_model(kube, "m0000", "one", upstream.port)  # the 1-model gateway watches only "one"
                print(f"{args.models} ModelDeployments written in {time.monotonic() - t0:.1f} s", flush=True)
                def on_kubernetes(namespace: str) -> list[str]:
                    return ["--kubernetes", "--kubeconfig", str(kube.kubeconfig_for(f"gateway-{namespace}")),
                            "--namespace", namespace]

                contenders = [
                    Contender("file, 1", gateway("file-1", ["--routes", str(one)], work / "g1.log")),
                    Contender(f"file, {args.models}",
                              gateway("file-n", ["--routes", str(many)], work / "gn.log")),
                    Contender("kubernetes, 1", gateway("k8s-1", on_kubernetes("one"), work / "k1.log")),
                    Contender(f"kubernetes, {args.models}",
                              gateway("k8s-n", on_kubernetes(NAMESPACE), work / "kn.log")),
                ]
                for contender in contenders:
                    started.append(contender.process)
                    contender.process.start()
                    contender.process.wait_ready(timeout=120)
                    # Every figure below would otherwise be the cost of an error answer.
                    deadline = time.monotonic() + 60
                    while (status := served_status(contender.process.port, body)) != 200:
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"{contender.label}: {MEASURED} answered {status} "
                                               "through the gateway")
                        time.sleep(0.2)
                for round_no in range(args.rounds):
                    print(f"round {round_no + 1}", flush=True)
                    order = contenders if round_no % 2 == 0 else contenders[::-1]
                    for contender in order:
                        contender.measure(body_file, args.concurrency, args.seconds)
                changes = {"file": [], "kubernetes": []}
                many_file, many_kube = contenders[1].process, contenders[3].process
                changed = last(args.models)
                for i in range(args.changes):
                    new = f"r{i}"
                    changes["file"].append(time_change(
                        many_file.port, body, changed,
                        lambda new=new: file_routes(many, args.models, endpoint, new), new))
                    changes["kubernetes"].append(time_change(
                        many_kube.port, body, changed,
                        lambda new=new: set_route(kube, changed, NAMESPACE, new), new))
                memory = {c.label: psutil.Process(c.process.pid).memory_info().rss / 2**20
                          for c in contenders}
            finally:
                for process in started:
                    process.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = render(args, contenders, changes, memory, stamp)
    (results / f"gateway-scale-{stamp}.md").write_text(report)
    print(report)
    return 0


def render(args, contenders: list[Contender], changes: dict, memory: dict, stamp: str) -> str:
    lines = [f"# Gateway with {args.models} models, run gateway-scale-{stamp}", "",
             f"machine: {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
             f"load average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
             f"wrk -c{args.concurrency}, {args.rounds} interleaved rounds of {args.seconds} s", "",
             "| route table | 2xx/s | per round | p50 ms | p99 ms "
             "| gateway CPU µs/request (median of rounds) "
             "| RSS MiB |", "|---|---:|---|---:|---:|---:|---:|"]
    for c in contenders:
        per_round = " / ".join(f"{(s['requests'] - s['non2xx']) / s['duration_s']:.0f}" for s in c.slices)
        lines.append(f"| {c.label} | {c.rps:.0f} | {per_round} | "
                     f"{statistics.median(s['p50_ms'] for s in c.slices):.3f} | "
                     f"{statistics.median(s['p99_ms'] for s in c.slices):.3f} | {c.cpu_us:.0f} | "
                     f"{memory[c.label]:.0f} |")
    lines += ["", f"| route change (model {last(args.models)} renamed) | p50 s | max s | all |",
              "|---|---:|---:|---|"]
    for source, times in changes.items():
        lines.append(f"| {source} | {statistics.median(times):.3f} | {max(times):.3f} | "
                     f"{', '.join(f'{t:.3f}' for t in times)} |")
    lines += ["", "Targets:"]
    for source, (one, many) in (("file", contenders[:2]), ("kubernetes", contenders[2:])):
        ratio = many.cpu_us / one.cpu_us
        rounds = [b["cpu_us"] / a["cpu_us"] for a, b in zip(one.slices, many.slices, strict=True)]
        lines.append(f"- {source}: per-request CPU with {args.models} models within 10% of one model: "
                     f"{'MET' if ratio <= 1.10 else 'NOT MET'} ({ratio:.3f}x; per round "
                     f"{', '.join(f'{r:.3f}' for r in rounds)}); 2xx/s {many.rps / one.rps:.3f}x")
        worst = max(changes[source])
        verdict = "MET" if worst <= 1.0 else "NOT MET"
        lines.append(f"- {source}: a route change applied within 1 s: {verdict} "
                     f"(slowest {worst:.3f} s of {len(changes[source])})")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
