"""Open Inference Protocol V2 conformance of `modelrollout serve`, over raw HTTP.

Every test runs a real server process on 127.0.0.1 and checks what a V2 client relies
on: the endpoints and their documents, metadata read from the ONNX graph, JSON bodies
whatever their Content-Type, the binary tensor data extension in both directions,
output selection, and request ids. Binary bodies are taken apart by hand
(tests/support/models.py) and outputs are compared with onnxruntime run in this process.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from tests.support.models import (
    assert_same_tensor,
    binary_body,
    identity,
    json_data,
    multi_output,
    read_response,
    write,
)

NAME, VERSION = "multi", "3"
OUTPUTS = ["scaled", "row_sum", "arg_max"]
X = np.array([[0.5, -1.25, 3.0], [7.0, 2.0, -0.125], [1e-3, 1e3, -1e3]], dtype=np.float32)
GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture
def server(start_server, tmp_path: Path):
    model = write(tmp_path / "multi" / "model.onnx", multi_output())
    return start_server(
        ["--model-uri", str(model), "--model-name", NAME, "--model-version", VERSION]
    )


def expected(x: np.ndarray = X) -> dict[str, np.ndarray]:
    outputs = ort.InferenceSession(multi_output()).run(OUTPUTS, {"x": x})
    return dict(zip(OUTPUTS, outputs, strict=True))


def json_request(x: np.ndarray = X, **extra: object) -> dict:
    tensor = {"name": "x", "datatype": "FP32", "shape": list(x.shape), "data": json_data("FP32", x)}
    return {"inputs": [tensor], **extra}


def infer_url(server, version: str | None = None) -> str:
    path = f"/v2/models/{NAME}" + (f"/versions/{version}" if version else "") + "/infer"
    return server.url + path


def outputs_of(response: httpx.Response) -> tuple[dict, dict[str, np.ndarray]]:
    assert response.status_code == 200, response.text
    return read_response(response.content, response.headers.get("inference-header-content-length"))


# A server starts in about a second, so each test runs a group of checks on one process;
# a failure's traceback names the check.


def test_endpoints_metadata_and_unknown_names(server):
    check_health_server_and_model_metadata(server)
    check_unknown_model_or_version_is_404_naming_it(server)


def test_json_inference(server):
    check_infer_json_on_both_paths_matches_onnxruntime(server)
    check_nested_json_data_is_accepted(server)
    check_json_body_is_accepted_whatever_the_content_type(server)


def test_binary_tensor_extension(server):
    check_binary_input_json_output_by_default(server)
    check_binary_output_for_the_whole_request(server)
    check_binary_output_per_requested_output_and_mixed(server)
    check_binary_request_and_binary_response_together(server)
    check_binary_header_without_binary_inputs_is_plain_json(server)
    check_malformed_binary_requests_are_400_with_a_reason(server)


def test_output_selection_and_request_ids(server):
    check_requested_outputs_subset_in_requested_order(server)
    check_request_id_is_echoed(server)
    check_x_request_id_is_honoured_or_generated(server)


def check_health_server_and_model_metadata(server) -> None:
    meta = httpx.get(server.url + "/v2")
    assert meta.status_code == 200
    assert meta.headers["content-type"].startswith("application/json")
    doc = meta.json()
    assert doc["name"] == "modelrollout"
    assert isinstance(doc["version"], str) and doc["version"]
    assert "binary_tensor_data" in doc["extensions"]

    live = httpx.get(server.url + "/v2/health/live")
    assert (live.status_code, live.json()) == (200, {"live": True})
    ready = httpx.get(server.url + "/v2/health/ready")
    assert (ready.status_code, ready.json()) == (200, {"ready": True})

    want = {
        "name": NAME,
        "versions": [VERSION],
        "platform": "onnx_onnxv1",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}],
        "outputs": [
            {"name": "scaled", "datatype": "FP32", "shape": [-1, 3]},
            {"name": "row_sum", "datatype": "FP64", "shape": [-1]},
            {"name": "arg_max", "datatype": "INT64", "shape": [-1]},
        ],
    }
    for path in (f"/v2/models/{NAME}", f"/v2/models/{NAME}/versions/{VERSION}"):
        response = httpx.get(server.url + path)
        assert response.status_code == 200, response.text
        doc = response.json()
        assert {k: doc[k] for k in want} == want, path
        model_ready = httpx.get(server.url + path + "/ready")
        assert model_ready.status_code == 200
        assert model_ready.json()["ready"] is True


def test_fixed_and_unnamed_dimensions_in_metadata(start_server, tmp_path: Path):
    # [2, 3] stays as declared; a symbolic and an unnamed dimension are both -1.
    fixed = write(tmp_path / "fixed.onnx", identity("INT16", [2, 3]))
    loose = write(tmp_path / "loose.onnx", identity("BYTES", ["n", None, 5]))
    servers = [
        start_server(["--model-uri", str(fixed), "--model-name", "fixed"]),
        start_server(["--model-uri", str(loose), "--model-name", "loose"]),
    ]
    fixed_doc = httpx.get(servers[0].url + "/v2/models/fixed").json()
    assert fixed_doc["inputs"] == [{"name": "x", "datatype": "INT16", "shape": [2, 3]}]
    assert fixed_doc["outputs"] == [{"name": "y", "datatype": "INT16", "shape": [2, 3]}]
    loose_doc = httpx.get(servers[1].url + "/v2/models/loose").json()
    assert loose_doc["inputs"] == [{"name": "x", "datatype": "BYTES", "shape": [-1, -1, 5]}]
    assert loose_doc["outputs"] == [{"name": "y", "datatype": "BYTES", "shape": [-1, -1, 5]}]
    assert loose_doc["versions"] == ["1"]  # the default version


def check_unknown_model_or_version_is_404_naming_it(server) -> None:
    cases = [
        ("GET", "/v2/models/other", "'other'"),
        ("GET", "/v2/models/other/ready", "'other'"),
        ("GET", f"/v2/models/other/versions/{VERSION}", "'other'"),
        ("POST", "/v2/models/other/infer", "'other'"),
        ("POST", f"/v2/models/other/versions/{VERSION}/infer", "'other'"),
        ("GET", f"/v2/models/{NAME}/versions/9", "'9'"),
        ("GET", f"/v2/models/{NAME}/versions/9/ready", "'9'"),
        ("POST", f"/v2/models/{NAME}/versions/9/infer", "'9'"),
    ]
    for method, path, named in cases:
        response = httpx.request(method, server.url + path, json=json_request())
        assert response.status_code == 404, (path, response.text)
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert set(body) == {"error"}, body
        assert named in body["error"], (path, body)
        assert "unknown" in body["error"]


def check_infer_json_on_both_paths_matches_onnxruntime(server) -> None:
    want = expected()
    for version in (None, VERSION):
        response = httpx.post(infer_url(server, version), json=json_request())
        assert response.headers["content-type"].startswith("application/json")
        assert "inference-header-content-length" not in response.headers
        doc, got = outputs_of(response)
        assert (doc["model_name"], doc["model_version"]) == (NAME, VERSION)
        assert [o["name"] for o in doc["outputs"]] == OUTPUTS
        assert [o["datatype"] for o in doc["outputs"]] == ["FP32", "FP64", "INT64"]
        assert [o["shape"] for o in doc["outputs"]] == [[3, 3], [3], [3]]
        for name in OUTPUTS:
            assert_same_tensor(got[name], want[name])


def check_nested_json_data_is_accepted(server) -> None:
    nested = json_request()
    nested["inputs"][0]["data"] = X.tolist()  # [[...], [...], [...]] instead of flat
    _, got = outputs_of(httpx.post(infer_url(server), json=nested))
    assert_same_tensor(got["scaled"], expected()["scaled"])


def check_json_body_is_accepted_whatever_the_content_type(server) -> None:
    body = httpx.Request("POST", "http://x", json=json_request()).content
    want = expected()
    content_types = [
        "text/plain", "application/octet-stream", None, "application/json; charset=utf-8",
        "application/x-www-form-urlencoded",
    ]
    for content_type in content_types:
        headers = {"content-type": content_type} if content_type else {}
        request = httpx.Request("POST", infer_url(server), content=body, headers=headers)
        assert request.headers.get("content-type") == content_type  # httpx adds none itself
        with httpx.Client() as client:
            response = client.send(request)
        doc, got = outputs_of(response)
        assert "inference-header-content-length" not in response.headers, content_type
        for name in OUTPUTS:
            assert_same_tensor(got[name], want[name])


def check_binary_input_json_output_by_default(server) -> None:
    body, headers = binary_body({"x": ("FP32", X)})
    response = httpx.post(infer_url(server), content=body, headers=headers)
    assert "inference-header-content-length" not in response.headers
    doc, got = outputs_of(response)
    assert all("data" in out for out in doc["outputs"])
    for name in OUTPUTS:
        assert_same_tensor(got[name], expected()[name])


def check_binary_output_for_the_whole_request(server) -> None:
    for version in (None, VERSION):
        response = httpx.post(
            infer_url(server, version),
            json=json_request(parameters={"binary_data_output": True}),
        )
        assert response.headers["content-type"] == "application/octet-stream"
        header_length = int(response.headers["inference-header-content-length"])
        assert 0 < header_length < len(response.content)
        doc, got = outputs_of(response)
        sizes = [out["parameters"]["binary_data_size"] for out in doc["outputs"]]
        assert sizes == [3 * 3 * 4, 3 * 8, 3 * 8]
        assert header_length + sum(sizes) == len(response.content)
        for name in OUTPUTS:
            assert_same_tensor(got[name], expected()[name])


def check_binary_output_per_requested_output_and_mixed(server) -> None:
    want = expected()
    # Only scaled binary; the others follow the request default (JSON).
    only_one = json_request(outputs=[
        {"name": "scaled", "parameters": {"binary_data": True}}, {"name": "row_sum"},
        {"name": "arg_max", "parameters": {"binary_data": False}},
    ])
    # Request default binary, but row_sum asks for JSON.
    all_but_one = json_request(
        parameters={"binary_data_output": True},
        outputs=[{"name": "scaled"}, {"name": "row_sum", "parameters": {"binary_data": False}},
                 {"name": "arg_max"}],
    )
    for request, binary in ((only_one, {"scaled"}), (all_but_one, {"scaled", "arg_max"})):
        response = httpx.post(infer_url(server), json=request)
        assert "inference-header-content-length" in response.headers
        doc, got = outputs_of(response)
        for out in doc["outputs"]:
            is_binary = "binary_data_size" in (out.get("parameters") or {})
            assert is_binary == (out["name"] in binary), out
            assert ("data" in out) == (out["name"] not in binary), out
            assert_same_tensor(got[out["name"]], want[out["name"]])


def check_binary_request_and_binary_response_together(server) -> None:
    x = np.arange(30, dtype=np.float32).reshape(10, 3) / 7
    body, headers = binary_body(
        {"x": ("FP32", x)},
        {"id": "both-ways", "parameters": {"binary_data_output": True}},
    )
    response = httpx.post(infer_url(server, VERSION), content=body, headers=headers)
    doc, got = outputs_of(response)
    assert doc["id"] == "both-ways"
    assert all("data" not in out for out in doc["outputs"])
    for name, array in expected(x).items():
        assert_same_tensor(got[name], array)


def check_binary_header_without_binary_inputs_is_plain_json(server) -> None:
    # The header may cover the whole body: a JSON request sent the binary way.
    body = httpx.Request("POST", "http://x", json=json_request()).content
    response = httpx.post(
        infer_url(server), content=body,
        headers={"Inference-Header-Content-Length": str(len(body))},
    )
    _, got = outputs_of(response)
    assert_same_tensor(got["arg_max"], expected()["arg_max"])


def check_malformed_binary_requests_are_400_with_a_reason(server) -> None:
    body, headers = binary_body({"x": ("FP32", X)})
    header_length = int(headers["Inference-Header-Content-Length"])
    cases = {
        "header longer than the body": (body, {"Inference-Header-Content-Length": "999999"}),
        "header length not a number": (body, {"Inference-Header-Content-Length": "ten"}),
        "tensor bytes missing": (body[:-4], headers),
        "bytes left over": (body + b"\0\0\0\0", headers),
        "binary size without the header": (body[:header_length], {}),
        # The sizes add up, but 9 floats are not the 6 of shape [2, 3].
        "size not the shape's": (body.replace(b'"shape": [3, 3]', b'"shape": [2, 3]'), headers),
    }
    for case, (content, case_headers) in cases.items():
        response = httpx.post(infer_url(server), content=content, headers=case_headers)
        assert response.status_code == 400, (case, response.text)
        assert response.json()["error"], case
    assert b'"shape": [3, 3]' in body  # the last case really changed the shape
    # The server keeps serving after all of them.
    _, got = outputs_of(httpx.post(infer_url(server), content=body, headers=headers))
    assert_same_tensor(got["scaled"], expected()["scaled"])


def check_requested_outputs_subset_in_requested_order(server) -> None:
    want = expected()
    for names in (["arg_max"], ["row_sum", "scaled"], ["arg_max", "scaled", "row_sum"]):
        for binary in (False, True):
            request = json_request(
                outputs=[{"name": n, "parameters": {"binary_data": binary}} for n in names]
            )
            doc, got = outputs_of(httpx.post(infer_url(server), json=request))
            assert [out["name"] for out in doc["outputs"]] == names
            assert list(got) == names
            for name in names:
                assert_same_tensor(got[name], want[name])
    unknown = httpx.post(infer_url(server), json=json_request(outputs=[{"name": "nope"}]))
    assert unknown.status_code == 400
    assert "'nope'" in unknown.json()["error"]


def check_request_id_is_echoed(server) -> None:
    doc, _ = outputs_of(httpx.post(infer_url(server), json=json_request(id="req-42 ünï")))
    assert doc["id"] == "req-42 ünï"
    doc, _ = outputs_of(httpx.post(
        infer_url(server), json=json_request(id="bin-7", parameters={"binary_data_output": True})
    ))
    assert doc["id"] == "bin-7"
    doc, _ = outputs_of(httpx.post(infer_url(server), json=json_request()))
    assert "id" not in doc


def check_x_request_id_is_honoured_or_generated(server) -> None:
    given = httpx.post(
        infer_url(server), json=json_request(), headers={"X-Request-ID": "trace-1.a:b"}
    )
    assert given.status_code == 200
    assert given.headers["x-request-id"] == "trace-1.a:b"

    generated = {
        httpx.post(infer_url(server), json=json_request()).headers["x-request-id"]
        for _ in range(3)
    }
    assert len(generated) == 3
    assert all(GENERATED_ID.match(rid) for rid in generated), generated

    # An id that is unsafe to log (spaces, too long) is replaced, not echoed.
    for unsafe in ("has spaces", "x" * 200):
        response = httpx.post(
            infer_url(server), json=json_request(), headers={"X-Request-ID": unsafe}
        )
        assert GENERATED_ID.match(response.headers["x-request-id"])

    # Errors carry the id too, so a failed call can be traced.
    failed = httpx.post(server.url + "/v2/models/other/infer", json=json_request(),
                        headers={"X-Request-ID": "trace-404"})
    assert (failed.status_code, failed.headers["x-request-id"]) == (404, "trace-404")
    refused = httpx.post(infer_url(server), content=b"{not json", headers={"X-Request-ID": "t-400"})
    assert (refused.status_code, refused.headers["x-request-id"]) == (400, "t-400")
