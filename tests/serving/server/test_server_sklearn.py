"""scikit-learn classifiers converted by skl2onnx with default options, served for real.

skl2onnx ends a classifier with a ZipMap (a sequence of {label: probability} maps) that
the V2 protocol cannot carry; the server cuts it off, so ``output_probability`` is the
FP32 [N, classes] tensor before it and the class labels move into the metadata. Served
predictions must equal scikit-learn's own ``predict`` and ``predict_proba``.
"""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from modelrollout.serving.contract.metric_names import SERVER_BATCH_SIZE

from tests.support.models import (
    binary_body,
    iris_classifier,
    iris_classifier_named,
    json_data,
    read_response,
    write,
)


def serve(start_server, tmp_path: Path, model: bytes, *args: str):
    path = write(tmp_path / "iris" / "model.onnx", model)
    return start_server(["--model-uri", str(path), "--model-name", "iris", *args])


def predict(server, x: np.ndarray, **extra: object) -> tuple[dict, dict[str, np.ndarray]]:
    request = {"inputs": [{"name": "X", "datatype": "FP32", "shape": list(x.shape),
                           "data": json_data("FP32", x)}], **extra}
    response = httpx.post(server.url + "/v2/models/iris/infer", json=request)
    assert response.status_code == 200, response.text
    return read_response(response.content, response.headers.get("inference-header-content-length"))


def assert_like_sklearn(got: dict[str, np.ndarray], clf, x: np.ndarray) -> None:
    if "output_label" in got:
        assert got["output_label"].shape == (len(x),)
        np.testing.assert_array_equal(got["output_label"], clf.predict(x))
    if "output_probability" in got:
        assert got["output_probability"].dtype == np.float32
        np.testing.assert_allclose(got["output_probability"], clf.predict_proba(x), rtol=1e-5,
                                   atol=1e-7)


@pytest.mark.parametrize("kind", ["logreg", "forest"])
def test_classifier_metadata_and_predictions(start_server, tmp_path: Path, kind: str):
    model, x, clf = iris_classifier(kind)
    server = serve(start_server, tmp_path, model)

    meta = httpx.get(server.url + "/v2/models/iris").json()
    assert meta["platform"] == "onnx_onnxv1"
    assert meta["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}]
    label, probability = meta["outputs"]
    assert {k: label[k] for k in ("name", "datatype", "shape")} == {
        "name": "output_label", "datatype": "INT64", "shape": [-1]}
    assert {k: probability[k] for k in ("name", "datatype", "shape")} == {
        "name": "output_probability", "datatype": "FP32", "shape": [-1, 3]}
    # The ZipMap's class labels, in the column order of the probabilities.
    assert probability["parameters"]["labels"] == [str(c) for c in clf.classes_]

    # Every iris row in one request (JSON), then a few rows with binary outputs.
    doc, got = predict(server, x)
    assert [o["name"] for o in doc["outputs"]] == ["output_label", "output_probability"]
    assert [o["shape"] for o in doc["outputs"]] == [[150], [150, 3]]
    assert_like_sklearn(got, clf, x)
    rows = x[::17]
    doc, got = predict(server, rows, parameters={"binary_data_output": True})
    assert all("binary_data_size" in o["parameters"] for o in doc["outputs"])
    assert_like_sklearn(got, clf, rows)

    # Binary input, only the probabilities asked for.
    body, headers = binary_body(
        {"X": ("FP32", x[:5])}, {"outputs": [{"name": "output_probability"}]}
    )
    response = httpx.post(server.url + "/v2/models/iris/infer", content=body, headers=headers)
    length = response.headers.get("inference-header-content-length")
    doc, got = read_response(response.content, length)
    assert list(got) == ["output_probability"]
    assert_like_sklearn(got, clf, x[:5])

    # A single row through Triton's client, binary both ways.
    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    try:
        tensor = triton.InferInput("X", [1, 4], "FP32")
        tensor.set_data_from_numpy(x[70:71])
        result = client.infer("iris", [tensor])
        assert_like_sklearn(
            {"output_label": result.as_numpy("output_label"),
             "output_probability": result.as_numpy("output_probability")},
            clf, x[70:71],
        )
    finally:
        client.close()


def test_classifier_with_string_labels(start_server, tmp_path: Path):
    model, x, clf = iris_classifier_named()
    server = serve(start_server, tmp_path, model)
    meta = httpx.get(server.url + "/v2/models/iris").json()
    label, probability = meta["outputs"]
    assert (label["name"], label["datatype"], label["shape"]) == ("output_label", "BYTES", [-1])
    assert probability["parameters"]["labels"] == ["setosa", "versicolor", "virginica"]
    for binary in (False, True):
        _, got = predict(server, x, parameters={"binary_data_output": binary})
        assert got["output_label"].tolist() == clf.predict(x).tolist()
        assert_like_sklearn({"output_probability": got["output_probability"]}, clf, x)


def test_classifier_under_dynamic_batching(start_server, tmp_path: Path):
    # Requests of different sizes stacked into one run must each get their own rows back,
    # including the 1-D label output.
    model, x, clf = iris_classifier("forest")
    server = serve(start_server, tmp_path, model, "--max-batch-size", "32",
                   "--max-queue-delay-us", "20000", "--workers", "2")
    slices = [x[i : i + 1 + i % 5] for i in range(0, 150, 6)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(slices)) as pool:
        answers = list(pool.map(lambda rows: predict(server, rows)[1], slices))
    for rows, got in zip(slices, answers, strict=True):
        assert_like_sklearn(got, clf, rows)
    # Some requests really shared a run: fewer runs than requests, and every row counted.
    metrics = httpx.get(server.url + "/metrics").text
    runs = _sample(metrics, SERVER_BATCH_SIZE + "_count")
    rows = _sample(metrics, SERVER_BATCH_SIZE + "_sum")
    assert rows == sum(len(s) for s in slices)
    assert runs < len(slices)


def _sample(metrics_text: str, name: str) -> float:
    """The value of the one sample called ``name`` on a /metrics page."""
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics_text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    ]
    assert len(values) == 1, (name, values)
    return values[0]
