"""The JSON wire format of V2 tensors (orjson; the standard json module is off the hot path)."""

from __future__ import annotations

import json
import math

import numpy as np
import orjson

from .dtypes import BY_V2
from .errors import BadRequest

_INT_LIMITS = {
    dt.v2: (int(np.iinfo(dt.numpy).min), int(np.iinfo(dt.numpy).max))
    for dt in BY_V2.values()
    if dt.kind == "int"
}


def loads(body: bytes | memoryview) -> dict:
    """Parse a JSON document; NaN and Infinity literals are accepted (Python's json emits them)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        doc = _loads_with_nonfinite(body, exc)
    if not isinstance(doc, dict):
        raise BadRequest("the request body must be a JSON object")
    return doc


def _loads_with_nonfinite(body: bytes | memoryview, exc: Exception) -> dict:
    raw = bytes(body)
    if b"NaN" not in raw and b"Infinity" not in raw:
        raise BadRequest(f"malformed JSON: {exc}") from None
    try:  # rare path: orjson refuses the NaN/Infinity literals that json.dumps writes
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc2:
        raise BadRequest(f"malformed JSON: {exc2}") from None


def tensor_from_json(name: str, datatype: str, shape: tuple[int, ...], data: object) -> np.ndarray:
    """Turn the ``data`` of one JSON input into an array of the declared datatype and shape."""
    if not isinstance(data, list):
        data = [data]
    dtype = BY_V2[datatype]
    try:
        if dtype.kind == "float":
            array = np.array(data)
            if array.size and array.dtype.kind not in "fiu":
                raise ValueError(f"numbers expected, got {_kind_name(array)}")
            array = array.astype(dtype.numpy, copy=False)
        elif dtype.kind == "int":
            array = np.array(data)
            if array.size and array.dtype.kind not in "iu":
                array = _exact_ints(data, array)
            low, high = _INT_LIMITS[datatype]
            if array.size and (array.min() < low or array.max() > high):
                raise ValueError(f"values outside the range of {datatype} [{low}, {high}]")
            array = array.astype(dtype.numpy)
        elif dtype.kind == "bool":
            array = np.array(data)
            if array.size and array.dtype != np.bool_:
                raise ValueError(f"true/false expected, got {_kind_name(array)}")
            array = array.astype(np.bool_)
        else:
            array = _bytes_array(data)
    except (ValueError, TypeError, OverflowError) as exc:
        raise BadRequest(f"input '{name}': data is not valid {datatype}: {exc}") from None
    expected = math.prod(shape)
    if array.size != expected:
        raise BadRequest(
            f"input '{name}': shape {list(shape)} needs {expected} elements, data has {array.size}"
        )
    return array.reshape(shape)


def _exact_ints(data: list, array: np.ndarray) -> np.ndarray:
    """Integers numpy could not hold in one integer dtype, as Python ints, or ValueError.

    numpy has no common integer type for int64 and uint64 values: a UINT64 tensor with
    values past 2**63 - 1 next to smaller ones comes out as float64 (or object). Only
    that slow path keeps the exact Python ints; true floats are still refused.
    """
    if array.dtype.kind in "fO":
        exact = np.array(data, dtype=object)
        if all(type(v) is int for v in exact.flat):  # noqa: E721 - bool is not an integer here
            return exact
    raise ValueError(f"integers expected, got {_kind_name(array)}")


def _bytes_array(data: list) -> np.ndarray:
    flat: list = []
    flatten(data, flat)
    for item in flat:
        if not isinstance(item, str):
            raise ValueError(f"strings expected, got {type(item).__name__}")
    array = np.empty(len(flat), dtype=object)
    array[:] = flat
    return array


MAX_NESTING = 64  # numpy's own limit on dimensions


def flatten(data: list, out: list, depth: int = 0) -> None:
    """Append the leaves of nested lists to ``out``, in row-major order."""
    # A bound of our own, not the interpreter's recursion limit: that one differs between
    # processes, and the same request must get the same answer everywhere.
    if depth > MAX_NESTING:
        raise ValueError(f"lists nested deeper than {MAX_NESTING} levels")
    for item in data:
        if isinstance(item, list):
            flatten(item, out, depth + 1)
        else:
            out.append(item)


def _kind_name(array: np.ndarray) -> str:
    return {"f": "floats", "b": "booleans", "U": "strings", "O": "mixed values"}.get(
        array.dtype.kind, str(array.dtype)
    )


def tensor_to_json(datatype: str, data: np.ndarray) -> object:
    """The flat ``data`` list of one JSON output (numpy arrays go straight to orjson)."""
    flat = data.reshape(-1)
    if datatype == "BYTES":
        return [
            item.decode("utf-8", "replace") if isinstance(item, bytes) else item
            for item in flat.tolist()
        ]
    if datatype == "FP16":
        return flat.astype(np.float32)
    return np.ascontiguousarray(flat)


def dumps(doc: dict) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
