"""The binary tensor data extension: raw little-endian tensor bytes after a JSON header.

A body is ``<JSON header><tensor bytes>...``; the JSON header's length travels in the
``Inference-Header-Content-Length`` HTTP header and each binary tensor names its size
in ``parameters.binary_data_size``. BYTES elements are a 4-byte little-endian length
followed by the bytes.
"""

from __future__ import annotations

import struct

import numpy as np

from .dtypes import BY_V2
from .errors import BadRequest

HEADER = "inference-header-content-length"
_LEN = struct.Struct("<I")


def split_body(body: bytes, header_length_text: str) -> tuple[memoryview, memoryview]:
    """Split a body into its JSON header and the binary part that follows it."""
    try:
        header_length = int(header_length_text)
    except ValueError:
        raise BadRequest(f"{HEADER} must be an integer, got {header_length_text!r}") from None
    if header_length < 0 or header_length > len(body):
        raise BadRequest(
            f"{HEADER} is {header_length} but the body has only {len(body)} bytes"
        )
    view = memoryview(body)
    return view[:header_length], view[header_length:]


def tensor_from_bytes(name: str, datatype: str, shape: tuple[int, ...], raw: memoryview) -> np.ndarray:
    count = _count(shape)
    if datatype == "BYTES":
        # Every element carries a 4-byte length: a shape the bytes cannot fill is refused
        # before anything is allocated for it.
        if count * _LEN.size > len(raw):
            raise BadRequest(
                f"input '{name}': shape {list(shape)} needs {count} BYTES elements, "
                f"but {len(raw)} bytes hold at most {len(raw) // _LEN.size}"
            )
        items = _unpack_bytes(name, raw, count)
        array = np.empty(count, dtype=object)
        array[:] = items
        return array.reshape(shape)
    dtype = BY_V2[datatype].numpy
    if len(raw) != count * dtype.itemsize:
        raise BadRequest(
            f"input '{name}': binary data has {len(raw)} bytes but shape {list(shape)} "
            f"of {datatype} needs {count * dtype.itemsize}"
        )
    return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).reshape(shape)


def tensor_to_bytes(datatype: str, data: np.ndarray) -> bytes:
    if datatype == "BYTES":
        parts = []
        for item in data.reshape(-1):
            raw = item.encode() if isinstance(item, str) else bytes(item)
            parts.append(_LEN.pack(len(raw)))
            parts.append(raw)
        return b"".join(parts)
    return np.ascontiguousarray(data, dtype=BY_V2[datatype].numpy.newbyteorder("<")).tobytes()


def _unpack_bytes(name: str, raw: memoryview, count: int) -> list[bytes]:
    items: list[bytes] = []
    offset = 0
    end = len(raw)
    while offset < end:
        if offset + 4 > end:
            raise BadRequest(f"input '{name}': truncated BYTES element length at byte {offset}")
        (size,) = _LEN.unpack_from(raw, offset)
        offset += 4
        if offset + size > end:
            raise BadRequest(f"input '{name}': BYTES element of {size} bytes runs past the data")
        items.append(bytes(raw[offset : offset + size]))
        offset += size
    if len(items) != count:
        raise BadRequest(f"input '{name}': shape needs {count} BYTES elements, got {len(items)}")
    return items


def _count(shape: tuple[int, ...]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count
