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


@dataclass(slots=True)
class _Entry:
    ids: tuple[str, ...]
    at: float
    rows: int
    predictions: tuple | None  # class names or floats, one per row; None once joined


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
        self._by_id: dict[str, _Entry] = {}
        self._order: deque[_Entry] = deque()
        self.rows = 0  # rows held, joined or not
        self.evicted_rows = 0  # rows pushed out before a label came (a running total)

    def __len__(self) -> int:
        return len(self._by_id)

    def add(self, ids: tuple[str, ...], predictions: tuple, now: float) -> None:
        rows = len(predictions)
        if rows > self.max_rows:
            return  # larger than the whole store: never joinable
        while self._order and self.rows + rows > self.max_rows:
            self._drop(self._order.popleft())
        entry = _Entry(ids, now, rows, predictions)
        self._order.append(entry)
        self.rows += rows
        for item_id in ids:
            self._by_id[item_id] = entry  # a reused id: the newest prediction takes its labels

    def _drop(self, entry: _Entry) -> None:
        self.rows -= entry.rows
        if entry.predictions is not None:
            self.evicted_rows += entry.rows
        for item_id in entry.ids:
            if self._by_id.get(item_id) is entry:
                del self._by_id[item_id]

    def join(self, item_id: str, label: object, now: float) -> Joined:
        entry = self._by_id.get(item_id)
        if entry is None:
            return Joined(feedback.UNKNOWN, f"no prediction with id '{item_id}' here: never made, or "
                                            "pushed out by the store's size limit")
        if entry.predictions is None:
            return Joined(feedback.DUPLICATE, f"the prediction '{item_id}' already has its label")
        if now - entry.at > self.ttl_seconds:
            return Joined(feedback.EXPIRED, f"the prediction '{item_id}' is older than the "
                                            f"{self.ttl_seconds:g} s the server keeps labels open for")
        labels = label if isinstance(label, list) else [label]
        if len(labels) != entry.rows:
            return Joined(feedback.INVALID, f"the prediction '{item_id}' has {entry.rows} row(s): give "
                                            f"{'a list of ' if entry.rows > 1 else ''}{entry.rows} label(s), "
                                            f"not {len(labels)}")
        if self.kind == "regression":
            if not all(_is_number(v) for v in labels):
                return Joined(feedback.INVALID, "a regressor's label is a finite number")
            errors = tuple(abs(float(v) - p) for v, p in zip(labels, entry.predictions, strict=True))
            entry.predictions = None
            return Joined(feedback.JOINED, rows=entry.rows, abs_errors=errors)
        if not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in labels):
            return Joined(feedback.INVALID, "a classifier's label is a class name or index")
        correct = sum(1 for v, p in zip(labels, entry.predictions, strict=True)
                      if normalize_label(v, self.classes) == p)
        entry.predictions = None
        return Joined(feedback.JOINED, rows=entry.rows, correct=correct)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
