"""Bad input against a real `modelrollout serve`: every mistake gets a precise 4xx with an
``{"error": ...}`` body naming the problem, and the process keeps serving.

The case tables share one server per model (starting a process costs more than a
hundred requests); each case is a subtest so a failure names its case.
"""

from __future__ import annotations

import gzip
import json
import math
import random
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.models import (
    binary_request,
    fp32_request,
    identity,
    identity_all_types,
    metric,
    reference,
    scrape,
    tiny_mlp,
    write,
)

MAX_BODY = 8192  # small, so the over-limit cases stay cheap; the rest fit well under it
TINY = tiny_mlp()
GOOD_X = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)
FAILURES = "modelrollout_server_failures_total"


@dataclass
class Case:
    label: str
    body: bytes | object  # bytes go as they are, anything else as JSON (json.dumps)
    status: int
    keyword: str  # must appear in the error message (case-insensitive)
    headers: dict[str, str] = field(default_factory=dict)
    path: str = "/v2/models/tiny/infer"

    def content(self) -> bytes | object:
        if callable(self.body):  # a generator function: a fresh chunked body per send
            return self.body()
        if isinstance(self.body, bytes):
            return self.body
        # json.dumps, not orjson: it writes NaN/Infinity literals like real Python clients.
        return json.dumps(self.body).encode()


def tensor(name="input", datatype="FP32", shape=(1, 4), data=(1.0, 2.0, 3.0, 4.0), **extra):
    item = {"name": name, "datatype": datatype, "shape": list(shape), **extra}
    if data is not None:
        item["data"] = list(data)
    return item


def doc(*inputs: dict, **extra: object) -> dict:
    return {"inputs": list(inputs), **extra}


def fp32_bytes(*values: float) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


def binary_case(label, status, keyword, inputs, blob, header_length=None) -> Case:
    body, headers = binary_request({"inputs": inputs}, blob)
    if header_length is not None:
        headers["Inference-Header-Content-Length"] = header_length
    return Case(label, body, status, keyword, headers)


def chunks(total: int, size: int = 1024):
    # A generator body makes httpx send Transfer-Encoding: chunked (no Content-Length).
    def gen():
        sent = 0
        while sent < total:
            yield b" " * min(size, total - sent)
            sent += size

    return gen


def tiny_cases() -> list[Case]:
    bin_in = {"name": "input", "datatype": "FP32", "shape": [1, 4]}
    return [
        Case("malformed JSON", b'{"inputs": [', 400, "malformed JSON"),
        Case("empty body", b"", 400, "malformed JSON"),
        Case("non-object JSON", b"[1, 2, 3]", 400, "JSON object"),
        Case("no inputs", {"id": "x"}, 400, "inputs"),
        Case("unknown model", doc(tensor()), 404, "nope", path="/v2/models/nope/infer"),
        Case("unknown version", doc(tensor()), 404, "version '9'",
             path="/v2/models/tiny/versions/9/infer"),
        Case("unknown input", doc(tensor(name="pixels")), 400, "pixels"),
        Case("duplicate input", doc(tensor(), tensor()), 400, "twice"),
        Case("wrong datatype", doc(tensor(datatype="FP64")), 400, "FP64"),
        Case("unknown datatype", doc(tensor(datatype="FLOAT")), 400, "FLOAT"),
        Case("wrong rank", doc(tensor(shape=[4])), 400, "[-1, 4]"),
        Case("wrong fixed dim", doc(tensor(shape=[1, 5], data=[1.0] * 5)), 400, "[1, 5]"),
        Case("negative dim", doc(tensor(shape=[-1, 4])), 400, "non-negative"),
        Case("data shorter than shape", doc(tensor(data=[1.0, 2.0, 3.0])), 400, "data has 3"),
        Case("data missing", doc(tensor(data=None)), 400, "data"),
        Case("strings for FP32", doc(tensor(data=["1", "2", "3", "4"])), 400, "strings"),
        Case("bools for FP32", doc(tensor(data=[True, False, True, False])), 400, "booleans"),
        Case("unknown output", doc(tensor(), outputs=[{"name": "logits"}]), 400, "logits"),
        Case("NaN literal (json.dumps)", doc(tensor(data=[math.nan, 1.0, 2.0, 3.0])), 400,
             "allow-nonfinite"),
        Case("Infinity literal", doc(tensor(data=[1.0, math.inf, 2.0, 3.0])), 400, "Infinity"),
        binary_case("binary NaN", 400, "NaN", [{**bin_in, "parameters": {"binary_data_size": 16}}],
                    fp32_bytes(1.0, math.nan, 2.0, 3.0)),
        binary_case("binary data too short for shape", 400, "needs 16",
                    [{**bin_in, "parameters": {"binary_data_size": 12}}], fp32_bytes(1, 2, 3)),
        binary_case("binary header not an integer", 400, "integer",
                    [{**bin_in, "parameters": {"binary_data_size": 16}}], fp32_bytes(1, 2, 3, 4),
                    header_length="sixteen"),
        binary_case("binary header longer than body", 400, "only", [{**bin_in}],
                    b"", header_length="100000"),
        binary_case("binary sizes do not add up", 400, "add up to 16",
                    [{**bin_in, "parameters": {"binary_data_size": 16}}],
                    fp32_bytes(1, 2, 3, 4, 5)),
        binary_case("binary_data_size past the body", 400, "does not fit",
                    [{**bin_in, "parameters": {"binary_data_size": 64}}], fp32_bytes(1, 2, 3, 4)),
        Case("binary_data_size without header",
             doc({**bin_in, "parameters": {"binary_data_size": 16}}), 400,
             "Inference-Header-Content-Length"),
        Case("unsupported Content-Encoding", doc(tensor()), 400, "Content-Encoding 'br'",
             headers={"Content-Encoding": "br"}),
        Case("not gzip", b"plain text", 400, "gzip", headers={"Content-Encoding": "gzip"}),
        Case("over limit (Content-Length)", b" " * (MAX_BODY + 1), 413, str(MAX_BODY)),
        Case("over limit (chunked)", chunks(4 * MAX_BODY), 413, str(MAX_BODY)),
        Case("gzip bomb", gzip.compress(b" " * (1 << 22)), 413, "decompressed",
             headers={"Content-Encoding": "gzip"}),
    ]


def typed_cases() -> list[Case]:
    """Against identity_all_types(): input ``in_<DT>`` of every datatype, shape [-1, -1]."""

    def case(label, input_type, datatype, data, keyword):
        body = doc(tensor(f"in_{input_type}", datatype, [1, len(data)], data))
        return Case(label, body, 400, keyword, path="/v2/models/typed/infer")

    return [
        case("floats for INT32", "INT32", "INT32", [1.5, 2.0], "in_INT32"),
        case("INT8 above range", "INT8", "INT8", [1, 200], "range of INT8"),
        case("INT8 below range", "INT8", "INT8", [-129], "-128"),
        case("negative UINT8", "UINT8", "UINT8", [-1], "range of UINT8"),
        case("INT64 past 2**63", "INT64", "INT64", [2**63], "in_INT64"),
        case("ints for BOOL", "BOOL", "BOOL", [1, 0], "true/false"),
        case("numbers for BYTES", "BYTES", "BYTES", [1, 2], "strings"),
        case("strings for INT16", "INT16", "INT16", ["7"], "in_INT16"),
        case("declared INT16 for an INT8 input", "INT8", "INT16", [1], "expects INT8"),
        case("missing inputs", "FP32", "FP32", [1.0], "in_BOOL"),
    ]


def assert_refused(response: httpx.Response, case: Case) -> None:
    assert response.status_code == case.status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    assert case.keyword.lower() in body["error"].lower(), body["error"]
    assert response.headers.get("x-request-id"), "refusals carry the request id too"


def run_cases(client: httpx.Client, cases: list[Case], subtests) -> None:
    for case in cases:
        with subtests.test(msg=case.label):
            response = client.post(case.path, content=case.content(), headers=case.headers)
            if callable(case.body):  # make sure the limit was met without a Content-Length
                assert "content-length" not in response.request.headers
            assert_refused(response, case)


def good_answer(client: httpx.Client, path: str = "/v2/models/tiny/infer") -> None:
    response = client.post(path, json=fp32_request(GOOD_X))
    assert response.status_code == 200, response.text
    (out,) = response.json()["outputs"]
    np.testing.assert_allclose(out["data"], reference(TINY, {"input": GOOD_X})[0].ravel(),
                               rtol=1e-5)


@pytest.fixture
def tiny_limited(start_server, tiny_model: Path):
    return start_server(["--model-uri", str(tiny_model), "--model-name", "tiny",
                         "--max-body-bytes", str(MAX_BODY)])


def test_each_bad_request_gets_a_precise_4xx(tiny_limited, subtests):
    cases = tiny_cases()
    with httpx.Client(base_url=tiny_limited.url, timeout=10.0) as client:
        run_cases(client, cases, subtests)
        good_answer(client)  # the server is still fine after all of that
    samples = scrape(tiny_limited.url)
    bad = sum(c.status in (400, 404) for c in cases)  # 404 (unknown model) is a bad request too
    assert metric(samples, FAILURES, reason="bad_request") == bad
    assert metric(samples, FAILURES, reason="too_large") == sum(c.status == 413 for c in cases)


def test_values_that_do_not_fit_the_datatype_get_400(start_server, tmp_path, subtests):
    model = write(tmp_path / "typed.onnx", identity_all_types())
    server = start_server(["--model-uri", str(model), "--model-name", "typed"])
    with httpx.Client(base_url=server.url, timeout=10.0) as client:
        run_cases(client, typed_cases(), subtests)


def test_nonfinite_values_pass_with_allow_nonfinite(start_server, tmp_path):
    model = write(tmp_path / "id.onnx", identity("FP32", ["n", 4]))
    server = start_server(["--model-uri", str(model), "--model-name", "id", "--allow-nonfinite"])
    values = [math.nan, math.inf, -math.inf, 1.5]
    # Binary output so NaN comes back bit for bit (JSON would turn it into null).
    want_binary = {"parameters": {"binary_data_output": True}}
    json_body = json.dumps(doc(tensor("x", data=values), **want_binary)).encode()
    bin_body, bin_headers = binary_request(
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                     "parameters": {"binary_data_size": 16}}], **want_binary},
        fp32_bytes(*values),
    )
    with httpx.Client(base_url=server.url, timeout=10.0) as client:
        for body, headers in ((json_body, {}), (bin_body, bin_headers)):
            response = client.post("/v2/models/id/infer", content=body, headers=headers)
            assert response.status_code == 200, response.text
            start = int(response.headers["inference-header-content-length"])
            got = np.frombuffer(response.content[start:], dtype="<f4")
            np.testing.assert_array_equal(got, np.array(values, dtype=np.float32))


# --- Requests that once broke the codec (500s, a MemoryError); each must get a 400. ---


def edge_cases() -> list[Case]:
    deep = "[" * 3000 + "1" + "]" * 3000
    nan_and_deep = ('{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", '
                    f'"data": {deep}}}], "note": NaN}}').encode()
    bytes_in = {"name": "input", "datatype": "BYTES", "shape": [2**41],
                "parameters": {"binary_data_size": 4}}
    many_dims = {"name": "input", "datatype": "FP32", "shape": [1] * 65,
                 "parameters": {"binary_data_size": 4}}
    return [
        Case("65 dimensions (JSON)", doc(tensor(shape=[1] * 65, data=[1.0])), 400, "shape"),
        binary_case("65 dimensions (binary)", 400, "shape", [many_dims], fp32_bytes(1.0)),
        Case("deep nesting plus a NaN literal", nan_and_deep, 400, "JSON"),
        # Without the size check this allocates 2**41 objects from a 100-byte request.
        binary_case("BYTES shape of 2**41 elements", 400, "input", [bytes_in], b"\0" * 4),
        Case("datatype is a list", doc(tensor(datatype=["FP32"])), 400, "datatype"),
        Case("datatype is an object", doc(tensor(datatype={"v": "FP32"})), 400, "datatype"),
    ]


def test_edge_requests_get_400(tiny_limited, subtests):
    with httpx.Client(base_url=tiny_limited.url, timeout=10.0) as client:
        for case in edge_cases():
            with subtests.test(msg=case.label):
                response = client.post(case.path, content=case.content(), headers=case.headers)
                assert_refused(response, case)
        good_answer(client)


# --- Fuzzing: generated bad requests; every answer is a 4xx, the server survives. ---

FUZZ_SEED = 20240611
FUZZ_COUNT = 300
FUZZ_SECONDS = 20.0
STRUCTURAL = b'{}[]":,\x00\xff'


def base_body() -> bytes:
    return json.dumps(fp32_request(GOOD_X), separators=(",", ":")).encode()


def truncate(rng: random.Random, body: bytes) -> bytes:
    return body[: rng.randrange(len(body))]  # a strict prefix of an object is never JSON


def flip_byte(rng: random.Random, body: bytes) -> bytes:
    # Structural bytes only: a random digit could turn into another valid digit.
    i = rng.randrange(len(body))
    new = rng.choice([b for b in STRUCTURAL if b != body[i]])
    return body[:i] + bytes([new]) + body[i + 1:]


WRONG_VALUES = (None, True, 7, -1.5, "", "x", [], {}, [[]], {"a": 1}, "FP32", [1, 2])


def swap_type(rng: random.Random, _: bytes) -> bytes:
    request = fp32_request(GOOD_X)
    target = request["inputs"][0] if rng.random() < 0.8 else request
    key = rng.choice(sorted(target))
    good = target[key]
    wrong = [v for v in WRONG_VALUES if v != good]
    if key == "datatype":  # a list or object datatype is a known crasher (test above)
        wrong = [v for v in wrong if not isinstance(v, list | dict)]
    target[key] = rng.choice(wrong)
    return json.dumps(request).encode()


def huge_shape(rng: random.Random, _: bytes) -> bytes:
    dims = [2 ** rng.randrange(20, 63), 4] if rng.random() < 0.5 else [1, 2 ** rng.randrange(3, 63)]
    request = fp32_request(GOOD_X)
    request["inputs"][0]["shape"] = dims
    return json.dumps(request).encode()


def negative_dims(rng: random.Random, _: bytes) -> bytes:
    request = fp32_request(GOOD_X)
    request["inputs"][0]["shape"] = [rng.randrange(-(2**40), 0), 4]
    return json.dumps(request).encode()


def deep_nesting(rng: random.Random, _: bytes) -> bytes:
    # Three values inside any depth: never the 4 elements [1, 4] needs. No NaN here:
    # deep nesting with a NaN literal is a known crasher (test above).
    depth = rng.choice([2, 10, 63, 64, 65, 100, 1000, 1100, 5000])
    data = "[" * depth + "1,2,3" + "]" * depth
    if rng.random() < 0.5:
        head = '{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":'
        return (head + data + "}]}").encode()
    return ('{"inputs":' + "[" * depth + "{}" + "]" * depth + "}").encode()


MUTATORS = (truncate, flip_byte, swap_type, huge_shape, negative_dims, deep_nesting)


def mutated_bodies(seed: int, count: int):
    rng = random.Random(seed)
    base = base_body()
    for i in range(count):
        mutate = MUTATORS[i % len(MUTATORS)]
        yield mutate.__name__, mutate(rng, base)


def binary_mutations(seed: int, count: int):
    """Binary requests whose header length or binary_data_size is off."""
    rng = random.Random(seed)
    blob = GOOD_X.astype("<f4").tobytes()
    for _ in range(count):
        size = rng.choice([0, 1, 4, 15, 17, 32, 2**31, 2**63 - 1])
        header = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4],
                              "parameters": {"binary_data_size": size}}]}
        body, headers = binary_request(header, blob)
        good_length = int(headers["Inference-Header-Content-Length"])
        if rng.random() < 0.5:
            headers["Inference-Header-Content-Length"] = str(
                rng.choice([-1, 0, good_length - 1, good_length + 1, len(body) + 1])
            )
        yield body, headers


class Tally:
    """Statuses seen, so /metrics can be checked against what was sent."""

    def __init__(self) -> None:
        self.statuses: list[int] = []

    def check(self, response: httpx.Response, what: str) -> None:
        self.statuses.append(response.status_code)
        assert 400 <= response.status_code < 500, f"{what}: {response.status_code} {response.text}"
        assert isinstance(response.json().get("error"), str), what

    def count(self, *codes: int) -> int:
        return sum(s in codes for s in self.statuses)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=4),
    max_leaves=20,
)
BAD_FIELDS = {
    "name": st.sampled_from(["", "Input", "input ", "inputs", "x"]) | st.integers() | st.none(),
    "datatype": st.sampled_from(["FP64", "INT32", "BYTES", "BOOL", "fp32", "FLOAT"])
    | st.integers(),
    # Never [n, 4]: with 4n data values that would be a valid request.
    "shape": st.lists(st.integers(-3, 9), max_size=6).filter(lambda s: s[1:] != [4])
    | st.just("1,4") | st.lists(st.floats(0, 4), min_size=2, max_size=2),
    "data": st.lists(st.floats(-10, 10), max_size=8).filter(lambda d: len(d) != 4)
    | st.lists(st.sampled_from([math.nan, math.inf, -math.inf]), min_size=4, max_size=4)
    | st.lists(st.text(max_size=3) | st.booleans() | st.none(), min_size=4, max_size=4),
}


@st.composite
def bad_inputs(draw) -> dict:
    """A request whose one input has at least one wrong field (so no case can be valid)."""
    item = tensor(data=draw(st.lists(st.floats(-10, 10), min_size=4, max_size=4)))
    broken = draw(st.lists(st.sampled_from(sorted(BAD_FIELDS)), min_size=1, max_size=4,
                           unique=True))
    for key in broken:
        item[key] = draw(BAD_FIELDS[key])
    return doc(item)


def test_fuzzed_requests_always_get_4xx_and_are_counted(tiny_limited):
    tally = Tally()
    deadline = time.monotonic() + FUZZ_SECONDS
    with httpx.Client(base_url=tiny_limited.url, timeout=10.0) as client:
        path = "/v2/models/tiny/infer"
        for name, body in mutated_bodies(FUZZ_SEED, FUZZ_COUNT):
            tally.check(client.post(path, content=body), f"{name}: {body[:200]!r}")
            if time.monotonic() > deadline:
                break
        for body, headers in binary_mutations(FUZZ_SEED, 60):
            tally.check(client.post(path, content=body, headers=headers), f"binary {headers}")

        @settings(max_examples=120, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(request=bad_inputs())
        def bad_input_docs(request):
            tally.check(client.post(path, content=json.dumps(request).encode()), repr(request))

        @settings(max_examples=80, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(value=json_values)
        def arbitrary_json(value):
            if isinstance(value, dict):
                value.pop("inputs", None)  # without inputs, no document can be valid
            tally.check(client.post(path, content=json.dumps(value).encode()), repr(value))

        @settings(max_examples=80, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(raw=st.binary(max_size=64), gzipped=st.booleans())
        def arbitrary_bytes(raw, gzipped):
            headers = {"Content-Encoding": "gzip"} if gzipped else {}
            body = gzip.compress(raw) if gzipped else raw
            tally.check(client.post(path, content=body, headers=headers), repr(raw))

        bad_input_docs()
        arbitrary_json()
        arbitrary_bytes()
        good_answer(client)
    assert len(tally.statuses) >= 300
    samples = scrape(tiny_limited.url)
    assert metric(samples, FAILURES, reason="bad_request") == tally.count(400, 404)
    assert metric(samples, FAILURES, reason="too_large") == tally.count(413)
    assert metric(samples, "modelrollout_server_requests_total", code="400") == tally.count(400)
    assert metric(samples, "modelrollout_server_requests_total", code="200") == 1
    assert metric(samples, FAILURES, reason="inference_error") == 0
