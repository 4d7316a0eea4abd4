"""Structured (JSON) logs for every modelrollout process."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "{levelname}{name}{message}",
            style="{",
            timestamp="time",
            rename_fields={"levelname": "level", "name": "logger"},
            # uvicorn adds an ANSI-coloured copy of its messages; keep only the plain one.
            # kopf attaches its settings object and a flag to every record of a resource.
            reserved_attrs=[*RESERVED_ATTRS, "color_message", "settings", "k8s_skip"],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request's full URL at INFO, and httpcore every response's headers
    # at DEBUG (a redirect's Location too): a signed model or Prometheus URL carries
    # credentials in its query string.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(root.level, logging.WARNING))
    # watchfiles logs every file event it sees at INFO.
    logging.getLogger("watchfiles").setLevel(max(root.level, logging.WARNING))
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
