"""Label and field selectors, as the API server reads ``labelSelector`` and ``fieldSelector``.

    matches = label_selector("app=iris,tier in (a,b),!canary")
    matches(obj)  # True or False

Label selectors: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k``, ``!k``.
Field selectors: ``path=v``, ``path==v``, ``path!=v`` on any dotted path (``metadata.name``,
``involvedObject.uid``, ``status.phase``); the real API server accepts only a few paths per
kind, this one accepts every path and compares its value as a string.
"""

from __future__ import annotations

import re
from collections.abc import Callable

Matcher = Callable[[dict], bool]

_SET_TERM = re.compile(r"^\s*(!?)\s*([\w./-]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")
_EQUALITY_TERM = re.compile(r"^\s*([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)\s*$")


class SelectorError(ValueError):
    """A selector the API server would refuse (400)."""


def _terms(text: str) -> list[str]:
    """Split on the commas that are not inside parentheses."""
    terms, depth, current = [], 0, ""
    for char in text:
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
            continue
        depth += char == "("
        depth -= char == ")"
        current += char
    terms.append(current)
    return [t for t in terms if t.strip()]


def label_selector(text: str | None) -> Matcher:
    checks: list[Matcher] = []
    for term in _terms(text or ""):
        checks.append(_label_term(term))
    return lambda obj: all(check(_labels(obj)) for check in checks)


def _label_term(term: str) -> Matcher:
    equality = _EQUALITY_TERM.match(term)
    if equality:
        key, op, value = equality.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    found = _SET_TERM.match(term)
    if not found:
        raise SelectorError(f"unable to parse requirement: {term.strip()!r}")
    negated, key, op, values = found.groups()
    if op:
        if negated:
            raise SelectorError(f"unable to parse requirement: {term.strip()!r}")
        allowed = {v.strip() for v in values.split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in allowed
        return lambda labels: labels.get(key) not in allowed
    if negated:
        return lambda labels: key not in labels
    return lambda labels: key in labels


def field_selector(text: str | None) -> Matcher:
    checks: list[Matcher] = []
    for term in _terms(text or ""):
        found = _EQUALITY_TERM.match(term)
        if not found:
            raise SelectorError(f"invalid field selector: {term.strip()!r}")
        path, op, value = found.groups()
        checks.append(_field_term(path, op, value))
    return lambda obj: all(check(obj) for check in checks)


def _field_term(path: str, op: str, value: str) -> Matcher:
    keys = path.split(".")

    def actual(obj: dict) -> str:
        node: object = obj
        for key in keys:
            node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            return ""
        if isinstance(node, bool):
            return "true" if node else "false"
        return str(node)

    if op == "!=":
        return lambda obj: actual(obj) != value
    return lambda obj: actual(obj) == value


def _labels(obj: dict) -> dict:
    return (obj.get("metadata") or {}).get("labels") or {}
