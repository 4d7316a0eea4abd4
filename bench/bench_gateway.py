"""Gateway benchmark: what `modelrollout gateway` adds in front of `modelrollout serve`,
next to what nginx adds as a plain keep-alive reverse proxy.

One run, side by side, on this machine, all against the same upstream server process
(`modelrollout serve`, started through its CLI, tiny model ``build_mlp([4, 16, 3])``):

* direct  - wrk -> `modelrollout serve`;
* gateway - wrk -> `modelrollout gateway --routes FILE` (one model, one stable revision
  with weight 100 whose endpoint is the server) -> the server;
* nginx   - wrk -> nginx (1 worker, upstream block with ``keepalive 32``, HTTP/1.1 to the
  upstream, access log off, every path in a temporary prefix) -> the server.

Concurrency 1 and 8 (wrk ``-t1 -c<concurrency>``, bench/post.lua, batch-1 V2 JSON bodies).
The contenders are measured in interleaved rounds exactly as bench/bench_server.py does
(its helpers are imported, not copied): every process is started up front and each
contender gets one slice of load per round, order reversed every other round. Reported:
req/s, p50, p99 (median over the rounds), non-2xx, socket errors, CPU of the server, of
the proxy (gateway or nginx, all its processes), of wrk and of the rest of the machine;
the latency each proxy adds (its p50/p99 minus direct, per concurrency) and its
throughput as a share of direct; the gateway's own request duration from its /metrics.

Everything talks to 127.0.0.1 only; every process started here is stopped in
``finally`` blocks, and every wait has a time limit.

Usage (from the repository root):

    .venv/bin/python bench/bench_gateway.py [--duration 12] [--rounds 3] [--warmup 2]

Prints a markdown report and writes it to bench/results/gateway-<timestamp>.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench_server import (
    BENCH,
    HOST,
    MODELS,
    NOISY_CPU,
    REQUEST_METRIC,
    ROOT,
    VENV_BIN,
    Server,
    busy_cpu_seconds,
    check_answer,
    children_cpu_seconds,
    fmt,
    free_port,
    loadavg,
    machine_info,
    mean_of,
    modelrollout_server,
    run_rounds,
    run_wrk,
    scrape,
    slice_seconds,
    write_model_and_body,
    wrk_appendix,
)
from modelrollout.serving.contract.metric_names import GATEWAY_REQUEST_DURATION

MODEL = "tiny"
CONCURRENCIES = (1, 8)
CONTENDERS = ("direct", "gateway", "nginx")
CLK = os.sysconf("SC_CLK_TCK")

# Targets of the gateway.
MAX_ADDED_P50_MS = 0.4
MIN_THROUGHPUT_SHARE = 0.60
MAX_TIMES_NGINX = 4.0


# --------------------------------------------------------------------------- processes


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its live descendants (nginx: master + worker)."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / CLK
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += cpu.get(current, 0.0)
        todo.extend(child for child, parent in parents.items() if parent == current)
    return total


class Proc(Server):
    """bench_server.Server, with the CPU of the whole process tree."""

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.proc.pid)


def upstream_server(model_path: Path, log: Path, name: str = "m") -> Proc:
    server = modelrollout_server(model_path, free_port(), log, [], name)
    return Proc(server.label, server.cmd, server.port, server.log_path)


def route_file(path: Path, upstream: Server) -> dict:
    doc = {"models": {"m": {"revisions": [
        {"name": "stable", "role": "stable", "weight": 100,
         "endpoints": [f"{HOST}:{upstream.port}"]},
    ]}}}
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def gateway_process(routes: Path, log: Path) -> Proc:
    port = free_port()
    cmd = [
        str(VENV_BIN / "modelrollout"), "gateway", "--routes", str(routes), "--host", HOST,
        "--port", str(port), "--grace-seconds", "5",
    ]
    return Proc("gateway", cmd, port, log)


NGINX_CONF = """\
# bench/bench_gateway.py: nginx as a plain keep-alive reverse proxy, run from a temp prefix.
user root;
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;

events {{
    worker_connections 1024;
}}

http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;

    upstream modelserver {{
        server {host}:{upstream_port};
        keepalive 32;
    }}

    server {{
        listen {host}:{port};
        location / {{
            proxy_pass http://modelserver;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def nginx_process(prefix: Path, upstream: Server, log: Path) -> tuple[Proc, str]:
    port = free_port()
    conf_text = NGINX_CONF.format(prefix=prefix, host=HOST, port=port, upstream_port=upstream.port)
    conf = prefix / "nginx.conf"
    conf.write_text(conf_text)
    cmd = ["nginx", "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
    return Proc("nginx", cmd, port, log), conf_text


def nginx_version() -> str:
    proc = subprocess.run(["nginx", "-v"], capture_output=True, text=True, timeout=10)
    text = (proc.stderr or proc.stdout).strip()
    return text.split(":", 1)[-1].strip() or "?"


def debian_version(package: str) -> str:
    try:
        proc = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package],
                              capture_output=True, text=True, timeout=10)
        return proc.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


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
    proxy_cpu_s: float
    wrk_cpu_s: float
    busy_s: float  # the whole machine
    server_metrics: dict[str, float]  # the server's /metrics _sum/_count deltas
    proxy_metrics: dict[str, float]  # the gateway's (empty for direct and nginx)
    text: str

    @property
    def other_cpu(self) -> float:
        return max(0.0, self.busy_s - self.server_cpu_s - self.proxy_cpu_s - self.wrk_cpu_s) / self.wall_s


@dataclass
class Entry:
    """One path (direct, gateway, nginx) at one concurrency, measured in slices."""

    concurrency: int
    contender: str
    target: Server  # what wrk talks to
    server: Server  # the upstream `modelrollout serve`
    body: Path
    slices: list[Slice] = field(default_factory=list)
    pace_ms: int = 0  # 0: as fast as answers come; else the wait between answer and next request

    @property
    def scenario(self) -> str:
        return f"c{self.concurrency}"

    @property
    def proxy(self) -> Server | None:
        return None if self.target is self.server else self.target

    def measure(self, round_no: int, seconds: int, warmup: int) -> Slice:
        url = self.target.base + "/v2/models/m/infer"
        run_wrk(url, self.body, self.concurrency, warmup, self.pace_ms)  # warm-up, not counted
        is_gateway = self.contender == "gateway"
        server0 = scrape(self.server)
        proxy0 = scrape(self.target) if is_gateway else {}
        busy0, wrk0, wall0 = busy_cpu_seconds(), children_cpu_seconds(), time.monotonic()
        srv0 = self.server.cpu_seconds()
        prx0 = self.proxy.cpu_seconds() if self.proxy else 0.0
        parsed, text = run_wrk(url, self.body, self.concurrency, seconds, self.pace_ms)
        busy1, wrk1, wall1 = busy_cpu_seconds(), children_cpu_seconds(), time.monotonic()
        srv1 = self.server.cpu_seconds()
        prx1 = self.proxy.cpu_seconds() if self.proxy else 0.0
        server1 = scrape(self.server)
        proxy1 = scrape(self.target) if is_gateway else {}
        piece = Slice(
            round=round_no, requests=parsed["requests"], non2xx=parsed["non2xx"],
            socket_errors=parsed["socket_errors"], duration_s=parsed["duration_s"],
            p50_ms=parsed["p50_ms"], p99_ms=parsed["p99_ms"], wall_s=wall1 - wall0,
            server_cpu_s=srv1 - srv0, proxy_cpu_s=prx1 - prx0, wrk_cpu_s=wrk1 - wrk0,
            busy_s=busy1 - busy0,
            server_metrics={k: server1[k] - server0.get(k, 0.0) for k in server1},
            proxy_metrics={k: proxy1[k] - proxy0.get(k, 0.0) for k in proxy1},
            text=text,
        )
        self.slices.append(piece)
        w = piece.wall_s
        print(f"  round {round_no + 1}  {self.scenario:3} {self.contender:8} "
              f"{piece.requests / piece.duration_s:7.0f} req/s  p50 {piece.p50_ms:6.3f} ms  "
              f"p99 {piece.p99_ms:6.3f} ms  non-2xx {piece.non2xx}  sock err {piece.socket_errors}"
              f"  CPU server/proxy/wrk/other {piece.server_cpu_s / w:.2f}/{piece.proxy_cpu_s / w:.2f}/"
              f"{piece.wrk_cpu_s / w:.2f}/{piece.other_cpu:.2f}", flush=True)
        return piece

    # Aggregates over the slices.

    def _sum(self, name: str) -> float:
        return sum(getattr(s, name) for s in self.slices)

    @property
    def rps(self) -> float:
        return self._sum("requests") / self._sum("duration_s")

    @property
    def ok_rps(self) -> float:
        return (self._sum("requests") - self._sum("non2xx")) / self._sum("duration_s")

    def by_round(self) -> dict[int, Slice]:
        return {s.round: s for s in self.slices}

    @property
    def round_rps(self) -> list[float]:
        return [s.requests / s.duration_s for s in sorted(self.slices, key=lambda s: s.round)]

    @property
    def p50_ms(self) -> float:
        return statistics.median(s.p50_ms for s in self.slices)

    @property
    def p99_ms(self) -> float:
        return statistics.median(s.p99_ms for s in self.slices)

    def cpu(self) -> tuple[float, float, float, float]:
        wall = self._sum("wall_s")
        return (self._sum("server_cpu_s") / wall, self._sum("proxy_cpu_s") / wall,
                self._sum("wrk_cpu_s") / wall, sum(s.other_cpu * s.wall_s for s in self.slices) / wall)

    def cpu_us_per_request(self, name: str) -> float:
        return self._sum(name) / self._sum("requests") * 1e6

    def metric_mean_us(self, which: str, base: str) -> float | None:
        total: dict[str, float] = {}
        for s in self.slices:
            for key, value in getattr(s, which).items():
                total[key] = total.get(key, 0.0) + value
        mean = mean_of(total, base)
        return mean * 1e6 if mean is not None else None


# --------------------------------------------------------------------------- report


def find(entries: list[Entry], concurrency: int, contender: str) -> Entry:
    return next(e for e in entries if e.concurrency == concurrency and e.contender == contender)


def table(entries: list[Entry]) -> str:
    head = (
        "| concurrency | path | req/s | 2xx/s | req/s per round | p50 ms | p99 ms | non-2xx | sock err "
        "| CPU server / proxy / wrk / other | server CPU µs/req | proxy CPU µs/req | server handler µs "
        "| gateway duration µs |\n"
        "|---|---|---:|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|\n"
    )
    rows = []
    for e in entries:
        cpu = e.cpu()
        cpu_text = " / ".join(f"{v:.2f}" for v in cpu)
        if cpu[3] > NOISY_CPU:
            cpu_text += " **noisy**"
        proxy_us = fmt(e.cpu_us_per_request("proxy_cpu_s"), 0) if e.proxy else "–"
        rows.append(
            f"| {e.concurrency} | {e.contender} | {e.rps:.0f} | {e.ok_rps:.0f} "
            f"| {' / '.join(f'{r:.0f}' for r in e.round_rps)} | {fmt(e.p50_ms)} | {fmt(e.p99_ms)} "
            f"| {e._sum('non2xx')} | {e._sum('socket_errors')} | {cpu_text} "
            f"| {fmt(e.cpu_us_per_request('server_cpu_s'), 0)} | {proxy_us} "
            f"| {fmt(e.metric_mean_us('server_metrics', REQUEST_METRIC), 0)} "
            f"| {fmt(e.metric_mean_us('proxy_metrics', GATEWAY_REQUEST_DURATION), 0)} |"
        )
    return head + "\n".join(rows) + "\n"


@dataclass
class Overhead:
    """What one proxy adds over direct at one concurrency."""

    concurrency: int
    proxy: str
    added_p50_ms: float
    added_p99_ms: float
    share: float  # proxied 2xx/s over direct 2xx/s
    round_added_p50: list[float]
    round_added_p99: list[float]
    round_share: list[float]


def overheads(entries: list[Entry]) -> list[Overhead]:
    out = []
    for c in CONCURRENCIES:
        direct = find(entries, c, "direct")
        for name in ("gateway", "nginx"):
            proxied = find(entries, c, name)
            rounds = sorted(set(direct.by_round()) & set(proxied.by_round()))
            d, p = direct.by_round(), proxied.by_round()
            out.append(Overhead(
                c, name, proxied.p50_ms - direct.p50_ms, proxied.p99_ms - direct.p99_ms,
                proxied.ok_rps / direct.ok_rps,
                [p[r].p50_ms - d[r].p50_ms for r in rounds],
                [p[r].p99_ms - d[r].p99_ms for r in rounds],
                [(p[r].requests / p[r].duration_s) / (d[r].requests / d[r].duration_s) for r in rounds],
            ))
    return out


def overhead_table(rows: list[Overhead]) -> str:
    head = (
        "| concurrency | proxy | added p50 ms | per round | added p99 ms | per round "
        "| throughput % of direct | per round |\n"
        "|---|---|---:|---|---:|---|---:|---|\n"
    )
    lines = [
        f"| {o.concurrency} | {o.proxy} | {o.added_p50_ms:+.3f} "
        f"| {', '.join(f'{v:+.3f}' for v in o.round_added_p50)} | {o.added_p99_ms:+.3f} "
        f"| {', '.join(f'{v:+.3f}' for v in o.round_added_p99)} | {100 * o.share:.1f}% "
        f"| {', '.join(f'{100 * v:.0f}%' for v in o.round_share)} |"
        for o in rows
    ]
    return head + "\n".join(lines) + "\n"


def verdicts(entries: list[Entry], rows: list[Overhead]) -> list[str]:
    def get(c: int, proxy: str) -> Overhead:
        return next(o for o in rows if o.concurrency == c and o.proxy == proxy)

    def met(ok: bool) -> str:
        return "MET" if ok else "NOT MET"

    lines = []
    n = 0
    for c in CONCURRENCIES:
        g, direct, gw = get(c, "gateway"), find(entries, c, "direct"), find(entries, c, "gateway")
        n += 1
        lines.append(
            f"{n}. Concurrency {c}, the gateway adds at most {MAX_ADDED_P50_MS} ms at p50: "
            f"**{met(g.added_p50_ms <= MAX_ADDED_P50_MS)}**. p50 through the gateway {gw.p50_ms:.3f} ms "
            f"vs direct {direct.p50_ms:.3f} ms = **{g.added_p50_ms:+.3f} ms** (allowed "
            f"{MAX_ADDED_P50_MS:.3f} ms; per round: {', '.join(f'{v:+.3f}' for v in g.round_added_p50)})."
        )
    for c in CONCURRENCIES:
        g, direct, gw = get(c, "gateway"), find(entries, c, "direct"), find(entries, c, "gateway")
        n += 1
        lines.append(
            f"{n}. Concurrency {c}, throughput through the gateway at least "
            f"{100 * MIN_THROUGHPUT_SHARE:.0f}% of direct: **{met(g.share >= MIN_THROUGHPUT_SHARE)}**. "
            f"gateway {gw.ok_rps:.0f} 2xx/s vs direct {direct.ok_rps:.0f} 2xx/s = **{100 * g.share:.1f}%** "
            f"(per round: {', '.join(f'{100 * v:.0f}%' for v in g.round_share)})."
        )
    for c in CONCURRENCIES:
        g, x = get(c, "gateway"), get(c, "nginx")
        n += 1
        if x.added_p50_ms > 0:
            ratio = g.added_p50_ms / x.added_p50_ms
            ok = ratio <= MAX_TIMES_NGINX
            detail = f"= **{ratio:.2f}x** (allowed {MAX_TIMES_NGINX:.1f}x)"
        else:  # nginx added nothing measurable: only a gateway that adds nothing passes
            ok = g.added_p50_ms <= 0
            detail = "(nginx added nothing measurable, so no ratio; met only if the gateway adds nothing)"
        per_round = ", ".join(
            f"{a / b:.2f}x" if b > 0 else "n/a" for a, b in zip(g.round_added_p50, x.round_added_p50,
                                                                 strict=True))
        lines.append(
            f"{n}. Concurrency {c}, the gateway's added p50 within {MAX_TIMES_NGINX:.0f}x nginx's: "
            f"**{met(ok)}**. gateway {g.added_p50_ms:+.3f} ms vs nginx {x.added_p50_ms:+.3f} ms {detail}; "
            f"per round: {per_round}."
        )
    return lines


def gateway_time_lines(entries: list[Entry]) -> list[str]:
    lines = []
    for c in CONCURRENCIES:
        gw = find(entries, c, "gateway")
        own = gw.metric_mean_us("proxy_metrics", GATEWAY_REQUEST_DURATION)
        handler = gw.metric_mean_us("server_metrics", REQUEST_METRIC)
        count = sum(s.proxy_metrics.get(GATEWAY_REQUEST_DURATION + "_count", 0.0) for s in gw.slices)
        outside = own - handler if own is not None and handler is not None else None
        lines.append(
            f"- Concurrency {c}: `{GATEWAY_REQUEST_DURATION}` mean **{fmt(own, 0)} µs** over "
            f"{count:.0f} requests (wrk counted {gw._sum('requests')}); the server's own handler time "
            f"during the same runs {fmt(handler, 0)} µs, so {fmt(outside, 0)} µs "
            f"per request were spent outside the server's handler (the gateway's own work, the loopback "
            f"hops, the server's HTTP layer and, with concurrency, waiting in either event loop); "
            f"gateway CPU "
            f"{gw.cpu_us_per_request('proxy_cpu_s'):.0f} µs per request."
        )
    return lines


def noise_line(entries: list[Entry]) -> str:
    others = [s.other_cpu for e in entries for s in e.slices]
    noisy = sum(1 for v in others if v > NOISY_CPU)
    return (f"Other CPU (the rest of the machine) per measured run: {min(others):.2f}–{max(others):.2f}, "
            f"median {statistics.median(others):.2f}; {noisy} of {len(others)} runs above {NOISY_CPU}.")


def render(info: dict, args, entries: list[Entry], rows: list[Overhead], nginx_conf: str,
           routes: dict, started, finished) -> str:
    slice_s = slice_seconds(args)
    lines = [
        f"# Gateway benchmark, {started.strftime('%Y-%m-%d %H:%M:%S UTC')}",
        "",
        f"Command: `{shlex.join(['.venv/bin/python', 'bench/bench_gateway.py', *sys.argv[1:]])}` "
        f"(took {(finished - started).total_seconds():.0f} s)",
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in info.items()],
        "",
        "Nothing is pinned to cores: the server, the proxy, onnxruntime's threads and wrk share all "
        "CPUs.",
        "",
        "## Setup",
        "",
        "- One upstream: `.venv/bin/modelrollout serve --model-uri <tiny.onnx> --model-name m --port P "
        "--host 127.0.0.1 --grace-seconds 5`, tiny model `build_mlp([4, 16, 3])`. Every path below "
        "ends at this one process.",
        "- direct: wrk -> server.",
        "- gateway: wrk -> `.venv/bin/modelrollout gateway --routes <file> --host 127.0.0.1 --port G "
        "--grace-seconds 5` -> server. Route file:",
        "",
        "```json",
        json.dumps(routes, indent=2),
        "```",
        "",
        "- nginx: wrk -> `nginx -p <tmp> -c <tmp>/nginx.conf -e <tmp>/error.log` -> server, with this "
        "configuration (1 worker; nginx's defaults otherwise, e.g. keepalive_requests 1000):",
        "",
        "```nginx",
        nginx_conf.strip(),
        "```",
        "",
        f"- Load: `wrk -t1 -c<concurrency> -d{slice_s}s --latency -s bench/post.lua <url> -- <body>`, "
        f"each measured run after {args.warmup} s of warm-up at the same concurrency; -c "
        "(connections) = concurrency, one request in flight per connection. Batch-1 V2 JSON body "
        "(the tiny model's 4 FP32 values), `POST /v2/models/m/infer`.",
        f"- Interleaved: the server, the gateway and nginx run at once (started one after the other) "
        f"and each (path, concurrency) gets one {slice_s} s run per round, {args.rounds} rounds, "
        "order reversed every other round. req/s = all requests / all measured seconds; p50 and p99 "
        "= median over the rounds. Added latency = proxied p50 (p99) minus direct p50 (p99), both "
        "medians; 'per round' pairs the runs of the same round. Throughput share uses 2xx/s.",
        "- CPU server / proxy / wrk / other: CPU-seconds per wall second of the server process, of "
        "the proxy (the gateway process, or nginx's master + worker), of wrk, and of everything "
        f"else on the machine (/proc/stat) during the measured runs; other above {NOISY_CPU} "
        "(**noisy**) means another tenant competed for the CPUs. µs/req columns: CPU-seconds over "
        "requests.",
        "- server handler µs: mean of `modelrollout_server_request_duration_seconds` over the "
        "measured runs; gateway duration µs: mean of `modelrollout_gateway_request_duration_seconds` "
        "(the gateway's handler, from the request's arrival to the answer sent, upstream call "
        "included); both from _sum/_count deltas of /metrics scraped before and after each run.",
        "",
        "## Results",
        "",
        table(entries),
        noise_line(entries),
        "",
        "`modelrollout serve` start-up facts: " + (entries[0].server.ready_facts() or "?"),
        "",
        "## Added latency and throughput share",
        "",
        overhead_table(rows),
        "## The gateway's own time per request (its /metrics)",
        "",
        *gateway_time_lines(entries),
        "",
        "## Targets (from this run)",
        "",
        *verdicts(entries, rows),
        "",
        *wrk_appendix(entries),
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=12,
                        help="measured seconds per path and concurrency, split over the rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2, help="seconds of wrk before each run")
    parser.add_argument("--quiet-wait", type=float, default=0.0,
                        help="before each run wait up to this long for the machine to go idle")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    args = parser.parse_args()
    slice_s = slice_seconds(args)

    for tool, package in (("wrk", "wrk"), ("nginx", "nginx-light")):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed: apt-get install -y {package}", file=sys.stderr)
            return 2
    started_at = datetime.now(UTC)
    stamp = started_at.strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    logs = args.out / f"gateway-{stamp}-logs"
    logs.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    version = debian_version("nginx-light") or debian_version("nginx")
    info["nginx"] = nginx_version() + (f" (Debian {version})" if version else "")
    print("machine:", json.dumps(info, indent=1, ensure_ascii=False), flush=True)

    processes: list[Server] = []
    work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    entries: list[Entry] = []
    try:
        sizes = MODELS[MODEL]
        _, model_path, body = write_model_and_body(work, MODEL)  # bench_server.py's tiny body

        def start(proc: Server) -> Server:
            processes.append(proc)
            proc.start()
            proc.wait_ready()  # /v2/health/ready: the server's own, the gateway's, or via nginx
            check_answer(proc, body.read_bytes(), sizes[-1])
            return proc

        # One after the other: the server times its warm-up runs at start-up.
        server = start(upstream_server(model_path, logs / "server.log"))
        print(f"  server ready on {server.base}: {server.ready_facts()}", flush=True)
        routes_path = work / "routes.json"
        routes = route_file(routes_path, server)
        shutil.copy(routes_path, logs / "routes.json")
        gateway = start(gateway_process(routes_path, logs / "gateway.log"))
        print(f"  gateway ready on {gateway.base}", flush=True)
        prefix = work / "nginx"
        prefix.mkdir()
        nginx, nginx_conf = nginx_process(prefix, server, logs / "nginx.log")
        (logs / "nginx.conf").write_text(nginx_conf)
        start(nginx)
        print(f"  nginx ready on {nginx.base}", flush=True)

        targets = {"direct": server, "gateway": gateway, "nginx": nginx}
        entries = [Entry(c, name, targets[name], server, body)
                   for c in CONCURRENCIES for name in CONTENDERS]
        print(f"{len(entries)} contenders, {args.rounds} interleaved rounds of {slice_s} s each",
              flush=True)
        run_rounds(entries, args.rounds, slice_s, args.warmup, args.quiet_wait)
    finally:
        for proc in reversed(processes):
            proc.stop()
        nginx_error = work / "nginx" / "error.log"
        if nginx_error.exists():
            shutil.copy(nginx_error, logs / "nginx-error.log")
        shutil.rmtree(work, ignore_errors=True)

    finished = datetime.now(UTC)
    info["load average at end (1/5/15 min)"] = loadavg()
    rows = overheads(entries)
    report = render(info, args, entries, rows, nginx_conf, routes, started_at, finished)
    out_file = args.out / f"gateway-{stamp}.md"
    out_file.write_text(report)
    print()
    print(report.split("\n## wrk output")[0])
    shown = out_file.relative_to(ROOT) if out_file.is_relative_to(ROOT) else out_file
    print(f"written: {shown} (logs in {logs.name}/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
