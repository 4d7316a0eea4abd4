"""The one protobuf body kubectl sends that the harness reads: a Namespace.

Typed kubectl commands (`kubectl create namespace ml`) send built-in objects as
``application/vnd.kubernetes.protobuf`` and never fall back to JSON. Reading every built-in
type would need their .proto definitions; a Namespace is its ObjectMeta only, which this
reads (name, generateName, labels, annotations, finalizers). Other kinds: UnsupportedKind.

    namespace_from_protobuf(body)  # {"apiVersion": "v1", "kind": "Namespace", "metadata": {...}}
"""

from __future__ import annotations

MAGIC = b"k8s\x00"


class UnsupportedKind(ValueError):
    pass


def namespace_from_protobuf(body: bytes) -> dict:
    if not body.startswith(MAGIC):
        raise ValueError("not a Kubernetes protobuf body")
    unknown = _fields(body[len(MAGIC):])
    type_meta = _fields(_one(unknown, 1, b""))
    api_version = _one(type_meta, 1, b"").decode()
    kind = _one(type_meta, 2, b"").decode()
    if (api_version, kind) != ("v1", "Namespace"):
        raise UnsupportedKind(f"{api_version} {kind}")
    namespace = _fields(_one(unknown, 2, b""))
    meta = _fields(_one(namespace, 1, b""))
    metadata: dict = {}
    for number, name in ((1, "name"), (2, "generateName")):
        if _one(meta, number, b""):  # proto3 may send empty strings
            metadata[name] = _one(meta, number, b"").decode()
    for number, name in ((11, "labels"), (12, "annotations")):
        entries = [_fields(entry) for entry in meta.get(number, [])]
        if entries:
            metadata[name] = {_one(e, 1, b"").decode(): _one(e, 2, b"").decode() for e in entries}
    if 14 in meta:
        metadata["finalizers"] = [value.decode() for value in meta[14]]
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


def _one(fields: dict, number: int, default: bytes) -> bytes:
    values = fields.get(number)
    return values[-1] if values else default


def _fields(data: bytes) -> dict[int, list]:
    """field number -> values: bytes for length-delimited fields, ints for varints."""
    fields: dict[int, list] = {}
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, position = _varint(data, position)
        elif wire == 2:
            length, position = _varint(data, position)
            value, position = data[position:position + length], position + length
        elif wire == 1:
            value, position = data[position:position + 8], position + 8
        elif wire == 5:
            value, position = data[position:position + 4], position + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        fields.setdefault(number, []).append(value)
    return fields


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data):
            raise ValueError("truncated protobuf varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
