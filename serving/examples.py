"""Small ONNX models built on the spot (nothing is downloaded): for the quickstart,
the demo, the tests and the benchmarks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

IRIS_LABELS = ["setosa", "versicolor", "virginica"]


def build_mlp(sizes: list[int], seed: int = 0, opset: int = 17) -> bytes:
    """A ReLU MLP with seeded random weights and a softmax head.

    Input ``input`` FP32 [-1, sizes[0]], output ``probabilities`` FP32 [-1, sizes[-1]].
    """
    rng = np.random.default_rng(seed)
    nodes = []
    initializers = []
    current = "input"
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        weight = (rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)).astype(np.float32)
        bias = (rng.standard_normal(fan_out) * 0.1).astype(np.float32)
        initializers += [numpy_helper.from_array(weight, f"w{i}"), numpy_helper.from_array(bias, f"b{i}")]
        nodes.append(helper.make_node("Gemm", [current, f"w{i}", f"b{i}"], [f"z{i}"]))
        current = f"z{i}"
        if i < len(sizes) - 2:
            nodes.append(helper.make_node("Relu", [current], [f"a{i}"]))
            current = f"a{i}"
    nodes.append(helper.make_node("Softmax", [current], ["probabilities"], axis=1))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", sizes[0]])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", sizes[-1]])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def write_iris_example(folder: Path, seed: int = 0) -> Path:
    """A 4 -> 16 -> 3 MLP shaped like an iris classifier, as a model folder with labels."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(build_mlp([4, 16, 3], seed=seed))
    (folder / "labels.txt").write_text("\n".join(IRIS_LABELS) + "\n")
    (folder / "metadata.json").write_text(
        '{"description": "example 4-feature, 3-class MLP built by modelrollout"}\n'
    )
    return folder
