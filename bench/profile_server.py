"""Where does `modelrollout serve` spend its time under load? A diagnostic helper.

Starts `modelrollout serve` (through the CLI, on 127.0.0.1), puts it under wrk load
like bench_server.py does, and reports for the measured window:

* wrk's requests/s, p50 and p99;
* CPU per OS thread of the server (from /proc/<pid>/task), with Python thread names
  when py-spy is available, plus wrk's and the rest of the machine's CPU;
* with ``--py-spy PATH``: a py-spy sampling profile of the same window (non-blocking),
  summarised as the top frames by inclusive and self samples per thread.

``--switch-interval S`` starts the server with ``sys.setswitchinterval(S)`` (through a
sitecustomize.py on PYTHONPATH, the server's code is untouched) to test whether GIL
hand-offs between the event loop and the inference thread cost time.

Usage (from the repository root):

    .venv/bin/python bench/profile_server.py --model 2.6M --concurrency 32 \\
        [--py-spy /path/to/py-spy] [--switch-interval 0.0005] -- --max-batch-size 32

Everything after ``--`` goes to `modelrollout serve`. All processes are stopped on exit.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_server import (
    MODELS,
    busy_cpu_seconds,
    children_cpu_seconds,
    free_port,
    modelrollout_server,
    run_wrk,
    wait_for_quiet,
    write_model_and_body,
)

CLK = os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[int, float]:
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / CLK
    return out


def print_thread_cpu(t0: dict[int, float], t1: dict[int, float], wall: float, names: dict[int, str]) -> float:
    """Print each thread's CPU-seconds per wall second, busiest first; return the total."""
    total = 0.0
    for tid in sorted(t1, key=lambda t: -(t1[t] - t0.get(t, 0.0))):
        used = (t1[tid] - t0.get(tid, 0.0)) / wall
        total += used
        if used >= 0.01:
            label = names.get(tid, "non-Python thread" if len(names) > 1 else "other thread")
            print(f"  tid {tid:7d} {label:28} {used:.2f}")
    return total


def python_thread_names(py_spy: str | None, pid: int) -> dict[int, str]:
    if not py_spy:
        return {pid: "MainThread"}
    proc = subprocess.run([py_spy, "dump", "--pid", str(pid), "--nonblocking"],
                          capture_output=True, text=True, timeout=30)
    names = {}
    for m in re.finditer(r"Thread (\d+) \(\w+\): \"([^\"]+)\"", proc.stdout):
        names[int(m.group(1))] = m.group(2)
    return names or {pid: "MainThread"}


def summarise(raw_path: Path, top: int) -> str:
    """py-spy --format raw (collapsed stacks) -> top frames per thread."""
    incl: collections.Counter = collections.Counter()
    self_: collections.Counter = collections.Counter()
    per_thread: collections.Counter = collections.Counter()
    total = 0
    for line in raw_path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        thread = re.sub(r"thread \((\d+)\): ", "", frames[0])
        per_thread[thread] += n
        total += n
        clean = [re.sub(r" \((.*?):\d+\)", r" (\1)", f) for f in frames[1:]]
        for frame in set(clean):
            incl[(thread, frame)] += n
        if clean:
            self_[(thread, clean[-1])] += n
    lines = [f"samples: {total}; per thread: " +
             ", ".join(f"{t} {n}" for t, n in per_thread.most_common())]
    lines.append("inclusive (share of all samples):")
    shown = 0
    for (thread, frame), n in incl.most_common():
        if any(s in frame for s in ("<module>", "click/core.py", "threading.py", "_compat.py",
                                    "uvicorn/server.py", "cli.py", "server/main.py")):
            continue
        lines.append(f"  {100 * n / total:5.1f}%  {thread:12} {frame}")
        shown += 1
        if shown >= top:
            break
    lines.append("self (share of all samples):")
    for (thread, frame), n in self_.most_common(top):
        lines.append(f"  {100 * n / total:5.1f}%  {thread:12} {frame}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=list(MODELS), default="2.6M")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--py-spy", default=None, help="path of a py-spy binary (optional)")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--switch-interval", type=float, default=None)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("serve_args", nargs="*", help="after --: extra `modelrollout serve` flags")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="profile-server-"))
    _, model, body = write_model_and_body(work, args.model)

    env = None
    if args.switch_interval is not None:
        site = work / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(
            f"import sys\nsys.setswitchinterval({args.switch_interval!r})\n")
        env = {**os.environ, "PYTHONPATH": str(site)}
    server = modelrollout_server(model, free_port(), work / "server.log", list(args.serve_args))
    server.env = env
    spy = None
    try:
        server.start()
        server.wait_ready()
        print("server:", server.ready_facts() or "?", "| serve args:", " ".join(args.serve_args),
              "| switch interval:", args.switch_interval or "default (0.005)")
        url = server.base + "/v2/models/m/infer"
        wait_for_quiet(20)
        run_wrk(url, body, args.concurrency, args.warmup)
        names = python_thread_names(args.py_spy, server.proc.pid)
        raw = work / "profile.txt"
        if args.py_spy:
            spy = subprocess.Popen(
                [args.py_spy, "record", "--nonblocking", "--threads", "-r", str(args.rate),
                 "-d", str(max(1, args.seconds - 1)), "--format", "raw", "-o", str(raw),
                 "--pid", str(server.proc.pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        t0, busy0, kids0 = thread_cpu(server.proc.pid), busy_cpu_seconds(), children_cpu_seconds()
        wall0 = time.monotonic()
        parsed, _ = run_wrk(url, body, args.concurrency, args.seconds)
        wall = time.monotonic() - wall0
        t1, busy1, kids1 = thread_cpu(server.proc.pid), busy_cpu_seconds(), children_cpu_seconds()
        if spy is not None:
            spy.wait(30)
        print(f"wrk -c{args.concurrency}: {parsed['rps']:.0f} req/s, "
              f"p50 {parsed['p50_ms']:.3f} ms, p99 {parsed['p99_ms']:.3f} ms, "
              f"non-2xx {parsed['non2xx']}")
        print("server CPU per thread (CPU-seconds per wall second):")
        server_total = print_thread_cpu(t0, t1, wall, names)
        wrk_cpu = (kids1 - kids0) / wall  # wrk runs and py-spy (when used) are our children
        print(f"  server total {server_total:.2f}; wrk{' + py-spy' if spy else ''} {wrk_cpu:.2f}; "
              f"rest of machine {max(0.0, (busy1 - busy0) / wall - server_total - wrk_cpu):.2f}")
        if spy is not None and raw.exists():
            print(summarise(raw, args.top))
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
            spy.wait(10)
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
