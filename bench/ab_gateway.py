"""How much of the gateway's cost is the gateway? Interleaved A/B runs of proxy variants.

A diagnostic helper for bench_gateway.py. All variants forward to the same
`modelrollout serve` (tiny model) through the gateway's own upstream client,
``serving.gateway.upstream.EndpointPool`` (keep-alive connections, httptools parser), so
they differ only in what sits in front of it:

* gateway       - `modelrollout gateway --routes FILE`, as shipped;
* gateway-nowatch - the same, but the route file is not followed after start-up
  (``RouteFile.follow`` patched to wait forever through a sitecustomize.py on PYTHONPATH):
  no watchfiles thread;
* bare-asgi     - a pass-through ASGI app (drop hop-by-hop headers, forward, answer) run by
  ``serving.hosting.run``, i.e. the uvicorn/uvloop/httptools set-up the gateway ran under
  before it got its own front end (serving/gateway/frontend.py), without its routing,
  request ids, metrics or timeouts;
* raw-protocol  - no ASGI server at all: an ``asyncio.Protocol`` on uvloop parsing requests
  with ``httptools.HttpRequestParser`` and writing the upstream's answer back itself (the
  sketch that frontend.py grew from);
* nginx         - as in bench_gateway.py (reference);
* direct        - wrk straight to the server.

bare-asgi and raw-protocol are sketches for measuring, not proxies to ship (no body limit,
no pipelining, minimal error handling). They are measured in interleaved rounds exactly
like bench_gateway.py (its Entry and table, bench_server's run_rounds).

Usage (from the repository root):

    .venv/bin/python bench/ab_gateway.py [--duration 12] [--rounds 3] [--warmup 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from bench_gateway import (
    CONCURRENCIES,
    MODEL,
    Entry,
    Proc,
    gateway_process,
    nginx_process,
    route_file,
    table,
    upstream_server,
)
from bench_server import HOST, MODELS, Server, check_answer, free_port, run_rounds, write_model_and_body

VARIANTS = ("direct", "gateway", "gateway-nowatch", "bare-asgi", "raw-protocol", "nginx")

NOWATCH = """\
import asyncio
from modelrollout.serving.gateway.route_file import RouteFile
async def _follow_nothing(self, state):
    await asyncio.Event().wait()
RouteFile.follow = _follow_nothing
"""

_HOP = {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"te", b"trailer",
        b"upgrade", b"host", b"content-length"}


# --------------------------------------------------------------------------- the variants


def serve_bare_asgi(port: int, upstream_port: int) -> None:
    from modelrollout.serving import hosting
    from modelrollout.serving.gateway.upstream import EndpointPool

    pool = EndpointPool(HOST, upstream_port)

    async def app(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        body = await hosting.read_body(receive, None, 1 << 24)
        headers = [(k, v) for k, v in scope["headers"] if k not in _HOP]
        path = scope["raw_path"] + (b"?" + scope["query_string"] if scope["query_string"] else b"")
        response = await pool.request(scope["method"].encode(), path, headers, body, 30.0)
        out = [(k, v) for k, v in response.headers if k not in _HOP and k not in (b"date", b"server")]
        out.append((b"content-length", str(len(response.body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": out})
        await send({"type": "http.response.body", "body": response.body})

    hosting.run(app, HOST, port, 5.0, lambda: None)


def serve_raw_protocol(port: int, upstream_port: int) -> None:
    import httptools
    import uvloop
    from modelrollout.serving.gateway.upstream import EndpointPool

    pool = EndpointPool(HOST, upstream_port)

    class Front(asyncio.Protocol):
        def connection_made(self, transport) -> None:
            self.transport = transport
            self.parser = httptools.HttpRequestParser(self)
            self.url = b""
            self.headers: list[tuple[bytes, bytes]] = []
            self.body: list[bytes] = []

        def data_received(self, data: bytes) -> None:
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                self.transport.close()

        def on_url(self, url: bytes) -> None:
            self.url += url

        def on_header(self, name: bytes, value: bytes) -> None:
            name = name.lower()
            if name not in _HOP:
                self.headers.append((name, value))

        def on_body(self, body: bytes) -> None:
            self.body.append(body)

        def on_message_complete(self) -> None:
            method, keep = self.parser.get_method(), self.parser.should_keep_alive()
            url, headers, body = self.url, self.headers, b"".join(self.body)
            self.url, self.headers, self.body = b"", [], []
            asyncio.get_running_loop().create_task(self.forward(method, url, headers, body, keep))

        async def forward(self, method, url, headers, body, keep) -> None:
            try:
                response = await pool.request(method, url, headers, body, 30.0)
            except Exception:  # noqa: BLE001 - a sketch: any failure is a 502
                self.transport.write(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
                return
            head = [b"HTTP/1.1 ", str(response.status).encode(), b" \r\n"]
            for name, value in response.headers:
                if name not in _HOP and name not in (b"date", b"server"):
                    head += [name, b": ", value, b"\r\n"]
            head += [b"content-length: ", str(len(response.body)).encode(), b"\r\n\r\n", response.body]
            self.transport.write(b"".join(head))
            if not keep:
                self.transport.close()

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Front, HOST, port)
        async with server:
            await server.serve_forever()

    uvloop.run(main())  # SIGTERM (Server.stop) ends the process


def variant_process(kind: str, upstream: Server, log: Path) -> Proc:
    port = free_port()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serve-variant", kind,
           "--port", str(port), "--upstream-port", str(upstream.port)]
    return Proc(kind, cmd, port, log)


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--serve-variant", choices=("bare-asgi", "raw-protocol"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--upstream-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_variant == "bare-asgi":
        serve_bare_asgi(args.port, args.upstream_port)
        return 0
    if args.serve_variant == "raw-protocol":
        serve_raw_protocol(args.port, args.upstream_port)
        return 0

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    slice_s = max(1, -(-args.duration // args.rounds))
    work = Path(tempfile.mkdtemp(prefix="ab-gateway-"))
    processes: list[Server] = []
    entries: list[Entry] = []
    try:
        sizes = MODELS[MODEL]
        _, model_path, body = write_model_and_body(work, MODEL)

        def start(proc: Server) -> Server:
            processes.append(proc)
            proc.start()
            proc.wait_ready()
            check_answer(proc, body.read_bytes(), sizes[-1])
            return proc

        server = start(upstream_server(model_path, work / "server.log"))
        targets: dict[str, Server] = {"direct": server}
        for kind in variants:
            if kind in ("gateway", "gateway-nowatch"):
                route_file(work / "routes.json", server)
                proc = gateway_process(work / "routes.json", work / f"{kind}.log")
                if kind == "gateway-nowatch":
                    site = work / "site-nowatch"
                    site.mkdir()
                    (site / "sitecustomize.py").write_text(NOWATCH)
                    proc.env = {**os.environ, "PYTHONPATH": str(site)}
                proc.label = kind
                targets[kind] = start(proc)
            elif kind == "nginx":
                (work / "nginx").mkdir()
                targets[kind] = start(nginx_process(work / "nginx", server, work / "nginx.log")[0])
            elif kind in ("bare-asgi", "raw-protocol"):
                targets[kind] = start(variant_process(kind, server, work / f"{kind}.log"))
            elif kind != "direct":
                raise SystemExit(f"unknown variant {kind!r}; choose from {VARIANTS}")
        entries = [Entry(c, kind, targets[kind], server, body)
                   for c in CONCURRENCIES for kind in variants]
        run_rounds(entries, args.rounds, slice_s, args.warmup, 0.0)
    finally:
        for proc in reversed(processes):
            proc.stop()
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(table(entries))
    print("| concurrency | variant | added p50 ms (per round) | throughput % of direct (per round) |")
    print("|---|---|---|---|")
    for c in CONCURRENCIES:
        direct = next(e for e in entries if e.concurrency == c and e.contender == "direct")
        d = direct.by_round()
        for e in entries:
            if e.concurrency != c or e is direct:
                continue
            p = e.by_round()
            added = [p[r].p50_ms - d[r].p50_ms for r in sorted(p)]
            share = [(p[r].requests / p[r].duration_s) / (d[r].requests / d[r].duration_s)
                     for r in sorted(p)]
            print(f"| {c} | {e.contender} | {e.p50_ms - direct.p50_ms:+.3f} "
                  f"({', '.join(f'{v:+.3f}' for v in added)}) | {100 * e.ok_rps / direct.ok_rps:.1f}% "
                  f"({', '.join(f'{100 * v:.0f}%' for v in share)}; median "
                  f"{100 * statistics.median(share):.0f}%) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
