"""README's main command, `modelrollout demo`, run exactly as the README writes it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def readme_command(program: str) -> str:
    """The line of the README's first bash block that runs ``program``, comment dropped."""
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    line = next(line for line in block.splitlines() if program in line)
    return line.split("#", 1)[0].strip()


def test_the_readme_names_the_demo_with_no_flags():
    assert readme_command("modelrollout demo") == "bash scripts/setup.sh && .venv/bin/modelrollout demo"


def test_the_demo_as_the_readme_writes_it_shows_the_three_strategies_the_guard_and_writes_its_chart(tmp_path):
    """From the repository root, no extra flag: the default output folder is relative, which
    once crashed the demo (a relative path has no file:// URI)."""
    output = ROOT / "modelrollout-demo"
    kept = None
    if output.exists():  # a user's earlier demo run: put back afterwards
        kept = tmp_path / "kept-demo"
        shutil.move(output, kept)
    try:
        done = subprocess.run(["bash", "-c", readme_command("modelrollout demo")], cwd=ROOT,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        summary = (output / "summary.md").read_text()
        chart = (output / "rollout.png").read_bytes()
    finally:
        if output.exists():
            shutil.rmtree(output)
        if kept is not None:
            shutil.move(kept, output)
    for row in ("| to 1.0.1 | shadow | promoted |", "| to 2.0.0 | shadow | rolled back |",
                "| to 4.0.0 | canary | promoted |", "| to 3.0.0 | canary | rolled back |",
                "| to 6.0.0 | canary | rolled back |",
                "| to 5.0.0 | blue-green | promoted |"):
        assert row in summary, summary
    # The disagreeing shadow answered copies only: not one client request.
    assert "The shadow caught 2.0.0 after 0 client requests answered by it" in summary
    assert "| 2.0.0 |" not in summary  # no row of requests served by it
    # 6.0.0 answered every request it got, and only the model-aware gate caught it.
    assert "Only the prediction-shift gate caught 6.0.0" in summary
    served_by_6 = re.search(r"\| 6\.0\.0 \| (\d+) \| (\d+) \|", summary)
    assert served_by_6 and int(served_by_6.group(1)) > 0 and served_by_6.group(2) == "0", summary
    # The fourth act: 7.0.0 promoted, then inputs it fails on; the fallback hid every failure.
    assert "| to 7.0.0 | guard | promoted |" in summary, summary
    act = next(line for line in summary.splitlines() if line.startswith("After the rollout:"))
    assert "The guard saw error-rate failed" in act and "all traffic went to the fallback simple" in act, act
    assert "0 client requests failed during the act" in act, act
    assert "traffic returned to 7.0.0 on its own" in act, act
    served_by_simple = re.search(r"\| simple \| (\d+) \| 0 \|", summary)
    assert served_by_simple and int(served_by_simple.group(1)) > 0, summary
    assert "unexpected" not in done.stdout and "no analysis view" not in done.stdout
    assert chart.startswith(b"\x89PNG") and len(chart) > 20_000
    # Failed requests, if any, came from the broken 3.0.0 only.
    failures = next(line for line in summary.splitlines() if "client requests" in line)
    if not failures.split(",")[1].strip().startswith("0 failed"):
        assert "Every failed request was answered by a model that was then rolled back" in summary
    seconds = float(re.search(r"done in (\d+) s", done.stdout).group(1))
    assert seconds < 180, seconds  # the budget for all three strategies (and now the guard's act)
