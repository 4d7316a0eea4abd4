"""Interleaved A/B runs of `modelrollout serve` variants: a diagnostic helper.

Each variant is ``label=flags``: its own `modelrollout serve` process (started through
the CLI, one after the other, on 127.0.0.1) with those extra flags, all loaded with the
same model. They are then measured in interleaved rounds exactly like bench_server.py
does (wrk -t1 -c<concurrency>, order reversed every other round), and each variant's
throughput, latency, CPU and /metrics stage means are printed.

Two pseudo-flags change the server process without touching its code, through a
sitecustomize.py on PYTHONPATH:

* ``NOSPIN``       - onnxruntime sessions get ``session.intra_op.allow_spinning = 0``;
* ``SWITCH=<s>``   - ``sys.setswitchinterval(<s>)`` (GIL hand-off interval);
* ``INLINE_US=<n>`` - the server's inline threshold (lifecycle.INLINE_THRESHOLD_SECONDS,
  100 µs as shipped) set to <n> µs: 0 forces the thread pool, a large value forces
  inference on the event loop, whatever the start-up warm-up runs measured;
* ``STOCK_HTTP``   - uvicorn's own httptools protocol instead of the server's
  (server/http_protocol.py): the request path as it was before the HTTP limits.

Example (from the repository root):

    .venv/bin/python bench/ab_server.py --model 2.6M --concurrency 32 \\
        'default=' 'one-thread=--intra-op-threads 1' 'nospin=NOSPIN' \\
        'batch=--max-batch-size 32 --max-queue-delay-us 2000'
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from bench_server import (
    BATCH_METRIC,
    MODELS,
    REQUEST_METRIC,
    STAGE_METRIC,
    STAGES,
    Entry,
    Server,
    free_port,
    modelrollout_server,
    run_rounds,
    write_model_and_body,
)

NOSPIN = """\
import onnxruntime as _ort
_init = _ort.InferenceSession.__init__
def _no_spin(self, model, sess_options=None, *args, **kwargs):
    if sess_options is not None:
        sess_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    _init(self, model, sess_options, *args, **kwargs)
_ort.InferenceSession.__init__ = _no_spin
"""


STOCK_HTTP = """\
import modelrollout.serving.server.http_protocol as _http_protocol
_http_protocol.protocol_for = lambda limits, max_body_bytes: "httptools"
"""


def variant_server(label: str, flags: list[str], model: Path, work: Path) -> Server:
    site_lines = []
    serve_flags = []
    for flag in flags:
        if flag == "NOSPIN":
            site_lines.append(NOSPIN)
        elif flag.startswith("SWITCH="):
            site_lines.append(f"import sys\nsys.setswitchinterval({float(flag[7:])!r})\n")
        elif flag == "STOCK_HTTP":
            site_lines.append(STOCK_HTTP)
        elif flag.startswith("INLINE_US="):
            site_lines.append(
                "import modelrollout.serving.server.lifecycle as _lifecycle\n"
                f"_lifecycle.INLINE_THRESHOLD_SECONDS = {float(flag[10:]) / 1e6!r}\n")
        else:
            serve_flags.append(flag)
    server = modelrollout_server(model, free_port(), work / f"{label}.log", serve_flags)
    if site_lines:
        site = work / f"site-{label}"
        site.mkdir()
        (site / "sitecustomize.py").write_text("\n".join(site_lines))
        server.env = {**os.environ, "PYTHONPATH": str(site)}
    return server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=list(MODELS), default="2.6M")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=4, help="measured seconds per round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("variants", nargs="+", help="label=flags for `modelrollout serve`")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ab-server-"))
    _, model, body = write_model_and_body(work, args.model)
    servers: list[Server] = []
    entries: list[Entry] = []
    try:
        for spec in args.variants:
            label, _, flags = spec.partition("=")
            server = variant_server(label, shlex.split(flags), model, work)
            servers.append(server)
            server.start()
            server.wait_ready()  # one start-up at a time: warm-up timings must not overlap
            print(f"{label}: {flags or '(defaults)'} -> {server.ready_facts()}", flush=True)
            entries.append(Entry(f"{args.model} c{args.concurrency}", args.model,
                                 args.concurrency, f"modelrollout {label}", server, body))
        run_rounds(entries, args.rounds, args.seconds, args.warmup, 0.0)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print()
    print("| variant | 2xx/s | per round | p50 ms | p99 ms | CPU server / wrk / other | server CPU µs/req "
          "| decode µs | queue µs | infer µs | encode µs | handler µs | mean batch |")
    print("|---|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for e in entries:
        cpu = e.cpu()
        stage = [e.metric_mean(STAGE_METRIC, s) for s in STAGES]
        handler = e.metric_mean(REQUEST_METRIC)
        print(f"| {e.contender.removeprefix('modelrollout ')} | {e.ok_rps:.0f} "
              f"| {' / '.join(f'{r:.0f}' for r in e.round_rps)} | {e.p50_ms:.2f} | {e.p99_ms:.2f} "
              f"| {cpu[0]:.2f} / {cpu[1]:.2f} / {cpu[2]:.2f} | {cpu[0] / e.ok_rps * 1e6:.0f} | "
              + " | ".join(f"{v * 1e6:.0f}" if v is not None else "–" for v in stage)
              + f" | {handler * 1e6:.0f} | {e.metric_mean(BATCH_METRIC) or 0:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
