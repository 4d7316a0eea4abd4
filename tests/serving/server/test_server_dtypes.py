"""Every datatype ONNX and the V2 protocol share round-trips through a real server.

The model is one Identity per datatype (tests/support/models.py identity_all_types), so what
comes back must be what went in, bit for bit, and what onnxruntime answers in this
process. Values include each type's extremes, subnormals, -0.0, and unicode, empty and
NUL-holding strings; every encoding pair (JSON or binary in, JSON or binary out) and a
request mixing both are checked, plus random tensors from hypothesis.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.support.models import (
    ONNX_TYPES,
    assert_same_tensor,
    binary_body,
    edge_values,
    identity,
    identity_all_types,
    json_data,
    numpy_type,
    read_response,
    to_binary,
    write,
)

DATATYPES = list(ONNX_TYPES)


@pytest.fixture
def server(start_server, tmp_path: Path):
    model = write(tmp_path / "all" / "model.onnx", identity_all_types())
    return start_server(["--model-uri", str(model), "--model-name", "all"])


def infer(server, arrays: dict[str, np.ndarray], binary_in: set[str], binary_out: set[str],
          **extra: object) -> tuple[dict, dict[str, np.ndarray]]:
    """Send ``arrays`` (datatype -> array) to the identity model; the datatypes in
    ``binary_in`` go as binary data (first, so the rest sit at unaligned offsets), the
    others as JSON; outputs of the datatypes in ``binary_out`` are asked for as binary."""
    ordered = sorted(arrays, key=lambda dt: (dt not in binary_in, dt != "BYTES"))
    entries, blobs = [], []
    for dt in ordered:
        entry = {"name": f"in_{dt}", "datatype": dt, "shape": list(arrays[dt].shape)}
        if dt in binary_in:
            blob = to_binary(dt, arrays[dt])
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = json_data(dt, arrays[dt])
        entries.append(entry)
    outputs = [
        {"name": f"out_{dt}", "parameters": {"binary_data": dt in binary_out}} for dt in arrays
    ]
    header = json.dumps({"inputs": entries, "outputs": outputs, **extra}).encode()
    headers = {"Inference-Header-Content-Length": str(len(header))} if blobs else {}
    response = httpx.post(
        server.url + "/v2/models/all/infer", content=header + b"".join(blobs), headers=headers
    )
    assert response.status_code == 200, response.text
    length = response.headers.get("inference-header-content-length")
    doc, got = read_response(response.content, length)
    for out in doc["outputs"]:
        dt = out["name"].removeprefix("out_")
        assert out["datatype"] == dt
        assert ("binary_data_size" in (out.get("parameters") or {})) == (dt in binary_out)
    return doc, {name.removeprefix("out_"): array for name, array in got.items()}


def onnxruntime_answer(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(identity_all_types())
    feeds = {f"in_{dt}": array for dt, array in arrays.items()}
    names = [f"out_{dt}" for dt in arrays]
    return dict(zip(arrays, session.run(names, feeds), strict=True))


def assert_round_trip(server, arrays: dict[str, np.ndarray], binary_in: set[str],
                      binary_out: set[str]) -> None:
    _, got = infer(server, arrays, binary_in, binary_out)
    assert list(got) == list(arrays)
    reference = onnxruntime_answer(arrays)
    for dt, array in arrays.items():
        assert_same_tensor(reference[dt], array)  # the model really is the identity
        assert_same_tensor(got[dt], array)


def test_edge_values_round_trip_in_every_encoding(server):
    arrays = {dt: edge_values(dt) for dt in DATATYPES}
    every, none = set(DATATYPES), set()
    # BYTES goes first in binary bodies: its odd size leaves the rest unaligned.
    assert len(to_binary("BYTES", arrays["BYTES"])) % 8 != 0
    for binary_in, binary_out in ((none, none), (every, every), (none, every), (every, none)):
        assert_round_trip(server, arrays, binary_in, binary_out)
    # One request mixing JSON and binary inputs, and JSON and binary outputs.
    half = set(DATATYPES[::2])
    assert_round_trip(server, arrays, half, set(DATATYPES) - half)
    assert_round_trip(server, arrays, set(DATATYPES) - half, half)


def test_binary_response_bytes_are_little_endian_row_major(server):
    # The raw body, read without the parsing helper: each output's bytes are exactly the
    # little-endian, row-major encoding of the values (3 x 4, so rows are not square).
    arrays = {dt: np.resize(edge_values(dt), (3, 4)) for dt in DATATYPES}
    body, headers = binary_body(
        {f"in_{dt}": (dt, a) for dt, a in arrays.items()},
        {"parameters": {"binary_data_output": True}},
    )
    response = httpx.post(server.url + "/v2/models/all/infer", content=body, headers=headers)
    assert response.status_code == 200, response.text
    length = int(response.headers["inference-header-content-length"])
    doc = json.loads(response.content[:length])
    offset = length
    for out in doc["outputs"]:
        dt = out["name"].removeprefix("out_")
        size = out["parameters"]["binary_data_size"]
        raw = response.content[offset : offset + size]
        offset += size
        want = arrays[dt]
        if dt == "BYTES":
            expected = b"".join(
                len(s.encode()).to_bytes(4, "little") + s.encode() for s in want.ravel(order="C")
            )
        else:
            expected = want.astype(numpy_type(dt)).tobytes(order="C")
        assert raw == expected, dt
        assert out["shape"] == [3, 4]
    assert offset == len(response.content)


def test_nested_json_and_empty_tensors(server):
    # Nested JSON lists are as good as flat ones.
    arrays = {dt: edge_values(dt) for dt in DATATYPES}
    entries = [
        {"name": f"in_{dt}", "datatype": dt, "shape": [2, 4], "data": a.tolist()}
        for dt, a in arrays.items()
    ]
    response = httpx.post(server.url + "/v2/models/all/infer", json={"inputs": entries})
    assert response.status_code == 200, response.text
    _, got = read_response(response.content, None)
    for dt, array in arrays.items():
        assert_same_tensor(got[f"out_{dt}"], array)
    # Tensors with no elements, in both encodings.
    empty = {dt: np.empty((0, 4), dtype=numpy_type(dt)) for dt in DATATYPES}
    for binary in (set(), set(DATATYPES)):
        doc, got = infer(server, empty, binary, binary)
        assert all(out["shape"] == [0, 4] for out in doc["outputs"])
        for dt in DATATYPES:
            assert got[dt].size == 0 and got[dt].shape == (0, 4), dt


def test_json_values_outside_the_datatype_are_400_naming_the_input(server):
    good = {dt: edge_values(dt)[:, :1] for dt in DATATYPES}

    def send(dt: str, data: list) -> httpx.Response:
        entries = [
            {"name": f"in_{d}", "datatype": d, "shape": [2, 1],
             "data": data if d == dt else json_data(d, a)}
            for d, a in good.items()
        ]
        return httpx.post(server.url + "/v2/models/all/infer", json={"inputs": entries})

    cases = [
        ("UINT8", [0, 256]), ("INT8", [-129, 0]), ("UINT64", [-1, 0]), ("UINT64", [0, 2**64]),
        ("INT64", [0, 2**63]), ("UINT16", [1.5, 2]), ("INT32", [True, "x"]),
        ("BOOL", [1, 0]), ("BYTES", ["ok", 7]), ("FP32", ["1.0", 2.0]),
    ]
    for dt, data in cases:
        response = send(dt, data)
        assert response.status_code == 400, (dt, data, response.text)
        assert f"in_{dt}" in response.json()["error"], (dt, data)
    assert send("UINT64", [2**64 - 1, 2**63]).status_code == 200


def test_fixed_shape_and_scalar_models(start_server, tmp_path: Path):
    # A model whose only input is UINT64 [2, 2]: the values numpy cannot parse into one
    # integer dtype, through a model with no dynamic dimension at all.
    model = write(tmp_path / "u64.onnx", identity("UINT64", [2, 2]))
    server = start_server(["--model-uri", str(model), "--model-name", "u64"])
    x = np.array([[2**64 - 1, 0], [2**63, 2**63 - 1]], dtype=np.uint64)
    request = {"inputs": [{"name": "x", "datatype": "UINT64", "shape": [2, 2],
                           "data": x.ravel().tolist()}]}
    response = httpx.post(server.url + "/v2/models/u64/infer", json=request)
    assert response.status_code == 200, response.text
    _, got = read_response(response.content, None)
    assert_same_tensor(got["y"], x)
    bad_shape = {"inputs": [{**request["inputs"][0], "shape": [4, 1]}]}
    response = httpx.post(server.url + "/v2/models/u64/infer", json=bad_shape)
    assert response.status_code == 400
    assert "[2, 2]" in response.json()["error"]

    # A rank-0 tensor: shape [] in the metadata and on the wire, data bare or in a list.
    model = write(tmp_path / "scalar.onnx", identity("FP64", []))
    server = start_server(["--model-uri", str(model), "--model-name", "scalar"])
    meta = httpx.get(server.url + "/v2/models/scalar").json()
    assert meta["inputs"] == [{"name": "x", "datatype": "FP64", "shape": []}]
    for data in (-2.5, [-2.5]):
        request = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [], "data": data}]}
        response = httpx.post(server.url + "/v2/models/scalar/infer", json=request)
        assert response.status_code == 200, response.text
        _, got = read_response(response.content, None)
        assert_same_tensor(got["y"], np.array(-2.5))
    body, headers = binary_body({"x": ("FP64", np.array(-2.5))},
                                {"parameters": {"binary_data_output": True}})
    response = httpx.post(server.url + "/v2/models/scalar/infer", content=body, headers=headers)
    assert int(response.headers["inference-header-content-length"]) == len(response.content) - 8
    _, got = read_response(response.content, response.headers["inference-header-content-length"])
    assert_same_tensor(got["y"], np.array(-2.5))


def _elements(dt: str):
    if dt == "BYTES":
        return st.text(max_size=12)
    if dt in ("FP16", "FP32", "FP64"):
        width = numpy_type(dt).itemsize * 8
        return st.floats(width=width, allow_nan=False, allow_infinity=False)
    return None  # hypothesis' default covers the whole integer and bool range


@st.composite
def all_type_arrays(draw) -> dict[str, np.ndarray]:
    shape = draw(st.tuples(st.integers(0, 3), st.integers(0, 4)))
    arrays = {}
    for dt in DATATYPES:
        arrays[dt] = draw(hnp.arrays(numpy_type(dt), shape, elements=_elements(dt)))
    return arrays


def test_random_tensors_round_trip(server):
    # The server is stateless between requests, so one process serves every example.
    @settings(max_examples=40, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(arrays=all_type_arrays(), binary_in=st.sets(st.sampled_from(DATATYPES)),
           binary_out=st.sets(st.sampled_from(DATATYPES)))
    def round_trip(arrays, binary_in, binary_out):
        _, got = infer(server, arrays, binary_in, binary_out)
        for dt, array in arrays.items():
            assert_same_tensor(got[dt], array)

    round_trip()
