"""The process supervisor of the kubelet stand-in: a pod is one local process, started,
probed for readiness, restarted with backoff when it exits, and stopped gracefully.

    supervisor = Supervisor([modelrollout, "serve"], work, env={}, stop_grace_seconds=10)
    pod = supervisor.start_pod(pods, "ml", "iris-abc", template)  # pods: (namespace, name) -> Pod
    supervisor.supervise(pods.values(), time.monotonic())        # reap, restart, kill late ones
    supervisor.is_ready(pod)                                      # the readinessProbe, once
    supervisor.terminate(pod, "scaled down")                      # SIGTERM, SIGKILL after the grace
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import httpx

from . import pods as podlib
from .pods import Pod, Template
from .ports import free_port

log = logging.getLogger("modelrollout.harness.kubelet")

PROBE_TIMEOUT_SECONDS = 1.0


class Supervisor:
    def __init__(self, command: Sequence[str], work: Path, env: Mapping[str, str],
                 stop_grace_seconds: float) -> None:
        self.command = list(command)
        self.work = work
        self.env = dict(env)
        self.stop_grace_seconds = stop_grace_seconds
        # No keep-alive: a restarted process on the same port must not meet a dead connection.
        self._probe = httpx.Client(timeout=PROBE_TIMEOUT_SECONDS,
                                   limits=httpx.Limits(max_keepalive_connections=0))

    def close(self) -> None:
        self._probe.close()

    def start_pod(self, pods: dict[tuple[str, str], Pod], namespace: str, deployment: str,
                  template: Template) -> Pod:
        taken = {p.suffix for p in pods.values() if p.namespace == namespace}
        suffix = "".join(random.choices(podlib.SUFFIX_ALPHABET, k=5))
        while suffix in taken:
            suffix = "".join(random.choices(podlib.SUFFIX_ALPHABET, k=5))
        name = f"{deployment}-{suffix}"
        pod = Pod(name=name, namespace=namespace, deployment=deployment, template=template, port=free_port(),
                  log_path=self.work / "pods" / f"{name}.log", created=time.monotonic(),
                  start_time=podlib.now())
        pods[(namespace, name)] = pod
        log.info("starting pod %s/%s of %s on port %d", namespace, name, deployment, pod.port)
        self.spawn(pod)
        return pod

    def supervise(self, pods: Iterable[Pod], now: float) -> None:
        for pod in pods:
            if pod.proc is not None and pod.proc.poll() is not None:
                self._reap(pod, now)
            if pod.running and now - pod.started_at >= podlib.BACKOFF_RESET_SECONDS:
                pod.crashes = 0
            if pod.terminating:
                if pod.proc is None:
                    pod.finished = True
                elif now >= pod.kill_at:
                    log.warning("pod %s did not stop within its grace: SIGKILL", pod.name)
                    with contextlib.suppress(ProcessLookupError):
                        pod.proc.kill()
            elif pod.proc is None and pod.restart_at is not None and now >= pod.restart_at:
                pod.restarts += 1
                pod.restart_at = None
                log.info("restarting pod %s (restart %d)", pod.name, pod.restarts)
                self.spawn(pod)

    def _reap(self, pod: Pod, now: float) -> None:
        assert pod.proc is not None
        code = pod.proc.returncode
        pod.proc = None
        pod.ready = False
        pod.last_exit = code
        if pod.log_file is not None:
            pod.log_file.close()
            pod.log_file = None
        if pod.terminating:
            log.info("pod %s stopped (exit code %s)", pod.name, code)
            return
        if now - pod.started_at >= podlib.BACKOFF_RESET_SECONDS:
            pod.crashes = 0
        pod.crashes += 1
        pod.backoff_seconds = podlib.backoff(pod.crashes)
        pod.restart_at = now + pod.backoff_seconds
        log.warning("pod %s exited with %s; restarting in %.0f s (log: %s)", pod.name, code,
                    pod.backoff_seconds, pod.log_path)

    def spawn(self, pod: Pod) -> None:
        env = {**os.environ, **pod.template.env, **self.env,
               "MODELROLLOUT_HOST": "127.0.0.1", "MODELROLLOUT_PORT": str(pod.port),
               "MODELROLLOUT_CACHE_DIR": str(self.work / "cache"), "HOSTNAME": pod.name}
        pod.log_file = open(pod.log_path, "ab")  # noqa: SIM115 - closed when the process is reaped
        banner = f"--- harness: pod {pod.name}, restart {pod.restarts}, port {pod.port}\n"
        pod.log_file.write(banner.encode())
        pod.log_file.flush()
        pod.started_at = time.monotonic()
        pod.started_at_wall = podlib.now()
        pod.ready = False
        try:
            # A session of its own: a terminal's Ctrl-C reaches the harness, which stops the pods.
            pod.proc = subprocess.Popen([*self.command, *pod.template.args], env=env,
                                        stdin=subprocess.DEVNULL, stdout=pod.log_file,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:  # like a container that cannot start: back off and retry
            log.error("pod %s: cannot start %s: %s", pod.name, self.command[0], exc)
            pod.log_file.write(f"--- harness: cannot start: {exc}\n".encode())
            pod.log_file.close()
            pod.log_file = None
            pod.crashes += 1
            pod.last_exit = 128
            pod.backoff_seconds = podlib.backoff(pod.crashes)
            pod.restart_at = time.monotonic() + pod.backoff_seconds

    def terminate(self, pod: Pod, why: str) -> None:
        if pod.terminating:
            return
        log.info("stopping pod %s: %s", pod.name, why)
        pod.terminating = True
        pod.ready = False
        pod.restart_at = None
        pod.kill_at = time.monotonic() + pod.template.grace_seconds
        if pod.running:
            assert pod.proc is not None
            with contextlib.suppress(ProcessLookupError):
                pod.proc.send_signal(signal.SIGTERM)
        else:
            pod.finished = True

    def stop_all(self, pods: list[Pod]) -> None:
        """SIGTERM to every process, SIGKILL to those still up after the grace; all marked finished."""
        for pod in pods:
            if pod.running:
                assert pod.proc is not None
                with contextlib.suppress(ProcessLookupError):
                    pod.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace_seconds
        for pod in pods:
            if pod.proc is not None:
                try:
                    pod.proc.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log.warning("pod %s did not stop within %.0f s: SIGKILL", pod.name,
                                self.stop_grace_seconds)
                    pod.proc.kill()
                    pod.proc.wait()
                pod.proc = None
            if pod.log_file is not None:
                pod.log_file.close()
                pod.log_file = None
            pod.ready = False
            pod.terminating = pod.finished = True

    def is_ready(self, pod: Pod) -> bool:
        probe = pod.template.probe
        if probe is None:
            return True
        if "httpGet" in probe:
            path = (probe.get("httpGet") or {}).get("path") or "/"
            try:
                # As the kubelet: 2xx and 3xx are success (redirects are not followed).
                return 200 <= self._probe.get(f"http://127.0.0.1:{pod.port}{path}").status_code < 400
            except httpx.HTTPError:
                return False
        if "tcpSocket" in probe:
            try:
                with socket.create_connection(("127.0.0.1", pod.port), timeout=PROBE_TIMEOUT_SECONDS):
                    return True
            except OSError:
                return False
        return True  # exec and grpc probes are not run: ready while running
