"""The predictions a server made, kept so that labels arriving later can be joined to them.
Pure: the caller passes the clock.

Bounded by rows: adding a prediction past ``max_rows`` pushes the oldest out first (counted
as evicted when no label had come for them). A prediction is kept under its request id and,
when the V2 body carried a different one, under that id too. Past ``ttl_seconds`` a
prediction no longer takes a label (answered "expired" while it is still held).
A prediction takes one label: a second one is a "duplicate".
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from ..contract import feedback
from ..contract.predictions import normalize_label


@dataclass(frozen=True)
class Joined:
    """The outcome of one label: ``outcome`` is a contract.feedback result word."""

    outcome: str
    message: str | None = None
    rows: int = 0
    correct: int = 0  # classifiers
    abs_errors: tuple[float, ...] = ()  # regressors, one per row


class PredictionStore:
    def __init__(self, max_rows: int, ttl_seconds: float, kind: str,
                 classes: tuple[str, ...] | None = None) -> None:
        self.max_rows = max_rows
        self.ttl_seconds = ttl_seconds
        self.kind = kind  # "classification" or "regression"
        self.classes = classes
        # id -> (at, predictions or None once joined, sequence number, all ids of the prediction).
        # Tuples of plain values: the garbage collector stops tracking them, so a full store
        # costs it nothing, and there is no object per prediction to build.
        self._by_id: dict[str, tuple] = {}
        self._order: deque[tuple[tuple[str, ...], int, int]] = deque()  # (ids, rows, sequence number)
        self._added = 0
        self.rows = 0  # rows held, joined or not
        self.evicted_rows = 0  # rows pushed out before a label came (a running total)

    def __len__(self) -> int:
        return len(self._by_id)

    def add(self, ids: tuple[str, ...], predictions: tuple, now: float) -> None:
        rows = len(predictions)
        if rows > self.max_rows:
            return  # larger than the whole store: never joinable
        order, by_id = self._order, self._by_id
        while order and self.rows + rows > self.max_rows:
            old_ids, old_rows, old_number = order.popleft()
            self.rows -= old_rows
            for item_id in old_ids:
                held = by_id.get(item_id)
                if held is not None and held[2] == old_number:  # not taken over by a newer prediction
                    del by_id[item_id]
                    if held[1] is not None and item_id == old_ids[0]:
                        self.evicted_rows += old_rows
        self._added += 1
        entry = (now, predictions, self._added, ids)
        for item_id in ids:
            by_id[item_id] = entry  # a reused id: the newest prediction takes its labels
        order.append((ids, rows, self._added))
        self.rows += rows

    def join(self, item_id: str, label: object, now: float) -> Joined:
        entry = self._by_id.get(item_id)
        if entry is None:
            return Joined(feedback.UNKNOWN, f"no prediction with id '{item_id}' here: never made, or "
                                            "pushed out by the store's size limit")
        at, predictions, number, ids = entry
        if predictions is None:
            return Joined(feedback.DUPLICATE, f"the prediction '{item_id}' already has its label")
        if now - at > self.ttl_seconds:
            return Joined(feedback.EXPIRED, f"the prediction '{item_id}' is older than the "
                                            f"{self.ttl_seconds:g} s the server keeps labels open for")
        rows = len(predictions)
        labels = label if isinstance(label, list) else [label]
        if len(labels) != rows:
            return Joined(feedback.INVALID, f"the prediction '{item_id}' has {rows} row(s): give "
                                            f"{'a list of ' if rows > 1 else ''}{rows} label(s), "
                                            f"not {len(labels)}")
        if self.kind == "regression":
            if not all(_is_number(v) for v in labels):
                return Joined(feedback.INVALID, "a regressor's label is a finite number")
            self._mark_joined(entry)
            errors = tuple(abs(float(v) - p) for v, p in zip(labels, predictions, strict=True))
            return Joined(feedback.JOINED, rows=rows, abs_errors=errors)
        if not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in labels):
            return Joined(feedback.INVALID, "a classifier's label is a class name or index")
        self._mark_joined(entry)
        correct = sum(1 for v, p in zip(labels, predictions, strict=True)
                      if normalize_label(v, self.classes) == p)
        return Joined(feedback.JOINED, rows=rows, correct=correct)

    def _mark_joined(self, entry: tuple) -> None:
        at, _, number, ids = entry
        joined = (at, None, number, ids)
        for item_id in ids:
            if self._by_id.get(item_id) is entry:
                self._by_id[item_id] = joined


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
