"""The shadow comparison: two V2 answers in, agree / disagree / error out. Pure, so no processes.

Answers are written here with the test's own encoders (tests/support/models.py), not the server's.
"""

from __future__ import annotations

import json
import math

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from modelrollout.serving.contract.metric_names import SHADOW_RESULTS
from modelrollout.serving.gateway.compare import Answer, compare_answers

from tests.support.models import ONNX_TYPES, edge_values, json_data, to_binary

ATOL, RTOL = 1e-5, 1e-3

Outputs = dict[str, tuple[str, np.ndarray]]


def json_answer(outputs: Outputs, status: int = 200) -> Answer:
    doc = {"model_name": "m", "model_version": "1", "outputs": [
        {"name": name, "datatype": dt, "shape": list(a.shape), "data": json_data(dt, a)}
        for name, (dt, a) in outputs.items()
    ]}
    return Answer(status, orjson.dumps(doc), None)


def binary_answer(outputs: Outputs, json_outputs: tuple[str, ...] = ()) -> Answer:
    """Every output as binary data, except those named in ``json_outputs``."""
    entries, blobs = [], []
    for name, (dt, a) in outputs.items():
        entry = {"name": name, "datatype": dt, "shape": list(a.shape)}
        if name in json_outputs:
            entry["data"] = json_data(dt, a)
        else:
            blob = to_binary(dt, a)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        entries.append(entry)
    head = orjson.dumps({"model_name": "m", "model_version": "1", "outputs": entries})
    return Answer(200, head + b"".join(blobs), len(head))


def compare(primary: Answer, shadow: Answer, atol: float = ATOL, rtol: float = RTOL):
    result = compare_answers(primary, shadow, atol, rtol)
    assert result.result in SHADOW_RESULTS
    return result


def probs(*rows: list[float]) -> Outputs:
    return {"probabilities": ("FP32", np.array(rows, dtype=np.float32))}


def strings(*values: str) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


CLASSIFIER = {
    "label": ("INT64", np.array([0, 2, 1], dtype=np.int64)),
    "probabilities": ("FP32", np.array(
        [[0.9, 0.05, 0.05], [0.1, 0.2, 0.7], [0.3, 0.6, 0.1]], dtype=np.float32)),
}


# --- Equal answers agree ---


def test_the_same_json_answer_agrees():
    result = compare(json_answer(CLASSIFIER), json_answer(CLASSIFIER))
    assert result.result == "agree"
    assert result.max_abs_diff == 0 and result.max_rel_diff == 0
    assert result.class_agreement == 1
    assert result.detail == "2 outputs agree (max abs diff 0)"


def test_the_same_binary_answer_agrees():
    outputs = {**CLASSIFIER, "name": ("BYTES", strings("setosa", "virginica", "versicolor"))}
    result = compare(binary_answer(outputs), binary_answer(outputs))
    assert result.result == "agree" and result.max_abs_diff == 0


@pytest.mark.parametrize("datatype", list(ONNX_TYPES))
def test_json_and_binary_encodings_of_the_same_values_agree(datatype):
    # Extremes, subnormals, -0.0, non-ASCII and NUL strings: nothing is lost either way.
    outputs = {"y": (datatype, edge_values(datatype))}
    for primary, shadow in [(json_answer(outputs), binary_answer(outputs)),
                            (binary_answer(outputs), json_answer(outputs))]:
        result = compare(primary, shadow)
        assert result.result == "agree", result.detail
        assert result.max_abs_diff in (0, None)


def test_a_body_mixing_json_and_binary_outputs_agrees_with_all_binary():
    mixed = binary_answer(CLASSIFIER, json_outputs=("label",))
    assert compare(mixed, binary_answer(CLASSIFIER)).result == "agree"


def test_outputs_are_matched_by_name_not_order():
    reordered = dict(reversed(list(CLASSIFIER.items())))
    assert compare(json_answer(CLASSIFIER), json_answer(reordered)).result == "agree"


# --- Tolerance ---


def test_float_noise_within_tolerance_agrees():
    rng = np.random.default_rng(0)
    base = rng.random((8, 5)).astype(np.float32)
    noisy = base + rng.uniform(-1e-6, 1e-6, base.shape).astype(np.float32)
    result = compare(json_answer({"p": ("FP32", base)}), json_answer({"p": ("FP32", noisy)}))
    assert result.result == "agree"
    assert 0 < result.max_abs_diff <= 1.1e-6


def test_a_value_beyond_tolerance_disagrees_and_reports_the_difference():
    base = np.array([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]], dtype=np.float32)
    moved = base.copy()
    moved[1, 2] = 0.75
    result = compare(binary_answer({"p": ("FP32", base)}), binary_answer({"p": ("FP32", moved)}))
    assert result.result == "disagree"
    want = abs(float(np.float32(0.75)) - float(np.float32(0.8)))
    assert result.max_abs_diff == pytest.approx(want, rel=1e-12)
    assert result.max_rel_diff == pytest.approx(want / float(np.float32(0.8)), rel=1e-12)
    assert result.detail.startswith("p: 1 of 6 values outside tolerance (max abs diff 0.05")
    assert result.class_agreement == 1  # row 1 still predicts class 2
    (output,) = result.outputs
    assert (output.name, output.mismatched, output.size) == ("p", 1, 6)


def test_tolerance_is_relative_to_the_primary():
    # |a - b| <= atol + rtol * |primary|: 1000 vs 1000.9 passes, 1000 vs 1001.1 does not.
    big = {"y": ("FP64", np.array([1000.0]))}
    assert compare(json_answer(big), json_answer({"y": ("FP64", np.array([1000.9]))})).result == "agree"
    assert compare(json_answer(big), json_answer({"y": ("FP64", np.array([1001.1]))})).result == "disagree"


def test_integer_outputs_must_be_equal_whatever_the_tolerance():
    # rtol * 5000 = 5 would let id 5001 pass for 5000: discrete values are compared exactly.
    ids = {"ids": ("INT64", np.array([[5000, 7]], dtype=np.int64))}
    other = {"ids": ("INT64", np.array([[5001, 7]], dtype=np.int64))}
    result = compare(json_answer(ids), json_answer(other), rtol=0.01)
    assert result.result == "disagree"
    assert result.detail == "ids: 1 of 2 values differ"
    assert result.max_abs_diff is None  # ids are not distances


# --- Classes and labels ---


def test_a_flipped_predicted_class_disagrees_even_within_tolerance():
    # rtol 6%: each score moves by less than its tolerance, yet class 1 overtakes class 0,
    # whose lead (0.05) was more than the tolerance (0.031): not a tie.
    primary = probs([0.52, 0.47, 0.01], [0.1, 0.1, 0.8])
    shadow = probs([0.494, 0.497, 0.01], [0.1, 0.1, 0.8])
    result = compare(json_answer(primary), json_answer(shadow), rtol=0.06)
    assert result.result == "disagree"
    assert "predicted class differs in 1 of 2 rows" in result.detail
    assert "values within tolerance" in result.detail
    assert result.class_agreement == 0.5


def test_a_flip_beyond_tolerance_reports_both():
    result = compare(json_answer(probs([0.7, 0.3])), json_answer(probs([0.39, 0.61])))
    assert result.result == "disagree"
    assert result.detail.startswith("probabilities: 2 of 2 values outside tolerance (max abs diff 0.31")
    assert result.detail.endswith("predicted class differs in 1 of 1 rows")
    assert result.class_agreement == 0


def test_a_flip_between_classes_the_primary_ties_is_noise():
    # Saturated scores tie exactly; noise in the last bits must not read as a new prediction.
    primary = probs([1.0, 1.0, 0.2], [0.4, 0.4003, 0.2])
    shadow = probs([0.9999999, 1.0, 0.2], [0.4003, 0.4, 0.2])
    result = compare(json_answer(primary), json_answer(shadow))
    assert result.result == "agree", result.detail
    assert result.class_agreement == 1


def test_a_single_score_column_is_not_a_class_choice():
    one = {"score": ("FP32", np.array([[0.3], [0.7]], dtype=np.float32))}
    result = compare(json_answer(one), json_answer(one))
    assert result.result == "agree" and result.class_agreement is None


def test_integer_label_mismatch_disagrees():
    flipped = {**CLASSIFIER, "label": ("INT64", np.array([0, 1, 1], dtype=np.int64))}
    result = compare(json_answer(CLASSIFIER), json_answer(flipped))
    assert result.result == "disagree"
    assert result.detail == "label: label differs in 1 of 3 rows"
    # Three label rows agree-or-not plus three probability rows that all agree.
    assert result.class_agreement == pytest.approx(5 / 6)
    assert result.max_abs_diff == 0  # the probabilities are identical


def test_string_label_mismatch_disagrees_in_any_encoding():
    primary = {"label": ("BYTES", strings("setosa", "virginica"))}
    shadow = {"label": ("BYTES", strings("setosa", "versicolor"))}
    for answer in (json_answer, binary_answer):
        result = compare(answer(primary), answer(shadow))
        assert result.result == "disagree"
        assert result.detail == "label: label differs in 1 of 2 rows"
        assert result.class_agreement == 0.5


# --- What the answers are made of ---


def test_different_output_names_disagree():
    renamed = {"labels": CLASSIFIER["label"], "probabilities": CLASSIFIER["probabilities"]}
    result = compare(json_answer(CLASSIFIER), json_answer(renamed))
    assert result.result == "disagree"
    assert result.detail == "shadow lacks output label; shadow has extra output labels"
    assert result.max_abs_diff == 0  # what both have is still compared


def test_a_different_datatype_disagrees():
    as_double = {**CLASSIFIER, "probabilities": ("FP64", CLASSIFIER["probabilities"][1].astype(np.float64))}
    result = compare(json_answer(CLASSIFIER), json_answer(as_double))
    assert result.result == "disagree"
    assert result.detail == "probabilities: datatype FP64 != FP32"


def test_a_different_shape_disagrees():
    flat = {**CLASSIFIER, "probabilities": ("FP32", CLASSIFIER["probabilities"][1].reshape(-1))}
    result = compare(json_answer(CLASSIFIER), json_answer(flat))
    assert result.result == "disagree"
    assert result.detail == "probabilities: shape [9] != [3, 3]"


def test_the_detail_stays_short_when_many_outputs_differ():
    primary = {f"o{i}": ("INT32", np.array([i], dtype=np.int32)) for i in range(10)}
    shadow = {f"o{i}": ("INT32", np.array([i + 1], dtype=np.int32)) for i in range(10)}
    result = compare(json_answer(primary), json_answer(shadow))
    assert result.result == "disagree"
    assert result.detail.count(";") == 4 and result.detail.endswith("and 6 more")


# --- Errors: never a verdict, never an exception ---


@pytest.mark.parametrize("primary_status, shadow_status, detail", [
    (200, 503, "shadow answered 503: overloaded"),
    (200, 400, "shadow answered 400: overloaded"),
    (500, 200, "primary answered 500: overloaded"),
])
def test_a_failed_answer_on_either_side_is_an_error(primary_status, shadow_status, detail):
    ok = json_answer(CLASSIFIER)
    failed = Answer(0, b'{"error": "overloaded"}', None)
    primary = ok if primary_status == 200 else Answer(primary_status, failed.body, None)
    shadow = ok if shadow_status == 200 else Answer(shadow_status, failed.body, None)
    result = compare(primary, shadow)
    assert (result.result, result.detail) == ("error", detail)
    assert result.max_abs_diff is None


def _good_head(size: int = 12) -> bytes:
    return orjson.dumps({"outputs": [
        {"name": "p", "datatype": "FP32", "shape": [3], "parameters": {"binary_data_size": size}}
    ]})


def _bytes_head(size: int = 9) -> bytes:
    return orjson.dumps({"outputs": [
        {"name": "p", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": size}}
    ]})


@pytest.mark.parametrize("body, header_length, why", [
    (b"", None, "malformed JSON"),
    (b"<html>502 Bad Gateway</html>", None, "malformed JSON"),
    (b"[1, 2]", None, "must be a JSON object"),
    (b'{"outputs": {"p": 1}}', None, "no 'outputs' list"),
    (b'{"outputs": [{"datatype": "FP32"}]}', None, "not an object with a 'name'"),
    (b'{"outputs": [{"name": "p", "datatype": "FP8", "shape": [1], "data": [1]}]}', None, "unknown datatype"),
    (b'{"outputs": [{"name": "p", "datatype": "FP32", "shape": [-1], "data": [1]}]}', None, "not a list"),
    (b'{"outputs": [{"name": "p", "datatype": "FP32", "shape": [2], "data": [1]}]}', None, "shape needs 2"),
    (b'{"outputs": [{"name": "p", "datatype": "FP32", "shape": [1], "data": ["x"]}]}', None, "not FP32"),
    (b'{"outputs": [{"name": "p", "datatype": "INT8", "shape": [1], "data": [300]}]}', None, "range of INT8"),
    (b'{"outputs": [{"name": "p", "datatype": "INT8", "shape": [1], "data": [1.5]}]}', None, "integers"),
    (b'{"outputs": [{"name": "p", "datatype": "BOOL", "shape": [1], "data": [1]}]}', None, "true/false"),
    (b'{"outputs": [{"name": "p", "datatype": "BYTES", "shape": [1], "data": [1]}]}', None, "strings"),
    (b'{"outputs": [{"name": "p", "datatype": "FP32", "shape": [1]}]}', None, "neither data nor"),
    (b'{"outputs": [{"name": "p", "datatype": "BYTES", "shape": [1], "data": ' + b"[" * 1000 + b'"a"'
     + b"]" * 1000 + b"}]}", None, "not BYTES"),
    (b'{"outputs": [{"name": "p", "datatype": "FP32", "shape": [1], "data": ' + b"[" * 1000 + b"1"
     + b"]" * 1000 + b"}]}", None, "not FP32"),
    (b'{"outputs": [{"name": "p", "datatype": "FP32", "shape": [], "data": 1},'
     b' {"name": "p", "datatype": "FP32", "shape": [], "data": 1}]}', None, "appears twice"),
    (b"{}" + b"\0" * 12, -1, "not a number"),
    (_good_head() + b"\0" * 12, 10_000, "past the body"),
    (_good_head() + b"\0" * 8, len(_good_head()), "does not fit"),
    (_good_head(8) + b"\0" * 8, len(_good_head(8)), "needs 12"),
    (_good_head() + b"\0" * 16, len(_good_head()), "4 bytes after the last binary output"),
    (_bytes_head() + b"\x05\0\0\0abcde", len(_bytes_head()), "needs 2 BYTES elements, got 1"),
    (_bytes_head() + b"\x09\0\0\0abcde", len(_bytes_head()), "runs past"),
    (_bytes_head(3) + b"\x05\0\0", len(_bytes_head(3)), "hold at most 0"),
])
def test_an_unreadable_answer_is_an_error(body, header_length, why):
    good = json_answer(CLASSIFIER)
    for primary, shadow, side in [(good, Answer(200, body, header_length), "shadow"),
                                  (Answer(200, body, header_length), good, "primary")]:
        result = compare(primary, shadow)
        assert result.result == "error"
        assert result.detail.startswith(f"{side} answer is not a V2 inference response")
        assert why in result.detail


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=200), header_length=st.none() | st.integers(-1, 250))
def test_no_body_makes_the_comparison_raise(body, header_length):
    compare(json_answer(CLASSIFIER), Answer(200, body, header_length))


@settings(max_examples=200, deadline=None)
@given(data=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
), datatype=st.sampled_from([*ONNX_TYPES, "FP8"]))
def test_no_json_output_makes_the_comparison_raise(data, datatype):
    body = json.dumps({"outputs": [{"name": "y", "datatype": datatype, "shape": [2], "data": data}]})
    compare(json_answer({"y": ("FP32", np.zeros(2, np.float32))}), Answer(200, body.encode(), None))


# --- NaN and infinities ---


def test_nan_in_the_same_place_agrees_in_every_encoding():
    values = {"y": ("FP32", np.array([1.0, np.nan, 3.0], dtype=np.float32))}
    # orjson writes NaN as null, Python's json as a NaN literal; binary keeps the bits.
    literal = Answer(200, json.dumps({"outputs": [
        {"name": "y", "datatype": "FP32", "shape": [3], "data": [1.0, math.nan, 3.0]}
    ]}).encode(), None)
    for primary in (json_answer(values), binary_answer(values), literal):
        for shadow in (json_answer(values), binary_answer(values), literal):
            result = compare(primary, shadow)
            assert result.result == "agree", result.detail
            assert result.max_abs_diff == 0


def test_nan_against_a_number_disagrees():
    primary = {"y": ("FP32", np.array([1.0, 2.0], dtype=np.float32))}
    shadow = {"y": ("FP32", np.array([1.0, np.nan], dtype=np.float32))}
    for a, b in [(primary, shadow), (shadow, primary)]:
        result = compare(binary_answer(a), binary_answer(b))
        assert result.result == "disagree"
        assert result.max_abs_diff == math.inf
        assert result.detail == "y: 1 of 2 values outside tolerance (max abs diff inf, max rel diff inf)"


def test_infinities_agree_with_themselves_only():
    inf = {"y": ("FP64", np.array([np.inf, -np.inf]))}
    assert compare(binary_answer(inf), binary_answer(inf)).result == "agree"
    swapped = {"y": ("FP64", np.array([-np.inf, np.inf]))}
    result = compare(binary_answer(inf), binary_answer(swapped))
    assert result.result == "disagree" and result.max_abs_diff == math.inf


# --- Properties ---

_FLOAT_TYPES = {"FP16": np.float16, "FP32": np.float32, "FP64": np.float64}


@settings(max_examples=200, deadline=None)
@given(
    datatype=st.sampled_from(list(_FLOAT_TYPES)),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
    encoding=st.sampled_from([json_answer, binary_answer]),
    data=st.data(),
)
def test_an_answer_always_agrees_with_itself(datatype, shape, encoding, data):
    array = data.draw(hnp.arrays(_FLOAT_TYPES[datatype], shape))  # NaN, inf, subnormals included
    answer = encoding({"y": (datatype, array)})
    result = compare(answer, answer)
    assert result.result == "agree", result.detail
    assert result.max_abs_diff == 0
    assert result.class_agreement in (None, 1)


@settings(max_examples=200, deadline=None)
@given(
    datatype=st.sampled_from(list(_FLOAT_TYPES)),
    shape=hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=5),
    data=st.data(),
)
def test_json_and_binary_of_the_same_finite_values_agree(datatype, shape, data):
    finite = hnp.from_dtype(np.dtype(_FLOAT_TYPES[datatype]), allow_nan=False, allow_infinity=False)
    array = data.draw(hnp.arrays(_FLOAT_TYPES[datatype], shape, elements=finite))
    result = compare(json_answer({"y": (datatype, array)}), binary_answer({"y": (datatype, array)}))
    assert result.result == "agree" and result.max_abs_diff == 0


def test_matching_classes_only_lets_scores_move_while_every_row_predicts_the_same():
    primary = probs([0.9, 0.05, 0.05], [0.2, 0.7, 0.1])
    recalibrated = probs([0.6, 0.3, 0.1], [0.3, 0.5, 0.2])
    assert compare(json_answer(primary), json_answer(recalibrated)).result == "disagree"
    by_class = compare_answers(json_answer(primary), json_answer(recalibrated), ATOL, RTOL, "classes")
    assert by_class.result == "agree" and by_class.class_agreement == 1
    flipped = probs([0.4, 0.6, 0.0], [0.2, 0.7, 0.1])
    by_class = compare_answers(json_answer(primary), json_answer(flipped), ATOL, RTOL, "classes")
    assert by_class.result == "disagree" and "predicted class differs in 1 of 2 rows" in by_class.detail
    # Outputs that are not class scores still need their values within tolerance.
    score = {"score": ("FP32", np.array([[0.3], [0.7]], dtype=np.float32))}
    moved = {"score": ("FP32", np.array([[0.3], [0.9]], dtype=np.float32))}
    assert compare_answers(json_answer(score), json_answer(moved), ATOL, RTOL, "classes").result == "disagree"
