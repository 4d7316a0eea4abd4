"""Shadow benchmark: what mirroring every request to a second revision costs the client.

One run, side by side, on this machine: two `modelrollout serve` processes (stable and
shadow, the same tiny model ``build_mlp([4, 16, 3])``) and two `modelrollout gateway`
processes that differ only in their route file:

* mirror 0%   - stable at weight 100; the shadow revision is in the route at weight 0,
  nothing is copied to it;
* mirror 100% - the same route plus ``mirror: {revision: shadow, percent: 100}``: every
  request is copied to the shadow after the client's answer is on its way, and the two
  answers are compared (serving/gateway/mirror.py, compare.py).

Two loads, each measured in interleaved rounds (bench_server.run_rounds: every contender
one slice per round, order reversed every other round):

* paced - wrk ``-t1 -c1`` with bench/post_paced.lua: one connection, ``--pace-ms`` (5 ms)
  between an answer and the next request, about 200 requests a second: the latency a
  client sees at a load the machine carries;
* saturated - wrk ``-t1 -c1`` and ``-c8`` with bench/post.lua, as fast as answers come: on
  2 cores both servers, the gateway and wrk share the machine, so here the shadow's
  inference and the gateway's copy and comparison take CPU from the client's requests
  (a cluster runs the shadow's pods elsewhere).

Reported: req/s, client p50 and p99 (median over the rounds), the ratio of each to mirror
0%, and the gateway's shadow counters (copies sent, dropped, compared, agreeing). The
target: the shadow costs the client at most 10% at p50 (issue 9), read at the paced load.

Usage (from the repository root):

    .venv/bin/python bench/bench_mirror.py [--duration 12] [--rounds 3] [--warmup 2]

Prints a markdown report and writes it to bench/results/mirror-<timestamp>.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench_gateway import Entry, Proc, gateway_process, upstream_server
from bench_server import (
    BENCH,
    HOST,
    MODELS,
    ROOT,
    Server,
    check_answer,
    code_version,
    http,
    loadavg,
    machine_info,
    run_rounds,
    slice_seconds,
    write_model_and_body,
)
from modelrollout.serving.contract.metric_names import GATEWAY_MIRRORED, SHADOW_COMPARISONS
from prometheus_client.parser import text_string_to_metric_families

MODEL = "tiny"
LOADS = ("paced c1", "saturated c1", "saturated c8")
CONTENDERS = ("mirror 0%", "mirror 100%")
MAX_P50_RATIO = 1.10


@dataclass
class Load(Entry):
    """bench_gateway's Entry, named by its load (LOADS)."""

    load: str = ""

    @property
    def scenario(self) -> str:
        return self.load


def route_file(path: Path, stable: Server, shadow: Server, percent: int) -> dict:
    route: dict = {"revisions": [
        {"name": "stable", "role": "stable", "weight": 100, "endpoints": [f"{HOST}:{stable.port}"]},
        {"name": "shadow", "role": "candidate", "weight": 0, "endpoints": [f"{HOST}:{shadow.port}"]},
    ]}
    if percent:
        route["mirror"] = {"revision": "shadow", "percent": percent}
    doc = {"models": {"m": route}}
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def p50(entry: Entry) -> float:
    return statistics.median(s.p50_ms for s in entry.slices)


def p99(entry: Entry) -> float:
    return statistics.median(s.p99_ms for s in entry.slices)


def table(entries: list[Load]) -> tuple[str, list[str]]:
    lines = ["| load | mirror | req/s | p50 ms | p99 ms | p50 / mirror 0% | p99 / mirror 0% |",
             "|---|---|---|---|---|---|---|"]
    verdicts = []
    for load in LOADS:
        base, mirrored = (next(e for e in entries if e.load == load and e.contender == name)
                          for name in CONTENDERS)
        for entry in (base, mirrored):
            lines.append(f"| {load} | {entry.contender.split()[1]} | {entry.rps:.0f} | {p50(entry):.3f} | "
                         f"{p99(entry):.3f} | {p50(entry) / p50(base):.2f} | {p99(entry) / p99(base):.2f} |")
        ratio = p50(mirrored) / p50(base)
        verdict = "MET" if ratio <= MAX_P50_RATIO else "NOT MET"
        target = "target" if load.startswith("paced") else "for reference; the target is read paced"
        verdicts.append(f"- {load}: client p50 with a 100% mirror is {ratio:.2f}x the p50 without "
                        f"({target}: at most {MAX_P50_RATIO:.2f}x): **{verdict}**")
    return "\n".join(lines), verdicts


def shadow_counts(gateway: Server) -> dict[str, float]:
    """The mirroring gateway's copies by result (sent, dropped, failed) and comparisons."""
    status, body = http("GET", gateway.base + "/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    counts = {}
    for family in text_string_to_metric_families(body.decode()):
        if family.name in (GATEWAY_MIRRORED, SHADOW_COMPARISONS):
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    name = family.name.removeprefix("modelrollout_")
                    counts[f"{name} {sample.labels['result']}"] = sample.value
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=12,
                        help="measured seconds per contender and concurrency, split over the rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2, help="seconds of wrk before each run")
    parser.add_argument("--quiet-wait", type=float, default=0.0,
                        help="before each run wait up to this long for the machine to go idle")
    parser.add_argument("--pace-ms", type=int, default=5, help="paced load: wait between answer and request")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    args = parser.parse_args()
    slice_s = slice_seconds(args)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    logs = args.out / f"mirror-{stamp}-logs"
    logs.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    processes: list[Proc] = []
    work = Path(tempfile.mkdtemp(prefix="bench-mirror-"))
    entries: list[Load] = []
    counts: dict[str, float] = {}
    try:
        _, model_path, body = write_model_and_body(work, MODEL)

        def start(proc: Proc) -> Proc:
            processes.append(proc)
            proc.start()
            proc.wait_ready()
            check_answer(proc, body.read_bytes(), MODELS[MODEL][-1])
            return proc

        stable = start(upstream_server(model_path, logs / "stable.log"))
        shadow = start(upstream_server(model_path, logs / "shadow.log"))
        gateways = {}
        for name, percent in zip(CONTENDERS, (0, 100), strict=True):
            routes = work / f"routes-{percent}.json"
            route_file(routes, stable, shadow, percent)
            shutil.copy(routes, logs / routes.name)
            gateways[name] = start(gateway_process(routes, logs / f"gateway-{percent}.log"))
        entries = [Load(int(load[-1]), name, gateways[name], stable, body,
                        pace_ms=args.pace_ms if load.startswith("paced") else 0, load=load)
                   for load in LOADS for name in CONTENDERS]
        print(f"{len(entries)} contenders, {args.rounds} interleaved rounds of {slice_s} s each", flush=True)
        run_rounds(entries, args.rounds, slice_s, args.warmup, args.quiet_wait)
        counts = shadow_counts(gateways["mirror 100%"])
    finally:
        for proc in reversed(processes):
            proc.stop()
        shutil.rmtree(work, ignore_errors=True)
    info["load average at end (1/5/15 min)"] = loadavg()
    rows, verdicts = table(entries)
    report = "\n".join([
        f"# Shadow mirroring: client latency with and without a 100% mirror ({stamp})", "",
        "Command: `.venv/bin/python bench/bench_mirror.py " + " ".join(sys.argv[1:]) + "`",
        f"Code: {code_version()}", "",
        "Machine: " + "; ".join(f"{k}: {v}" for k, v in info.items()), "",
        rows, "", *verdicts, "",
        "Shadow counters of the mirroring gateway over the whole run: "
        + ", ".join(f"{k} = {v:.0f}" for k, v in sorted(counts.items())), "",
    ])
    out_file = args.out / f"mirror-{stamp}.md"
    out_file.write_text(report)
    print(report)
    shown = out_file.relative_to(ROOT) if out_file.is_relative_to(ROOT) else out_file
    print(f"written: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
