"""The model-aware signals, computed off the request path.

``observe`` is all a request pays: a length check and an append to a deque (from the event
loop, never blocking). A thread wakes every POLL_SECONDS, takes everything pending and works
on it in one batch with numpy: the predicted classes or values (class counts, score
histogram, the feedback store), the declared output bounds, and with a profile the input
checks and the drift window, whose PSI and KS gauges it refreshes every REFRESH_SECONDS.
When more than ``max_pending`` requests (or ``max_pending_bytes`` of their arrays) wait,
new ones are left out and counted (SERVER_MONITOR_DROPPED): the monitor can fall behind,
never slow a request down.

Feedback runs on a worker thread under the same lock, after taking in everything pending,
so a label always finds a prediction answered before it was sent.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..contract import feedback
from ..contract import metric_names as names
from ..contract.predictions import PredictionSpec
from .drift import DriftWindow, InputChecks
from .feedback_store import PredictionStore
from .metrics import GateMetrics
from .prediction import Predictions, read

log = logging.getLogger("modelrollout.serve")

POLL_SECONDS = 0.05
REFRESH_SECONDS = 1.0
# A V2 body id longer than this is not kept for feedback (X-Request-ID is at most 128).
MAX_ID_LENGTH = 256
# An absolute error that is not a number (a NaN prediction) is observed as this, so the
# histogram's _sum stays finite.
ERROR_CAP = 1e9


@dataclass(frozen=True)
class MonitorConfig:
    ways: list[PredictionSpec]  # how to read the prediction, best first (prediction.choose_ways)
    known_classes: tuple[str, ...] = ()  # exported at 0 from the start, so rate() and ratios work
    checks: InputChecks | None = None  # with a profile
    profile_sha256: str | None = None
    reference_shares: dict[str, float] = field(default_factory=dict)  # class -> share, from the profile
    output_bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    score_buckets: tuple[float, ...] = names.SCORE_BUCKETS
    window_rows: int = 1000
    store_rows: int = 50_000  # 0: no feedback
    ttl_seconds: float = 3600.0
    max_pending: int = 4096
    max_pending_bytes: int = 64 << 20


class Monitor:
    def __init__(self, config: MonitorConfig, metrics: GateMetrics, clock=time.monotonic) -> None:
        self.config = config
        self._metrics = metrics
        self._clock = clock
        self._pending: deque = deque()
        self._bytes_in = 0  # written by observe() only
        self._bytes_out = 0  # written under the lock only (the monitor thread, feedback)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wants_feeds = config.checks is not None
        self._max_pending = config.max_pending
        self._max_pending_bytes = config.max_pending_bytes
        self._refreshed_at = -math.inf
        self._window_changed = False
        self.kind = config.ways[0].kind if config.ways else None
        self.window = DriftWindow(config.checks, config.window_rows) if config.checks else None
        self.store = None
        if self.kind is not None and config.store_rows > 0:
            self.store = PredictionStore(config.store_rows, config.ttl_seconds, self.kind,
                                         config.ways[0].classes)
        self._classes: dict[str, object] = {}  # class name -> counter child (bounded)
        self._evicted_counted = 0
        self._setup_series()

    def _setup_series(self) -> None:
        m, config = self._metrics, self.config
        self._other = None
        if self.kind == "classification":
            for name in config.known_classes:
                self._class_child(name)
            for result in names.FEEDBACK_RESULTS:
                m.child(m.feedback, result=result)
        elif self.kind == "regression":
            self._score = m.score_histogram(config.score_buckets)
            m.child(m.feedback_abs_error)
        self._input_counters = []
        if self.kind == "classification" and config.reference_shares:
            shares = {name: 0.0 for name in config.known_classes} | config.reference_shares
            for name, share in list(shares.items())[: names.MAX_CLASS_LABELS]:
                m.child(m.reference_predictions, **{"class": name[:128]}).set(share)
        if config.checks is not None:
            m.child(m.profile_info, sha256=config.profile_sha256 or "unknown").set(1)
            for feature in config.checks.features:
                self._input_counters.append(tuple(
                    m.child(m.input_violations, feature=feature.name, kind=kind)
                    for kind in names.INPUT_VIOLATION_KINDS))
            self._violating_rows = m.child(m.input_violating_rows)
        self._output_counters = {name: m.child(m.output_violations, output=name)
                                 for name in config.output_bounds}
        self._store_rows = m.child(m.feedback_store_rows)
        self._rejected = {reason: m.child(m.feedback_rejected, reason=reason)
                          for reason in names.FEEDBACK_REJECTIONS}

    def _class_child(self, name: str):
        child = self._classes.get(name)
        if child is None:
            if len(self._classes) < names.MAX_CLASS_LABELS:
                child = self._classes[name] = self._metrics.child(self._metrics.predictions,
                                                                  **{"class": name[:128]})
            else:
                if self._other is None:
                    self._other = self._metrics.child(self._metrics.predictions,
                                                      **{"class": names.CLASS_OTHER})
                child = self._other
        return child

    # --- the request path (event loop) ---

    def observe(self, request_id: str, body_id: str | None, feeds: dict[str, np.ndarray],
                output_names: list[str], outputs: list[np.ndarray]) -> None:
        """Hand one answered request to the monitor; never blocks."""
        pending = self._pending
        if len(pending) >= self._max_pending or self._bytes_in - self._bytes_out > self._max_pending_bytes:
            self._metrics.monitor_dropped.inc()
            return
        nbytes = outputs[0].nbytes if len(outputs) == 1 else sum(array.nbytes for array in outputs)
        if self._wants_feeds:
            for array in feeds.values():
                nbytes += array.nbytes
        else:
            feeds = None
        self._bytes_in += nbytes
        pending.append((request_id, body_id, feeds, output_names, outputs, nbytes))

    # --- the monitor thread ---

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="monitor", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        cpu = self._metrics.monitor_cpu
        while not self._stop.wait(POLL_SECONDS):
            started = time.thread_time()
            try:
                with self._lock:
                    self._take_pending()
                    if self._window_changed and self._clock() - self._refreshed_at >= REFRESH_SECONDS:
                        self._refresh_drift()
            except Exception:  # noqa: BLE001 - the monitor must outlive one bad batch
                log.exception("monitoring a batch of requests failed")
            cpu.inc(time.thread_time() - started)

    def flush(self) -> None:
        """Take in everything pending and refresh the drift gauges now (tests, shutdown)."""
        with self._lock:
            self._take_pending()
            if self._window_changed:
                self._refresh_drift()

    def _take_pending(self) -> None:
        pending = self._pending
        batch = []
        while pending:
            batch.append(pending.popleft())
        if not batch:
            return
        self._bytes_out += sum(item[5] for item in batch)
        rows = [_rows_of(item[4]) for item in batch]
        self._predictions(batch, rows)
        self._output_bounds(batch)
        if self.config.checks is not None:
            self._inputs([item[2] for item in batch])
        self._metrics.monitored_rows.inc(sum(rows))
        if self.store is not None:
            self._count_store()

    def _count_store(self) -> None:
        evicted = self.store.evicted_rows - self._evicted_counted
        if evicted:
            self._metrics.feedback_store_evictions.inc(evicted)
            self._evicted_counted += evicted
        self._store_rows.set(self.store.rows)

    def _predictions(self, batch: list, rows: list[int]) -> None:
        ways = self.config.ways
        if not ways:
            return
        groups: dict[int, list[int]] = {}
        first = ways[0].output
        for i, item in enumerate(batch):
            output_names = item[3]
            if first in output_names:
                way = 0
            else:
                way = next((w for w, spec in enumerate(ways) if spec.output in output_names), None)
            if way is not None:
                groups.setdefault(way, []).append(i)
        now = self._clock()
        for way, members in groups.items():
            spec = ways[way]
            arrays = [_output(batch[i], spec.output) for i in members]
            try:
                found = read(spec, arrays[0] if len(arrays) == 1 else np.concatenate(arrays))
            except ValueError:  # shapes that do not stack: one request at a time
                for i, array in zip(members, arrays, strict=True):
                    self._count_predictions(read(spec, array), [_ids(batch[i])], [rows[i]], now)
                continue
            self._count_predictions(found, [_ids(batch[i]) for i in members], [rows[i] for i in members], now)

    def _count_predictions(self, found: Predictions, ids: list[tuple[str, ...]], rows: list[int],
                           now: float) -> None:
        if found.inverse is not None:
            counts = np.bincount(found.inverse, minlength=len(found.names))
            for name, count in zip(found.names, counts.tolist(), strict=True):
                if count:
                    self._class_child(name).inc(count)
        else:
            observe = self._score.observe
            for value in found.values.tolist():
                if math.isfinite(value):
                    observe(value)
        store = self.store
        if store is None:
            return
        values = found.all_values()
        add = store.add
        if len(values) == len(ids):  # one row per request, the usual case
            for request_ids, value in zip(ids, values, strict=True):
                add(request_ids, (value,), now)
            return
        start = 0
        for request_ids, n in zip(ids, rows, strict=True):
            add(request_ids, tuple(values[start : start + n]), now)
            start += n

    def _output_bounds(self, batch: list) -> None:
        for name, (low, high) in self.config.output_bounds.items():
            bad = 0
            for _, _, _, output_names, outputs, _ in batch:
                if name in output_names:
                    array = outputs[output_names.index(name)]
                    values = np.asarray(array, dtype=np.float64).reshape(_rows_of([array]), -1)
                    with np.errstate(invalid="ignore"):
                        bad += int((~((values >= low) & (values <= high))).any(axis=1).sum())
            if bad:
                self._output_counters[name].inc(bad)

    def _inputs(self, feeds: list[dict[str, np.ndarray]]) -> None:
        checks = self.config.checks
        try:
            found = [checks.extract(feeds)]
        except (ValueError, TypeError, IndexError):  # inputs that do not stack: one request at a time
            found = []
            for one in feeds:
                try:
                    found.append(checks.extract([one]))
                except (ValueError, TypeError, IndexError):
                    continue  # a request the profile cannot read: its other signals still count
        for inputs in found:
            violations = checks.violations(inputs)
            for counters, out, missing in zip(self._input_counters, violations.out_of_range.tolist(),
                                              violations.missing.tolist(), strict=True):
                if out:
                    counters[0].inc(out)
                if missing:
                    counters[1].inc(missing)
            if violations.rows:
                self._violating_rows.inc(violations.rows)
            self.window.add(inputs)
            self._window_changed = True

    def _refresh_drift(self) -> None:
        m = self._metrics
        for drift in self.window.drift():
            m.child(m.drift_psi, feature=drift.name).set(drift.psi)
            if drift.ks is not None:
                m.child(m.drift_ks, feature=drift.name).set(drift.ks)
        m.child(m.drift_window_rows).set(self.window.filled)
        self._refreshed_at = self._clock()
        self._window_changed = False

    # --- feedback (a worker thread) ---

    def feedback(self, items: list[feedback.FeedbackItem], probe: bool = False) -> list[dict]:
        """Join each label to its prediction; one result per item (contract/feedback.py)."""
        with self._lock:
            self._take_pending()
            now = self._clock()
            return [self._join(item, now, probe) for item in items]

    def _join(self, item: feedback.FeedbackItem, now: float, probe: bool) -> dict:
        joined = self.store.join(item.id, item.label, now)
        if joined.outcome != feedback.JOINED:
            if not (probe and joined.outcome == feedback.UNKNOWN):
                self._rejected[joined.outcome].inc()
            return feedback.result(item.id, joined.outcome, joined.message)
        m = self._metrics
        if self.kind == "classification":
            m.child(m.feedback, result="correct").inc(joined.correct)
            m.child(m.feedback, result="incorrect").inc(joined.rows - joined.correct)
            return feedback.result(item.id, feedback.JOINED, rows=joined.rows, correct=joined.correct)
        observe = m.child(m.feedback_abs_error).observe
        for error in joined.abs_errors:
            observe(error if math.isfinite(error) else ERROR_CAP)
        return feedback.result(item.id, feedback.JOINED, rows=joined.rows, maxAbsError=max(joined.abs_errors))


def _rows_of(outputs: list[np.ndarray]) -> int:
    first = outputs[0] if outputs else None
    return first.shape[0] if first is not None and first.ndim else 1


def _output(item: tuple, name: str) -> np.ndarray:
    output_names, outputs = item[3], item[4]
    return outputs[output_names.index(name)]


def _ids(item: tuple) -> tuple[str, ...]:
    """The ids a request's prediction is kept under: X-Request-ID, and the V2 body's id."""
    request_id, body_id = item[0], item[1]
    if body_id is None or body_id == request_id or len(body_id) > MAX_ID_LENGTH:
        return (request_id,)
    return (request_id, body_id)
