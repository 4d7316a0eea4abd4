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


def write_model_versions(folder: Path, stem: str = "model") -> dict[str, Path]:
    """Versions of a 4 -> 16 -> 3 MLP for rollouts, version -> file:

    1.0.0   good
    1.0.1   1.0.0 exported again: other bytes (another revision), the same predictions
    2.0.0   good, other weights: as healthy and fast as 1.0.0, but it predicts differently
    3.0.0   failing on half of real inputs (build_faulty_mlp)
    4.0.0   1.0.0 retrained: weights a little different, the same predictions (retrained)
    5.0.0   good, other weights again
    6.0.0   healthy and fast, other weights: it predicts another class for about half of
            the inputs 1.0.0 sees (what a prediction-shift gate is for)
    7.0.0   good on the inputs clients send today (every feature below 1), failing on
            larger values: what drifted inputs bring after it was promoted (the guard's act)
    simple  a simpler model (no hidden layer): a fallback that answers any input
    """
    folder.mkdir(parents=True, exist_ok=True)
    built = {"1.0.0": build_mlp([4, 16, 3], seed=0), "1.0.1": reexport(build_mlp([4, 16, 3], seed=0)),
             "2.0.0": build_mlp([4, 16, 3], seed=1), "3.0.0": build_faulty_mlp([4, 16, 3], seed=2),
             "4.0.0": retrained(build_mlp([4, 16, 3], seed=0), seed=3),
             "5.0.0": build_mlp([4, 16, 3], seed=5), "6.0.0": build_mlp([4, 16, 3], seed=4),
             "7.0.0": build_faulty_mlp([4, 16, 3], seed=7, fail_above=1.0),
             "simple": build_mlp([4, 3], seed=8)}
    paths = {}
    for version, data in built.items():
        paths[version] = folder / f"{stem}-{version}.onnx"
        paths[version].write_bytes(data)
    return paths


def reexport(model: bytes) -> bytes:
    """The same graph and weights with other producer metadata: a new file, the same answers."""
    proto = onnx.load_from_string(model)
    proto.producer_name, proto.producer_version = "modelrollout-reexport", "2"
    return proto.SerializeToString()


def retrained(model: bytes, seed: int, scale: float = 0.05) -> bytes:
    """The model with every weight moved by a little noise (``scale`` of the tensor's mean
    magnitude): what retraining on fresh data gives, other bytes and nearly the same answers."""
    proto = onnx.load_from_string(model)
    rng = np.random.default_rng(seed)
    for i, tensor in enumerate(proto.graph.initializer):
        weights = numpy_helper.to_array(tensor)
        moved = weights + rng.standard_normal(weights.shape) * scale * float(np.abs(weights).mean())
        proto.graph.initializer[i].CopyFrom(numpy_helper.from_array(moved.astype(np.float32), tensor.name))
    return proto.SerializeToString()


def write_iris_example(folder: Path, seed: int = 0) -> Path:
    """A 4 -> 16 -> 3 MLP shaped like an iris classifier, as a model folder with labels."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(build_mlp([4, 16, 3], seed=seed))
    (folder / "labels.txt").write_text("\n".join(IRIS_LABELS) + "\n")
    (folder / "metadata.json").write_text(
        '{"description": "example 4-feature, 3-class MLP built by modelrollout"}\n'
    )
    return folder


def build_faulty_mlp(sizes: list[int], seed: int = 0, fail_above: float = 0.5, opset: int = 17) -> bytes:
    """build_mlp's model with a fault: inference fails (the server answers 500) for a
    single-row request whose first feature is above ``fail_above``.

    A model that breaks only on some real inputs, as models do: a request of zeros (the
    operator's smoke test) is answered, live traffic is not. The fault is a Reshape whose
    first dimension becomes 3 when the feature is high, which a 1-row input cannot take.
    """
    base = onnx.load_from_string(build_mlp(sizes, seed=seed, opset=opset))
    graph = base.graph
    graph.node[-1].output[0] = "healthy"  # the softmax
    constants = {
        "starts": np.array([0, 0], np.int64), "ends": np.array([1, 1], np.int64),
        "limit": np.array(fail_above, np.float32), "two": np.array(2, np.int64),
        "one": np.array(1, np.int64), "flat": np.array([1], np.int64), "rest": np.array([-1], np.int64),
        "zero": np.array(0, np.float32),
    }
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in constants.items())
    graph.node.extend([
        helper.make_node("Slice", ["input", "starts", "ends"], ["first"]),
        helper.make_node("Greater", ["first", "limit"], ["high"]),
        helper.make_node("Cast", ["high"], ["high_int"], to=TensorProto.INT64),
        helper.make_node("Mul", ["high_int", "two"], ["extra"]),
        helper.make_node("Add", ["extra", "one"], ["rows"]),
        helper.make_node("Reshape", ["rows", "flat"], ["rows_1d"]),
        helper.make_node("Concat", ["rows_1d", "rest"], ["shape"], axis=0),
        helper.make_node("Reshape", ["input", "shape"], ["reshaped"]),
        helper.make_node("ReduceSum", ["reshaped"], ["total"], keepdims=0),
        helper.make_node("Mul", ["total", "zero"], ["nothing"]),
        helper.make_node("Add", ["healthy", "nothing"], ["probabilities"]),
    ])
    onnx.checker.check_model(base)
    return base.SerializeToString()
