"""Choose the wire format of a request and map V2 request/response documents to values."""

from __future__ import annotations

from .codec_binary import split_body, tensor_from_bytes, tensor_to_bytes
from .codec_json import dumps, loads, tensor_from_json, tensor_to_json
from .dtypes import BY_V2, V2_NAMES
from .errors import BadRequest
from .tensors import InferRequest, InferResponse, RequestedOutput, Tensor

MAX_RANK = 32  # numpy's limit is 64; no ONNX model we serve comes near either


def decode_request(body: bytes, header_length: str | None) -> InferRequest:
    """A request body (JSON, or JSON header plus binary tensors) -> InferRequest."""
    if header_length is None:
        doc, raw = loads(body), None
    else:
        header, raw = split_body(body, header_length)
        doc = loads(header)
    return _request_from_doc(doc, raw)


def encode_response(response: InferResponse) -> tuple[bytes, int | None]:
    """InferResponse -> (body, JSON header length if any output went binary else None)."""
    outputs = []
    blobs = []
    for out in response.outputs:
        entry: dict = {"name": out.name, "datatype": out.datatype, "shape": list(out.data.shape)}
        if out.binary:
            blob = tensor_to_bytes(out.datatype, out.data)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = tensor_to_json(out.datatype, out.data)
        outputs.append(entry)
    doc: dict = {
        "model_name": response.model_name,
        "model_version": response.model_version,
        "outputs": outputs,
    }
    if response.id is not None:
        doc["id"] = response.id
    header = dumps(doc)
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)


def _request_from_doc(doc: dict, raw: memoryview | None) -> InferRequest:
    inputs_doc = doc.get("inputs")
    if not isinstance(inputs_doc, list) or not inputs_doc:
        raise BadRequest("'inputs' must be a non-empty list")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest("'id' must be a string")
    parameters = _parameters(doc, "request")
    offset = 0
    inputs = []
    for item in inputs_doc:
        tensor, offset = _input(item, raw, offset)
        inputs.append(tensor)
    if raw is not None and offset != len(raw):
        raise BadRequest(
            f"binary data has {len(raw)} bytes but the inputs' binary_data_size add up to {offset}"
        )
    return InferRequest(
        inputs=inputs,
        outputs=_requested_outputs(doc.get("outputs")),
        id=request_id,
        binary_outputs=parameters.get("binary_data_output") is True,
        parameters=parameters,
    )


def _input(item: object, raw: memoryview | None, offset: int) -> tuple[Tensor, int]:
    if not isinstance(item, dict):
        raise BadRequest("each input must be an object with name, shape, datatype and data")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest("an input has no 'name'")
    datatype = item.get("datatype")
    if not isinstance(datatype, str) or datatype not in BY_V2:
        raise BadRequest(
            f"input '{name}': datatype {datatype!r} is not one of {', '.join(V2_NAMES)}"
        )
    shape = item.get("shape")
    if not isinstance(shape, list) or not all(
        type(d) is int and d >= 0 for d in shape  # noqa: E721 - bool is not a dimension
    ):
        raise BadRequest(f"input '{name}': 'shape' must be a list of non-negative integers")
    if len(shape) > MAX_RANK:
        raise BadRequest(f"input '{name}': shape has {len(shape)} dimensions, at most {MAX_RANK}")
    shape_t = tuple(shape)
    size = _parameters(item, f"input '{name}'").get("binary_data_size")
    if size is not None:
        if raw is None:
            raise BadRequest(
                f"input '{name}' has binary_data_size but the request has no "
                "Inference-Header-Content-Length header"
            )
        if type(size) is not int or size < 0 or offset + size > len(raw):  # noqa: E721
            raise BadRequest(f"input '{name}': binary_data_size {size!r} does not fit the body")
        data = tensor_from_bytes(name, datatype, shape_t, raw[offset : offset + size])
        return Tensor(name, datatype, data), offset + size
    if "data" not in item:
        raise BadRequest(f"input '{name}' has no 'data'")
    return Tensor(name, datatype, tensor_from_json(name, datatype, shape_t, item["data"])), offset


def _requested_outputs(outputs_doc: object) -> list[RequestedOutput] | None:
    if outputs_doc is None:
        return None
    if not isinstance(outputs_doc, list):
        raise BadRequest("'outputs' must be a list")
    requested = []
    for item in outputs_doc:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise BadRequest("each requested output must be an object with a 'name'")
        binary = _parameters(item, f"output '{item['name']}'").get("binary_data")
        requested.append(RequestedOutput(item["name"], binary if isinstance(binary, bool) else None))
    return requested


def _parameters(doc: dict, where: str) -> dict:
    parameters = doc.get("parameters")
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise BadRequest(f"{where}: 'parameters' must be an object")
    return parameters
