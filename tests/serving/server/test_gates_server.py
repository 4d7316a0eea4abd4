"""The server's model-aware signals, end to end: `modelrollout profile` builds profile.json
and golden.json from scikit-learn's bundled data, real `modelrollout serve` processes load
them, real requests go in, and the server's /metrics and answers are the verdict."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from modelrollout.serving.contract.golden import parse_golden_set, request_of, score
from modelrollout.serving.contract.predictions import prediction_of

from tests.support.models import fp32_request, metric, reference, scrape, tiny_mlp, write
from tests.support.processes import MODELROLLOUT, wait_for

pytestmark = pytest.mark.slow

PSI = "modelrollout_server_input_drift_psi"
KS = "modelrollout_server_input_drift_ks"
WINDOW = "modelrollout_server_input_drift_window_rows"
VIOLATIONS = "modelrollout_server_input_violations_total"
VIOLATING_ROWS = "modelrollout_server_input_violating_rows_total"
MONITORED = "modelrollout_server_monitored_rows_total"
PREDICTIONS = "modelrollout_server_predictions_total"
OUTPUT_VIOLATIONS = "modelrollout_server_output_violations_total"
FEEDBACK = "modelrollout_server_feedback_total"
REJECTED = "modelrollout_server_feedback_rejected_total"
STORE_ROWS = "modelrollout_server_feedback_store_rows"
STORE_EVICTIONS = "modelrollout_server_feedback_store_evictions_total"
ABS_ERROR = "modelrollout_server_feedback_abs_error"
SCORE = "modelrollout_server_prediction_score"


def profile(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([MODELROLLOUT, "profile", *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def serve(start_server, model: Path, name: str, *args: str):
    return start_server(["--model-uri", str(model), "--model-name", name, *args])


def post(url: str, name: str, x: np.ndarray, input_name: str = "input", **extra) -> httpx.Response:
    body = json.dumps(fp32_request(x, input_name, **extra))  # json, not orjson: NaN literals
    return httpx.post(f"{url}/v2/models/{name}/infer", content=body, timeout=10.0)


def feedback(url: str, name: str, doc: dict, headers: dict | None = None) -> httpx.Response:
    return httpx.post(f"{url}/v2/models/{name}/feedback", json=doc, headers=headers, timeout=10.0)


def tiny_folder(tmp_path: Path, reference_rows: np.ndarray, **metadata) -> Path:
    folder = tmp_path / "tiny"
    write(folder / "model.onnx", tiny_mlp())
    if metadata:
        (folder / "metadata.json").write_text(json.dumps(metadata))
    np.save(tmp_path / "reference.npy", reference_rows)
    profile("--model", str(folder), "--data", str(tmp_path / "reference.npy"),
            "--out", str(folder / "profile.json"))
    return folder


# --- input drift and input checks ---


def test_shifted_inputs_raise_the_drift_gauges_and_reference_inputs_do_not(start_server, tmp_path):
    """Statistical (seeded): 1000 rows from the reference distribution stay under PSI 0.1 and
    KS 0.1 on every feature; 1000 rows with feature 0 moved by one standard deviation pass
    PSI 0.25 and KS 0.25 on that feature only. Out-of-range and NaN values are counted
    exactly."""
    rng = np.random.default_rng(12)
    folder = tiny_folder(tmp_path, rng.normal(0, 1, (5000, 4)).astype(np.float32))
    doc = json.loads((folder / "profile.json").read_text())
    low = np.array([f["range"]["min"] for f in doc["features"]])
    high = np.array([f["range"]["max"] for f in doc["features"]])
    calm = serve(start_server, folder, "tiny", "--revision", "stable")
    moved = serve(start_server, folder, "tiny", "--revision", "candidate", "--allow-nonfinite")
    out_of_range, nans, bad_rows = np.zeros(4, dtype=int), np.zeros(4, dtype=int), 0
    for _ in range(50):  # 50 requests of 20 rows, to each
        assert post(calm.url, "tiny", rng.normal(0, 1, (20, 4)).astype(np.float32)).status_code == 200
        rows = rng.normal(0, 1, (20, 4)).astype(np.float32)
        rows[:, 0] += 1.0
        rows[rng.random(20) < 0.05, 2] = np.nan
        assert post(moved.url, "tiny", rows).status_code == 200
        with np.errstate(invalid="ignore"):
            outside = (rows < low) | (rows > high)
        out_of_range += outside.sum(axis=0)
        nans += np.isnan(rows).sum(axis=0)
        bad_rows += int((outside | np.isnan(rows)).any(axis=1).sum())
    for server in (calm, moved):  # the window holds all 1000 rows once the gauge says so
        wait_for(lambda s=server: metric(scrape(s.url), WINDOW) == 1000, 30, "a full drift window")
    calm_samples, moved_samples = scrape(calm.url), scrape(moved.url)
    for j in range(4):
        feature = f"input_{j}"
        assert metric(calm_samples, PSI, feature=feature) < 0.1
        assert metric(calm_samples, KS, feature=feature) < 0.1
        if j == 0:
            assert metric(moved_samples, PSI, feature=feature) > 0.25
            assert metric(moved_samples, KS, feature=feature) > 0.25
        else:
            assert metric(moved_samples, PSI, feature=feature) < 0.1
    assert nans[2] > 0 and out_of_range[0] > 0
    for j in range(4):
        assert metric(moved_samples, VIOLATIONS, feature=f"input_{j}", kind="out_of_range") == out_of_range[j]
        assert metric(moved_samples, VIOLATIONS, feature=f"input_{j}", kind="missing") == nans[j]
    assert metric(moved_samples, VIOLATING_ROWS) == bad_rows
    assert metric(moved_samples, MONITORED) == 1000


def test_class_counts_output_bounds_and_the_profile_digest(start_server, tmp_path):
    rng = np.random.default_rng(3)
    folder = tiny_folder(tmp_path, rng.normal(0, 1, (500, 4)).astype(np.float32),
                         outputBounds={"probabilities": {"max": 0.8}})
    server = serve(start_server, folder, "tiny", "--revision", "r1")
    model = (folder / "model.onnx").read_bytes()
    want_classes = np.zeros(3, dtype=int)
    want_violations = 0
    for _ in range(40):
        x = rng.normal(0, 2, (5, 4)).astype(np.float32)
        assert post(server.url, "tiny", x).status_code == 200
        (probabilities,) = reference(model, {"input": x})
        want_classes += np.bincount(probabilities.argmax(axis=1), minlength=3)
        want_violations += int((probabilities > 0.8).any(axis=1).sum())
    wait_for(lambda: metric(scrape(server.url), MONITORED) == 200, 30, "200 monitored rows")
    samples = scrape(server.url)
    assert [metric(samples, PREDICTIONS, revision="r1", **{"class": str(c)}) for c in range(3)] == \
        want_classes.tolist()
    assert 0 < want_violations < 200
    assert metric(samples, OUTPUT_VIOLATIONS, output="probabilities") == want_violations
    digest = hashlib.sha256((folder / "profile.json").read_bytes()).hexdigest()
    assert metric(samples, "modelrollout_server_profile_info", sha256=digest) == 1
    meta = httpx.get(f"{server.url}/v2/models/tiny").json()
    assert meta["parameters"]["profile_sha256"] == digest
    assert meta["parameters"]["prediction"] == {"output": "probabilities", "kind": "classification",
                                                "method": "argmax"}
    assert httpx.get(f"{server.url}/v2/models/tiny/profile").content == (folder / "profile.json").read_bytes()
    missing = httpx.get(f"{server.url}/v2/models/tiny/golden")
    assert missing.status_code == 404 and "no golden.json" in missing.json()["error"]


def test_a_profile_that_does_not_fit_the_model_keeps_the_server_unready(start_server, tmp_path):
    folder = tiny_folder(tmp_path, np.random.default_rng(0).normal(0, 1, (100, 4)).astype(np.float32))
    doc = json.loads((folder / "profile.json").read_text())
    doc["features"][0]["input"] = "pixels"
    (folder / "profile.json").write_text(json.dumps(doc))
    server = start_server(["--model-uri", str(folder), "--model-name", "tiny"], ready=False)
    answer = wait_for(lambda: (r := httpx.get(f"{server.url}/v2/health/ready")).status_code == 503
                      and "failed to load" in r.text and r, 30, "the load failure")
    assert "profile.json does not fit the model" in answer.json()["error"]
    assert "reads input 'pixels'" in answer.json()["error"]
    assert metric(scrape(server.url), "modelrollout_server_failures_total", reason="load") == 1


# --- feedback on the server itself ---


def test_feedback_answers_joins_and_bounds(start_server, tmp_path):
    model = write(tmp_path / "tiny.onnx", tiny_mlp())
    server = serve(start_server, model, "tiny", "--feedback-store-size", "50", "--feedback-ttl-seconds", "5")
    x = np.random.default_rng(0).normal(0, 1, (2, 4)).astype(np.float32)
    (probabilities,) = reference(model.read_bytes(), {"input": x})
    predicted = probabilities.argmax(axis=1).tolist()
    answer = post(server.url, "tiny", x, id="two-rows")
    assert answer.status_code == 200
    request_id = answer.headers["x-request-id"]
    statuses = []

    def send(doc: dict) -> httpx.Response:
        response = feedback(server.url, "tiny", doc)
        statuses.append(response.status_code)
        return response

    unknown = send({"id": "never-made", "label": 0})
    assert unknown.status_code == 404 and unknown.json()["result"] == "unknown" and "error" in unknown.json()
    invalid = send({"id": "two-rows", "label": 1})
    assert invalid.status_code == 400 and "2 row(s)" in invalid.json()["error"]
    joined = send({"id": "two-rows", "label": [predicted[0], (predicted[1] + 1) % 3]})
    assert joined.status_code == 200 and joined.json() == {"id": "two-rows", "result": "joined", "rows": 2,
                                                           "correct": 1}
    assert send({"id": request_id, "label": [0, 0]}).status_code == 409  # the same prediction
    assert send({"feedback": []}).status_code == 400
    malformed = httpx.post(f"{server.url}/v2/models/tiny/feedback", content=b"{", timeout=5)
    assert malformed.status_code == 400 and "malformed JSON" in malformed.json()["error"]
    assert feedback(server.url, "other", {"id": "x", "label": 1}).status_code == 404
    assert post(server.url, "tiny", x[:1], id="late").status_code == 200
    ids = []
    for _ in range(120):  # more rows than the store holds
        response = post(server.url, "tiny", x[:1])
        ids.append(response.headers["x-request-id"])
    batch = send({"feedback": [{"id": ids[0], "label": 0}, {"id": ids[-1], "label": predicted[0]},
                               {"id": ids[-2], "label": "not a class"}, {"id": "nope", "label": 1}]})
    assert batch.status_code == 200
    assert {k: batch.json()[k] for k in ("joined", "unknown", "invalid")} == {"joined": 2, "unknown": 2,
                                                                             "invalid": 0}
    assert [r["result"] for r in batch.json()["results"]] == ["unknown", "joined", "joined", "unknown"]
    samples = scrape(server.url)
    assert metric(samples, STORE_ROWS) == 50
    # 123 rows went in, 50 are held; the two-row prediction had its label when it went
    assert metric(samples, STORE_EVICTIONS) == 123 - 50 - 2
    time.sleep(6)  # past the 5 s TTL
    expired = send({"id": ids[-3], "label": 0})
    assert expired.status_code == 410 and "older than the 5 s" in expired.json()["error"]
    samples = scrape(server.url)
    assert metric(samples, FEEDBACK, result="correct") == 2  # the two-row one's first row, ids[-1]
    assert metric(samples, FEEDBACK, result="incorrect") == 2  # its second row, "not a class"
    assert metric(samples, REJECTED, reason="unknown") == 3
    assert metric(samples, REJECTED, reason="invalid") == 1
    assert metric(samples, REJECTED, reason="duplicate") == 1
    assert metric(samples, REJECTED, reason="expired") == 1
    assert all(status < 500 for status in statuses)


def test_regressor_profile_scores_and_feedback_errors(start_server, tmp_path):
    from skl2onnx import to_onnx
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    data = load_diabetes()
    x = data.data.astype(np.float32)
    folder = tmp_path / "diabetes"
    ridge = to_onnx(Ridge().fit(x, data.target), x[:1], target_opset={"": 17, "ai.onnx.ml": 3})
    write(folder / "model.onnx", ridge.SerializeToString())
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", data.target)
    out = profile("--model", str(folder), "--data", str(tmp_path / "x.npy"),
                  "--labels", str(tmp_path / "y.npy"), "--out", str(folder / "profile.json"),
                  "--golden-set", str(folder / "golden.json"),
                  "--golden-size", "25")
    assert "regression from output 'variable'" in out.stdout
    doc = json.loads((folder / "profile.json").read_text())
    assert len(doc["features"]) == 10 and doc["prediction"]["kind"] == "regression"
    predictions = ort.InferenceSession((folder / "model.onnx").read_bytes()).run(None, {"X": x})[0][:, 0]
    errors = np.abs(predictions.astype(np.float64) - data.target)
    assert doc["reference"]["meanAbsError"] == pytest.approx(errors.mean(), rel=1e-9)
    assert doc["reference"]["maxAbsError"] == pytest.approx(errors.max(), rel=1e-9)
    server = serve(start_server, folder, "diabetes")
    sent = []
    for i in range(60):
        answer = post(server.url, "diabetes", x[i : i + 1], input_name="X", id=f"row-{i}")
        sent.append(answer.json()["outputs"][0]["data"][0])
    result = feedback(server.url, "diabetes",
                      {"feedback": [{"id": f"row-{i}", "label": float(data.target[i])} for i in range(60)]})
    assert result.json()["joined"] == 60
    samples = scrape(server.url)
    assert metric(samples, SCORE + "_count") == 60
    assert metric(samples, ABS_ERROR + "_count") == 60
    want = sum(abs(p - t) for p, t in zip(sent, data.target[:60], strict=True))
    assert metric(samples, ABS_ERROR + "_sum") == pytest.approx(want, rel=1e-5)
    golden = parse_golden_set(httpx.get(f"{server.url}/v2/models/diabetes/golden").json())
    assert len(golden.examples) == 25
    got = [prediction_of(httpx.post(f"{server.url}/v2/models/diabetes/infer",
                                    json=request_of(e, golden.prediction)).json(), golden.prediction)
           for e in golden.examples]
    replay = score(golden.prediction, [e.expected for e in golden.examples], got)
    assert replay.max_abs_error == pytest.approx(golden.reference["maxAbsError"], rel=1e-6)


# --- the profile command ---


def iris_folder(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray, object]:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    data = load_iris()
    x = data.data.astype(np.float32)
    clf = LogisticRegression(max_iter=500).fit(x, data.target)
    folder = tmp_path / "iris"
    onx = to_onnx(clf, x[:1], target_opset={"": 17, "ai.onnx.ml": 3})
    write(folder / "model.onnx", onx.SerializeToString())
    with open(tmp_path / "iris.csv", "w") as f:
        f.write(",".join(data.feature_names) + "\n")
        f.writelines(",".join(repr(float(v)) for v in row) + "\n" for row in x)
    (tmp_path / "labels.csv").write_text("species\n" + "\n".join(str(t) for t in data.target) + "\n")
    return folder, x, data.target, clf


def test_profile_of_an_iris_classifier_and_its_golden_set_replayed(start_server, tmp_path):
    folder, x, y, clf = iris_folder(tmp_path)
    out = profile("--model", str(folder), "--data", str(tmp_path / "iris.csv"),
                  "--labels", str(tmp_path / "labels.csv"), "--out", str(folder / "profile.json"),
                  "--golden-set", str(folder / "golden.json"), "--golden-size", "30", "--seed", "4")
    assert "4 features (0 categorical) from 150 rows" in out.stdout
    doc = json.loads((folder / "profile.json").read_text())
    assert [f["name"] for f in doc["features"]] == ["sepal length (cm)", "sepal width (cm)",
                                                    "petal length (cm)", "petal width (cm)"]
    for j, feature in enumerate(doc["features"]):
        assert (feature["input"], feature["index"], feature["type"]) == ("X", j, "numeric")
        assert feature["range"] == {"min": float(x[:, j].min()), "max": float(x[:, j].max())}
        assert sum(feature["bins"]["expected"]) == pytest.approx(1.0)
        assert feature["quantiles"]["values"][50] == pytest.approx(float(np.median(x[:, j])))
    predicted = clf.predict(x)
    assert doc["prediction"]["output"] == "output_label"
    assert doc["prediction"]["classFrequencies"] == pytest.approx(
        {str(c): float(np.mean(predicted == c)) for c in range(3)}, abs=2 / 150)
    assert doc["reference"]["accuracy"] == pytest.approx(clf.score(x, y), abs=2 / 150)
    golden = json.loads((folder / "golden.json").read_text())
    assert len(golden["examples"]) == 30 and golden["prediction"]["method"] == "label"
    for example in golden["examples"]:
        row = np.array(example["inputs"][0]["data"], dtype=np.float32)
        index = int(np.flatnonzero((x == row).all(axis=1))[0])
        assert example["expected"] == str(y[index])
    server = serve(start_server, folder, "iris")
    parsed = parse_golden_set(httpx.get(f"{server.url}/v2/models/iris/golden").json())
    answers = [prediction_of(httpx.post(f"{server.url}/v2/models/iris/infer",
                                        json=request_of(e, parsed.prediction)).json(), parsed.prediction)
               for e in parsed.examples]
    replay = score(parsed.prediction, [e.expected for e in parsed.examples], answers)
    assert replay.accuracy == golden["reference"]["accuracy"] and replay.failed == 0
    meta = httpx.get(f"{server.url}/v2/models/iris").json()["parameters"]
    assert meta["golden_sha256"] == hashlib.sha256((folder / "golden.json").read_bytes()).hexdigest()


def test_profile_command_categorical_features_and_clear_errors(tmp_path):
    folder, _, _, _ = iris_folder(tmp_path)
    profile("--model", str(folder), "--data", str(tmp_path / "iris.csv"), "--out", str(tmp_path / "p.json"),
            "--categorical", "petal width (cm)")
    feature = json.loads((tmp_path / "p.json").read_text())["features"][3]
    assert feature["type"] == "categorical" and "0.2" in feature["categories"]["values"]
    assert sum(feature["categories"]["expected"]) + feature["categories"]["other"] == pytest.approx(1.0)
    (tmp_path / "narrow.csv").write_text("a,b\n1,2\n3,4\n")
    bad = subprocess.run([MODELROLLOUT, "profile", "--model", str(folder), "--data",
                          str(tmp_path / "narrow.csv"), "--out", str(tmp_path / "q.json")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "input 'X' takes 4 columns; the sample has 2" in bad.stderr
    no_labels = subprocess.run([MODELROLLOUT, "profile", "--model", str(folder), "--data",
                                str(tmp_path / "iris.csv"), "--out", str(tmp_path / "q.json"),
                                "--golden-set", str(tmp_path / "g.json")], capture_output=True, text=True,
                               timeout=60)
    assert no_labels.returncode != 0 and "needs the true labels: give --labels" in no_labels.stderr


def colour_and_size_model() -> bytes:
    """A text input and a number: ``colour`` BYTES [N, 1] and ``size`` FP32 [N, 1] ->
    ``score`` FP32 [N, 1] = size + a weight per colour (ai.onnx.ml LabelEncoder)."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("LabelEncoder", ["colour"], ["weight"], domain="ai.onnx.ml",
                          keys_strings=["red", "green", "blue"], values_floats=[1.0, 2.0, 3.0],
                          default_float=0.0),
         helper.make_node("Add", ["size", "weight"], ["score"])],
        "colour_and_size",
        [helper.make_tensor_value_info("colour", TensorProto.STRING, ["n", 1]),
         helper.make_tensor_value_info("size", TensorProto.FLOAT, ["n", 1])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["n", 1])],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 2)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model.SerializeToString()


def test_a_text_feature_profiled_from_a_csv_and_checked_live(start_server, tmp_path):
    rng = np.random.default_rng(8)
    folder = tmp_path / "colours"
    write(folder / "model.onnx", colour_and_size_model())
    colours = rng.choice(["red", "green", "blue"], 2000, p=[0.5, 0.3, 0.2])
    with open(tmp_path / "sample.csv", "w") as f:
        f.write("size,colour\n")  # the columns in any order: they are read by name
        f.writelines(f"{rng.normal(10, 2):.4f},{c}\n" for c in colours)
    out = profile("--model", str(folder), "--data", str(tmp_path / "sample.csv"),
                  "--out", str(folder / "profile.json"))
    assert "2 features (1 categorical)" in out.stdout and "regression from output 'score'" in out.stdout
    server = serve(start_server, folder, "colours", "--drift-window-rows", "500")
    live = rng.choice(["red", "green", "blue", "purple"], 500, p=[0.1, 0.3, 0.4, 0.2])  # a shifted mix
    for start in range(0, 500, 50):
        body = {"inputs": [
            {"name": "colour", "datatype": "BYTES", "shape": [50, 1],
             "data": live[start : start + 50].tolist()},
            {"name": "size", "datatype": "FP32", "shape": [50, 1], "data": rng.normal(10, 2, 50).tolist()}]}
        assert httpx.post(f"{server.url}/v2/models/colours/infer", json=body, timeout=10).status_code == 200
    wait_for(lambda: metric(scrape(server.url), WINDOW) == 500, 30, "a full drift window")
    samples = scrape(server.url)
    assert metric(samples, VIOLATIONS, feature="colour", kind="out_of_range") == int((live == "purple").sum())
    assert metric(samples, PSI, feature="colour") > 0.25
    assert metric(samples, KS, feature="colour") is None  # KS is for numeric features
    assert metric(samples, PSI, feature="size") < 0.1
    assert metric(samples, SCORE + "_count") == 500
