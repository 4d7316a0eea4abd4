"""Durations as a ModelDeployment writes them ("30s", "5m", "1h30m", "250ms"), read as seconds. Pure.

In the CRD a duration is a string with a pattern, and each field's bounds are a CEL rule
(``duration(self) <= duration('720h')``); in Python it is a float of seconds, checked
against the same bounds. ``bounded(low, high, ...)`` declares both at once.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from .objects import Rule

# The CRD's pattern, and the Python reading of it: the API server's Go regexp and re.fullmatch
# accept exactly the same strings (tests/operator/api/test_durations.py).
PATTERN = "^([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?$"
_PARTS = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")
_SCHEMA = {"type": "string", "minLength": 2, "maxLength": 16, "pattern": PATTERN}


def parse_duration(text: object) -> float:
    """"30s", "5m", "1h30m", "250ms" -> seconds; a plain number of seconds is taken as it is."""
    if isinstance(text, (int, float)) and not isinstance(text, bool) and text >= 0:
        return float(text)
    # fullmatch: "5m\n" is not a duration (the API server's Go regexp refuses it too).
    match = _PARTS.fullmatch(text) if isinstance(text, str) and text else None
    if match is None or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration like 30s, 5m, 1h30m or 250ms")
    hours, minutes, seconds, millis = (int(g) if g else 0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def format_duration(seconds: float) -> str:
    """Seconds as a duration the pattern accepts: 5400 -> "1h30m", 0.25 -> "250ms"."""
    millis = round(seconds * 1000)
    parts = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def human(seconds: float) -> str:
    """86400 -> "1d", 30 -> "30s": bounds as people read them."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size:g}{unit}"
    return f"{seconds:g}s"


def _go(seconds: float) -> str:
    """A bound as Go's time.ParseDuration reads it in a CEL rule: "720h", "1s"."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600:g}h"
    return f"{seconds:g}s"


def bounded(low: float, high: float, message: str):
    """A duration field from ``low`` to ``high`` seconds: the pattern and a CEL rule in the
    CRD (``message`` is the rule's), the same bounds checked here."""

    def within(text: object) -> float:
        if not isinstance(text, str):  # the CRD's type: a number of seconds is not a duration there
            raise ValueError(f"{text!r} is not a duration like 30s, 5m, 1h30m or 250ms")
        seconds = parse_duration(text)
        if not low <= seconds <= high:
            raise ValueError(f"{text!r} is out of range: from {human(low)} to {human(high)}")
        return seconds

    checks = []
    if low > 0:
        checks.append(f"duration(self) >= duration('{_go(low)}')")
    checks.append(f"duration(self) <= duration('{_go(high)}')")
    return Annotated[float, BeforeValidator(within), PlainSerializer(format_duration),
                     WithJsonSchema(dict(_SCHEMA)), Rule(" && ".join(checks), message)]
