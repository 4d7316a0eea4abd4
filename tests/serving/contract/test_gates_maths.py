"""The gate maths and bounded stores, in-process (they are pure): PSI by hand, KS against
scipy, drift windows on seeded reference and shifted samples, the prediction store and the
gateway's request-id map under many ids, the prediction and golden-set contract."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
from modelrollout.serving.contract import feedback
from modelrollout.serving.contract.golden import InvalidGoldenSet, parse_golden_set, request_of, score
from modelrollout.serving.contract.predictions import (
    PredictionSpec,
    category_key,
    normalize_label,
    prediction_of,
)
from modelrollout.serving.gateway.answers import AnsweredBy
from modelrollout.serving.server.drift import (
    DriftWindow,
    InputChecks,
    cdf_points,
    ks_statistic,
    psi,
    reference_cdf,
)
from modelrollout.serving.server.feedback_store import PredictionStore
from modelrollout.serving.server.prediction import choose_ways, read
from modelrollout.serving.server.profile import (
    InvalidProfile,
    Profile,
    categorical_feature,
    numeric_feature,
    parse_profile,
    to_doc,
)
from modelrollout.serving.server.runtime import TensorSpec
from scipy import stats

# --- PSI, by hand ---


def test_psi_matches_the_hand_computed_value():
    # live shares 0.3, 0.5, 0.2 against 0.2, 0.5, 0.3:
    # (0.3 - 0.2) ln(0.3 / 0.2) + 0 + (0.2 - 0.3) ln(0.2 / 0.3) = 0.2 ln 1.5
    got = psi(np.array([30, 50, 20]), np.array([0.2, 0.5, 0.3]))
    assert got == pytest.approx(0.2 * math.log(1.5), abs=1e-12)
    assert 0.2 * math.log(1.5) == pytest.approx(0.0810930216, abs=1e-10)


def test_psi_floors_empty_bins_at_epsilon():
    # bin 0 empty live: its share is taken as 1e-4, so the term stays finite
    expected = (1e-4 - 0.5) * math.log(1e-4 / 0.5) + (1 - 0.5) * math.log(1 / 0.5)
    assert psi(np.array([0, 10]), np.array([0.5, 0.5])) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(4.6043, abs=1e-4)


def test_psi_is_zero_for_identical_shares():
    assert psi(np.array([10, 20, 70]), np.array([0.1, 0.2, 0.7])) == pytest.approx(0.0, abs=1e-15)


# --- KS, against scipy ---


@pytest.mark.parametrize("seed", range(5))
def test_ks_equals_scipy_kstest_on_the_same_reference_cdf(seed):
    rng = np.random.default_rng(seed)
    reference = rng.normal(0, 1, 3000)
    feature = numeric_feature("x", "input", 0, reference)
    x, p = cdf_points(feature.quantile_values, feature.quantile_probs)
    live = rng.normal(0.2 * seed, 1 + 0.1 * seed, 400)
    live[:20] = np.round(live[:20], 1)  # some ties too
    want = stats.kstest(live, lambda v: reference_cdf(v, x, p)).statistic
    assert ks_statistic(live, x, p) == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("shift", [0.0, 0.3, 1.0])
def test_ks_is_close_to_scipy_two_sample_ks_against_the_reference_sample(shift):
    # The profile keeps 101 quantiles, not the sample: for a continuous feature the
    # statistic stays within 0.02 of the two-sample KS against the full sample.
    rng = np.random.default_rng(7)
    reference = rng.gamma(2.0, 1.0, 20_000)
    feature = numeric_feature("x", "input", 0, reference)
    live = rng.gamma(2.0, 1.0, 1000) + shift
    ours = ks_statistic(live, *cdf_points(feature.quantile_values, feature.quantile_probs))
    assert ours == pytest.approx(stats.ks_2samp(live, reference).statistic, abs=0.02)


def test_reference_cdf_takes_the_highest_probability_where_quantiles_repeat():
    x, p = cdf_points(np.array([0.0, 1.0, 1.0, 1.0, 2.0]), np.array([0.0, 0.25, 0.5, 0.75, 1.0]))
    assert x.tolist() == [0.0, 1.0, 2.0] and p.tolist() == [0.0, 0.75, 1.0]
    assert reference_cdf(np.array([-1.0, 1.0, 5.0]), x, p).tolist() == [0.0, 0.75, 1.0]


# --- drift windows: statistical tests on seeded samples (they can fail) ---

PSI_THRESHOLD = 0.1  # "moderate shift" starts here
KS_THRESHOLD = 0.1


def _checks(reference: np.ndarray) -> InputChecks:
    features = tuple(numeric_feature(f"f{j}", "input", j, reference[:, j]) for j in range(reference.shape[1]))
    return InputChecks(Profile(features, len(reference)), {"input": ("FP32", (-1, reference.shape[1]))}, 64)


@pytest.mark.parametrize("seed", range(10))
def test_reference_traffic_stays_under_the_drift_thresholds_and_shifted_traffic_passes_them(seed):
    rng = np.random.default_rng(seed)
    checks = _checks(rng.normal(0, 1, (5000, 3)))
    same, shifted = DriftWindow(checks, 1000), DriftWindow(checks, 1000)
    for _ in range(10):  # ten requests of 100 rows each
        same.add(checks.extract([{"input": rng.normal(0, 1, (100, 3)).astype(np.float32)}]))
        rows = rng.normal(0, 1, (100, 3))
        rows[:, 1] += 1.0  # one standard deviation, on feature f1 only
        shifted.add(checks.extract([{"input": rows.astype(np.float32)}]))
    calm = {d.name: d for d in same.drift()}
    moved = {d.name: d for d in shifted.drift()}
    assert all(d.psi < PSI_THRESHOLD and d.ks < KS_THRESHOLD and d.rows == 1000 for d in calm.values()), calm
    assert moved["f1"].psi > 0.25 and moved["f1"].ks > 0.25, moved["f1"]
    assert moved["f0"].psi < PSI_THRESHOLD and moved["f2"].psi < PSI_THRESHOLD


def test_the_window_keeps_only_the_last_rows():
    rng = np.random.default_rng(1)
    checks = _checks(rng.normal(0, 1, (5000, 1)))
    window = DriftWindow(checks, 500)
    window.add(checks.extract([{"input": rng.normal(3, 1, (2000, 1))}]))  # far off
    assert window.drift()[0].psi > 1
    for _ in range(5):  # 500 reference rows push every shifted one out
        window.add(checks.extract([{"input": rng.normal(0, 1, (100, 1))}]))
    (drift,) = window.drift()
    assert window.filled == 500 and drift.rows == 500 and drift.psi < PSI_THRESHOLD


def test_input_checks_count_out_of_range_missing_and_unknown_categories():
    numeric = numeric_feature("x", "x", None, np.array([0.0, 1.0, 2.0, 3.0]))
    colour = categorical_feature("colour", "colour", None, ["red", "blue", "red", None])
    checks = InputChecks(Profile((numeric, colour), 4),
                         {"x": ("FP32", (-1,)), "colour": ("BYTES", (-1, 1))}, 64)
    colours = np.array([["red"], ["green"], [""], ["blue"], ["red"]], dtype=object)
    batch = checks.extract([{"x": np.array([-1, 1.5, np.nan, 3.5, 2], np.float32), "colour": colours}])
    found = checks.violations(batch)
    assert found.out_of_range.tolist() == [2, 1]  # -1 and 3.5; "green"
    assert found.missing.tolist() == [1, 1]  # NaN; ""
    assert found.rows == 4  # every row but the last
    assert colour.missing == pytest.approx(0.25)


def test_a_profile_round_trips_through_its_document_and_refuses_what_does_not_fit():
    profile = Profile((numeric_feature("x", "input", 0, np.arange(100.0)),
                       categorical_feature("c", "input", 1, ["a", "b"] * 10)), 100)
    again = parse_profile(to_doc(profile))
    assert again.features[0].edges.tolist() == profile.features[0].edges.tolist()
    assert again.features[1].categories == ("a", "b")
    with pytest.raises(InvalidProfile, match="reads input 'nope'"):
        bad = Profile((numeric_feature("x", "nope", 0, np.arange(10.0)),), 10)
        InputChecks(bad, {"input": ("FP32", (-1, 4))}, 64)
    with pytest.raises(InvalidProfile, match="column 7"):
        InputChecks(Profile((numeric_feature("x", "input", 7, np.arange(10.0)),), 10),
                    {"input": ("FP32", (-1, 4))}, 64)
    with pytest.raises(InvalidProfile, match="format"):
        parse_profile({"features": []})


def test_only_the_first_features_are_monitored():
    features = tuple(numeric_feature(f"f{j}", "input", j, np.arange(10.0)) for j in range(100))
    checks = InputChecks(Profile(features, 10), {"input": ("FP32", (-1, 100))}, 64)
    assert [f.name for f in checks.features] == [f"f{j}" for j in range(64)]


# --- the prediction store: bounded, and each way a label can fail ---


def test_the_prediction_store_holds_its_size_under_many_ids():
    store = PredictionStore(max_rows=1000, ttl_seconds=60, kind="classification", classes=("a", "b"))
    tracemalloc.start()
    for i in range(20_000):
        store.add((f"id-{i}",), ("a",), now=float(i))
    _, peak = tracemalloc.get_traced_memory()
    for i in range(20_000, 40_000):
        store.add((f"id-{i}", f"body-{i}"), ("b",), now=float(i))
    current, peak_after = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert store.rows == 1000 and len(store) == 2000  # two ids each, one prediction
    assert store.evicted_rows == 39_000
    assert peak_after < 2 * peak + 1_000_000  # 20 000 more ids did not grow it
    assert store.join("id-0", "a", now=40_000).outcome == feedback.UNKNOWN
    assert store.join("body-39999", "b", now=40_000).outcome == feedback.JOINED


def test_the_prediction_store_answers_each_outcome():
    store = PredictionStore(max_rows=100, ttl_seconds=10, kind="classification", classes=("cat", "dog"))
    store.add(("one",), ("dog",), now=0)
    store.add(("two",), ("cat", "dog"), now=0)
    store.add(("old",), ("cat",), now=-20)
    assert store.join("one", 1, now=1) == type(store.join("x", 1, 1))(feedback.JOINED, rows=1, correct=1)
    assert store.join("one", "dog", now=1).outcome == feedback.DUPLICATE
    assert store.join("two", "cat", now=1).outcome == feedback.INVALID  # two rows, one label
    assert store.join("two", ["cat", "cat"], now=1).correct == 1
    assert store.join("old", "cat", now=1).outcome == feedback.EXPIRED
    assert store.join("never", "cat", now=1).outcome == feedback.UNKNOWN
    regression = PredictionStore(max_rows=10, ttl_seconds=10, kind="regression")
    regression.add(("r",), (2.5,), now=0)
    assert regression.join("r", "high", now=0).outcome == feedback.INVALID
    assert regression.join("r", 4.0, now=0).abs_errors == (1.5,)


def test_the_gateway_request_map_holds_its_size_and_counts_evictions():
    answers = AnsweredBy(capacity=500, ttl_seconds=100)
    for i in range(10_000):
        answers.record(b"%d" % i, "m", "stable", "127.0.0.1", 1, now=float(i) * 0.001)
        answers.record_shadow(b"%d" % i, "shadow", "127.0.0.1", 2)
    assert len(answers) == 500 and answers.evicted == {"capacity": 9500, "expired": 0}
    assert len(answers._shadows) == 500  # shadows leave with their ids
    assert answers.get(b"0", now=10) is None and answers.get(b"9999", now=10).revision == "stable"
    assert answers.get(b"9999", now=10).shadow_endpoint == ("127.0.0.1", 2)
    answers.record(b"9999", "m", "candidate", "127.0.0.1", 3, now=10)  # a reused id: the newest counts
    assert answers.get(b"9999", now=10).shadow_endpoint is None
    assert answers.get(b"9998", now=200) is None  # past its TTL
    answers.expire(now=10_000)
    assert len(answers) == 0 and answers.evicted["expired"] == 500 and not answers._shadows


# --- predictions, as the server and the operator read them ---


def test_class_names_and_labels():
    assert [category_key(v) for v in (2, 2.0, np.int64(2), b"2", "2", True, np.bool_(False), 0.5)] == \
        ["2", "2", "2", "2", "2", "true", "false", "0.5"]
    classes = ("setosa", "versicolor")
    assert normalize_label(1, classes) == "versicolor" and normalize_label("setosa", classes) == "setosa"
    assert normalize_label(1, ("0", "1")) == "1" and normalize_label(7, classes) == "7"


def test_choose_ways_for_the_usual_model_shapes():
    skl = [TensorSpec("output_label", "INT64", (-1,)), TensorSpec("output_probability", "FP32", (-1, 3))]
    ways = choose_ways(skl, {"output_probability": ["0", "1", "2"]}, None, {})
    assert [(w.output, w.method) for w in ways] == [("output_label", "label"),
                                                     ("output_probability", "argmax")]
    mlp = [TensorSpec("probabilities", "FP32", (-1, 3))]
    assert choose_ways(mlp, {}, ["a", "b", "c"], {})[0] == PredictionSpec("probabilities", "classification",
                                                                          "argmax", ("a", "b", "c"))
    assert choose_ways([TensorSpec("variable", "FP32", (-1, 1))], {}, None, {})[0].kind == "regression"
    declared = choose_ways(mlp, {}, None,
                           {"prediction": {"output": "probabilities", "kind": "classification"}})
    assert declared[0].method == "argmax"
    found = read(ways[1], np.array([[0.1, 0.8, 0.1], [0.9, 0.05, 0.05], [0.2, 0.7, 0.1]], np.float32))
    assert found.row_values(0, 3) == ("1", "0", "1")


def test_prediction_of_a_v2_answer_and_golden_scores():
    spec = PredictionSpec("probabilities", "classification", "argmax", ("a", "b", "c"))
    answer = {"outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [1, 3],
                           "data": [0.1, 0.2, 0.7]}]}
    assert prediction_of(answer, spec) == "c"
    assert score(spec, ["c", "a"], ["c", None]).accuracy == 0.5
    regression = PredictionSpec("y", "regression", "value")
    assert score(regression, [1.0, 2.0], [1.5, 2.0]).max_abs_error == 0.5
    doc = {"format": "modelrollout.golden/v1", "prediction": spec.to_doc(),
           "examples": [{"id": "g0", "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4],
                                                  "data": [1, 2, 3, 4]}], "expected": 2}]}
    golden = parse_golden_set(doc)
    assert golden.examples[0].expected == "c"  # an index, named by the classes
    assert request_of(golden.examples[0], spec)["outputs"] == [{"name": "probabilities"}]
    with pytest.raises(InvalidGoldenSet, match="expected"):
        parse_golden_set({**doc, "examples": [{"inputs": doc["examples"][0]["inputs"], "expected": None}]})


def test_a_regressor_can_bring_its_own_score_buckets():
    from modelrollout.serving.server.metrics import ServerMetrics
    from prometheus_client import generate_latest

    metrics = ServerMetrics("m", "1", "r")
    assert b'modelrollout_server_prediction_score_bucket' not in generate_latest(metrics.registry)
    metrics.gates.score_histogram((100.0, 200.0)).observe(150)
    lines = [line for line in generate_latest(metrics.registry).decode().splitlines()
             if line.startswith("modelrollout_server_prediction_score_")]
    assert [line.split("le=")[1].split(",")[0] for line in lines if "_bucket" in line] == \
        ['"100.0"', '"200.0"', '"+Inf"']
    assert 'modelrollout_server_prediction_score_count{model="m",revision="r",version="1"} 1.0' in lines
