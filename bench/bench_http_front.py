"""What do the HTTP limits (serving/http_limits.py) cost per request? The two HTTP front
ends, before and after, in this process: no sockets, no other process, CPU time only.

* server: uvicorn's stock ``HttpToolsProtocol`` (the server's front end before the
  limits) against ``LimitedHttpToolsProtocol`` (server/http_protocol.py), both serving
  the same minimal ASGI app (read the body, answer 200 with Content-Length);
* gateway: serving/gateway/frontend.py as it was at ``--before REV`` (loaded from git
  next to the package) against the working tree's, both with a handler that answers at
  once from ``begin``.

Each request is a typical inference POST (seven headers, a 90-byte JSON body) fed to one
kept-alive connection through a fake transport, either whole in one read or split in
two (head, then body: the path on which the server arms its deadline timer). Variants
run in interleaved rounds (A B, B A, ...) on uvloop; the figure is process CPU time per
request (time.process_time), median over the rounds, so other processes on the machine
matter far less than in an end-to-end run.

Usage (from the repository root):

    .venv/bin/python bench/bench_http_front.py --before b811371 [--requests 20000] [--rounds 8]
    .venv/bin/python bench/bench_http_front.py --before b811371 --requests 2000 \
        --instructions /usr/bin/valgrind

The second form counts instructions per request instead (valgrind's callgrind, each
variant alone, run with N and 2N requests so that start-up cancels out): slow (minutes),
but the same on a busy machine as on an idle one.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop
from modelrollout.serving import hosting
from modelrollout.serving.gateway import frontend
from modelrollout.serving.http_limits import HttpLimits
from modelrollout.serving.server.http_protocol import protocol_for
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

ROOT = Path(__file__).resolve().parent.parent
BODY = b'{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}'
HEAD = (b"POST /v2/models/m/infer HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: python-httpx/0.28\r\n"
        b"Accept: */*\r\nAccept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(BODY))
ANSWER = b'{"model_name":"m","model_version":"1","outputs":[]}'


class Transport:
    """Enough of an asyncio transport for both front ends; counts answers written."""

    def __init__(self) -> None:
        self.answers = 0
        self.closed = False

    def write(self, data: bytes) -> None:
        self.answers += data.count(b"HTTP/1.1 200")

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default=None):
        return ("127.0.0.1", 8080) if name in ("sockname", "peername") else default

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass


async def asgi_app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        return
    await hosting.read_body(receive, None, 1 << 24)
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"application/json"), (b"content-length", b"%d" % len(ANSWER))]})
    await send({"type": "http.response.body", "body": ANSWER})


async def run_server_front(factory, requests: int, split: bool) -> float:
    config = Config(asgi_app, http="httptools", lifespan="off", log_config=None, access_log=False)
    protocol = factory(config=config, server_state=ServerState(), app_state={})
    transport = Transport()
    protocol.connection_made(transport)
    reads = [HEAD, BODY] if split else [HEAD + BODY]
    started = time.process_time()
    for i in range(1, requests + 1):
        for data in reads:
            protocol.data_received(data)
        while transport.answers < i:
            await asyncio.sleep(0)
    seconds = time.process_time() - started
    assert not transport.closed
    protocol.connection_lost(None)
    return seconds / requests


class Handler:
    """What the gateway front end serves: an answer at once, as GatewayApp.begin gives
    for a request answered from its upstream connection's callback."""

    def __init__(self, module) -> None:
        self._response = module.Response  # each version of the front end has its own class

    def begin(self, method, path, query, headers, body, reply):
        return self._response(200, [(b"content-type", b"application/json")], ANSWER)

    def error_response(self, status, message, headers):
        raise AssertionError(f"refused: {status} {message}")


async def run_gateway_front(module, requests: int, split: bool) -> float:
    if module is frontend:
        connections = module._Connections(Handler(module), 1 << 24, HttpLimits())
    else:
        connections = module._Connections(Handler(module), 1 << 24)
    connection = connections()
    transport = Transport()
    connection.connection_made(transport)
    reads = [HEAD, BODY] if split else [HEAD + BODY]
    started = time.process_time()
    for _ in range(requests):
        for data in reads:
            connection.data_received(data)
    seconds = time.process_time() - started
    assert transport.answers == requests and not transport.closed
    return seconds / requests


def frontend_at(revision: str, work: Path):
    """serving/gateway/frontend.py as it was at ``revision``, as a module of the package."""
    source = subprocess.run(["git", "show", f"{revision}:serving/gateway/frontend.py"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout
    path = work / "frontend_before.py"
    path.write_text(source)
    name = "modelrollout.serving.gateway._frontend_before"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="git revision of the gateway front end before")
    parser.add_argument("--requests", type=int, default=20000, help="per variant and round")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--only", metavar="FRONT:VERSION:READS",
                        help="run one variant once and print nothing, e.g. server:after:split (for "
                        "an instruction count under valgrind, see --instructions)")
    parser.add_argument("--instructions", metavar="VALGRIND",
                        help="instead of CPU time: instructions per request, counted by valgrind's "
                        "callgrind in a run of each variant alone (the difference between "
                        "--requests and twice as many, so start-up cancels out)")
    args = parser.parse_args()
    if args.instructions:
        return count_instructions(args)
    before = frontend_at(args.before, Path(tempfile.mkdtemp(prefix="bench-http-front-")))
    limits = HttpLimits()
    variants = {
        ("server", "before"): lambda split: run_server_front(HttpToolsProtocol, args.requests, split),
        ("server", "after"): lambda split: run_server_front(protocol_for(limits, 1 << 24), args.requests,
                                                            split),
        ("gateway", "before"): lambda split: run_gateway_front(before, args.requests, split),
        ("gateway", "after"): lambda split: run_gateway_front(frontend, args.requests, split),
    }
    results: dict[tuple, list[float]] = {}
    if args.only:
        front, version, reads = args.only.split(":")
        uvloop.run(variants[(front, version)](reads == "split"))
        return 0

    async def measure() -> None:
        for split in (False, True):
            for round_no in range(args.rounds):
                order = list(variants) if round_no % 2 == 0 else list(variants)[::-1]
                for key in order:
                    seconds = await variants[key](split)
                    results.setdefault((*key, split), []).append(seconds)

    uvloop.run(measure())
    print(f"\n{args.requests} requests per variant and round, {args.rounds} rounds; "
          "CPU µs per request, median (min-max)\n")
    print("| front end | request arrives | before | after | after / before |")
    print("|---|---|---:|---:|---:|")
    for front in ("server", "gateway"):
        for split in (False, True):
            b, a = results[(front, "before", split)], results[(front, "after", split)]
            print(f"| {front} | {'head, then body' if split else 'in one read'} "
                  f"| {statistics.median(b) * 1e6:.2f} ({min(b) * 1e6:.2f}-{max(b) * 1e6:.2f}) "
                  f"| {statistics.median(a) * 1e6:.2f} ({min(a) * 1e6:.2f}-{max(a) * 1e6:.2f}) "
                  f"| {statistics.median(a) / statistics.median(b):.3f} |")
    return 0


def count_instructions(args) -> int:
    """Instructions per request of each variant: deterministic, whatever else runs."""
    def instructions(only: str, requests: int) -> int:
        result = subprocess.run(
            [args.instructions, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
             __file__, "--before", args.before, "--only", only, "--requests", str(requests)],
            capture_output=True, text=True, check=True, timeout=1800)
        line = next(line for line in result.stderr.splitlines() if "Collected" in line)
        return int(line.rsplit(":", 1)[1].replace(",", "").strip())

    print(f"\ninstructions per request (callgrind, {args.requests} requests more in the second run)\n")
    print("| front end | request arrives | before | after | after / before |")
    print("|---|---|---:|---:|---:|")
    for front in ("server", "gateway"):
        for reads in ("one", "split"):
            per = {}
            for version in ("before", "after"):
                only = f"{front}:{version}:{reads}"
                base = instructions(only, args.requests)
                per[version] = (instructions(only, 2 * args.requests) - base) / args.requests
            print(f"| {front} | {'head, then body' if reads == 'split' else 'in one read'} "
                  f"| {per['before']:.0f} | {per['after']:.0f} | {per['after'] / per['before']:.3f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
