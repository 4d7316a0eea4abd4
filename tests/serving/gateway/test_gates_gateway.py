"""Prediction distribution and feedback per revision through a real `modelrollout gateway`
in front of real `modelrollout serve` processes (stable, candidate and shadow): class
counts match what each revision answered, labels reach the process that made the
prediction (and the shadow that got the copy), and accuracy per revision matches the
labels sent."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.support.models import metric, reference, scrape, write
from tests.support.processes import wait_for

pytestmark = pytest.mark.slow

PREDICTIONS = "modelrollout_server_predictions_total"
FEEDBACK = "modelrollout_server_feedback_total"
REJECTED = "modelrollout_server_feedback_rejected_total"
MIRRORED = "modelrollout_gateway_mirrored_total"
GATEWAY_FEEDBACK = "modelrollout_gateway_feedback_total"
UNROUTED = "modelrollout_gateway_feedback_unrouted_total"
IDS = "modelrollout_gateway_answered_ids"
ID_EVICTIONS = "modelrollout_gateway_answered_id_evictions_total"


def iris_models(folder: Path) -> tuple[dict[str, Path], np.ndarray, np.ndarray]:
    """Three classifiers of the bundled iris data: a good one (stable), a much worse one
    (candidate: one split) and one in between (shadow: two features)."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    data = load_iris()
    x, y = data.data.astype(np.float32), data.target
    blind = x.copy()
    blind[:, 2:] = 0  # the shadow learns from the sepals only
    fitted = {
        "stable": (LogisticRegression(max_iter=500).fit(x, y), x),
        "candidate": (DecisionTreeClassifier(max_depth=1, random_state=0).fit(x, y), x),
        "shadow": (LogisticRegression(max_iter=500).fit(blind, y), x),
    }
    paths = {}
    for name, (clf, sample) in fitted.items():
        onx = to_onnx(clf, sample[:1], target_opset={"": 17, "ai.onnx.ml": 3}, options={"zipmap": False})
        paths[name] = write(folder / name / "model.onnx", onx.SerializeToString())
    return paths, x, y


def routes(ports: dict[str, int], weights: tuple[int, int] = (50, 50), mirror: bool = True) -> dict:
    revisions = [
        {"name": "rev-a", "role": "stable", "weight": weights[0],
         "endpoints": [f"127.0.0.1:{ports['stable']}"]},
        {"name": "rev-b", "role": "candidate", "weight": weights[1],
         "endpoints": [f"127.0.0.1:{ports['candidate']}"]},
    ]
    route: dict = {"revisions": revisions}
    if mirror:
        revisions.append({"name": "rev-s", "role": "shadow", "weight": 0,
                          "endpoints": [f"127.0.0.1:{ports['shadow']}"]})
        route["mirror"] = {"revision": "rev-s", "percent": 100}
    return {"models": {"iris": route}}


def start_revisions(start_server, paths: dict[str, Path], names: tuple[str, ...]) -> dict:
    revision = {"stable": "rev-a", "candidate": "rev-b", "shadow": "rev-s"}
    return {name: start_server(["--model-uri", str(paths[name]), "--model-name", "iris",
                                "--revision", revision[name]]) for name in names}


def infer(url: str, row: np.ndarray, **headers: str) -> httpx.Response:
    body = {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": row.tolist()}]}
    response = httpx.post(f"{url}/v2/models/iris/infer", json=body, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response


def test_class_counts_and_accuracy_per_revision_through_the_gateway(start_server, start_gateway, tmp_path):
    paths, x, y = iris_models(tmp_path)
    servers = start_revisions(start_server, paths, ("stable", "candidate", "shadow"))
    gateway = start_gateway(routes({k: s.port for k, s in servers.items()}))
    served: dict[str, list[tuple[str, int, int]]] = {"rev-a": [], "rev-b": []}  # id, predicted, label
    order = np.random.default_rng(5).permutation(len(x))
    for i in order.tolist():
        answer = infer(gateway.url, x[i])
        label_output = next(o for o in answer.json()["outputs"] if o["name"] == "label")
        served[answer.headers["x-modelrollout-revision"]].append(
            (answer.headers["x-request-id"], int(label_output["data"][0]), int(y[i])))
    assert len(served["rev-a"]) > 30 and len(served["rev-b"]) > 30
    for revision, server in (("rev-a", servers["stable"]), ("rev-b", servers["candidate"])):
        want = np.bincount([p for _, p, _ in served[revision]], minlength=3).tolist()
        wait_for(lambda s=server, w=want: [metric(scrape(s.url), PREDICTIONS, **{"class": str(c)})
                                           for c in range(3)] == w, 30, f"{revision}'s class counts")
    # The shadow saw every request: its class counts are its model's answers to all of them.
    wait_for(lambda: metric(scrape(gateway.url), MIRRORED, result="sent") == len(x), 60, "every copy sent")
    (shadow_labels, _) = reference(paths["shadow"].read_bytes(), {"X": x})
    want_shadow = np.bincount(shadow_labels, minlength=3).tolist()
    wait_for(lambda: [metric(scrape(servers["shadow"].url), PREDICTIONS, **{"class": str(c)})
                      for c in range(3)] == want_shadow, 30, "the shadow's class counts")

    # Labels: half one by one, half in one batch, all through the gateway.
    everything = served["rev-a"] + served["rev-b"]
    np.random.default_rng(6).shuffle(everything)
    half = len(everything) // 2
    for request_id, _, label in everything[:half]:
        answer = httpx.post(f"{gateway.url}/v2/models/iris/feedback", json={"id": request_id, "label": label},
                            timeout=10)
        assert answer.status_code == 200 and answer.json()["result"] == "joined", answer.text
    batch = httpx.post(f"{gateway.url}/v2/models/iris/feedback", timeout=10,
                       json={"feedback": [{"id": i, "label": label} for i, _, label in everything[half:]]})
    assert batch.status_code == 200 and batch.json()["joined"] == len(everything) - half

    for revision, server in (("rev-a", servers["stable"]), ("rev-b", servers["candidate"])):
        correct = sum(1 for _, p, label in served[revision] if p == label)
        samples = scrape(server.url)
        assert metric(samples, FEEDBACK, result="correct") == correct
        assert metric(samples, FEEDBACK, result="incorrect") == len(served[revision]) - correct
        assert metric(samples, REJECTED) == 0
    accuracy = {revision: metric(scrape(server.url), FEEDBACK, result="correct") / len(served[revision])
                for revision, server in (("rev-a", servers["stable"]), ("rev-b", servers["candidate"]))}
    # The worse model is seen to be worse (about 0.97 against 0.67 on all of iris; each got
    # a random half, so a margin rather than fixed bounds).
    assert accuracy["rev-a"] > accuracy["rev-b"] + 0.1
    shadow = scrape(servers["shadow"].url)
    assert metric(shadow, FEEDBACK, result="correct") == int((shadow_labels == y).sum())
    assert metric(shadow, FEEDBACK, result="incorrect") == int((shadow_labels != y).sum())
    samples = scrape(gateway.url)
    assert metric(samples, GATEWAY_FEEDBACK, revision="rev-a", result="sent") == len(served["rev-a"])
    assert metric(samples, GATEWAY_FEEDBACK, revision="rev-s", role="shadow", result="sent") == len(x)
    assert metric(samples, IDS) == len(x)


def test_ids_the_gateway_does_not_know(start_server, start_gateway, tmp_path):
    paths, x, y = iris_models(tmp_path)
    servers = start_revisions(start_server, paths, ("stable", "candidate"))
    ports = {k: s.port for k, s in servers.items()}
    gateway = start_gateway(routes(ports, (100, 0), mirror=False), args=["--feedback-ids", "20"])
    ids = [infer(gateway.url, x[i]).headers["x-request-id"] for i in range(60)]
    samples = scrape(gateway.url)
    assert metric(samples, IDS) == 20 and metric(samples, ID_EVICTIONS, reason="capacity") == 40

    url = f"{gateway.url}/v2/models/iris/feedback"
    forgotten = httpx.post(url, json={"id": ids[0], "label": int(y[0])}, timeout=10)
    assert forgotten.status_code == 404 and "x-modelrollout-revision" in forgotten.json()["error"]
    # Named by the revision header, the label is probed for on that revision: the server
    # still holds the prediction.
    probed = httpx.post(url, json={"id": ids[0], "label": int(y[0])}, timeout=10,
                        headers={"x-modelrollout-revision": "rev-a"})
    assert probed.status_code == 200 and probed.json()["result"] == "joined"
    never = httpx.post(url, json={"id": "never-made", "label": 1}, timeout=10,
                       headers={"x-modelrollout-revision": "rev-a"})
    assert never.status_code == 404 and "no prediction with id 'never-made'" in never.json()["error"]
    assert httpx.post(url, json={"id": ids[1], "label": 1}, timeout=10,
                      headers={"x-modelrollout-revision": "rev-z"}).status_code == 404
    batch = httpx.post(url, timeout=10, json={"feedback": [{"id": ids[-1], "label": int(y[59])},
                                                           {"id": ids[2], "label": int(y[2])},
                                                           {"id": ids[-2], "label": [1, 2]}]})
    assert batch.status_code == 200
    assert [r["result"] for r in batch.json()["results"]] == ["joined", "unknown", "invalid"]
    assert httpx.post(url, content=b"[1, 2]", timeout=10).status_code == 400
    assert httpx.post(f"{gateway.url}/v2/models/nope/feedback", json={"id": "x", "label": 1},
                      timeout=10).status_code == 404
    # A probe that finds nothing is counted by the gateway, not as the server's unknown id.
    assert metric(scrape(servers["stable"].url), REJECTED, reason="unknown") == 0
    assert metric(scrape(servers["stable"].url), REJECTED, reason="invalid") == 1
    assert metric(scrape(gateway.url), UNROUTED) == 4  # ids[0], never-made, rev-z, ids[2]

    # The process that made a prediction is gone: a clear 502, never a silent loss.
    gateway.write_routes(routes(ports, (0, 100), mirror=False))
    wait_for(lambda: infer(gateway.url, x[0]).headers["x-modelrollout-revision"] == "rev-b", 30,
             "the new route table")
    made_by_b = infer(gateway.url, x[3]).headers["x-request-id"]
    servers["candidate"].stop()
    gone = httpx.post(url, json={"id": made_by_b, "label": int(y[3])}, timeout=10)
    assert gone.status_code == 502 and gone.json()["result"] == "unreachable"
    assert "rev-b" in gone.json()["error"]
