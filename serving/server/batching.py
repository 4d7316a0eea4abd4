"""Run inferences: directly, or through Triton-style dynamic batching; shed load when full.

Without batching every request runs on its own, at most ``workers`` at a time.
With batching, requests whose inputs agree in everything but the first dimension are
stacked into one run: a batch leaves when it holds ``max_batch_size`` rows or when its
oldest request has waited ``max_queue_delay_us``. Either way at most
``max_queue_size`` requests wait; past that a request fails at once with Overloaded
(503 + Retry-After) instead of letting latency grow without bound.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .errors import BadRequest, Overloaded

INLINE_MAX_ROWS = 8

RunFn = Callable[[dict[str, np.ndarray], list[str]], list[np.ndarray]]


@dataclass(frozen=True)
class BatchingPolicy:
    max_batch_size: int = 0  # 0: no dynamic batching
    max_queue_delay_us: int = 500
    max_queue_size: int = 256
    workers: int = 1  # runs in flight at once
    inline: bool = False  # run on the event loop: for models cheaper than a thread hop


@dataclass
class Timings:
    queue_seconds: float = 0.0
    infer_seconds: float = 0.0
    batch_size: int = 1


@dataclass
class _Pending:
    feeds: dict[str, np.ndarray]
    output_names: list[str]
    rows: int
    key: tuple
    enqueued: float
    future: asyncio.Future = field(repr=False)


class Scheduler:
    """The one way the app runs a model. ``observe_batch`` is told each batch size."""

    def __init__(
        self,
        run: RunFn,
        policy: BatchingPolicy,
        observe_batch: Callable[[int], None] = lambda rows: None,
    ) -> None:
        self._run = run
        self.policy = policy
        self._observe_batch = observe_batch
        self._executor = ThreadPoolExecutor(max_workers=policy.workers, thread_name_prefix="infer")
        self._slots = asyncio.Semaphore(policy.workers)
        self._waiting = 0  # requests accepted but not yet running
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0  # rows waiting in _queue, whatever their key
        self._wakeup = asyncio.Event()
        self._collectors: list[asyncio.Task] = []
        self.is_batching = policy.max_batch_size > 0

    @property
    def queue_depth(self) -> int:
        return self._waiting

    def start(self) -> None:
        if self.is_batching and not self._collectors:
            self._collectors = [
                asyncio.create_task(self._collect(), name=f"batcher-{i}")
                for i in range(self.policy.workers)
            ]

    async def close(self) -> None:
        for task in self._collectors:
            task.cancel()
        await asyncio.gather(*self._collectors, return_exceptions=True)
        self._collectors = []
        self._executor.shutdown(wait=True)

    async def infer(
        self, feeds: dict[str, np.ndarray], output_names: list[str], timings: Timings
    ) -> list[np.ndarray]:
        if self._waiting >= self.policy.max_queue_size:
            raise Overloaded(
                f"server queue is full ({self.policy.max_queue_size} requests waiting); retry later"
            )
        if self.is_batching:
            return await self._infer_batched(feeds, output_names, timings)
        return await self._infer_alone(feeds, output_names, timings)

    async def _infer_alone(self, feeds, output_names, timings: Timings) -> list[np.ndarray]:
        queued = time.perf_counter()
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            started = time.perf_counter()
            timings.queue_seconds = started - queued
            # Inline only for small requests: the warm-up that chose inline ran one row,
            # and a big request on the event loop would stall health checks and metrics.
            if self.policy.inline and _rows(feeds) <= INLINE_MAX_ROWS:
                outputs = self._run(feeds, output_names)
            else:
                outputs = await asyncio.get_running_loop().run_in_executor(
                    self._executor, self._run, feeds, output_names
                )
            timings.infer_seconds = time.perf_counter() - started
        finally:
            self._slots.release()
        self._observe_batch(1)
        return outputs

    async def _infer_batched(self, feeds, output_names, timings: Timings) -> list[np.ndarray]:
        rows = _rows(feeds)
        if rows > self.policy.max_batch_size:
            raise BadRequest(
                f"batch of {rows} rows is larger than the server's max batch size "
                f"{self.policy.max_batch_size}"
            )
        key = (
            tuple((name, arr.dtype.str, arr.shape[1:]) for name, arr in sorted(feeds.items())),
            tuple(output_names),
        )
        future = asyncio.get_running_loop().create_future()
        item = _Pending(feeds, output_names, rows, key, time.perf_counter(), future)
        was_empty = not self._queue
        self._queue.append(item)
        self._waiting += 1
        self._queued_rows += rows
        # Wake the collector only when it has something new to decide: a first request
        # to start the delay, or enough rows for a full batch. Waking it on every request
        # costs a task switch and a timer each time.
        if was_empty or self._queued_rows >= self.policy.max_batch_size:
            self._wakeup.set()
        outputs, started, infer_seconds, rows = await future
        timings.queue_seconds = started - item.enqueued
        timings.infer_seconds = infer_seconds
        timings.batch_size = rows
        return outputs

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self.policy.max_queue_delay_us / 1e6
        while True:
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            first = self._queue[0]
            # Wait for more rows until the oldest request has waited max_queue_delay.
            while self._rows_like(first) < self.policy.max_batch_size:
                remaining = first.enqueued + delay - time.perf_counter()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    async with asyncio.timeout(remaining):
                        await self._wakeup.wait()
                except TimeoutError:
                    break
            batch = self._take_batch(first.key)
            if not batch:  # another collector took these requests
                continue
            self._waiting -= len(batch)
            started = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._executor, self._run_batch, batch)
            except Exception as exc:  # noqa: BLE001 - each caller gets the error
                results = [exc] * len(batch)
            infer_seconds = time.perf_counter() - started
            rows = sum(item.rows for item in batch)
            self._observe_batch(rows)
            for item, result in zip(batch, results, strict=True):
                if item.future.done():  # the caller went away
                    continue
                if isinstance(result, Exception):
                    item.future.set_exception(result)
                else:
                    item.future.set_result((result, started, infer_seconds, rows))

    def _rows_like(self, first: _Pending) -> int:
        return sum(item.rows for item in self._queue if item.key == first.key)

    def _take_batch(self, key: tuple) -> list[_Pending]:
        batch: list[_Pending] = []
        rows = 0
        kept: deque[_Pending] = deque()
        while self._queue:
            item = self._queue.popleft()
            if item.key == key and rows + item.rows <= self.policy.max_batch_size:
                batch.append(item)
                rows += item.rows
            else:
                kept.append(item)
        self._queue = kept
        self._queued_rows -= rows
        return batch

    def _run_batch(self, batch: list[_Pending]) -> list[list[np.ndarray] | Exception]:
        """Each request's outputs, or the exception its own run raised."""
        if len(batch) == 1:
            return [self._run_alone(batch[0])]
        names = batch[0].feeds.keys()
        stacked = {name: np.concatenate([item.feeds[name] for item in batch]) for name in names}
        try:
            outputs = self._run(stacked, batch[0].output_names)
        except Exception:  # noqa: BLE001 - find out whose input it was
            # One request's values can fail the whole run (an index out of range, say):
            # run each alone, so only that request gets the error, not its batch mates.
            return [self._run_alone(item) for item in batch]
        total = sum(item.rows for item in batch)
        if any(out.ndim == 0 or out.shape[0] != total for out in outputs):
            # The model's outputs do not follow the batch: run each request alone.
            return [self._run_alone(item) for item in batch]
        results = []
        offset = 0
        for item in batch:
            results.append([out[offset : offset + item.rows] for out in outputs])
            offset += item.rows
        return results

    def _run_alone(self, item: _Pending) -> list[np.ndarray] | Exception:
        try:
            return self._run(item.feeds, item.output_names)
        except Exception as exc:  # noqa: BLE001 - handed to the request that caused it
            return exc


def _rows(feeds: dict[str, np.ndarray]) -> int:
    first = next(iter(feeds.values()), None)
    return first.shape[0] if first is not None and first.ndim else 1
