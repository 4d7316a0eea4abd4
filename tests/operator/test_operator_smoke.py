"""The smoke inference: requests built from metadata, answers judged."""

from __future__ import annotations

import pytest
from modelrollout.operator.smoke import check_answer, smoke_request

METADATA = {
    "name": "iris",
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
    "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]},
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}],
}
GOOD = {"outputs": [{"name": "label", "datatype": "INT64", "shape": [1], "data": [2]},
                    {"name": "probabilities", "datatype": "FP32", "shape": [1, 3], "data": [0.1, 0.2, 0.7]}]}


def test_request_has_one_row_of_zeros_per_input():
    request = smoke_request({"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]},
                                        {"name": "flag", "datatype": "BOOL", "shape": [2]},
                                        {"name": "text", "datatype": "BYTES", "shape": [-1]}]})
    assert request["inputs"] == [
        {"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [0, 0, 0, 0]},
        {"name": "flag", "datatype": "BOOL", "shape": [2], "data": [False, False]},
        {"name": "text", "datatype": "BYTES", "shape": [1], "data": [""]},
    ]


def test_metadata_without_inputs_asks_for_a_golden_request():
    with pytest.raises(ValueError, match="smokeTest.request"):
        smoke_request({"inputs": []})


def test_a_correct_answer_passes():
    assert check_answer(METADATA, 200, GOOD) is None


@pytest.mark.parametrize(("status", "body", "problem"), [
    (500, {"error": "model crashed"}, "HTTP 500: model crashed"),
    (200, {"outputs": []}, "no outputs"),
    (200, {"outputs": GOOD["outputs"][:1]}, "'probabilities' is missing"),
    (200, {"outputs": [GOOD["outputs"][0], {**GOOD["outputs"][1], "datatype": "FP64"}]}, "datatype FP64"),
    (200, {"outputs": [GOOD["outputs"][0], {**GOOD["outputs"][1], "data": [0.1, None, 0.7]}]}, "NaN"),
    (200, {"outputs": [GOOD["outputs"][0], {**GOOD["outputs"][1], "shape": [1, 4]}]}, "3 values for shape"),
])
def test_wrong_answers_say_what_is_wrong(status, body, problem):
    assert problem in check_answer(METADATA, status, body)
