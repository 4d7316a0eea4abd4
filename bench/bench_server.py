"""Server benchmark: raw onnxruntime vs a naive FastAPI server vs `modelrollout serve`.

One run, side by side, on this machine:

* raw          - ``session.run`` in this process, batch 1, one thread (the limit);
* naive        - bench/naive_server.py under ``uvicorn`` (1 worker, default settings);
* modelrollout - ``modelrollout serve`` started through its CLI, without and with
  dynamic batching (``--max-batch-size 32`` and a few ``--max-queue-delay-us``).

Each server is its own process and the load generator is ``wrk`` (another process,
``-t1 -c<concurrency>``, bench/post.lua): a Python load generator would eat the CPU
the servers need. Requests are V2 JSON bodies, batch 1, FP32.

The machine may be shared and noisy, so the contenders of a scenario are measured in
interleaved rounds (A B C, C B A, A B C, ...): every server of a model is started up
front and each gets one slice of load per round, so a burst of someone else's load
hits all contenders alike instead of one of them. Throughput is total requests over
total measured time; p50/p99 are the median over the rounds; the CPU that the rest of
the machine used during each contender's slices is reported next to its numbers.

Everything talks to 127.0.0.1 only; every process started here is stopped in
``finally`` blocks, and every wait has a time limit.

Usage (from the repository root):

    .venv/bin/python bench/bench_server.py [--duration 12] [--rounds 3] [--warmup 2]
                                           [--delays 500,2000,5000]

Prints a markdown report and writes it to bench/results/server-<timestamp>.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import resource
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnxruntime as ort
from modelrollout.serving.examples import build_mlp
from modelrollout.serving.server.cpu import usable_cpus
from modelrollout.serving.server.runtime import ModelRuntime, RuntimeOptions
from prometheus_client.parser import text_string_to_metric_families

from modelrollout.harness.process import Process

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV_BIN = Path(sys.executable).parent
LUA = BENCH / "post.lua"
PACED_LUA = BENCH / "post_paced.lua"
HOST = "127.0.0.1"

# The same sizes as tests/support/models.py (TINY_SIZES, LARGE_SIZES).
MODELS = {
    "tiny": [4, 16, 3],
    "2.6M": [512, 1024, 1024, 1024, 10],
}
STAGES = ("decode", "queue", "infer", "encode")
STAGE_METRIC = "modelrollout_server_stage_duration_seconds"
BATCH_METRIC = "modelrollout_server_batch_size"
REQUEST_METRIC = "modelrollout_server_request_duration_seconds"

# Other tenants using more CPUs than this during a contender's runs make them "noisy".
NOISY_CPU = 0.25
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0


# --------------------------------------------------------------------------- processes


def write_model_and_body(work: Path, name: str, rng=None) -> tuple[bytes, Path, Path]:
    """Build model ``name`` of MODELS into ``work`` with a batch-1 V2 JSON request body for
    it; (model bytes, model path, body path). ``rng`` defaults to the seed every script uses."""
    sizes = MODELS[name]
    model_bytes = build_mlp(sizes, seed=0)
    model = work / f"{name}.onnx"
    model.write_bytes(model_bytes)
    rng = rng if rng is not None else np.random.default_rng(1)
    body = work / f"{name}.json"
    body.write_text(json.dumps({"inputs": [{
        "name": "input", "shape": [1, sizes[0]], "datatype": "FP32",
        "data": [round(float(v), 6) for v in rng.standard_normal(sizes[0])],
    }]}))
    return model_bytes, model, body


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: bytes | None = None,
         timeout: float = 5.0) -> tuple[int, bytes]:
    assert url.startswith(f"http://{HOST}:"), url  # loopback only
    req = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Server(Process):
    """A server subprocess (the harness's process wrapper): started, waited for, always stopped."""

    def __init__(self, label: str, cmd: list[str], port: int, log_path: Path,
                 env: dict | None = None, cwd: Path | None = None) -> None:
        self.label = label
        self.port = port
        log_path.unlink(missing_ok=True)
        super().__init__(cmd, log_path, env=env, cwd=cwd, start=False)

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def cmd(self) -> list[str]:
        return self.args

    def wait_ready(self, path: str = "/v2/health/ready", timeout: float = READY_TIMEOUT_S) -> None:
        self.wait_until_healthy(self.base + path, timeout)

    def cpu_seconds(self) -> float:
        """utime + stime of the server process (all its threads)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        return super().stop(timeout)

    def ready_facts(self) -> str:
        """What `modelrollout serve` logged about the loaded model (threads, inline, ...)."""
        try:
            for line in self.log_path.read_text(errors="replace").splitlines():
                if '"model ready"' in line:
                    doc = json.loads(line)
                    keys = ("intra_op_threads", "dynamic_batching", "inline",
                            "warm_run_microseconds")
                    return ", ".join(f"{k}={doc[k]}" for k in keys if k in doc)
        except (OSError, ValueError):
            pass
        return ""

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def naive_server(model_path: Path, port: int, log: Path) -> Server:
    env = {**os.environ, "NAIVE_MODEL_PATH": str(model_path)}
    cmd = [str(VENV_BIN / "uvicorn"), "naive_server:app", "--host", HOST, "--port", str(port)]
    return Server("naive", cmd, port, log, env=env, cwd=BENCH)


def modelrollout_server(model_path: Path, port: int, log: Path, extra: list[str], name: str = "m") -> Server:
    cmd = [
        str(VENV_BIN / "modelrollout"), "serve", "--model-uri", str(model_path),
        "--model-name", name, "--port", str(port), "--host", HOST, "--grace-seconds", "5", *extra,
    ]
    return Server("modelrollout", cmd, port, log)


def check_answer(server: Server, body: bytes, outputs: int) -> None:
    status, payload = http("POST", server.base + "/v2/models/m/infer", body)
    if status != 200:
        raise RuntimeError(f"{server.label}: infer answered {status}: {payload[:300]!r}")
    data = json.loads(payload)["outputs"][0]["data"]
    if len(data) != outputs or abs(sum(data) - 1.0) > 1e-3:
        raise RuntimeError(f"{server.label}: unexpected answer {payload[:300]!r}")


# --------------------------------------------------------------------------- CPU accounting


def busy_cpu_seconds() -> float:
    """CPU-seconds the whole machine has been busy (not idle/iowait), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """CPU of finished child processes (the wrk runs: servers are reaped only at the end)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def wait_for_quiet(max_wait: float, threshold: float = 0.3) -> None:
    """Wait (at most ``max_wait`` s) until the machine is under ``threshold`` busy CPUs,
    measured over 0.5 s while none of our load runs."""
    deadline = time.monotonic() + max_wait
    while time.monotonic() < deadline:
        b0 = busy_cpu_seconds()
        time.sleep(0.5)
        if (busy_cpu_seconds() - b0) / 0.5 < threshold:
            return


# --------------------------------------------------------------------------- wrk

_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_wrk(text: str) -> dict:
    """wrk's report (with --latency) plus post.lua's BENCH_RESULT line."""
    out: dict = {}
    m = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    out["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m)", text, re.M)
    out["requests"] = int(m.group(1)) if m else 0
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        out[f"p{pct}_ms"] = float(m.group(1)) * _UNIT[m.group(2)] if m else math.nan
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    out["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = sum(int(g) for g in m.groups()) if m else 0
    out["duration_s"] = out["requests"] / out["rps"] if out["rps"] else 0.0
    m = re.search(r"^BENCH_RESULT (\{.*\})\s*$", text, re.M)
    if m:  # exact microseconds from wrk's histogram (the text report rounds to 2 decimals)
        exact = json.loads(m.group(1))
        out["p50_ms"] = exact["p50_us"] / 1e3
        out["p99_ms"] = exact["p99_us"] / 1e3
        out["requests"] = exact["requests"]
        out["duration_s"] = exact["duration_us"] / 1e6
    return out


def run_wrk(url: str, body_file: Path, concurrency: int, seconds: int, pace_ms: int = 0) -> tuple[dict, str]:
    """wrk as fast as answers come, or with ``pace_ms`` between an answer and the next
    request on each connection (bench/post_paced.lua)."""
    script, extra = (PACED_LUA, [str(pace_ms)]) if pace_ms else (LUA, [])
    cmd = [
        "wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--latency",
        "-s", str(script), url, "--", str(body_file), *extra,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr}\n{proc.stdout}")
    return parse_wrk(proc.stdout), proc.stdout


# --------------------------------------------------------------------------- metrics


def scrape(server: Server) -> dict[str, float]:
    """The _sum and _count samples of the server's /metrics (stage-labelled ones by stage)."""
    status, body = http("GET", server.base + "/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name.endswith(("_sum", "_count")):
                stage = sample.labels.get("stage")
                key = f"{sample.name}[{stage}]" if stage else sample.name
                values[key] = values.get(key, 0.0) + sample.value
    return values


def mean_of(delta: dict[str, float], base: str, stage: str | None = None) -> float | None:
    suffix = f"[{stage}]" if stage else ""
    count = delta.get(f"{base}_count{suffix}", 0.0)
    return delta.get(f"{base}_sum{suffix}", 0.0) / count if count > 0 else None


# --------------------------------------------------------------------------- measurements


@dataclass
class Slice:
    """One measured wrk run against one contender."""

    round: int
    requests: int
    non2xx: int
    socket_errors: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    wall_s: float
    server_cpu_s: float
    wrk_cpu_s: float
    busy_s: float  # the whole machine
    metrics: dict[str, float]  # /metrics _sum/_count deltas over the slice
    text: str


@dataclass
class Entry:
    """One contender in one scenario, measured in slices."""

    scenario: str  # e.g. "tiny c8"
    model: str
    concurrency: int
    contender: str
    server: Server | None = None
    body: Path | None = None
    note: str = ""
    slices: list[Slice] = field(default_factory=list)
    # raw session.run has no slices: its numbers are set directly.
    raw: dict | None = None

    @property
    def is_modelrollout(self) -> bool:
        return self.contender.startswith("modelrollout")

    def measure(self, round_no: int, seconds: int, warmup: int) -> Slice:
        url = self.server.base + "/v2/models/m/infer"
        run_wrk(url, self.body, self.concurrency, warmup)  # warm-up, not counted
        before = scrape(self.server) if self.is_modelrollout else {}
        busy0, wrk0, srv0, wall0 = (busy_cpu_seconds(), children_cpu_seconds(),
                                    self.server.cpu_seconds(), time.monotonic())
        parsed, text = run_wrk(url, self.body, self.concurrency, seconds)
        busy1, wrk1, srv1, wall1 = (busy_cpu_seconds(), children_cpu_seconds(),
                                    self.server.cpu_seconds(), time.monotonic())
        after = scrape(self.server) if self.is_modelrollout else {}
        piece = Slice(
            round=round_no, requests=parsed["requests"], non2xx=parsed["non2xx"],
            socket_errors=parsed["socket_errors"], duration_s=parsed["duration_s"],
            p50_ms=parsed["p50_ms"], p99_ms=parsed["p99_ms"], wall_s=wall1 - wall0,
            server_cpu_s=srv1 - srv0, wrk_cpu_s=wrk1 - wrk0, busy_s=busy1 - busy0,
            metrics={k: after[k] - before.get(k, 0.0) for k in after}, text=text,
        )
        self.slices.append(piece)
        other = max(0.0, piece.busy_s - piece.server_cpu_s - piece.wrk_cpu_s) / piece.wall_s
        print(f"  round {round_no + 1}  {self.scenario:9} {self.contender:46} "
              f"{piece.requests / piece.duration_s:8.0f} req/s  p50 {piece.p50_ms:7.3f} ms  "
              f"p99 {piece.p99_ms:7.3f} ms  non-2xx {piece.non2xx}  CPU server/wrk/other "
              f"{piece.server_cpu_s / piece.wall_s:.2f}/{piece.wrk_cpu_s / piece.wall_s:.2f}/"
              f"{other:.2f}", flush=True)
        return piece

    # Aggregates over the slices.

    def _sum(self, name: str) -> float:
        return sum(getattr(s, name) for s in self.slices)

    @property
    def rps(self) -> float:
        if self.raw:
            return self.raw["calls_per_s"]
        return self._sum("requests") / self._sum("duration_s")

    @property
    def ok_rps(self) -> float:
        if self.raw:
            return self.raw["calls_per_s"]
        return (self._sum("requests") - self._sum("non2xx")) / self._sum("duration_s")

    @property
    def round_rps(self) -> list[float]:
        return [s.requests / s.duration_s for s in self.slices]

    @property
    def p50_ms(self) -> float:
        return self.raw["p50_ms"] if self.raw else statistics.median(s.p50_ms for s in self.slices)

    @property
    def p99_ms(self) -> float:
        return self.raw["p99_ms"] if self.raw else statistics.median(s.p99_ms for s in self.slices)

    def cpu(self) -> tuple[float, float, float] | None:
        if self.raw:
            return self.raw.get("cpu")
        wall = self._sum("wall_s")
        server, wrk, busy = self._sum("server_cpu_s"), self._sum("wrk_cpu_s"), self._sum("busy_s")
        return server / wall, wrk / wall, max(0.0, busy - server - wrk) / wall

    def metric_mean(self, base: str, stage: str | None = None) -> float | None:
        total: dict[str, float] = {}
        for s in self.slices:
            for key, value in s.metrics.items():
                total[key] = total.get(key, 0.0) + value
        return mean_of(total, base, stage)


def bench_raw(model_bytes: bytes, features: int, rows: int, seconds: float) -> dict:
    """session.run on one thread, with the session options `modelrollout serve` uses
    (ModelRuntime, intra-op threads = usable CPUs)."""
    runtime = ModelRuntime(model_bytes, "m", "1", RuntimeOptions(intra_op_threads=usable_cpus()))
    session = runtime.session
    feeds = {"input": np.random.default_rng(0).standard_normal((rows, features)).astype(np.float32)}
    for _ in range(200):
        session.run(None, feeds)
    timings = []
    clock = time.perf_counter_ns
    busy0, own0, started = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        t0 = clock()
        session.run(None, feeds)
        timings.append(clock() - t0)
    elapsed = time.perf_counter() - started
    busy, own = busy_cpu_seconds() - busy0, own_cpu_seconds() - own0
    arr = np.array(timings) / 1e6
    return {
        "p50_ms": float(np.percentile(arr, 50)), "p99_ms": float(np.percentile(arr, 99)),
        "calls_per_s": len(arr) / elapsed,
        "cpu": (own / elapsed, 0.0, max(0.0, busy - own) / elapsed),
    }


def run_rounds(entries: list[Entry], rounds: int, seconds: int, warmup: int,
               quiet_wait: float) -> None:
    """Interleave: every entry gets one slice per round, in reversed order every other
    round (A B C, C B A, ...), so drifting background load hits all of them alike."""
    for round_no in range(rounds):
        order = entries if round_no % 2 == 0 else entries[::-1]
        for entry in order:
            if quiet_wait:
                wait_for_quiet(quiet_wait)
            entry.measure(round_no, seconds, warmup)


# --------------------------------------------------------------------------- report


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def code_version() -> str:
    """The commit, and whether serving/ or modelrollout/ differ from it (read-only git)."""
    def git(*cmd: str) -> str:
        try:
            return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True,
                                  timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return ""
    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    dirty = git("status", "--porcelain", "--", "serving", "modelrollout", "operator")
    changed = ", ".join(line[3:] for line in dirty.splitlines() if line.strip())
    return head + (f" + uncommitted changes in: {changed}" if changed
                   else " (serving/, modelrollout/ as committed)")


def machine_info() -> dict[str, str]:
    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    return {
        "nproc": str(os.cpu_count()),
        "usable CPUs (affinity/cgroup)": str(usable_cpus()),
        "CPU": cpu_model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "wrk": (wrk_version.split("[")[0].strip() or "?"),
        "code": code_version(),
        "load average at start (1/5/15 min)": loadavg(),
    }


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def table(entries: list[Entry]) -> str:
    head = (
        "| scenario | contender | req/s | 2xx/s | req/s per round | p50 ms | p99 ms | non-2xx "
        "| sock err | CPU server / wrk / other | decode µs | queue µs | infer µs | encode µs "
        "| handler µs | mean batch |\n"
        "|---|---|---:|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|\n"
    )
    rows = []
    for e in entries:
        cpu = e.cpu()
        cpu_text = f"{cpu[0]:.2f} / {cpu[1]:.2f} / {cpu[2]:.2f}" if cpu else "–"
        if cpu and cpu[2] > NOISY_CPU:
            cpu_text += " **noisy**"
        stage = {s: e.metric_mean(STAGE_METRIC, s) for s in STAGES} if e.is_modelrollout else {}
        handler = e.metric_mean(REQUEST_METRIC) if e.is_modelrollout else None
        batch = e.metric_mean(BATCH_METRIC) if e.is_modelrollout else None
        us = {k: (v * 1e6 if v is not None else None) for k, v in stage.items()}
        rows.append(
            f"| {e.scenario} | {e.contender}{(' ' + e.note) if e.note else ''} | {e.rps:.0f} "
            f"| {e.ok_rps:.0f} | {' / '.join(f'{r:.0f}' for r in e.round_rps) or '–'} "
            f"| {fmt(e.p50_ms)} | {fmt(e.p99_ms)} "
            f"| {e._sum('non2xx') if e.slices else 0} "
            f"| {e._sum('socket_errors') if e.slices else 0} "
            f"| {cpu_text} | {fmt(us.get('decode'), 0)} | {fmt(us.get('queue'), 0)} "
            f"| {fmt(us.get('infer'), 0)} | {fmt(us.get('encode'), 0)} "
            f"| {fmt(handler * 1e6 if handler is not None else None, 0)} | {fmt(batch, 1)} |"
        )
    return head + "\n".join(rows) + "\n"


def server_facts(entries: list[Entry]) -> list[str]:
    seen: list[str] = []
    for e in entries:
        facts = e.server.ready_facts() if e.server is not None and e.is_modelrollout else ""
        line = f"- {e.model}, {e.contender}: {facts}"
        if facts and line not in seen:
            seen.append(line)
    return seen


def _ratios(a: Entry, b: Entry) -> str:
    pairs = [f"{x / y:.2f}" for x, y in zip(a.round_rps, b.round_rps, strict=False) if y]
    return ", ".join(pairs)


def verdicts(entries: list[Entry]) -> list[str]:
    def find(scenario: str, prefix: str) -> list[Entry]:
        return [e for e in entries if e.scenario == scenario and e.contender.startswith(prefix)]

    lines = []
    mr, naive = find("tiny c8", "modelrollout"), find("tiny c8", "naive")
    if mr and naive:
        ratio = mr[0].ok_rps / naive[0].ok_rps
        lines.append(
            f"1. Tiny model at concurrency 8, modelrollout throughput >= 2x naive: "
            f"**{'MET' if ratio >= 2.0 else 'NOT MET'}**. modelrollout {mr[0].ok_rps:.0f} 2xx/s "
            f"vs naive {naive[0].ok_rps:.0f} 2xx/s = **{ratio:.2f}x** (needs 2.00x; per round: "
            f"{_ratios(mr[0], naive[0])})."
        )
    nb = find("2.6M c32", "modelrollout, no batching")
    batched = find("2.6M c32", "modelrollout, batching")
    if nb and batched:
        best = max(batched, key=lambda e: e.ok_rps)
        ratio = best.ok_rps / nb[0].ok_rps
        batch = best.metric_mean(BATCH_METRIC)
        others = "; ".join(
            f"delay {e.contender.split('delay ')[-1].rstrip(')')}: {e.ok_rps:.0f} 2xx/s = "
            f"{e.ok_rps / nb[0].ok_rps:.2f}x" for e in batched if e is not best)
        lines.append(
            f"2. 2.6M model at concurrency 32, batching throughput >= 3x no batching: "
            f"**{'MET' if ratio >= 3.0 else 'NOT MET'}**. Best batching setting, "
            f"{best.contender.removeprefix('modelrollout, ')}: {best.ok_rps:.0f} 2xx/s (mean batch "
            f"{fmt(batch, 1)}) vs no batching {nb[0].ok_rps:.0f} 2xx/s = **{ratio:.2f}x** "
            f"(needs 3.00x; per round: {_ratios(best, nb[0])})."
            + (f" Other delays tried: {others}." if others else "")
        )
    mr1, raw1 = find("tiny c1", "modelrollout"), find("tiny c1", "raw")
    if mr1 and raw1:
        gap = mr1[0].p50_ms - raw1[0].p50_ms
        lines.append(
            f"3. Tiny model at concurrency 1, modelrollout p50 within 0.4 ms of raw session.run "
            f"p50: **{'MET' if gap <= 0.4 else 'NOT MET'}**. modelrollout p50 "
            f"{mr1[0].p50_ms:.3f} ms (per round: "
            f"{', '.join(f'{s.p50_ms:.3f}' for s in mr1[0].slices)}) vs raw "
            f"{raw1[0].p50_ms:.4f} ms = **{gap:.3f} ms** over (allowed 0.400 ms)."
        )
    return lines


def render(info: dict, args, entries: list[Entry], started, finished) -> str:
    slice_s = slice_seconds(args)
    lines = [
        f"# Server benchmark, {started.strftime('%Y-%m-%d %H:%M:%S UTC')}",
        "",
        f"Command: `{shlex.join(['.venv/bin/python', 'bench/bench_server.py', *sys.argv[1:]])}` "
        f"(took {(finished - started).total_seconds():.0f} s)",
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in info.items()],
        "",
        "Nothing is pinned to cores: each server, its onnxruntime threads and wrk share all "
        "CPUs, as they would in a small pod.",
        "",
        "## Setup",
        "",
        f"- Load: `wrk -t1 -c<concurrency> -d{slice_s}s --latency -s bench/post.lua <url> -- "
        f"<body>`, each measured run after {args.warmup} s of warm-up at the same concurrency; "
        "-c (connections) = concurrency, one request in flight per connection. Batch-1 V2 JSON "
        "bodies, FP32 (the tiny model's 4 values, the 2.6M model's 512).",
        f"- Interleaved: all servers of a model run at once (started one after the other, idle "
        "unless loaded) and each "
        f"contender gets one {slice_s} s run per round, {args.rounds} rounds, order reversed "
        "every other round. req/s = all requests / all measured seconds; p50 and p99 = median "
        "over the rounds.",
        "- Models: `build_mlp([4, 16, 3])` (tiny) and `build_mlp([512, 1024, 1024, 1024, 10])` "
        "(2.6M parameters), written to a temporary folder.",
        f"- raw: `session.run` in the benchmark process, one thread calling it for "
        f"{args.raw_seconds:.0f} s, session options as `modelrollout serve` sets them "
        "(ModelRuntime, intra-op threads = usable CPUs). The tiny c8 raw row repeats the same "
        "single-thread numbers: no concurrency was applied. The 2.6M raw rows are a reference.",
        "- naive FastAPI: bench/naive_server.py (pydantic request model, sync `def` endpoint, "
        "numpy + `session.run` on a default `InferenceSession`, dict returned) under "
        "`uvicorn naive_server:app` with uvicorn's defaults (1 worker; uvloop and httptools "
        "are picked since they are installed; access log on, written to a file).",
        "- modelrollout: `.venv/bin/modelrollout serve --model-uri <model.onnx> --model-name m "
        "--port P --host 127.0.0.1 --grace-seconds 5`; batching adds "
        f"`--max-batch-size {args.max_batch_size} --max-queue-delay-us D`.",
        "- 2xx/s leaves non-2xx answers out; the targets use it. CPU server / wrk / other: "
        "CPU-seconds per wall second of the server process (all threads), of wrk, and of "
        "everything else on the machine (from /proc/stat) during the measured runs; other "
        f"above {NOISY_CPU} (marked **noisy**) means another tenant was competing for the "
        "CPUs during that contender's runs: compare its per-round numbers.",
        "- Stage columns (modelrollout only): mean of `modelrollout_server_stage_duration_seconds`"
        " per stage over the measured runs (_sum/_count deltas of /metrics scraped before and "
        "after each run); handler = mean of `modelrollout_server_request_duration_seconds`; mean "
        "batch = mean of `modelrollout_server_batch_size` (rows per onnxruntime run).",
        "",
        "## Results",
        "",
        table(entries),
        "`modelrollout serve` start-up facts (its \"model ready\" log line):",
        "",
        *server_facts(entries),
        "",
        "## Targets (from this run)",
        "",
        *verdicts(entries),
        "",
        *wrk_appendix(entries),
    ]
    return "\n".join(lines)


def wrk_appendix(entries) -> list[str]:
    """The wrk output of every measured run, for the report's end."""
    lines = ["## wrk output of every measured run", ""]
    for e in entries:
        for s in e.slices:
            lines.append(f"### {e.scenario} / {e.contender} / round {s.round + 1}\n")
            lines.append(f"```\n{s.text.strip()}\n```\n")
    return lines


def slice_seconds(args) -> int:
    return max(1, math.ceil(args.duration / args.rounds))


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=12,
                        help="measured seconds per contender and scenario, split over the rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2, help="seconds of wrk before each run")
    parser.add_argument("--delays", default="500,2000,5000",
                        help="--max-queue-delay-us values to try with batching (comma-separated)")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--raw-seconds", type=float, default=3.0)
    parser.add_argument("--quiet-wait", type=float, default=0.0,
                        help="before each run wait up to this long for the machine to go idle")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    args = parser.parse_args()
    delays = [int(d) for d in args.delays.split(",") if d.strip()]
    slice_s = slice_seconds(args)

    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    started_at = datetime.now(UTC)
    stamp = started_at.strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    logs = args.out / f"server-{stamp}-logs"
    logs.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    print("machine:", json.dumps(info, indent=1, ensure_ascii=False), flush=True)

    entries: list[Entry] = []
    servers: list[Server] = []
    work = Path(tempfile.mkdtemp(prefix="bench-server-"))
    rng = np.random.default_rng(1)
    paths, bodies, model_bytes = {}, {}, {}
    try:
        for name in MODELS:
            model_bytes[name], paths[name], bodies[name] = write_model_and_body(work, name, rng)

        # (a) raw session.run in this process, before any server runs.
        print("raw onnxruntime session.run (in-process, 1 thread):", flush=True)
        for model, rows in (("tiny", 1), ("2.6M", 1), ("2.6M", args.max_batch_size)):
            raw = bench_raw(model_bytes[model], MODELS[model][0], rows, args.raw_seconds)
            print(f"  {model} batch {rows}: p50 {raw['p50_ms']:.4f} ms  p99 {raw['p99_ms']:.4f} ms"
                  f"  {raw['calls_per_s']:.0f} calls/s  (other CPU {raw['cpu'][2]:.2f})",
                  flush=True)
            if model == "tiny":
                entries.append(Entry("tiny c1", model, 1, "raw session.run", raw=raw))
                entries.append(Entry("tiny c8", model, 8, "raw session.run", raw=raw,
                                     note="(single-thread numbers, not concurrency 8)"))
            else:
                entries.append(Entry(
                    "2.6M c32", model, 1, f"raw session.run, batch {rows}", raw=raw,
                    note=f"(one thread, {raw['calls_per_s'] * rows:.0f} rows/s; reference)"))

        def start(server: Server) -> Server:
            servers.append(server)
            server.start()
            return server

        def ready(server: Server, model: str) -> None:
            server.wait_ready()
            check_answer(server, bodies[model].read_bytes(), MODELS[model][-1])
            facts = server.ready_facts()
            if facts:
                print(f"  {server.label} ({model}) ready: {facts}", flush=True)

        # (b), (c) on the tiny model: both servers up, then interleaved rounds.
        print(f"tiny model: {args.rounds} interleaved rounds of {slice_s} s per contender",
              flush=True)
        # One after the other: modelrollout times its warm-up runs at start-up (and picks
        # inline or thread-pool inference from them), so no start-up may overlap another.
        naive = start(naive_server(paths["tiny"], free_port(), logs / "naive-tiny.log"))
        ready(naive, "tiny")
        mr = start(modelrollout_server(paths["tiny"], free_port(), logs / "mr-tiny.log", []))
        ready(mr, "tiny")
        tiny = [
            Entry(f"tiny c{c}", "tiny", c, label, server, bodies["tiny"])
            for c in (1, 8)
            for label, server in (("naive FastAPI", naive), ("modelrollout", mr))
        ]
        run_rounds(tiny, args.rounds, slice_s, args.warmup, args.quiet_wait)
        for server in (naive, mr):
            server.stop()
        entries.extend(tiny)  # stable sort: raw, naive, modelrollout per scenario
        entries.sort(key=lambda e: (e.model != "tiny", e.scenario))

        # 2.6M model at concurrency 32: naive, no batching, batching with each delay.
        print(f"2.6M model: {args.rounds} interleaved rounds of {slice_s} s per contender",
              flush=True)
        large_servers = [
            ("naive FastAPI",
             naive_server(paths["2.6M"], free_port(), logs / "naive-large.log")),
            ("modelrollout, no batching",
             modelrollout_server(paths["2.6M"], free_port(), logs / "mr-large.log", [])),
        ]
        for delay in delays:
            extra = ["--max-batch-size", str(args.max_batch_size),
                     "--max-queue-delay-us", str(delay)]
            large_servers.append((
                f"modelrollout, batching (max {args.max_batch_size}, delay {delay} µs)",
                modelrollout_server(paths["2.6M"], free_port(), logs / f"mr-large-b{delay}.log",
                                    extra)))
        for _, server in large_servers:
            start(server)
            ready(server, "2.6M")
        large = [Entry("2.6M c32", "2.6M", 32, label, server, bodies["2.6M"])
                 for label, server in large_servers]
        run_rounds(large, args.rounds, slice_s, args.warmup, args.quiet_wait)
        entries.extend(large)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)

    finished = datetime.now(UTC)
    info["load average at end (1/5/15 min)"] = loadavg()
    report = render(info, args, entries, started_at, finished)
    out_file = args.out / f"server-{stamp}.md"
    out_file.write_text(report)
    print()
    print(report.split("\n## wrk output")[0])
    shown = out_file.relative_to(ROOT) if out_file.is_relative_to(ROOT) else out_file
    print(f"written: {shown} (server logs in {logs.name}/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
