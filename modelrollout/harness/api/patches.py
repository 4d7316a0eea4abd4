"""The three patch types of the API server, on plain dicts (inputs are never modified).

    merge_patch(live, patch)            # RFC 7386: application/merge-patch+json
    json_patch(live, operations)        # RFC 6902: application/json-patch+json
    strategic_merge_patch(live, patch)  # application/strategic-merge-patch+json (built-in kinds)

The strategic merge patch knows the merge keys of the lists kubectl's patches touch in the
kinds the harness deals in (containers and env by name, ports, volumes, conditions ...) and
the directives kubectl writes ($patch, $setElementOrder, $retainKeys,
$deleteFromPrimitiveList). Other lists are replaced, as for a list without a merge key.
"""

from __future__ import annotations

import copy


class PatchError(ValueError):
    """A patch the API server refuses (422, or 409 for a failed JSON patch test)."""


# list field -> merge key, as the built-in types' patchMergeKey tags say.
MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name",
    "volumes": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath",
    "imagePullSecrets": "name", "conditions": "type", "ownerReferences": "uid",
    "tolerations": "key", "hostAliases": "ip", "topologySpreadConstraints": "topologyKey",
    "envFrom": None, "finalizers": None,
}
# ports: containerPort inside a container, port in a Service spec.
_PORT_KEYS = ("containerPort", "port")


def merge_patch(live: object, patch: object) -> object:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(live) if isinstance(live, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(live: dict, operations: list) -> dict:
    document: object = copy.deepcopy(live)
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations")
    for operation in operations:
        op, path = operation.get("op"), operation.get("path", "")
        if op == "add":
            document = _put(document, _pointer(path), copy.deepcopy(operation.get("value")), insert=True)
        elif op == "replace":
            _resolve(document, _pointer(path))
            document = _put(document, _pointer(path), copy.deepcopy(operation.get("value")), insert=False)
        elif op == "remove":
            document = _remove(document, _pointer(path))
        elif op in ("move", "copy"):
            source = _pointer(operation.get("from", ""))
            value = copy.deepcopy(_resolve(document, source))
            if op == "move":
                document = _remove(document, source)
            document = _put(document, _pointer(path), value, insert=True)
        elif op == "test":
            if _resolve(document, _pointer(path)) != operation.get("value"):
                raise PatchError(f"the test of {path} failed")
        else:
            raise PatchError(f"unknown JSON patch operation {op!r}")
    if not isinstance(document, dict):
        raise PatchError("a JSON patch must leave an object")
    return document


def strategic_merge_patch(live: dict, patch: dict) -> dict:
    return _smp_map(copy.deepcopy(live) if isinstance(live, dict) else {}, patch)


def _smp_map(live: dict, patch: dict) -> dict:
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            live[field] = [v for v in live.get(field) or [] if v not in value]
            continue
        if value is None:
            live.pop(key, None)
        elif isinstance(value, dict) and isinstance(live.get(key), dict):
            live[key] = _smp_map(live[key], value)
        elif isinstance(value, list) and isinstance(live.get(key), list) \
                and _merge_key(key, value, live[key]):
            live[key] = _smp_list(live[key], value, str(_merge_key(key, value, live[key])))
        else:
            live[key] = _strip(copy.deepcopy(value))
    if isinstance(retain, list):
        live = {k: v for k, v in live.items() if k in retain}
    return live


def _merge_key(field: str, patch: list, live: list) -> str | None:
    if field == "ports":
        items = [i for i in [*patch, *live] if isinstance(i, dict)]
        return next((k for k in _PORT_KEYS if items and all(k in i for i in items)), None)
    key = MERGE_KEYS.get(field)
    if key and all(isinstance(i, dict) for i in patch):
        return key
    return None


def _smp_list(live: list, patch: list, key: str) -> list:
    result = list(live)
    for item in patch:
        position = next((n for n, old in enumerate(result)
                         if isinstance(old, dict) and old.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if position is not None:
                result.pop(position)
        elif position is None:
            result.append(_strip(copy.deepcopy(item)))
        else:
            result[position] = _smp_map(result[position], item)
    return result


def _strip(value: object) -> object:
    """New content carries no directives."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _resolve(document: object, parts: list[str]) -> object:
    node = document
    for part in parts:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise PatchError(f"path /{'/'.join(parts)} does not exist")
    return node


def _put(document: object, parts: list[str], value: object, insert: bool) -> object:
    if not parts:
        return value
    parent = _resolve(document, parts[:-1])
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent) - (0 if insert else 1):
            if insert:
                parent.insert(int(last), value)
            else:
                parent[int(last)] = value
        else:
            raise PatchError(f"index {last} out of range")
    else:
        raise PatchError(f"cannot write into /{'/'.join(parts[:-1])}")
    return document


def _remove(document: object, parts: list[str]) -> object:
    if not parts:
        raise PatchError("cannot remove the whole document")
    parent = _resolve(document, parts[:-1])
    last = parts[-1]
    if isinstance(parent, dict) and last in parent:
        del parent[last]
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        parent.pop(int(last))
    else:
        raise PatchError(f"path /{'/'.join(parts)} does not exist")
    return document
