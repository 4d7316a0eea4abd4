"""The smoke inference that gates a candidate: build a request, judge the answer. Pure.

Before any traffic moves, the candidate must answer one real inference correctly. The
request is the spec's golden request (``spec.smokeTest.request``) or one built from the
model's V2 metadata: one row of zeros per input (dynamic dimensions set to 1). "Correct"
is what can be checked without knowing the model: HTTP 200, every output the metadata
promises, with its datatype, a shape that fits the data, and no NaN or infinity.
"""

from __future__ import annotations

import math

_NUMERIC_ZERO = {"BOOL": False, "BYTES": ""}


def smoke_request(metadata: dict) -> dict:
    """A V2 inference request for ``metadata`` (the answer of GET /v2/models/{name})."""
    inputs = metadata.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ValueError("the model's metadata lists no inputs; give spec.smokeTest.request")
    request_inputs = []
    for tensor in inputs:
        shape = [1 if (not isinstance(d, int) or d < 0) else d for d in tensor.get("shape", [])]
        count = math.prod(shape)
        if count > 1_000_000:
            raise ValueError(f"input '{tensor.get('name')}' would need {count} values; "
                             "give spec.smokeTest.request")
        datatype = tensor.get("datatype", "FP32")
        request_inputs.append({"name": tensor["name"], "datatype": datatype, "shape": shape,
                               "data": [_NUMERIC_ZERO.get(datatype, 0)] * count})
    return {"id": "modelrollout-smoke-test", "inputs": request_inputs}


def check_answer(metadata: dict, status_code: int, body: object) -> str | None:
    """None when the answer is correct, else what is wrong with it."""
    if status_code != 200:
        error = body.get("error") if isinstance(body, dict) else None
        return f"answered HTTP {status_code}" + (f": {error}" if error else "")
    if not isinstance(body, dict) or not isinstance(body.get("outputs"), list) or not body["outputs"]:
        return "the answer has no outputs"
    outputs = {o.get("name"): o for o in body["outputs"] if isinstance(o, dict)}
    for promised in metadata.get("outputs") or []:
        name = promised.get("name")
        if name not in outputs:
            return f"output '{name}' is missing from the answer"
        if promised.get("datatype") and outputs[name].get("datatype") != promised["datatype"]:
            return (f"output '{name}' has datatype {outputs[name].get('datatype')}, "
                    f"the metadata says {promised['datatype']}")
    for name, output in outputs.items():
        problem = _tensor_problem(output)
        if problem:
            return f"output '{name}' {problem}"
    return None


def _tensor_problem(output: dict) -> str | None:
    shape, data = output.get("shape"), output.get("data")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        return f"has an invalid shape {shape!r}"
    if not isinstance(data, list):
        return "has no data"
    flat = list(_flatten(data))
    if len(flat) != math.prod(shape):
        return f"has {len(flat)} values for shape {shape}"
    # The server writes NaN and infinity as null in JSON.
    numeric = output.get("datatype") not in ("BYTES", "BOOL")
    if numeric and any(v is None or (isinstance(v, float) and not math.isfinite(v)) for v in flat):
        return "contains NaN or infinity"
    return None


def _flatten(data: list):
    for item in data:
        if isinstance(item, list):
            yield from _flatten(item)
        else:
            yield item
