"""ONNX models the tests build themselves (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from modelrollout.serving.examples import build_mlp

TINY_SIZES = [4, 16, 3]
LARGE_SIZES = [512, 1024, 1024, 1024, 10]  # about 2.6M parameters

# V2 datatype -> ONNX element type, for identity models of every shared datatype.
ONNX_TYPES = {
    "BOOL": TensorProto.BOOL,
    "UINT8": TensorProto.UINT8,
    "UINT16": TensorProto.UINT16,
    "UINT32": TensorProto.UINT32,
    "UINT64": TensorProto.UINT64,
    "INT8": TensorProto.INT8,
    "INT16": TensorProto.INT16,
    "INT32": TensorProto.INT32,
    "INT64": TensorProto.INT64,
    "FP16": TensorProto.FLOAT16,
    "FP32": TensorProto.FLOAT,
    "FP64": TensorProto.DOUBLE,
    "BYTES": TensorProto.STRING,
}


def write(path: Path, model_bytes: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model_bytes)
    return path


def tiny_mlp(seed: int = 0) -> bytes:
    return build_mlp(TINY_SIZES, seed=seed)


def identity_all_types() -> bytes:
    """One Identity per datatype: input ``in_<DT>`` -> output ``out_<DT>``, shape [-1, -1]."""
    nodes, inputs, outputs = [], [], []
    for name, elem in ONNX_TYPES.items():
        inputs.append(helper.make_tensor_value_info(f"in_{name}", elem, ["n", "m"]))
        outputs.append(helper.make_tensor_value_info(f"out_{name}", elem, ["n", "m"]))
        nodes.append(helper.make_node("Identity", [f"in_{name}"], [f"out_{name}"]))
    graph = helper.make_graph(nodes, "identity_all", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def identity(datatype: str, shape: list) -> bytes:
    """Identity of one datatype with a given (possibly symbolic) shape."""
    elem = ONNX_TYPES[datatype]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", elem, shape)],
        [helper.make_tensor_value_info("y", elem, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def iris_classifier(kind: str = "logreg") -> tuple[bytes, np.ndarray, object]:
    """A scikit-learn classifier on the bundled iris data, converted with skl2onnx's
    default options (label output + ZipMap probabilities). Returns (onnx, X, fitted)."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    data = load_iris()
    x = data.data.astype(np.float32)
    clf = (
        LogisticRegression(max_iter=500) if kind == "logreg"
        else RandomForestClassifier(n_estimators=10, random_state=0)
    )
    clf.fit(x, data.target)
    onx = to_onnx(clf, x[:1], target_opset={"": 17, "ai.onnx.ml": 3})
    return onx.SerializeToString(), x, clf
