"""What to write so a child object holds what the operator wants, whoever changed it. Pure.

Every object the operator owns carries, in the annotation ``LAST_APPLIED``, the fields it
last wrote (as ``kubectl apply`` keeps last-applied-configuration). A reconcile compares
three things, field by field:

    wanted   what the operator wants now (built from the spec, or a new replica count)
    live     the object as the API server has it now
    last     what the operator wrote the last time

and plans one merge patch:

- a field of ``wanted`` that ``live`` does not hold is written. When ``last`` already
  held that value the operator did not change its mind: someone else changed the object
  (a person's ``kubectl scale``, another controller), and the change is reported as drift;
- a field of ``last`` that ``wanted`` no longer has is removed (null);
- fields nobody asked for (what the API server defaults, status) are left alone: a live
  value is compared with a wanted one only where ``wanted`` has a value, as Kubernetes'
  ``equality.Semantic.DeepDerivative`` does; lists are compared element by element and
  written whole.

Comparing with the live object, not with a record of the last write, is what lets a
revision scaled down for history come back at full size when it is wanted again.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

LAST_APPLIED = "modelrollout.io/last-applied"
# The parts of an object the operator owns; the rest (status, server-set metadata) is not its.
_OWNED_METADATA = ("labels", "annotations", "ownerReferences")
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[KMGTPE]i|[mkMGTPE])?$")
_SUFFIXES = {"": 1, "m": Decimal("0.001"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
             "E": 10**18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


@dataclass(frozen=True)
class Change:
    """One field written back: ``path`` like ``spec.replicas``, what was there, what is wanted."""

    path: str
    live: object
    wanted: object
    drift: bool  # True: the operator wanted this before too, so someone else changed it

    def describe(self) -> str:
        return f"{self.path} was {_short(self.live)}, set back to {_short(self.wanted)}"


@dataclass(frozen=True)
class Plan:
    patch: dict  # the merge patch to send; {} when the live object already holds everything
    changes: tuple[Change, ...]

    @property
    def drift(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.drift)


def owned(body: dict) -> dict:
    """The fields of ``body`` the operator owns: its metadata labels, annotations (but the
    record of the last write) and ownerReferences, and everything outside metadata and status."""
    metadata = body.get("metadata") or {}
    mine = {key: copy.deepcopy(value) for key, value in body.items()
            if key not in ("metadata", "status", "apiVersion", "kind")}
    kept = {key: copy.deepcopy(metadata[key]) for key in _OWNED_METADATA if key in metadata}
    if "annotations" in kept:
        kept["annotations"].pop(LAST_APPLIED, None)
    mine["metadata"] = kept
    return mine


def last_applied(live: dict) -> dict | None:
    """What the operator wrote the last time, from the live object's annotation."""
    text = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    if not text:
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None  # someone mangled it: plan as if it had never been written
    return doc if isinstance(doc, dict) else None


def with_last_applied(body: dict) -> dict:
    """``body`` with the record of itself, as it is created."""
    body = copy.deepcopy(body)
    body.setdefault("metadata", {}).setdefault("annotations", {})[LAST_APPLIED] = _record(owned(body))
    return body


def plan(wanted_body: dict, live: dict) -> Plan:
    """The merge patch that makes ``live`` hold ``wanted_body``'s owned fields."""
    wanted, last = owned(wanted_body), last_applied(live)
    changes: list[Change] = []
    patch = _diff(wanted, live, last, "", changes)
    if last is not None:
        _removals(last, wanted, live, patch)
    if patch or last != wanted:
        patch.setdefault("metadata", {}).setdefault("annotations", {})[LAST_APPLIED] = _record(wanted)
    return Plan(patch, tuple(changes))


def scaled(live: dict, replicas: int) -> dict:
    """What the operator wants of a revision it can no longer build from the spec (an older
    one): what it last wrote, with another replica count."""
    wanted = copy.deepcopy(last_applied(live) or {})
    wanted.setdefault("spec", {})["replicas"] = replicas
    return {**wanted, "metadata": {**live.get("metadata", {}), **wanted.get("metadata", {}),
                                   "name": live["metadata"]["name"]}}


def holds(wanted: object, live: object, path: str = "") -> bool:
    """True when ``live`` holds everything ``wanted`` has (unset and empty wanted values
    ask for nothing; lists must match element by element)."""
    if isinstance(wanted, dict):
        if not wanted:
            return live is None or isinstance(live, dict)
        return isinstance(live, dict) and all(
            holds(value, live.get(key), f"{path}.{key}") for key, value in wanted.items())
    if isinstance(wanted, list):
        if not wanted:
            return live is None or live == []
        return isinstance(live, list) and len(live) == len(wanted) and all(
            holds(w, v, path) for w, v in zip(wanted, live, strict=True))
    if wanted is None:
        return True
    if ".resources." in f"{path}." and wanted != live:
        return _quantity(wanted) is not None and _quantity(wanted) == _quantity(live)
    return type(wanted) is type(live) and wanted == live


def _diff(wanted: dict, live: dict, last: object, path: str, changes: list[Change]) -> dict:
    patch: dict = {}
    for key, value in wanted.items():
        here = f"{path}.{key}" if path else key
        have = live.get(key) if isinstance(live, dict) else None
        before = last.get(key) if isinstance(last, dict) else None
        if isinstance(value, dict) and value and isinstance(have, dict):
            nested = _diff(value, have, before, here, changes)
            if nested:
                patch[key] = nested
        elif not holds(value, have, here):
            patch[key] = copy.deepcopy(value)
            changes.append(Change(here, have, value, drift=before is not None and before == value))
    return patch


def _removals(last: dict, wanted: dict, live: dict, patch: dict) -> None:
    """Null what the operator wrote before and wants no more (only where the object has it)."""
    for key, before in last.items():
        have = live.get(key) if isinstance(live, dict) else None
        if have is None:
            continue
        if key not in wanted:
            patch[key] = None
        elif isinstance(before, dict) and isinstance(wanted[key], dict) and isinstance(have, dict):
            nested = patch.get(key) if isinstance(patch.get(key), dict) else {}
            _removals(before, wanted[key], have, nested)
            if nested and key not in patch:
                patch[key] = nested


def _quantity(value: object) -> Decimal | None:
    """A Kubernetes quantity ("500m", "1Gi", 2) as a number: the API server rewrites them
    canonically ("1000m" comes back as "1"), which is the same value, not drift."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    match = _QUANTITY.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    number, suffix = match.groups()
    try:
        if suffix and suffix[0] in "eE":
            return Decimal(number) * Decimal(10) ** int(suffix[1:])
        return Decimal(number) * _SUFFIXES[suffix or ""]
    except InvalidOperation:
        return None


def _record(wanted: dict) -> str:
    return json.dumps(wanted, sort_keys=True, separators=(",", ":"))


def _short(value: object) -> str:
    text = json.dumps(value, sort_keys=True) if value is not None else "unset"
    return text if len(text) <= 80 else text[:77] + "..."
