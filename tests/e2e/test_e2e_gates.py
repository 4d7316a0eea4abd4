"""End to end: the model-aware gates catch what error rate and latency cannot.

- prediction-shift: a candidate as healthy and fast as stable that predicts otherwise on the
  same traffic is rolled back; one that predicts the same passes;
- golden-set: a candidate that does worse on the examples stored with its model fails the
  gate, before any client request reaches it;
- accuracy: with no labels yet the analysis is inconclusive; delayed labels sent back
  through the gateway give each revision its accuracy.

Real processes, real Prometheus, traffic through the gateway.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from modelrollout.operator.analysis.queries import BUILTIN, render

from modelrollout.harness.cluster import LocalCluster, model_deployment
from modelrollout.harness.process import wait_for
from modelrollout.harness.traffic import Traffic, wait_serving
from tests.support.e2e import ERROR_RATE, healthy_on
from tests.support.processes import MODELROLLOUT

pytestmark = pytest.mark.slow

INTERVAL = 3.0
# Measuring goes on while the candidate's first requests are being scraped (inconclusiveLimit).
LATENCY = {"name": "latency-p99", "thresholdRange": {"max": 0.5}, "minSamples": 5, "inconclusiveLimit": 10}
SHIFT = {"name": "prediction-shift", "thresholdRange": {"max": 0.05}, "minSamples": 20,
         "inconclusiveLimit": 10}


def deploy(cluster: LocalCluster, name: str, model: Path, version: str, steps: list, metrics: list,
           **spec) -> None:
    doc = model_deployment(name, model, version, cluster.prometheus.url, steps, INTERVAL, metrics)
    doc["spec"].update(spec)
    cluster.apply(doc)


def start(cluster: LocalCluster, name: str, model: Path, steps: list, metrics: list, **spec) -> Traffic:
    deploy(cluster, name, model, "1.0.0", steps, metrics, **spec)
    cluster.wait_for(name, healthy_on("1.0.0"), what="1.0.0 healthy")
    wait_serving(cluster.gateway.url, name)
    return Traffic(cluster.gateway.url, name).start()


def failed_metrics(message: str) -> str:
    """What an AnalysisFailed message names: the metrics before their details."""
    return message.split("analysis failed:", 1)[1].split("(", 1)[0]


def test_a_healthy_fast_candidate_that_predicts_otherwise_is_rolled_back_by_prediction_shift(cluster, models):
    steps = [{"setWeight": 30}, {"analysis": {"metrics": ["error-rate", "latency-p99", "prediction-shift"]}},
             {"setWeight": 100}]
    metrics = [ERROR_RATE, LATENCY, SHIFT]
    traffic = start(cluster, "shift", models["1.0.0"], steps, metrics)
    try:
        deploy(cluster, "shift", models["2.0.0"], "2.0.0", steps, metrics)  # other weights: other answers
        # A measurement with too few predictions behind it is inconclusive: measure again.
        final = cluster.wait_for("shift", lambda s: s.get("phase") == "Degraded", timeout=150, what="abort")
    finally:
        results = traffic.stop()
    assert final["reason"] == "AnalysisFailed"
    assert failed_metrics(final["message"]).strip() == "prediction-shift"  # error rate and latency passed
    assert [r for r in results if r.status != 200] == []  # healthy by every SRE metric


def test_a_candidate_that_predicts_the_same_passes_prediction_shift(cluster, models):
    steps = [{"setWeight": 30}, {"analysis": {"metrics": ["prediction-shift"]}}, {"setWeight": 100}]
    traffic = start(cluster, "same", models["1.0.0"], steps, [SHIFT])
    try:
        deploy(cluster, "same", models["1.0.1"], "1.0.1", steps, [SHIFT])  # 1.0.0 exported again
        cluster.wait_for("same", healthy_on("1.0.1"), timeout=150,
                         what="1.0.1 promoted")
    finally:
        traffic.stop()


# --- scikit-learn models with a profile and a golden set, built by `modelrollout profile` ---


def iris_folder(tmp_path: Path, name: str, labels_seed: int | None, kind: str = "logreg") -> Path:
    """An iris classifier (input named "input", as the harness's traffic sends) with profile.json
    and golden.json beside it; ``labels_seed`` trains it on shuffled labels: a worse model."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    data = load_iris()
    x, y = data.data.astype(np.float32), data.target
    trained_on = y if labels_seed is None else np.random.default_rng(labels_seed).permutation(y)
    clf = (LogisticRegression(max_iter=500) if kind == "logreg"
           else RandomForestClassifier(n_estimators=20, random_state=0)).fit(x, trained_on)
    onx = to_onnx(clf, initial_types=[("input", FloatTensorType([None, 4]))],
                  target_opset={"": 17, "ai.onnx.ml": 3})
    folder = tmp_path / name
    folder.mkdir()
    (folder / "model.onnx").write_bytes(onx.SerializeToString())
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)  # the true labels: the golden set expects what is right
    done = subprocess.run([MODELROLLOUT, "profile", "--model", str(folder), "--data", str(tmp_path / "x.npy"),
                           "--labels", str(tmp_path / "y.npy"), "--out", str(folder / "profile.json"),
                           "--golden-set", str(folder / "golden.json"), "--golden-size", "40", "--seed", "1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return folder


def test_a_candidate_failing_its_golden_set_never_receives_a_client_request(cluster, tmp_path):
    good, worse = iris_folder(tmp_path, "good", None), iris_folder(tmp_path, "worse", labels_seed=3)
    steps = [{"setWeight": 50}, {"pause": {}}]
    golden = {"goldenSet": {"minAccuracy": 0.8, "tolerance": 0.05}}
    traffic = start(cluster, "golden", good, steps, [], **golden)
    try:
        deploy(cluster, "golden", worse, "2.0.0", steps, [], **golden)
        final = cluster.wait_for("golden", lambda s: s.get("phase") == "Degraded", timeout=150,
                                 what="the golden-set gate")
        time.sleep(1)
    finally:
        results = traffic.stop()
    assert final["reason"] == "GoldenSetFailed" and "below minAccuracy 0.8" in final["message"]
    scores = final["goldenSet"]
    assert scores["examples"] == 40 and scores["candidate"]["accuracy"] < 0.8 <= scores["stable"]["accuracy"]
    candidate = final["history"][-1]["revision"]
    assert results and not [r for r in results if r.revision == candidate]
    events = [e["message"] for e in cluster.kube.list("v1", "Event", cluster.namespace)
              if e["involvedObject"]["name"] == "golden" and e["reason"] == "GoldenSetFailed"]
    assert events and "golden set: accuracy" in events[0]


def test_accuracy_waits_for_labels_then_judges_each_revision_by_the_labels_sent_back(cluster, tmp_path):
    from sklearn.datasets import load_iris

    first, second = iris_folder(tmp_path, "logreg", None), iris_folder(tmp_path, "forest", None, "forest")
    steps = [{"setWeight": 50}, {"analysis": {"metrics": ["accuracy"]}}, {"pause": {}}]
    # minSamples labels within one interval: 15 s, so that a client slowed down by a loaded
    # machine still sends them (at 3 s it had to send 7 labels a second to the candidate).
    metrics = [{"name": "accuracy", "thresholdRange": {"min": 0.8}, "minSamples": 20, "interval": "15s"}]
    deploy(cluster, "labels", first, "1.0.0", steps, metrics)
    cluster.wait_for("labels", healthy_on("1.0.0"), what="1.0.0 healthy")
    wait_serving(cluster.gateway.url, "labels")
    deploy(cluster, "labels", second, "2.0.0", steps, metrics)
    # Nobody sends labels yet: no samples, inconclusive, never passed.
    waiting = cluster.wait_for("labels", lambda s: s.get("reason") == "AnalysisInconclusive", timeout=150,
                               what="an analysis with no labels")
    assert waiting["analysis"][-1]["message"].startswith("0 samples")
    data = load_iris()
    answered: dict[str, list[bool]] = {}  # revision -> was each labelled answer right
    stop = threading.Event()

    def clients_then_labels() -> None:
        """Requests with ids; a moment later the true label of each, through the gateway."""
        url = f"{cluster.gateway.url}/v2/models/labels"
        with httpx.Client(timeout=10) as client:
            for i in range(2000):
                if stop.is_set():
                    return
                row = i % len(data.target)
                request_id = f"label-{i}"
                answer = client.post(f"{url}/infer", headers={"x-request-id": request_id}, json={"inputs": [
                    {"name": "input", "datatype": "FP32", "shape": [1, 4],
                     "data": [float(v) for v in data.data[row]]}]})
                if answer.status_code != 200:
                    continue
                label = next(o for o in answer.json()["outputs"] if o["name"] == "output_label")["data"][0]
                sent = client.post(f"{url}/feedback", json={"id": request_id, "label": int(data.target[row])})
                if sent.status_code == 200:
                    revision = answer.headers["x-modelrollout-revision"]
                    answered.setdefault(revision, []).append(int(label) == int(data.target[row]))
                time.sleep(0.02)

    sender = threading.Thread(target=clients_then_labels, daemon=True)
    sender.start()
    try:
        # Paused for a person, since no label came within inconclusiveLimit: once the candidate
        # has minSamples labels and more (counted as sent, however slowly a loaded machine
        # sends them), a person resumes it, to measure afresh.
        candidate = waiting["candidateRevision"]
        wait_for(lambda: len(answered.get(candidate, ())) >= 25, 120, "the candidate's labels sent back")
        cluster.command("labels", "resume", "labels-resume")
        judged = cluster.wait_for("labels", lambda s: s.get("reason") == "PausedByStep"
                                  and s.get("currentStep") == 2, timeout=150,
                                  what="accuracy measured on the labels")
        # Each revision's accuracy as the gate's query reads it, over the labels of the last 30 s.
        query = BUILTIN["server"]["accuracy"].value
        per_revision = {}
        for revision in (judged["stableRevision"], judged["candidateRevision"]):
            result = cluster.prometheus.query(render(query, "labels", cluster.namespace, revision, 30))
            per_revision[revision] = float(result[0]["value"][1])
    finally:
        stop.set()
        sender.join(30)
    gauge = next(line for line in httpx.get(cluster.operator.metrics_url).text.splitlines()
                 if line.startswith("modelrollout_analysis_value") and 'name="labels"' in line
                 and 'metric="accuracy"' in line)
    assert judged["traffic"]["candidate"] == 50
    for revision, measured in per_revision.items():
        truth = answered[revision]  # right as often as its answers to labelled requests were
        assert len(truth) >= 20 and abs(measured - sum(truth) / len(truth)) < 0.1, (revision, measured)
    candidate_truth = answered[judged["candidateRevision"]]
    assert float(gauge.rsplit(" ", 1)[1]) >= 0.8 and sum(candidate_truth) / len(candidate_truth) >= 0.8


# --- the same gates in the other strategies' analyses ---


def test_a_shadow_that_predicts_otherwise_is_caught_by_prediction_shift_on_the_mirror(cluster, models):
    """The shadow's answers are never sent to a client; its predictions still count, on exactly
    stable's traffic, so prediction-shift judges it before anyone sees it."""
    strategy = {"shadow": {"duration": "5m", "then": "promote",
                           "analysis": {"metrics": ["prediction-shift"]}}}
    traffic = start(cluster, "shadow-shift", models["1.0.0"], [], [SHIFT], strategy=strategy)
    try:
        deploy(cluster, "shadow-shift", models["2.0.0"], "2.0.0", [], [SHIFT], strategy=strategy)
        final = cluster.wait_for("shadow-shift", lambda s: s.get("phase") == "Degraded", timeout=150,
                                 what="the shadow's abort")
    finally:
        results = traffic.stop()
    assert final["reason"] == "AnalysisFailed" and "prediction-shift" in failed_metrics(final["message"])
    candidate = final["history"][-1]["revision"]
    assert results and [r for r in results if r.revision == candidate] == []
    assert [r for r in results if r.status != 200] == []


def test_a_blue_green_preview_fed_inputs_unlike_its_profile_fails_input_drift(cluster, tmp_path):
    """Testers send the preview inputs from another distribution than the model's reference
    sample (uniform in [0, 1) against iris measurements): the pre-promotion analysis fails on
    input-drift and no client is ever switched."""
    first, second = iris_folder(tmp_path, "logreg", None), iris_folder(tmp_path, "forest", None, "forest")
    drift = {"name": "input-drift", "thresholdRange": {"max": 0.25}, "minSamples": 50,
             "inconclusiveLimit": 10}
    strategy = {"blueGreen": {"prePromotionAnalysis": {"metrics": ["input-drift"]}}}
    clients = start(cluster, "bg-drift", first, [], [drift], strategy=strategy)
    testers = None
    try:
        deploy(cluster, "bg-drift", second, "2.0.0", [], [drift], strategy=strategy)
        cluster.wait_for("bg-drift", lambda s: s.get("gatePassed"), timeout=120, what="the preview's gate")
        testers = Traffic(cluster.gateway.url, "bg-drift", rate_per_second=20,
                          headers={"x-modelrollout-revision": "preview"}).start()
        final = cluster.wait_for("bg-drift", lambda s: s.get("phase") == "Degraded", timeout=150,
                                 what="the preview's abort")
    finally:
        results = clients.stop()
        tested = testers.stop() if testers else []
    assert final["reason"] == "AnalysisFailed" and "input-drift" in failed_metrics(final["message"])
    candidate = final["history"][-1]["revision"]
    assert any(r.revision == candidate for r in tested)  # the testers reached it
    assert results and [r for r in results if r.revision == candidate] == []  # no client did
