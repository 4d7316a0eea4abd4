"""README's main command, `modelrollout demo`, run as a user runs it."""

from __future__ import annotations

import subprocess

import pytest

from tests.processes import MODELROLLOUT

pytestmark = pytest.mark.slow


def test_the_demo_promotes_v2_rolls_back_v3_and_writes_its_chart_and_summary(tmp_path):
    done = subprocess.run([MODELROLLOUT, "demo", "--folder", str(tmp_path)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = (tmp_path / "summary.md").read_text()
    assert "| to 2.0.0 | promoted |" in summary and "| to 3.0.0 | rolled back |" in summary
    assert "unexpected" not in done.stdout and "no analysis view" not in done.stdout
    chart = (tmp_path / "rollout.png").read_bytes()
    assert chart.startswith(b"\x89PNG") and len(chart) > 20_000
    # Failed requests, if any, came from the broken 3.0.0 only.
    failures = next(line for line in summary.splitlines() if "client requests" in line)
    if not failures.split(",")[1].strip().startswith("0 failed"):
        assert "Every failed request was answered by the broken 3.0.0" in summary
