"""The single table between V2 datatypes, numpy dtypes and ONNX tensor types."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DType:
    v2: str  # Open Inference Protocol name, e.g. "FP32"
    numpy: np.dtype  # how the tensor is held in memory
    onnx: str  # onnxruntime's type string, e.g. "tensor(float)"
    kind: str  # what JSON values may carry it: "bool", "int", "float", "bytes"


_TABLE = (
    DType("BOOL", np.dtype(np.bool_), "tensor(bool)", "bool"),
    DType("UINT8", np.dtype(np.uint8), "tensor(uint8)", "int"),
    DType("UINT16", np.dtype(np.uint16), "tensor(uint16)", "int"),
    DType("UINT32", np.dtype(np.uint32), "tensor(uint32)", "int"),
    DType("UINT64", np.dtype(np.uint64), "tensor(uint64)", "int"),
    DType("INT8", np.dtype(np.int8), "tensor(int8)", "int"),
    DType("INT16", np.dtype(np.int16), "tensor(int16)", "int"),
    DType("INT32", np.dtype(np.int32), "tensor(int32)", "int"),
    DType("INT64", np.dtype(np.int64), "tensor(int64)", "int"),
    DType("FP16", np.dtype(np.float16), "tensor(float16)", "float"),
    DType("FP32", np.dtype(np.float32), "tensor(float)", "float"),
    DType("FP64", np.dtype(np.float64), "tensor(double)", "float"),
    DType("BYTES", np.dtype(object), "tensor(string)", "bytes"),
)

BY_V2 = {d.v2: d for d in _TABLE}
BY_ONNX = {d.onnx: d for d in _TABLE}
V2_NAMES = tuple(BY_V2)


def from_numpy(dtype: np.dtype) -> DType:
    """The V2 datatype of a numpy array (strings and bytes are BYTES)."""
    if dtype.kind in "OSU":
        return BY_V2["BYTES"]
    for d in _TABLE:
        if d.numpy == dtype:
            return d
    raise KeyError(f"no V2 datatype for numpy dtype {dtype}")
