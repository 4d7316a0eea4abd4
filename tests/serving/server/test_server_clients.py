"""Standard V2 clients, unmodified, against a real `modelrollout serve`.

Triton's ``tritonclient.http`` and KServe's ``InferenceRESTClient`` are what users point
at a V2 server; both must work in JSON and in binary mode, and their results must equal
onnxruntime's. The all-datatypes identity model covers the datatypes each client can
send; the multi-output model covers real computation and output selection.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput
from tritonclient.utils import InferenceServerException

from tests.support.models import (
    ONNX_TYPES,
    assert_same_tensor,
    edge_values,
    identity_all_types,
    multi_output,
    write,
)

X = np.array([[0.5, -1.25, 3.0], [7.0, 2.0, -0.125]], dtype=np.float32)
MULTI_OUTPUTS = ["scaled", "row_sum", "arg_max"]


@pytest.fixture
def multi(start_server, tmp_path: Path):
    model = write(tmp_path / "multi" / "model.onnx", multi_output())
    return start_server(["--model-uri", str(model), "--model-name", "multi",
                         "--model-version", "2"])


@pytest.fixture
def all_types(start_server, tmp_path: Path):
    model = write(tmp_path / "all" / "model.onnx", identity_all_types())
    return start_server(["--model-uri", str(model), "--model-name", "all"])


def multi_expected() -> dict[str, np.ndarray]:
    outputs = ort.InferenceSession(multi_output()).run(MULTI_OUTPUTS, {"x": X})
    return dict(zip(MULTI_OUTPUTS, outputs, strict=True))


def all_types_expected(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(identity_all_types())
    outputs = session.run([f"out_{dt}" for dt in arrays],
                          {f"in_{dt}": a for dt, a in arrays.items()})
    return dict(zip(arrays, outputs, strict=True))


def triton_client(server) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=server.url.removeprefix("http://"))


# --- tritonclient.http ---


def test_tritonclient_health_and_metadata(multi):
    client = triton_client(multi)
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("multi")
        assert client.is_model_ready("multi", "2")
        assert not client.is_model_ready("other")
        assert not client.is_model_ready("multi", "3")
        server = client.get_server_metadata()
        assert "binary_tensor_data" in server["extensions"]
        for version in ("", "2"):
            meta = client.get_model_metadata("multi", version)
            assert meta["name"] == "multi" and meta["versions"] == ["2"]
            assert meta["platform"] == "onnx_onnxv1"
            assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}]
            assert [(o["name"], o["datatype"], o["shape"]) for o in meta["outputs"]] == [
                ("scaled", "FP32", [-1, 3]), ("row_sum", "FP64", [-1]), ("arg_max", "INT64", [-1]),
            ]
        with pytest.raises(InferenceServerException) as missing:
            client.get_model_metadata("other")
        assert "other" in str(missing.value)
    finally:
        client.close()


def test_tritonclient_infer_json_binary_and_compressed(multi):
    client = triton_client(multi)
    want = multi_expected()
    try:
        for binary_in in (False, True):
            x = triton.InferInput("x", list(X.shape), "FP32")
            x.set_data_from_numpy(X, binary_data=binary_in)
            # No outputs named: tritonclient asks for every output in binary.
            result = client.infer("multi", [x], request_id=f"all-{binary_in}")
            assert result.get_response()["id"] == f"all-{binary_in}"
            assert [o["name"] for o in result.get_response()["outputs"]] == MULTI_OUTPUTS
            for name in MULTI_OUTPUTS:
                assert_same_tensor(result.as_numpy(name), want[name])
            for binary_out in (False, True):
                outputs = [triton.InferRequestedOutput(n, binary_data=binary_out)
                           for n in ("arg_max", "scaled")]
                result = client.infer("multi", [x], outputs=outputs, model_version="2")
                response = result.get_response()
                assert [o["name"] for o in response["outputs"]] == ["arg_max", "scaled"]
                assert all(("data" in o) != binary_out for o in response["outputs"])
                assert result.as_numpy("row_sum") is None  # not asked for, not sent
                assert_same_tensor(result.as_numpy("arg_max"), want["arg_max"])
                assert_same_tensor(result.as_numpy("scaled"), want["scaled"])
        # The server reads gzip and deflate request bodies (Content-Encoding).
        for algorithm in ("gzip", "deflate"):
            x = triton.InferInput("x", list(X.shape), "FP32")
            x.set_data_from_numpy(X, binary_data=True)
            result = client.infer("multi", [x], request_compression_algorithm=algorithm)
            assert_same_tensor(result.as_numpy("row_sum"), want["row_sum"])
        # A refused request is an exception carrying the server's message.
        bad = triton.InferInput("x", [2, 4], "FP32")
        bad.set_data_from_numpy(np.zeros((2, 4), np.float32))
        with pytest.raises(InferenceServerException) as refused:
            client.infer("multi", [bad])
        assert "shape" in str(refused.value) and "[-1, 3]" in str(refused.value)
    finally:
        client.close()


def test_tritonclient_every_datatype_in_json_and_binary(all_types):
    arrays = {dt: edge_values(dt) for dt in ONNX_TYPES}
    want = all_types_expected(arrays)
    client = triton_client(all_types)
    try:
        for binary_in in (False, True):
            inputs = []
            for dt, array in arrays.items():
                tensor = triton.InferInput(f"in_{dt}", list(array.shape), dt)
                tensor.set_data_from_numpy(array, binary_data=binary_in)
                inputs.append(tensor)
            for binary_out in (False, True):
                outputs = [triton.InferRequestedOutput(f"out_{dt}", binary_data=binary_out)
                           for dt in arrays]
                result = client.infer("all", inputs, outputs=outputs)
                for dt in arrays:
                    got = result.as_numpy(f"out_{dt}")
                    assert_same_tensor(got, want[dt])
                    assert_same_tensor(got, arrays[dt])
    finally:
        client.close()


# --- KServe InferenceRESTClient (async; V2 protocol) ---


def kserve_client() -> InferenceRESTClient:
    return InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))


def test_kserve_client_health(multi):
    async def check() -> None:
        async with kserve_client() as client:
            assert await client.is_server_live(multi.url) is True
            assert await client.is_server_ready(multi.url) is True
            assert await client.is_model_ready(multi.url, "multi") is True
            assert await client.is_model_ready(multi.url, "other") is False

    asyncio.run(check())


def test_kserve_client_infer_json_and_binary(multi):
    want = multi_expected()

    async def infer(binary: bool, outputs: list[str] | None) -> list:
        x = InferInput("x", list(X.shape), "FP32")
        x.set_data_from_numpy(X, binary_data=binary)
        requested = None if outputs is None else [
            RequestedOutput(n, {"binary_data": binary}) for n in outputs
        ]
        request = InferRequest("multi", [x], request_id=f"k-{binary}", request_outputs=requested)
        headers: dict = {}
        async with kserve_client() as client:
            response = await client.infer(multi.url, request, model_name="multi",
                                          response_headers=headers)
        assert response.id == f"k-{binary}"
        assert (binary and outputs is not None) == ("inference-header-content-length" in headers)
        return response.outputs

    for binary in (False, True):
        outputs = asyncio.run(infer(binary, None))
        assert [o.name for o in outputs] == MULTI_OUTPUTS
        for out in outputs:
            assert_same_tensor(out.as_numpy(), want[out.name])
        outputs = asyncio.run(infer(binary, ["row_sum", "scaled"]))
        assert [o.name for o in outputs] == ["row_sum", "scaled"]
        for out in outputs:
            assert_same_tensor(out.as_numpy(), want[out.name])


def test_kserve_client_every_datatype(all_types):
    arrays = {dt: edge_values(dt) for dt in ONNX_TYPES}
    want = all_types_expected(arrays)

    async def infer(binary: bool) -> dict[str, np.ndarray]:
        inputs = []
        for dt, array in arrays.items():
            tensor = InferInput(f"in_{dt}", list(array.shape), dt)
            # KServe's client refuses FP16 in JSON itself, so FP16 always goes binary.
            tensor.set_data_from_numpy(array, binary_data=binary or dt == "FP16")
            inputs.append(tensor)
        requested = [RequestedOutput(f"out_{dt}", {"binary_data": binary or dt == "FP16"})
                     for dt in arrays]
        request = InferRequest("all", inputs, request_outputs=requested)
        async with kserve_client() as client:
            response = await client.infer(all_types.url, request, model_name="all")
        return {out.name.removeprefix("out_"): out.as_numpy() for out in response.outputs}

    for binary in (False, True):
        got = asyncio.run(infer(binary))
        assert list(got) == list(arrays)
        for dt in arrays:
            assert_same_tensor(got[dt], want[dt])
            assert_same_tensor(got[dt], arrays[dt])
