"""The 2.6M-parameter MLP at concurrency 32: what the structural options give dynamic batching.

bench_server.py measured batching at 2.3x no batching against the 3x targeted, with the
event loop's work per request (JSON decode, HTTP/ASGI) as the limit. This script measures,
in interleaved rounds (wrk -t1 -c32, order reversed every other round), each option next
to the same server without batching:

* ``no batching`` / ``batching``: `modelrollout serve` as shipped, without and with
  ``--max-batch-size 32 --max-queue-delay-us 2000``, JSON requests (the baseline ratio);
* ``batching, decode in a thread``: the request body decoded (JSON -> tensors) in a worker
  thread (asyncio.to_thread) instead of on the event loop; a sitecustomize.py does it,
  the server's code is not changed for the experiment;
* ``batching, 2 processes``: two `modelrollout serve` processes on one port (SO_REUSEPORT,
  set by a sitecustomize.py on the listening socket; the kernel spreads connections over
  them), each batching, each with one intra-op thread (two threads for two cores);
* ``no batching, binary`` / ``batching, binary``: the same two servers, with requests in
  the binary tensor extension (a small JSON header, then the 512 floats as raw bytes;
  Inference-Header-Content-Length), as a client library sends them (bench/post_binary.lua).

Usage (from the repository root; wrk from Debian's package):

    .venv/bin/python bench/bench_server_options.py [--rounds 3] [--seconds 4] [--warmup 2]

Prints a markdown table with, per option, 2xx/s, its ratio to no batching with the same
client protocol, latency, and the CPU the server(s) used per request.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_server import (  # noqa: E402 - bench helpers, by path
    HOST,
    MODELS,
    Server,
    busy_cpu_seconds,
    free_port,
    modelrollout_server,
    parse_wrk,
    write_model_and_body,
)

BENCH = Path(__file__).resolve().parent
BATCHING = ["--max-batch-size", "32", "--max-queue-delay-us", "2000"]

DECODE_IN_THREAD = """\
import asyncio
import modelrollout.serving.server.infer as _infer
_read, _decode = _infer.read_body, _infer.decode_request
_decoded = {}
async def _read_and_decode(receive, headers, limit):
    body = await _read(receive, headers, limit)
    _decoded[id(body)] = await asyncio.to_thread(_decode, body, headers.get(_infer.BINARY_HEADER))
    return body
def _take(body, header):
    found = _decoded.pop(id(body), None)
    return found if found is not None else _decode(body, header)
_infer.read_body, _infer.decode_request = _read_and_decode, _take
"""

REUSE_PORT = """\
import socket as _socket
_bind = _socket.socket.bind
def _reusing_bind(self, address):
    if self.type == _socket.SOCK_STREAM:
        self.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEPORT, 1)
    return _bind(self, address)
_socket.socket.bind = _reusing_bind
"""


def binary_body(work: Path) -> tuple[Path, int]:
    """The same kind of request in the binary tensor extension: (body file, JSON header length)."""
    features = MODELS["2.6M"][0]
    values = np.random.default_rng(1).standard_normal(features).astype(np.float32)
    header = json.dumps({"inputs": [{"name": "input", "shape": [1, features], "datatype": "FP32",
                                     "parameters": {"binary_data_size": 4 * features}}]}).encode()
    path = work / "binary.bin"
    path.write_bytes(header + struct.pack(f"<{features}f", *values))
    return path, len(header)


@dataclass
class Option:
    label: str
    servers: list[Server]
    body: Path
    header_length: int | None = None  # binary: the JSON header's length
    slices: list[dict] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.servers[0].port

    def cpu(self) -> float:
        return sum(s.cpu_seconds() for s in self.servers)

    def wrk(self, seconds: int) -> dict:
        script = BENCH / ("post_binary.lua" if self.header_length else "post.lua")
        extra = [str(self.header_length)] if self.header_length else []
        cmd = ["wrk", "-t1", "-c32", f"-d{seconds}s", "--latency", "-s", str(script),
               f"http://{HOST}:{self.port}/v2/models/m/infer", "--", str(self.body), *extra]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
        if done.returncode:
            raise RuntimeError(done.stderr + done.stdout)
        return parse_wrk(done.stdout)

    def measure(self, seconds: int, warmup: int) -> None:
        self.wrk(warmup)
        cpu0, busy0, wall0 = self.cpu(), busy_cpu_seconds(), time.monotonic()
        parsed = self.wrk(seconds)
        cpu1, busy1, wall1 = self.cpu(), busy_cpu_seconds(), time.monotonic()
        parsed.update(cpu_s=cpu1 - cpu0, other=max(0.0, (busy1 - busy0) - (cpu1 - cpu0)) / (wall1 - wall0))
        self.slices.append(parsed)
        ok = (parsed["requests"] - parsed["non2xx"]) / parsed["duration_s"]
        print(f"  {self.label:34} {ok:7.0f} 2xx/s  p50 {parsed['p50_ms']:6.2f} ms  "
              f"p99 {parsed['p99_ms']:6.2f} ms  other CPU {parsed['other']:.2f}", flush=True)

    @property
    def ok_rps(self) -> float:
        ok = sum(s["requests"] - s["non2xx"] for s in self.slices)
        return ok / sum(s["duration_s"] for s in self.slices)

    @property
    def cpu_us(self) -> float:
        return 1e6 * sum(s["cpu_s"] for s in self.slices) / sum(s["requests"] for s in self.slices)


def server(label: str, model: Path, work: Path, flags: list[str], site: str = "", port: int | None = None
           ) -> Server:
    made = modelrollout_server(model, port or free_port(), work / f"{label}.log", flags)
    if site:
        folder = work / f"site-{label}"
        folder.mkdir()
        (folder / "sitecustomize.py").write_text(site)
        made.env = {**os.environ, "PYTHONPATH": str(folder)}
    return made


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-server-options-"))
    _, model, json_body = write_model_and_body(work, "2.6M")
    bin_body, header_length = binary_body(work)
    shared = free_port()
    plain = server("plain", model, work, [])
    batching = server("batching", model, work, BATCHING)
    options = [
        Option("no batching", [plain], json_body),
        Option("batching", [batching], json_body),
        Option("batching, decode in a thread", [server("thread", model, work, BATCHING, DECODE_IN_THREAD)],
               json_body),
        Option("batching, 2 processes", [
            server(f"pair-{i}", model, work, [*BATCHING, "--intra-op-threads", "1"], REUSE_PORT, shared)
            for i in range(2)], json_body),
        Option("no batching, binary", [plain], bin_body, header_length),
        Option("batching, binary", [batching], bin_body, header_length),
    ]
    started: list[Server] = []
    try:
        for option in options:
            for process in option.servers:
                if process in started:
                    continue
                started.append(process)
                process.start()
                process.wait_ready()  # one at a time: start-up warm-ups must not overlap
                # Two on one port: the readiness probe may have reached the other one.
                deadline = time.monotonic() + 90
                while not process.ready_facts() and time.monotonic() < deadline:
                    time.sleep(0.2)
                print(f"{option.label}: {process.ready_facts()}", flush=True)
        for round_no in range(args.rounds):
            print(f"round {round_no + 1}", flush=True)
            for option in options if round_no % 2 == 0 else options[::-1]:
                option.measure(args.seconds, args.warmup)
    finally:
        for process in started:
            process.stop()
        shutil.rmtree(work, ignore_errors=True)
    base = {False: options[0], True: options[4]}
    print()
    print("| option | 2xx/s | per round | vs no batching (same client) | p50 ms | p99 ms | server CPU µs/req "
          "| other CPU |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for option in options:
        against = base[option.header_length is not None]
        per_round = " / ".join(f"{(s['requests'] - s['non2xx']) / s['duration_s']:.0f}"
                               for s in option.slices)
        print(f"| {option.label} | {option.ok_rps:.0f} | {per_round} | "
              f"{option.ok_rps / against.ok_rps:.2f}x | "
              f"{statistics.median(s['p50_ms'] for s in option.slices):.2f} | "
              f"{statistics.median(s['p99_ms'] for s in option.slices):.2f} | {option.cpu_us:.0f} | "
              f"{statistics.median(s['other'] for s in option.slices):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
