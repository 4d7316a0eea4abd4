"""The JSONPath that CRD printer columns use (``.status.phase``,
``.status.conditions[?(@.type=="Ready")].status``, ``.spec.ports[*].port``, ``.items[0]``).

    find(obj, ".status.traffic.candidate")  # [10], or [] when the path is absent

Steps: ``.name``, ``['name']``, ``[n]``, ``[*]`` and a filter ``[?(@.a.b=="x")]`` (``==`` or
``!=`` against a quoted string or a number). Recursive descent and slices are not supported.
"""

from __future__ import annotations

import re

_STEP = re.compile(
    r"""\.(?P<name>[A-Za-z_$][\w$-]*)"""
    r"""|\[\s*'(?P<quoted>[^']*)'\s*\]"""
    r"""|\[\s*"(?P<dquoted>[^"]*)"\s*\]"""
    r"""|\[\s*(?P<index>-?\d+)\s*\]"""
    r"""|\[\s*(?P<star>\*)\s*\]"""
    r"""|\[\s*\?\(\s*@(?P<fpath>(?:\.[\w$-]+)+)\s*(?P<fop>==|!=)\s*(?P<fvalue>"[^"]*"|'[^']*'|-?[\d.]+)\s*\)\s*\]"""
)


class JsonPathError(ValueError):
    pass


def parse(path: str) -> list[tuple[str, object]]:
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if text.startswith("$"):
        text = text[1:]
    steps: list[tuple[str, object]] = []
    position = 0
    while position < len(text):
        found = _STEP.match(text, position)
        if not found:
            raise JsonPathError(f"unsupported JSONPath {path!r} at {text[position:]!r}")
        groups = found.groupdict()
        if groups["name"] is not None:
            steps.append(("key", groups["name"]))
        elif groups["quoted"] is not None or groups["dquoted"] is not None:
            steps.append(("key", groups["quoted"] if groups["quoted"] is not None else groups["dquoted"]))
        elif groups["index"] is not None:
            steps.append(("index", int(groups["index"])))
        elif groups["star"] is not None:
            steps.append(("all", None))
        else:
            raw = groups["fvalue"]
            value: object = raw[1:-1] if raw[0] in "\"'" else float(raw)
            steps.append(("filter", (groups["fpath"].split(".")[1:], groups["fop"], value)))
        position = found.end()
    return steps


def find(obj: object, path: str) -> list:
    nodes = [obj]
    for kind, arg in parse(path):
        following: list = []
        for node in nodes:
            if (kind == "key" and isinstance(node, dict) and arg in node) or \
                    (kind == "index" and isinstance(node, list) and -len(node) <= arg < len(node)):
                following.append(node[arg])
            elif kind == "all" and isinstance(node, list):
                following.extend(node)
            elif kind == "all" and isinstance(node, dict):
                following.extend(node.values())
            elif kind == "filter" and isinstance(node, list):
                following.extend(item for item in node if _passes(item, arg))
        nodes = following
    return [n for n in nodes if n is not None]


def _passes(item: object, condition: tuple) -> bool:
    keys, op, wanted = condition
    value: object = item
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    if isinstance(wanted, float) and isinstance(value, int | float) and not isinstance(value, bool):
        equal = float(value) == wanted
    else:
        equal = value == wanted
    return equal if op == "==" else not equal
