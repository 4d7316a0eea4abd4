"""Where does `modelrollout gateway` spend its time under load? A diagnostic helper.

Starts `modelrollout serve` (tiny model) and `modelrollout gateway --routes FILE` in
front of it exactly as bench_gateway.py does (through the CLI, on 127.0.0.1), puts
the gateway under wrk load, and reports for the measured window:

* wrk's requests/s, p50 and p99 through the gateway;
* CPU per OS thread of the gateway (from /proc/<pid>/task), the server's and wrk's CPU,
  and the rest of the machine's;
* with ``--perf PATH``: a perf (cpu-clock) profile of the gateway process, as the share
  of samples per shared object (kernel, libpython, uvloop, httptools, ...) and per symbol;
* with ``--py-spy PATH``: a py-spy sampling profile of the gateway over the same window
  (non-blocking, idle samples left out), summarised as the top frames by inclusive and
  self samples (profile_server.summarise);
* with ``--strace PATH``: after that window, system calls per request of the gateway and
  of the server (``strace -c`` during one more wrk run each; strace slows them down, so
  only the counts mean something).

``--in-process N`` instead runs no process at all: it calls the gateway's request handler
(``GatewayApp.begin``, what the HTTP front end calls) N times in this process, with
``EndpointPool.start`` replaced by a stub that builds the upstream request and arms the
timer like the real one but does no I/O (the answer is handed back at once, as the
upstream connection's callback would), next to a bare pass-through handler with the same
stub, and prints µs per call and a cProfile of the gateway's calls: the cost of the
gateway's own Python per request, without sockets or HTTP parsing.

Usage (from the repository root):

    .venv/bin/python bench/profile_gateway.py --concurrency 1 [--py-spy /path/to/py-spy] \\
        [--perf /usr/bin/perf] [--strace /usr/bin/strace]
    .venv/bin/python bench/profile_gateway.py --in-process 100000

All processes are stopped on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_gateway import CLK, MODEL, gateway_process, route_file, upstream_server
from bench_server import (
    MODELS,
    REQUEST_METRIC,
    busy_cpu_seconds,
    check_answer,
    children_cpu_seconds,
    run_wrk,
    scrape,
    wait_for_quiet,
    write_model_and_body,
)
from modelrollout.serving.contract.metric_names import GATEWAY_REQUEST_DURATION
from profile_server import print_thread_cpu, python_thread_names, summarise, thread_cpu


def user_system(pid: int) -> tuple[float, float]:
    """utime and stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) / CLK, int(fields[12]) / CLK


def perf_summary(perf: str, data: Path, top: int) -> str:
    """Self samples per shared object and per symbol (kernel, libpython, uvloop, ...)."""
    out = []
    for sort, limit in (("dso", 15), ("dso,sym", top)):
        proc = subprocess.run(
            [perf, "report", "-i", str(data), "--no-children", "--sort", sort, "--stdio",
             "--percent-limit", "0.5", "-g", "none"],
            capture_output=True, text=True, timeout=120,
        )
        rows = [line for line in proc.stdout.splitlines() if line.strip() and not line.startswith("#")]
        out.append(f"perf, self samples by {sort}:")
        out.extend("  " + " ".join(row.split()) for row in rows[:limit])
    return "\n".join(out)


def strace_counts(strace: str, pids: list[int], target_url: str, body: Path, concurrency: int,
                  count, work: Path) -> str:
    """System calls per request of the processes ``pids`` during a 4 s wrk run."""
    out_file = work / f"strace-{pids[0]}.txt"
    cmd = [strace, "-c", "-f", "-o", str(out_file)]
    for pid in pids:
        cmd += ["-p", str(pid)]
    tracer = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)  # attached
        before = count()
        parsed, _ = run_wrk(target_url, body, concurrency, 4)
        time.sleep(0.2)
        requests = count() - before
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(30)
    lines = [f"  {requests:.0f} requests ({parsed['rps']:.0f} req/s under strace):"]
    for line in out_file.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[3].isdigit() and fields[-1] != "total":
            per = int(fields[3]) / requests
            if per >= 0.01:
                lines.append(f"    {fields[-1]:16} {per:6.2f} per request")
    return "\n".join(lines)


def in_process(calls: int, top: int) -> None:
    """The gateway's handler vs a bare pass-through handler, in this process, no sockets."""
    import uvloop
    from modelrollout.serving.contract.routes import parse_route_table
    from modelrollout.serving.gateway.app import GatewayApp
    from modelrollout.serving.gateway.frontend import Response
    from modelrollout.serving.gateway.settings import GatewaySettings
    from modelrollout.serving.gateway.upstream import EndpointPool, UpstreamResponse

    body = json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                   "data": [0.345584, 0.821618, 0.330437, -1.303157]}]}).encode()
    answer = UpstreamResponse(200, [
        (b"date", b"now"), (b"content-type", b"application/json"), (b"content-length", b"150"),
        (b"x-request-id", b"0123456789abcdef0123456789abcdef"),
    ], b"x" * 150)
    in_flight: list = []  # (timer, done) of the request the stub "sent"

    class Call:
        def cancel(self) -> None:
            return None

    call = Call()

    def stub_start(self, method, path, headers, body, timeout_seconds, done):
        # EndpointPool.start without the socket: build the request, arm the timer; the
        # loop below stops it and hands `done` the answer, as the upstream connection does.
        self._encode(method, path, headers, body)
        self.outstanding += 1
        in_flight.append((asyncio.get_running_loop().call_later(timeout_seconds, print), done, self))
        return call

    def answer_it() -> None:
        timer, done, pool = in_flight.pop()
        timer.cancel()
        pool.outstanding -= 1
        done(answer, None)

    EndpointPool.start = stub_start
    hop = {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"te", b"trailer",
           b"upgrade", b"host", b"content-length"}
    pool = EndpointPool("127.0.0.1", 9)
    replies: list[Response] = []

    def bare(method, path, query, headers, data, reply):
        forwarded = [(k, v) for k, v in headers if k not in hop]

        def done(response, error):
            out = [(k, v) for k, v in response.headers if k not in hop and k != b"date"]
            reply(Response(response.status, out, response.body))

        return pool.start(method, path, forwarded, data, 30.0, done)

    request = (b"POST", b"/v2/models/m/infer", b"",
               [(b"host", b"127.0.0.1:8000"), (b"content-length", str(len(body)).encode()),
                (b"content-type", b"application/json")],
               body, replies.append)

    async def run() -> None:
        app = GatewayApp(GatewaySettings(), [])
        app.routes.update(parse_route_table({"models": {"m": {"revisions": [
            {"name": "stable", "role": "stable", "weight": 100, "endpoints": ["127.0.0.1:9"]}]}}}),
            "bench")

        def one(handler) -> None:  # as the front end: begin, the answer arrives, after()
            handler(*request)
            answer_it()
            response = replies.pop()
            if response.after is not None:
                response.after()  # metrics (and mirroring), which the front end runs after writing

        for label, handler in (("gateway handler", app.begin), ("bare pass-through", bare)) * 2:
            for _ in range(2000):
                one(handler)
            started = time.perf_counter()
            for _ in range(calls):
                one(handler)
            print(f"{label:18} {(time.perf_counter() - started) / calls * 1e6:6.2f} µs per call")
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(calls):
            one(app.begin)
        profile.disable()
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(top)
        print(f"cProfile of {calls} gateway calls (cProfile's own overhead inflates the times):")
        print(text.getvalue())

    uvloop.run(run())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--py-spy", default=None, help="path of a py-spy binary (optional)")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--native", action="store_true",
                        help="py-spy --native (C frames too; pauses the process per sample)")
    parser.add_argument("--perf", default=None,
                        help="path of `perf`: also record the gateway with perf (cpu-clock) and print "
                             "the share of its samples per shared object and the top symbols")
    parser.add_argument("--strace", default=None,
                        help="path of `strace`: also count system calls per request (gateway, server)")
    parser.add_argument("--in-process", type=int, default=0, metavar="N",
                        help="no processes: time N calls of the gateway's app in this process")
    parser.add_argument("--save", type=Path, default=None,
                        help="keep py-spy's raw (collapsed) profile at this path")
    args = parser.parse_args()
    if args.in_process:
        in_process(args.in_process, args.top)
        return 0

    work = Path(tempfile.mkdtemp(prefix="profile-gateway-"))
    sizes = MODELS[MODEL]
    _, model, body = write_model_and_body(work, MODEL)

    server = upstream_server(model, work / "server.log")
    gateway = None
    spy = perf = None
    try:
        server.start()
        server.wait_ready()
        routes = work / "routes.json"
        route_file(routes, server)
        gateway = gateway_process(routes, work / "gateway.log")
        gateway.start()
        gateway.wait_ready()
        check_answer(gateway, body.read_bytes(), sizes[-1])
        url = gateway.base + "/v2/models/m/infer"
        wait_for_quiet(20)
        run_wrk(url, body, args.concurrency, args.warmup)
        pid = gateway.proc.pid
        names = python_thread_names(args.py_spy, pid)
        raw = args.save or work / "profile.txt"
        if args.py_spy:
            spy = subprocess.Popen(
                # --native cannot sample without pausing the process (py-spy refuses both).
                [args.py_spy, "record", *([] if args.native else ["--nonblocking"]), "--threads",
                 "-r", str(args.rate),
                 "-d", str(max(1, args.seconds - 1)), "--format", "raw", "-o", str(raw),
                 "--pid", str(pid), *(["--native"] if args.native else [])],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        perf_data = work / "perf.data"
        if args.perf:
            perf = subprocess.Popen(
                [args.perf, "record", "-e", "cpu-clock", "-F", "997", "-g", "-o", str(perf_data),
                 "-p", str(pid), "--", "sleep", str(max(1, args.seconds - 1))],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        t0, srv0, us0 = thread_cpu(pid), server.cpu_seconds(), user_system(pid)
        busy0, kids0, wall0 = busy_cpu_seconds(), children_cpu_seconds(), time.monotonic()
        parsed, _ = run_wrk(url, body, args.concurrency, args.seconds)
        wall = time.monotonic() - wall0
        t1, srv1, us1 = thread_cpu(pid), server.cpu_seconds(), user_system(pid)
        busy1, kids1 = busy_cpu_seconds(), children_cpu_seconds()
        if spy is not None:
            spy.wait(30)
        if perf is not None:
            perf.wait(30)
        print(f"through the gateway, wrk -c{args.concurrency}: {parsed['rps']:.0f} req/s, "
              f"p50 {parsed['p50_ms']:.3f} ms, p99 {parsed['p99_ms']:.3f} ms, "
              f"non-2xx {parsed['non2xx']}")
        print("gateway CPU per thread (CPU-seconds per wall second):")
        gateway_total = print_thread_cpu(t0, t1, wall, names)
        server_cpu = (srv1 - srv0) / wall
        wrk_cpu = (kids1 - kids0) / wall  # wrk runs and py-spy (when used) are our children
        rest = max(0.0, (busy1 - busy0) / wall - gateway_total - server_cpu - wrk_cpu)
        print(f"  gateway total {gateway_total:.2f} ({gateway_total / parsed['rps'] * 1e6:.0f} µs "
              f"per request); server {server_cpu:.2f}; wrk{' + py-spy' if spy else ''} {wrk_cpu:.2f}; "
              f"rest of machine {rest:.2f}")
        user, system = ((b - a) / parsed["rps"] / wall * 1e6 for a, b in zip(us0, us1, strict=True))
        print(f"  gateway per request: user {user:.0f} µs, system (kernel) {system:.0f} µs")
        if spy is not None and raw.exists():
            print(summarise(raw, args.top))
        if perf is not None and perf_data.exists():
            print(perf_summary(args.perf, perf_data, args.top))
        if args.strace:
            def counter(proc, metric):
                return lambda: scrape(proc).get(metric + "_count", 0.0)

            print("system calls per request, gateway (strace -c):")
            print(strace_counts(args.strace, [pid], url, body, args.concurrency,
                                counter(gateway, GATEWAY_REQUEST_DURATION), work))
            print("system calls per request, server behind the gateway (strace -c):")
            print(strace_counts(args.strace, [server.proc.pid], url, body, args.concurrency,
                                counter(server, REQUEST_METRIC), work))
            print("system calls per request, server direct (strace -c):")
            print(strace_counts(args.strace, [server.proc.pid], server.base + "/v2/models/m/infer",
                                body, args.concurrency, counter(server, REQUEST_METRIC), work))
    finally:
        for helper in (spy, perf):
            if helper is not None and helper.poll() is None:
                helper.kill()
                helper.wait(10)
        if gateway is not None:
            gateway.stop()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
