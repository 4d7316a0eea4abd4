"""Sampled prediction logging: JSON lines written by a thread, never blocking a request.

Each line: time, request id, model, version, inputs and outputs. When the writer falls
behind, lines are dropped and counted rather than slowing the request path down.
"""

from __future__ import annotations

import logging
import queue
import random
import sys
import threading
import time
from collections.abc import Callable

import numpy as np
import orjson

log = logging.getLogger("modelrollout.serve")

_STOP = object()


class PredictionLogger:
    def __init__(
        self,
        path: str,
        sample_rate: float,
        model: str,
        version: str,
        on_drop: Callable[[], None],
        max_pending: int = 1024,
    ) -> None:
        self.sample_rate = sample_rate
        self._model = model
        self._version = version
        self._on_drop = on_drop
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._file = sys.stdout.buffer if path == "-" else open(path, "ab")  # noqa: SIM115
        self._thread = threading.Thread(target=self._write_loop, name="prediction-log", daemon=True)
        self._thread.start()

    def maybe_log(
        self,
        request_id: str,
        inputs: dict[str, np.ndarray],
        output_names: list[str],
        outputs: list[np.ndarray],
    ) -> None:
        if random.random() >= self.sample_rate:
            return
        record = (time.time(), request_id, inputs, output_names, outputs)
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._on_drop()

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=5)
        if self._file is not sys.stdout.buffer:
            self._file.close()

    def _write_loop(self) -> None:
        while True:
            record = self._queue.get()
            if record is _STOP:
                return
            at, request_id, inputs, output_names, outputs = record
            line = {
                "time": at,
                "request_id": request_id,
                "model": self._model,
                "version": self._version,
                "inputs": {name: _plain(arr) for name, arr in inputs.items()},
                "outputs": {name: _plain(arr) for name, arr in zip(output_names, outputs, strict=True)},
            }
            try:
                self._file.write(orjson.dumps(line) + b"\n")
                self._file.flush()
            except (OSError, TypeError) as exc:
                log.warning("prediction log write failed", extra={"error": str(exc)})


def _plain(array: np.ndarray) -> object:
    if array.dtype.kind in "OSU":
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in array.tolist()]
    return array.tolist()
