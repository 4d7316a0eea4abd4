"""A real Prometheus (Debian's package) on a loopback port, for the tests and the demo.

    prometheus = PrometheusProcess(folder, targets=["127.0.0.1:9100"], file_sd=folder / "targets.json")
    prometheus.query('up{revision="abc"}')
    prometheus.stop(); prometheus.start()   # same port, same data folder: an outage

Two scrape jobs, both every second:

- ``modelrollout`` scrapes the static ``targets`` ("host:port", their /metrics);
- ``file-sd`` scrapes what the JSON file ``file_sd`` lists, re-read every second. The
  labels of a file SD entry become labels of every series scraped from that target (a
  ``job`` label there replaces the job name). This is how pod labels such as ``revision``
  reach the series here, as relabeling of Kubernetes service discovery does in a cluster;
  the harness kubelet (kubelet.py) keeps that file true.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import IO, Self

import httpx
import yaml

from .ports import free_port
from .process import wait_for

STATIC_JOB = "modelrollout"
FILE_SD_JOB = "file-sd"
_READY_SECONDS = 30.0
_STOP_SECONDS = 10.0


class PrometheusProcess:
    """Prometheus on 127.0.0.1 with its own data folder under ``folder``; started at once.

    ``stop()`` and ``start()`` take it down and bring it back on the same port with the same
    data (what it scraped before the stop is still there after the start).
    """

    def __init__(self, folder: Path, targets: list[str] | None = None, file_sd: Path | None = None,
                 *, port: int | None = None) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus is not installed: bash scripts/setup.sh installs it")
        self._binary = binary
        self.folder = folder
        self.targets = list(targets or [])
        self.file_sd = file_sd
        self.config_path = folder / "prometheus.yml"
        self.data_path = folder / "data"
        self.log_path = folder / "prometheus.log"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)
        self._write_config()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> Self:
        """Start (again) on the same port and data folder; returns once /-/ready is 200."""
        if self.running:
            return self
        if self.file_sd is not None and not self.file_sd.exists():
            # Prometheus only logs a missing file; an empty list makes the start explicit.
            self.file_sd.parent.mkdir(parents=True, exist_ok=True)
            self.file_sd.write_text("[]\n")
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [self._binary, f"--config.file={self.config_path}", f"--storage.tsdb.path={self.data_path}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}: see {self.log_path}")
            try:
                return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_for(ready, _READY_SECONDS, f"prometheus to be ready (see {self.log_path})")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM (Prometheus writes its head block), SIGKILL after 10 s. Idempotent."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def query(self, promql: str) -> list:
        """The instant query's result vector (``data.result``)."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5)
        body = response.json()
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus refused {promql!r}: {body}")
        return body["data"]["result"]

    def _write_config(self) -> None:
        jobs: list[dict] = []
        if self.targets:
            jobs.append({"job_name": STATIC_JOB, "static_configs": [{"targets": self.targets}]})
        if self.file_sd is not None:
            jobs.append({"job_name": FILE_SD_JOB,
                         "file_sd_configs": [{"files": [str(self.file_sd)], "refresh_interval": "1s"}]})
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": jobs,
        }
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
