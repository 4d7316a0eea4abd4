"""Properties of the server's tensor codecs (serving/server/codec.py, codec_json.py,
codec_binary.py, dtypes.py, tensors.py), called directly and against a real server.

- Round trips, for every datatype and shape (rank 0 to 4, empty dimensions included):
  a tensor written as a client writes it, JSON (flat or nested data) or binary, decodes
  to the same values bit for bit; a response encodes to what a client reads back as the
  same values; several tensors of mixed datatypes and encodings share one binary body.
- Robustness: any bytes, any JSON value and any V2-shaped document with wrong fields
  either decode or raise BadRequest (the server's 400), never anything else.
- Against a real `modelrollout serve` of the all-datatypes identity model: generated
  documents (valid or not), raw bodies and binary headers are always answered, 200 with
  the inputs echoed or a 4xx with an ``{"error": ...}`` body, never a 5xx or a dropped
  connection, and the server keeps serving.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from modelrollout.serving.server.codec import decode_request, encode_response
from modelrollout.serving.server.codec_binary import tensor_from_bytes, tensor_to_bytes
from modelrollout.serving.server.dtypes import BY_V2, V2_NAMES
from modelrollout.serving.server.errors import BadRequest
from modelrollout.serving.server.tensors import InferResponse, OutputTensor

from tests.support.models import identity_all_types, json_data, metric, scrape, write

FAST = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SHAPES = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)


def elements(datatype: str, finite: bool, binary: bool) -> st.SearchStrategy:
    dtype = BY_V2[datatype]
    if dtype.kind == "bool":
        return st.booleans()
    if dtype.kind == "int":
        info = np.iinfo(dtype.numpy)
        return st.integers(int(info.min), int(info.max))
    if dtype.kind == "float":
        return st.floats(width=dtype.numpy.itemsize * 8, allow_nan=not finite, allow_infinity=not finite)
    return st.binary(max_size=12) if binary else st.text(max_size=8)


@st.composite
def tensors(draw, datatype: str | None = None, finite: bool = True, binary: bool = False):
    """(datatype, array): any datatype (or the one given), any small shape."""
    datatype = datatype or draw(st.sampled_from(V2_NAMES))
    shape = draw(SHAPES)
    dtype = np.dtype(object) if datatype == "BYTES" else BY_V2[datatype].numpy
    return datatype, draw(hnp.arrays(dtype, shape, elements=elements(datatype, finite, binary)))


def assert_same(got: np.ndarray, want: np.ndarray) -> None:
    """Same shape and values; numbers bit for bit (NaN payloads, -0.0 and subnormals count)."""
    assert got.shape == want.shape
    if want.dtype == object:
        assert got.reshape(-1).tolist() == want.reshape(-1).tolist()
        return
    assert got.dtype.kind == want.dtype.kind and got.dtype.itemsize == want.dtype.itemsize
    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes(), (got, want)


def json_input(name: str, datatype: str, array: np.ndarray, nested: bool) -> dict:
    """An input as a client writes it: flat data, or nested lists in the tensor's shape."""
    data = array.tolist() if nested and array.ndim else json_data(datatype, array)
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


# --- round trips, codec functions called directly


@FAST
@given(tensor=tensors(), nested=st.booleans())
def test_json_request_round_trip(tensor, nested):
    datatype, array = tensor
    body = json.dumps({"inputs": [json_input("x", datatype, array, nested)]}).encode()
    (decoded,) = decode_request(body, None).inputs
    assert (decoded.name, decoded.datatype) == ("x", datatype)
    assert_same(decoded.data, array)


@FAST
@given(tensor=tensors(finite=False, binary=True))
def test_binary_request_round_trip(tensor):
    datatype, array = tensor
    blob = tensor_to_bytes(datatype, array)
    header = orjson.dumps({"inputs": [{"name": "x", "datatype": datatype, "shape": list(array.shape),
                                       "parameters": {"binary_data_size": len(blob)}}]})
    (decoded,) = decode_request(header + blob, str(len(header))).inputs
    assert_same(decoded.data, array)


@FAST
@given(items=st.lists(st.tuples(tensors(finite=False, binary=True), st.booleans()), min_size=1, max_size=5))
def test_mixed_encodings_share_one_body(items):
    """Binary tensors of any sizes one after another (unaligned offsets), JSON ones between."""
    entries, blobs = [], []
    for i, ((datatype, array), binary) in enumerate(items):
        if binary or datatype == "BYTES" or array.dtype.kind == "f":  # raw bytes and non-finite floats
            blob = tensor_to_bytes(datatype, array)
            entries.append({"name": f"x{i}", "datatype": datatype, "shape": list(array.shape),
                            "parameters": {"binary_data_size": len(blob)}})
            blobs.append(blob)
        else:
            entries.append(json_input(f"x{i}", datatype, array, nested=False))
    header = orjson.dumps({"inputs": entries})
    decoded = decode_request(header + b"".join(blobs), str(len(header)) if blobs else None).inputs
    assert [t.name for t in decoded] == [f"x{i}" for i in range(len(items))]
    for tensor, ((_, array), _) in zip(decoded, items, strict=True):
        assert_same(tensor.data, array)


@FAST
@given(tensor=tensors(finite=False, binary=True), binary=st.booleans())
def test_response_round_trip(tensor, binary):
    datatype, array = tensor
    if not binary:
        # JSON has no NaN or Infinity (orjson writes null), and no bytes: text it is.
        assume(array.dtype.kind != "f" or np.isfinite(array).all())
        if datatype == "BYTES":
            text = np.empty(array.shape, dtype=object)
            text.reshape(-1)[:] = [b.decode("latin-1") for b in array.reshape(-1)]
            array = text
    response = InferResponse("m", "1", [OutputTensor("y", datatype, array, binary)], id="r-1")
    payload, header_length = encode_response(response)
    doc = orjson.loads(payload[:header_length] if binary else payload)
    assert (doc["model_name"], doc["model_version"], doc["id"]) == ("m", "1", "r-1")
    (out,) = doc["outputs"]
    assert (out["name"], out["datatype"], out["shape"]) == ("y", datatype, list(array.shape))
    if binary:
        assert header_length is not None
        assert out["parameters"]["binary_data_size"] == len(payload) - header_length
        got = tensor_from_bytes("y", datatype, tuple(out["shape"]), memoryview(payload)[header_length:])
    else:
        assert header_length is None and "parameters" not in out
        if datatype == "BYTES":
            got = np.empty(len(out["data"]), dtype=object)
            got[:] = out["data"]
            got = got.reshape(out["shape"])
        else:
            got = np.array(out["data"], dtype=BY_V2[datatype].numpy).reshape(out["shape"])
    assert_same(got, array)


# --- robustness: BadRequest or a request, nothing else

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=6), inner, max_size=5),
    max_leaves=30,
)
FIELD_VALUES = {
    "name": st.text(max_size=4) | JSON_VALUES,
    "datatype": st.sampled_from(V2_NAMES) | JSON_VALUES,
    "shape": st.lists(st.integers(-2, 5) | st.integers(), max_size=5) | JSON_VALUES,
    "data": JSON_VALUES | st.lists(st.floats() | st.integers() | st.booleans() | st.text(max_size=3)),
    "parameters": st.fixed_dictionaries({}, optional={"binary_data_size": st.integers() | JSON_VALUES})
    | JSON_VALUES,
}


@st.composite
def v2_documents(draw) -> dict:
    inputs = draw(st.lists(st.fixed_dictionaries({}, optional=FIELD_VALUES), max_size=3))
    doc = {"inputs": inputs if draw(st.booleans()) else draw(JSON_VALUES)}
    for key, values in (("id", JSON_VALUES), ("outputs", JSON_VALUES), ("parameters", JSON_VALUES)):
        if draw(st.booleans()):
            doc[key] = draw(values)
    return doc


def decodes_or_refuses(body: bytes, header_length: str | None) -> None:
    try:
        decode_request(body, header_length)
    except BadRequest as exc:
        assert exc.message


@settings(FAST, max_examples=1000)
@given(body=st.binary(max_size=200), header_length=st.none() | st.text(max_size=6)
       | st.integers(-3, 250).map(str))
def test_any_bytes_decode_or_are_a_bad_request(body, header_length):
    decodes_or_refuses(body, header_length)


@settings(FAST, max_examples=1000)
@given(value=JSON_VALUES | v2_documents(), blob=st.binary(max_size=64), binary=st.booleans())
def test_any_json_decodes_or_is_a_bad_request(value, blob, binary):
    header = json.dumps(value).encode()
    if binary:
        decodes_or_refuses(header + blob, str(len(header)))
    else:
        decodes_or_refuses(header, None)


# --- against a real server


@pytest.fixture
def server(start_server, tmp_path: Path):
    model = write(tmp_path / "all" / "model.onnx", identity_all_types())
    return start_server(["--model-uri", str(model), "--model-name", "all", "--max-body-bytes", "65536"])


@st.composite
def typed_requests(draw) -> tuple[bytes, dict[str, str], dict[str, np.ndarray] | None]:
    """(body, headers, what comes back when it is valid): every input of the identity
    model as JSON or binary, then maybe one field broken or an input dropped."""
    shape = draw(st.tuples(st.integers(0, 3), st.integers(0, 3)))
    arrays: dict[str, np.ndarray] = {}
    entries, blobs = [], []
    for datatype in V2_NAMES:
        binary = draw(st.booleans())
        dtype = np.dtype(object) if datatype == "BYTES" else BY_V2[datatype].numpy
        array = draw(hnp.arrays(dtype, shape, elements=elements(datatype, finite=True, binary=False)))
        arrays[datatype] = array
        if binary:
            blob = tensor_to_bytes(datatype, array)
            entries.append({"name": f"in_{datatype}", "datatype": datatype, "shape": list(shape),
                            "parameters": {"binary_data_size": len(blob)}})
            blobs.append(blob)
        else:
            entries.append(json_input(f"in_{datatype}", datatype, array, nested=draw(st.booleans())))
    broken = draw(st.sampled_from(["none", "none", "field", "drop", "extra"]))
    if broken == "field":
        entry = draw(st.sampled_from(entries))
        key = draw(st.sampled_from(sorted(FIELD_VALUES)))
        entry[key] = draw(FIELD_VALUES[key])
    elif broken == "drop":
        entries.pop(draw(st.integers(0, len(entries) - 1)))
    elif broken == "extra":
        entries.append({"name": "in_FP32", "datatype": "FP32", "shape": [1], "data": [1.0]})
    doc = {"inputs": entries, "outputs": [{"name": f"out_{dt}"} for dt in arrays]}
    try:
        header = orjson.dumps(doc)
    except TypeError:  # a broken field's integer beyond 64 bits: JSON has no such limit
        header = json.dumps(doc).encode()
    headers = {"Inference-Header-Content-Length": str(len(header))} if blobs else {}
    return header + b"".join(blobs), headers, arrays if broken == "none" else None


class Tally:
    def __init__(self) -> None:
        self.statuses: list[int] = []

    def check(self, response: httpx.Response, what: object) -> None:
        self.statuses.append(response.status_code)
        if response.status_code != 200:
            assert 400 <= response.status_code < 500, (response.status_code, response.text, what)
            assert response.headers["content-type"] == "application/json"
            assert list(response.json()) == ["error"] and response.json()["error"], what


def test_generated_requests_are_answered_200_or_4xx(server):
    tally = Tally()
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        path = "/v2/models/all/infer"

        @settings(max_examples=120, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(request=typed_requests())
        def typed(request):
            body, headers, expected = request
            response = client.post(path, content=body, headers=headers)
            tally.check(response, (body[:300], headers))
            if expected is not None:
                assert response.status_code == 200, response.text
                outputs = {o["name"].removeprefix("out_"): o for o in response.json()["outputs"]}
                for datatype, array in expected.items():
                    out = outputs[datatype]
                    assert out["shape"] == list(array.shape)
                    if datatype == "BYTES":
                        assert out["data"] == array.reshape(-1).tolist()
                    else:
                        got = np.array(out["data"], dtype=BY_V2[datatype].numpy).reshape(array.shape)
                        assert_same(got, array)

        @settings(max_examples=60, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(body=st.binary(max_size=2048), header_length=st.none() | st.integers(-5, 4096).map(str)
               | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=5),
               encoding=st.sampled_from([None, "gzip", "deflate", "identity", "br"]))
        def raw(body, header_length, encoding):
            headers = {}
            if header_length is not None:
                headers["Inference-Header-Content-Length"] = header_length
            if encoding is not None:
                headers["Content-Encoding"] = encoding
            try:
                response = client.post(path, content=body, headers=headers)
            except httpx.LocalProtocolError:
                return  # httpx refuses to send that header value itself
            tally.check(response, (body[:100], headers))
            assert response.status_code != 200

        typed()
        raw()
        health = client.get("/v2/health/ready")
        assert health.status_code == 200
    assert tally.statuses.count(200) >= 20, "too few valid requests: the property tests little"
    assert len([s for s in tally.statuses if s != 200]) >= 60
    samples = scrape(server.url)
    assert metric(samples, "modelrollout_server_failures_total", reason="inference_error") == 0
    answered = metric(samples, "modelrollout_server_requests_total")
    assert math.isclose(answered, len(tally.statuses)), "every request was answered by the app"
