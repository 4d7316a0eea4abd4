"""Cost of the model-aware signals per request: `modelrollout serve` on the tiny model with a
profile.json beside it vs without, at concurrency 8, in one run (docs/benchmarks.md,
"Model-aware signals").

Three variants of the same server, each its own process started through the CLI on
127.0.0.1, measured in interleaved rounds exactly as bench_server.py measures (wrk -t1
-c<concurrency>, order reversed every other round):

* ``no monitor``      - the monitor's ``observe`` replaced by a no-op (a sitecustomize.py
  on PYTHONPATH, as bench/ab_server.py does): the server as it was before these signals;
* ``without profile`` - as shipped, no profile.json: prediction distribution and feedback
  store only;
* ``with profile``    - as shipped, with a profile.json of the model's 4 features (built by
  `modelrollout profile` from 5000 standard-normal rows): input checks and drift as well.

Per-request cost is 1 / throughput (the server is saturated at concurrency 8) and the
server's CPU time per answered request; the monitor thread's own CPU time per request
(modelrollout_server_monitor_cpu_seconds_total) is the part other tenants of the machine
cannot blur. After the rounds the script checks from /metrics that the monitor saw every
answered request (a monitor that dropped work would look cheap).

With ``--together`` each round loads all three at the same time instead (one wrk each),
so that bursts of other load on a shared machine hit them alike; the throughput ratio is
then the ratio of per-request costs, since the kernel shares the CPUs between them.

Usage (from the repository root; needs wrk, `apt-get install -y wrk`):

    .venv/bin/python bench/bench_gates.py [--concurrency 8] [--rounds 5] [--seconds 4] [--warmup 2]
                                          [--quiet-wait 0] [--together]

Prints a markdown report and writes it to bench/results/gates-<timestamp>.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from bench_server import (
    BENCH,
    HOST,
    VENV_BIN,
    Entry,
    Server,
    fmt,
    free_port,
    http,
    machine_info,
    modelrollout_server,
    run_rounds,
    wait_for_quiet,
    write_model_and_body,
)
from prometheus_client.parser import text_string_to_metric_families

NO_MONITOR = """\
import modelrollout.serving.server.monitor as _monitor
_monitor.Monitor.observe = lambda self, *args: None
"""
TARGET_RATIO = 1.10  # with profile / without, per-request cost


def build_variants(work: Path) -> dict[str, Path]:
    """The tiny model as two model folders: plain, and with a profile.json."""
    _, model, body = write_model_and_body(work, "tiny")
    folders = {}
    for name in ("plain", "profiled"):
        folder = work / name
        folder.mkdir()
        shutil.copy(model, folder / "model.onnx")
        folders[name] = folder
    sample = work / "reference.npy"
    np.save(sample, np.random.default_rng(2).standard_normal((5000, 4)).astype(np.float32))
    subprocess.run([str(VENV_BIN / "modelrollout"), "profile", "--model", str(folders["profiled"]),
                    "--data", str(sample), "--out", str(folders["profiled"] / "profile.json")],
                   check=True, capture_output=True, timeout=120)
    return {**folders, "body": body}


def monitor_counts(server: Server) -> dict[str, float]:
    status, body = http("GET", server.base + "/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "modelrollout_server_requests_total" and sample.labels.get("code") == "200":
                found["answered"] = found.get("answered", 0.0) + sample.value
            elif sample.name in ("modelrollout_server_monitored_rows_total",
                                 "modelrollout_server_monitor_dropped_total",
                                 "modelrollout_server_monitor_cpu_seconds_total",
                                 "modelrollout_server_input_drift_window_rows"):
                found[sample.name] = sample.value
    return found


def run_together(entries: list[Entry], rounds: int, seconds: int, warmup: int, quiet_wait: float) -> None:
    """Each round, every variant under its own wrk at once: a burst of someone else's load
    lands on all of them, and the machine's CPUs are shared between them by the kernel,
    so the ratio of their throughputs is the ratio of their costs per request. (The
    machine-wide CPU columns then mix the variants: read the per-request figures.)"""
    for round_no in range(rounds):
        if quiet_wait:
            wait_for_quiet(quiet_wait)
        threads = [threading.Thread(target=entry.measure, args=(round_no, seconds, warmup))
                   for entry in entries]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=4, help="measured seconds per round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--together", action="store_true",
                        help="load every variant at the same time in each round (each with its own wrk), "
                             "so other tenants of the machine hit them alike")
    parser.add_argument("--quiet-wait", type=float, default=0.0,
                        help="before each measured slice, wait up to this many seconds for the machine "
                             "to go idle")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-gates-"))
    info = machine_info()
    started = datetime.now(UTC)
    servers: list[Server] = []
    entries: list[Entry] = []
    try:
        built = build_variants(work)
        site = work / "site-no-monitor"
        site.mkdir()
        (site / "sitecustomize.py").write_text(NO_MONITOR)
        variants = [("no monitor", built["plain"], {"PYTHONPATH": str(site)}),
                    ("without profile", built["plain"], {}),
                    ("with profile", built["profiled"], {})]
        for label, folder, env in variants:
            server = modelrollout_server(folder, free_port(), work / f"{label.replace(' ', '-')}.log", [])
            server.env = {**os.environ, **env}
            servers.append(server)
            server.start()
            server.wait_ready()  # one start-up at a time: warm-up timings decide inline inference
            print(f"{label}: {server.ready_facts()}", flush=True)
            entries.append(Entry(f"tiny c{args.concurrency}", "tiny", args.concurrency,
                                 f"modelrollout {label}", server, built["body"]))
        if args.together:
            run_together(entries, args.rounds, args.seconds, args.warmup, args.quiet_wait)
        else:
            run_rounds(entries, args.rounds, args.seconds, args.warmup, args.quiet_wait)
        counts = {e.contender: monitor_counts(e.server) for e in entries}
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    report = render(entries, counts, info, args, started)
    print(report)
    results = BENCH / "results"
    results.mkdir(exist_ok=True)
    path = results / f"gates-{started.strftime('%Y%m%d-%H%M%S')}.md"
    path.write_text(report)
    print(f"written to {path}")
    return 0


def render(entries: list[Entry], counts: dict[str, dict], info: dict, args, started: datetime) -> str:
    by = {e.contender.removeprefix("modelrollout "): e for e in entries}
    lines = [f"# Model-aware signals: per-request cost ({started:%Y-%m-%d %H:%M} UTC)", "",
             f"wrk -t1 -c{args.concurrency}, {args.rounds} "
             f"{'rounds with every variant loaded at once' if args.together else 'interleaved rounds'} "
             f"of {args.seconds} s "
             f"(after {args.warmup} s of warm-up each; quiet wait {args.quiet_wait:g} s), tiny model "
             f"[4, 16, 3], batch-1 JSON, {HOST}.", "",
             "| variant | 2xx/s | per round | µs per request (1/throughput) | server CPU µs per request "
             "| monitor thread CPU µs per request | p50 ms | p99 ms | CPU server / wrk / other "
             "| monitored rows / answered | dropped |",
             "|---|---:|---|---:|---:|---:|---:|---:|---|---|---:|"]
    for name, e in by.items():
        cpu = e.cpu()
        answered = e._sum("requests") - e._sum("non2xx")
        c = counts[e.contender]
        monitored = c.get("modelrollout_server_monitored_rows_total")
        seen = "–" if monitored is None else f"{monitored:.0f} / {c.get('answered', 0):.0f}"
        # Over the server's whole life (warm-ups included), per request it answered.
        thread = c.get("modelrollout_server_monitor_cpu_seconds_total", 0.0) / max(c.get("answered", 0), 1)
        lines.append(
            f"| {name} | {e.ok_rps:.0f} | {' / '.join(f'{r:.0f}' for r in e.round_rps)} "
            f"| {1e6 / e.ok_rps:.1f} | {e._sum('server_cpu_s') / answered * 1e6:.1f} | {thread * 1e6:.1f} "
            f"| {fmt(e.p50_ms)} | {fmt(e.p99_ms)} | {cpu[0]:.2f} / {cpu[1]:.2f} / {cpu[2]:.2f} "
            f"| {seen} "
            f"| {c.get('modelrollout_server_monitor_dropped_total', 0):.0f} |")
    with_p, without_p, off = by["with profile"], by["without profile"], by["no monitor"]
    ratio = without_p.ok_rps / with_p.ok_rps  # cost per request, with / without
    per_round = [b / a for a, b in zip(with_p.round_rps, without_p.round_rps, strict=True)]
    median = statistics.median(per_round)
    cpu_ratio = (with_p._sum("server_cpu_s") / with_p._sum("requests")) / \
        (without_p._sum("server_cpu_s") / without_p._sum("requests"))
    lines += ["", f"**With a profile vs without: per-request cost x{ratio:.3f} "
                  f"({'MET' if ratio <= TARGET_RATIO else 'NOT MET'}: target at most x{TARGET_RATIO:.2f}); "
                  f"per round x{', x'.join(f'{r:.3f}' for r in per_round)} (median x{median:.3f}); "
                  f"server CPU per request x{cpu_ratio:.3f}.**",
              f"Without a profile vs no monitor at all: per-request cost "
              f"x{off.ok_rps / without_p.ok_rps:.3f}.",
              "", "Machine:", *[f"- {k}: {v}" for k, v in info.items()],
              f"- load average at end: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
