"""Run the Argo CD scripts in argocd/ the way Argo CD does, under a real Lua 5.1 (lupa's
lua51 module, the C Lua 5.1 in-process): the object as the global ``obj``; a health script
returns {status, message}, discovery the table of actions with their ``disabled`` flags, an
action the changed object. Argo CD's Lua VM gives actions a cut-down ``os`` (time and
date only) and nothing else from the system; so does this one."""

from __future__ import annotations

import copy
from pathlib import Path

from lupa import lua51

ROOT = Path(__file__).resolve().parents[2] / "argocd"
HEALTH = ROOT / "health.lua"
DISCOVERY = ROOT / "actions" / "discovery.lua"
ACTIONS = ("promote", "promote-full", "abort", "pause", "resume", "retry", "recover")
HEALTH_STATES = ("Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown")


def action_path(name: str) -> Path:
    return ROOT / "actions" / name / "action.lua"


def _runtime() -> lua51.LuaRuntime:
    lua = lua51.LuaRuntime(unpack_returned_tuples=False, register_eval=False, register_builtins=False)
    # Argo CD's sandbox: the base, table, string and math libraries, and an os with time and
    # date only (util/lua: SafeOsLoader). Everything else that touches the system is gone.
    lua.execute("""
        local time, date = os.time, os.date
        local safe = {time = time, date = date}
        os = safe
        package.loaded.os = safe
        io, debug, dofile, loadfile, load, loadstring = nil, nil, nil, nil, nil, nil
        package.loaded.io, package.loaded.debug = nil, nil
    """)
    return lua


def _to_lua(lua, value):
    if isinstance(value, dict):
        return lua.table_from({k: _to_lua(lua, v) for k, v in value.items()})
    if isinstance(value, list):
        return lua.table_from([_to_lua(lua, v) for v in value])
    return value


def _from_lua(value, like=None):
    """A Lua value as JSON: a table with keys 1..n is an array; an empty table takes the
    type the original value had (Argo CD restores empty arrays the same way)."""
    if lupa_type(value) != "table":
        if isinstance(value, float) and value.is_integer() and not isinstance(like, float):
            return int(value)
        return value
    keys = list(value.keys())
    if not keys:
        return [] if isinstance(like, list) else {}
    if all(isinstance(k, int) for k in keys) and sorted(keys) == list(range(1, len(keys) + 1)):
        items = like if isinstance(like, list) else []
        return [_from_lua(value[i], items[i - 1] if i - 1 < len(items) else None)
                for i in range(1, len(keys) + 1)]
    old = like if isinstance(like, dict) else {}
    return {str(k): _from_lua(value[k], old.get(k)) for k in keys}


def lupa_type(value) -> str | None:
    return lua51.lua_type(value)


def run(script: Path, obj: dict):
    """Evaluate ``script`` with ``obj`` as the global ``obj``; its return value as JSON."""
    lua = _runtime()
    lua.globals().obj = _to_lua(lua, copy.deepcopy(obj))
    return _from_lua(lua.execute(script.read_text()), obj)


def health(obj: dict) -> dict:
    result = run(HEALTH, obj)
    if set(result) != {"status", "message"} or result["status"] not in HEALTH_STATES:
        raise AssertionError(f"health.lua returned {result!r}")
    return result


def discovery(obj: dict) -> dict[str, bool]:
    """Action name -> disabled."""
    return {name: bool(entry.get("disabled")) for name, entry in run(DISCOVERY, obj).items()}


def action(name: str, obj: dict) -> dict:
    return run(action_path(name), obj)


def lua_version() -> str:
    return _runtime().eval("_VERSION")


def _indent(text: str, spaces: int) -> str:
    return "".join(" " * spaces + line if line.strip() else line for line in text.splitlines(True))


def config_map_snippet() -> str:
    """The argocd-cm ConfigMap with every script of argocd/ inlined, as docs/argocd.md shows it."""
    definitions = "".join(f"    - name: {name}\n      action.lua: |\n"
                          f"{_indent(action_path(name).read_text(), 8)}" for name in ACTIONS)
    return (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n  namespace: argocd\n"
        "  labels:\n    app.kubernetes.io/name: argocd-cm\n    app.kubernetes.io/part-of: argocd\ndata:\n"
        "  resource.customizations.health.modelrollout.io_ModelDeployment: |\n"
        f"{_indent(HEALTH.read_text(), 4)}"
        "  resource.customizations.actions.modelrollout.io_ModelDeployment: |\n"
        "    discovery.lua: |\n"
        f"{_indent(DISCOVERY.read_text(), 6)}"
        "    definitions:\n"
        f"{definitions}"
    )


if __name__ == "__main__":  # python tests/support/argocd_lua.py > argocd-cm.yaml
    print(config_map_snippet(), end="")
