"""ONNX models the tests build themselves (nothing is downloaded)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import onnx
from modelrollout.serving.examples import build_mlp
from onnx import TensorProto, helper

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


def edge_values(datatype: str) -> np.ndarray:
    """Eight values of ``datatype`` in shape [2, 4], including its extremes.

    Integers hold min and max (UINT64 mixes values past 2**63 with small ones, which numpy
    cannot put in one integer dtype from JSON), floats hold max, min, the smallest normal
    and subnormal and -0.0, BYTES hold empty, non-ASCII, NUL and long strings.
    """
    if datatype == "BOOL":
        values: list = [True, False, False, True, True, True, False, False]
    elif datatype == "BYTES":
        values = ["", " \t spaces \n", "héllo wörld", "日本語", "🎉 emoji", "a\x00b"]
        values += ["x" * 301, '"q"\\']
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array.reshape(2, 4)
    else:
        dtype = np.dtype(_NUMPY_TYPES[datatype])
        if dtype.kind == "f":
            info = np.finfo(dtype)
            values = [info.max, info.min, info.tiny, info.smallest_subnormal]
            values += [-0.0, 1 / 3, -1.5, 0.1]
        else:
            info = np.iinfo(dtype)
            half = (info.max + 1) // 2
            values = [info.min, info.max, 0, 1, half, half - 1, info.max - 1, info.min + 1]
    return np.array(values, dtype=_NUMPY_TYPES[datatype]).reshape(2, 4)


_NUMPY_TYPES = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}


# --- Helpers for tests that talk to a real server (requests, references, metrics). ---


def fp32_request(x: np.ndarray, name: str = "input", **extra: object) -> dict:
    """A JSON V2 request with one FP32 input holding ``x``."""
    tensor = {"name": name, "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}
    return {"inputs": [tensor], **extra}


def binary_request(header: dict, *blobs: bytes) -> tuple[bytes, dict[str, str]]:
    """Body and headers of a binary-extension request: JSON header, then raw tensor bytes."""
    import orjson

    head = orjson.dumps(header)
    return head + b"".join(blobs), {"Inference-Header-Content-Length": str(len(head))}


_SESSIONS: dict[bytes, object] = {}


def reference(model_bytes: bytes, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """What onnxruntime itself answers for ``feeds`` (sessions are cached per model)."""
    import onnxruntime as ort

    session = _SESSIONS.get(model_bytes)
    if session is None:
        session = _SESSIONS[model_bytes] = ort.InferenceSession(model_bytes)
    return session.run(None, feeds)


def scrape(url: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of a Prometheus /metrics page as (name, labels, value)."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    response = httpx.get(url + "/metrics", timeout=5.0)
    response.raise_for_status()
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    ]


def metric(samples: list, name: str, **labels: str) -> float | None:
    """Sum of the samples called ``name`` whose labels include ``labels``; None if none."""
    values = [
        value for n, have, value in samples
        if n == name and all(have.get(k) == v for k, v in labels.items())
    ]
    return sum(values) if values else None


def multi_output() -> bytes:
    """Input ``x`` FP32 [batch, 3] -> ``scaled`` FP32 [batch, 3] (x * 2), ``row_sum`` FP64
    [batch] and ``arg_max`` INT64 [batch]: outputs of different datatypes and ranks, for
    output selection and mixed JSON/binary responses."""
    nodes = [
        helper.make_node("Mul", ["x", "two"], ["scaled"]),
        helper.make_node("ReduceSum", ["x", "axes"], ["sum32"], keepdims=0),
        helper.make_node("Cast", ["sum32"], ["row_sum"], to=TensorProto.DOUBLE),
        helper.make_node("ArgMax", ["x"], ["arg_max"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "multi_output",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [
            helper.make_tensor_value_info("scaled", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("row_sum", TensorProto.DOUBLE, ["batch"]),
            helper.make_tensor_value_info("arg_max", TensorProto.INT64, ["batch"]),
        ],
        initializer=[
            helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]),
            helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def iris_classifier_named() -> tuple[bytes, np.ndarray, object]:
    """Like ``iris_classifier("logreg")`` but trained on the species names, so the label
    output is a string tensor and the ZipMap carries string class labels."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    data = load_iris()
    x = data.data.astype(np.float32)
    clf = LogisticRegression(max_iter=500).fit(x, data.target_names[data.target])
    onx = to_onnx(clf, x[:1], target_opset={"": 17, "ai.onnx.ml": 3})
    return onx.SerializeToString(), x, clf


# --- The V2 binary tensor format, written out independently of the server's codec, so
# the tests check the bytes on the wire rather than the server agreeing with itself.

_LENGTH = struct.Struct("<I")


def numpy_type(datatype: str) -> np.dtype:
    """The little-endian numpy dtype of a V2 datatype (object for BYTES)."""
    dtype = np.dtype(_NUMPY_TYPES[datatype])
    return dtype if dtype.kind in "bO" else dtype.newbyteorder("<")


def to_binary(datatype: str, array: np.ndarray) -> bytes:
    """Raw tensor bytes: little-endian, row-major; BYTES as 4-byte length + UTF-8 bytes."""
    if datatype == "BYTES":
        parts = []
        for item in array.reshape(-1).tolist():
            raw = item if isinstance(item, bytes) else item.encode("utf-8")
            parts.append(_LENGTH.pack(len(raw)) + raw)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=numpy_type(datatype)).tobytes()


def from_binary(datatype: str, shape: list[int], raw: bytes) -> np.ndarray:
    """Raw tensor bytes -> array (BYTES elements come back as str)."""
    if datatype != "BYTES":
        return np.frombuffer(raw, dtype=numpy_type(datatype)).reshape(shape)
    items, offset = [], 0
    while offset < len(raw):
        (size,) = _LENGTH.unpack_from(raw, offset)
        items.append(raw[offset + 4 : offset + 4 + size].decode("utf-8"))
        offset += 4 + size
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array.reshape(shape)


def binary_body(
    inputs: dict[str, tuple[str, np.ndarray]], extra: dict | None = None
) -> tuple[bytes, dict[str, str]]:
    """A request body with every input as binary data, and its headers.

    ``inputs`` maps input name -> (datatype, array), in body order; ``extra`` is merged
    into the JSON header (outputs, parameters, id).
    """
    entries, blobs = [], []
    for name, (datatype, array) in inputs.items():
        blob = to_binary(datatype, array)
        entries.append({
            "name": name, "datatype": datatype, "shape": list(array.shape),
            "parameters": {"binary_data_size": len(blob)},
        })
        blobs.append(blob)
    header = json.dumps({"inputs": entries, **(extra or {})}).encode()
    return header + b"".join(blobs), {"Inference-Header-Content-Length": str(len(header))}


def read_response(content: bytes, header_length: str | None) -> tuple[dict, dict[str, np.ndarray]]:
    """Parse an infer response by hand: (JSON header, output name -> array).

    Binary outputs are read from the bytes after the header in output order; JSON outputs
    from their ``data``. Checks that the binary sizes account for the whole body.
    """
    length = len(content) if header_length is None else int(header_length)
    doc = json.loads(content[:length])
    arrays, offset = {}, length
    for out in doc["outputs"]:
        size = (out.get("parameters") or {}).get("binary_data_size")
        if size is None:
            arrays[out["name"]] = json_array(out["datatype"], out["shape"], out["data"])
        else:
            assert "data" not in out, f"binary output {out['name']} also has JSON data"
            raw = content[offset : offset + size]
            assert len(raw) == size, f"output {out['name']} runs past the body"
            arrays[out["name"]] = from_binary(out["datatype"], out["shape"], raw)
            offset += size
    assert offset == len(content), f"{len(content) - offset} unaccounted bytes after the outputs"
    return doc, arrays


def json_array(datatype: str, shape: list[int], data: list) -> np.ndarray:
    if datatype == "BYTES":
        array = np.empty(len(data), dtype=object)
        array[:] = data
        return array.reshape(shape)
    return np.array(data, dtype=numpy_type(datatype)).reshape(shape)


def json_data(datatype: str, array: np.ndarray) -> list:
    """The flat JSON ``data`` of an array; float values keep every bit (repr round-trips)."""
    flat = array.reshape(-1).tolist()
    if datatype in ("FP16", "FP32"):
        return [float(v) for v in flat]
    return flat


def assert_same_tensor(got: np.ndarray, want: np.ndarray) -> None:
    """Equal shape and values; numbers bit for bit (so -0.0 and subnormals count)."""
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
    if want.dtype == object:
        decoded = [v.decode() if isinstance(v, bytes) else v for v in got.reshape(-1).tolist()]
        assert decoded == want.reshape(-1).tolist()
        return
    assert got.dtype.kind == want.dtype.kind and got.dtype.itemsize == want.dtype.itemsize, (
        f"dtype {got.dtype} != {want.dtype}"
    )
    same = np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes()
    assert same, f"values differ:\n{got!r}\n!=\n{want!r}"


def embedding_lookup(vocabulary: int = 10, width: int = 3) -> bytes:
    """Gather from a [vocabulary, width] table: ``ids`` INT64 [-1, 2] -> ``emb`` FP32
    [-1, 2, width]. An id outside the table passes every input check and only fails in
    onnxruntime (InvalidArgument), like an unknown token id in a real embedding model."""
    from onnx import numpy_helper

    table = np.arange(vocabulary * width, dtype=np.float32).reshape(vocabulary, width)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["emb"], axis=0)],
        "embedding",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["n", 2])],
        [helper.make_tensor_value_info("emb", TensorProto.FLOAT, ["n", 2, width])],
        [numpy_helper.from_array(table, "table")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def perturbed(model_bytes: bytes, scale: float, seed: int = 0) -> bytes:
    """The same graph with Gaussian noise of standard deviation ``scale`` added to every
    float initializer: a shadow that answers like the original, but not exactly."""
    from onnx import numpy_helper

    model = onnx.load_from_string(model_bytes)
    rng = np.random.default_rng(seed)
    for i, tensor in enumerate(model.graph.initializer):
        array = numpy_helper.to_array(tensor)
        if array.dtype.kind == "f":
            noisy = (array + rng.normal(0.0, scale, array.shape)).astype(array.dtype)
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(noisy, tensor.name))
    return model.SerializeToString()


def unary(op: str, shape: list | None = None) -> bytes:
    """FP32 ``x`` -> ``y`` through one elementwise ONNX op (Identity, Sqrt, Neg, ...)."""
    shape = shape or ["n", 4]
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"])],
        op.lower(),
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()
