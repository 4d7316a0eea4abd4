"""Shadow traffic: copies of live requests sent to a shadow revision, answers compared.

The client's response never waits for the shadow: offer() only puts a job on a
bounded queue (a full queue drops the copy and counts it), and a fixed number of
workers send the copies, so the shadow can never take more than ``concurrency``
connections' worth of capacity from the primary path.

Every copy is counted (sent, dropped, failed); only copies of requests the primary
answered 2xx are compared (compare.py), so a client's bad request never counts
against the shadow.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from dataclasses import dataclass

from ..contract.routes import Compare, ModelRoute, Revision
from ..server.codec_binary import HEADER
from .answers import AnsweredBy
from .compare import Answer, Comparison, compare_answers
from .metrics import GatewayMetrics
from .proxy import Outcome, Proxy

log = logging.getLogger("modelrollout.gateway")

BINARY_HEADER = HEADER.encode()
# Differences are observed at most this large: anything past the last bucket lands in
# +Inf all the same, and an infinite one (NaN against a number) would turn the
# histogram's _sum into inf for the rest of the process's life.
DIFF_CAP = 1e3
# A shadow that disagrees on every request must not write a log line per request.
LOG_EVERY_SECONDS = 1.0
# Answers larger than this together are compared on a thread: decoding megabytes of JSON
# takes tens of milliseconds, which on the event loop would delay every client request.
COMPARE_INLINE_BYTES = 64 * 1024


@dataclass(slots=True)
class _Job:
    model: str
    shadow: Revision
    path: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    primary: Answer
    primary_seconds: float  # how long the served request took, for the latency ratio
    compare: Compare


class Mirror:
    def __init__(
        self,
        proxy: Proxy,
        metrics: GatewayMetrics,
        queue_size: int,
        concurrency: int,
        atol: float,
        rtol: float,
        answers: AnsweredBy | None = None,
    ) -> None:
        self._proxy = proxy
        self._answers = answers  # told which shadow endpoint got each copy (feedback goes there too)
        self._metrics = metrics
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(maxsize=queue_size)
        self._concurrency = concurrency
        self._atol = atol
        self._rtol = rtol
        self._workers: list[asyncio.Task] = []
        self._logged: dict[str, tuple[float, int]] = {}  # model -> (last line's time, lines held back)

    def start(self) -> None:
        self._workers = [
            asyncio.create_task(self._work(), name=f"mirror-{i}") for i in range(self._concurrency)
        ]

    async def close(self) -> None:
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []

    def offer(
        self,
        model: str,
        route: ModelRoute,
        path: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        primary: Outcome,
        primary_seconds: float,
    ) -> None:
        """Queue a copy for the route's mirror revision, if the percentage draws it. Never waits."""
        mirror = route.mirror
        if mirror is None or mirror.percent <= 0 or primary.response is None:
            return
        if mirror.percent < 100 and random.random() * 100 >= mirror.percent:
            return
        shadow = route.revision(mirror.revision)
        if shadow is None or shadow.name == primary.revision.name:
            return
        job = _Job(model, shadow, path, headers, body, answer_of(primary), primary_seconds, mirror.compare)
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self._metrics.mirrored.labels(model, shadow.name, "dropped").inc()

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await self._mirror(job)
            except Exception:  # noqa: BLE001 - one bad copy must not stop the worker
                log.exception("mirroring failed", extra={"model": job.model})

    async def _mirror(self, job: _Job) -> None:
        metrics = self._metrics
        started = time.perf_counter()
        outcome = await self._proxy.send(job.model, job.shadow, b"POST", job.path, job.headers, job.body)
        metrics.shadow_duration.labels(job.model, job.shadow.name).observe(time.perf_counter() - started)
        sent = outcome.response is not None
        metrics.mirrored.labels(job.model, job.shadow.name, "sent" if sent else "failed").inc()
        if sent and outcome.pool is not None and self._answers is not None and outcome.status < 300:
            request_id = _request_id(job.headers)
            if request_id is not None:
                self._answers.record_shadow(request_id.encode("latin-1"), job.shadow.name,
                                            outcome.pool.host, outcome.pool.port)
        if not 200 <= job.primary.status < 300:
            # Nothing to compare with: a client's bad request would count as the shadow's
            # error. The copy still went, so the shadow's own metrics see all the traffic.
            return
        if not sent:
            comparison = Comparison("error", None, None, f"shadow gave no answer: {outcome.message}")
        else:
            compare = job.compare  # the route's tolerances, else the gateway's own
            atol = self._atol if compare.atol is None else compare.atol
            rtol = self._rtol if compare.rtol is None else compare.rtol
            args = (job.primary, answer_of(outcome), atol, rtol, compare.match)
            if len(args[0].body) + len(args[1].body) <= COMPARE_INLINE_BYTES:
                comparison = compare_answers(*args)
            else:
                comparison = await asyncio.to_thread(compare_answers, *args)
        metrics.shadow_comparisons.labels(job.model, job.shadow.name, comparison.result).inc()
        # The served side of the same requests: shadow-latency-ratio compares like with like.
        metrics.shadow_primary_duration.labels(job.model, job.shadow.name).observe(job.primary_seconds)
        if comparison.max_abs_diff is not None:
            metrics.shadow_max_abs_diff.labels(job.model, job.shadow.name).observe(
                min(comparison.max_abs_diff, DIFF_CAP)
            )
        if comparison.result != "agree":
            self._log_difference(job, comparison)

    def _log_difference(self, job: _Job, comparison: Comparison) -> None:
        now = time.monotonic()
        last, held_back = self._logged.get(job.model, (-math.inf, 0))
        if now - last < LOG_EVERY_SECONDS:
            self._logged[job.model] = (last, held_back + 1)
            return
        self._logged[job.model] = (now, 0)
        log.info(
            "shadow answer differs",
            extra={"model": job.model, "shadow": job.shadow.name, "result": comparison.result,
                   "detail": comparison.detail, "class_agreement": comparison.class_agreement,
                   "request_id": _request_id(job.headers), "not_logged_since_last": held_back},
        )


def answer_of(outcome: Outcome) -> Answer:
    response = outcome.response
    raw = next((v for k, v in response.headers if k == BINARY_HEADER), None)
    # A header that is not a number makes the body unreadable: compare_answers says "error".
    header_length = None if raw is None else int(raw) if raw.isdigit() else -1
    return Answer(response.status, response.body, header_length)


def _request_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    return next((v.decode("latin-1") for k, v in headers if k == b"x-request-id"), None)
