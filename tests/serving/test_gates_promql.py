"""The example queries of docs/gates.md, read from the page and run by a real Prometheus
scraping real servers: a stable and a candidate classifier, a stable and a candidate
regressor, all given the same traffic and the same labels. Each query's value is checked
against what the client sent and saw (PSI by hand, Jensen-Shannon and KS with scipy)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pytest
from modelrollout.serving.contract.metric_names import SCORE_BUCKETS
from scipy.spatial.distance import jensenshannon

from modelrollout.harness.prometheus import PrometheusProcess
from tests.support.models import fp32_request, reference, scrape, tiny_mlp, unary, write
from tests.support.processes import MODELROLLOUT, wait_for

pytestmark = pytest.mark.slow

DOC = Path(__file__).resolve().parents[2] / "docs" / "gates.md"
REQUESTS = 300


def documented_queries() -> dict[str, str]:
    """``<!-- query: name -->`` followed by a promql block, for every query on the page."""
    found = re.findall(r"<!-- query: ([\w-]+) -->\s*```promql\n(.*?)```", DOC.read_text(), re.S)
    return {name: body.strip() for name, body in found}


def render(query: str, model: str) -> str:
    return (query.replace("{{model}}", model).replace("{{revision}}", "cand")
            .replace("{{stable}}", "stable").replace("{{interval}}", "5m"))


def test_the_documented_queries_on_real_scrapes(start_server, tmp_path):
    queries = documented_queries()
    assert set(queries) == {"prediction-shift-psi", "prediction-shift-js", "prediction-shift-ks",
                            "prediction-shift-reference",
                            "input-drift", "input-drift-rows", "input-violations", "output-violations",
                            "accuracy", "accuracy-samples", "mean-abs-error"}
    rng = np.random.default_rng(21)
    # Classifiers: two different MLPs; the candidate has a profile and output bounds.
    stable_model, cand_model = tiny_mlp(0), tiny_mlp(1)
    write(tmp_path / "stable" / "model.onnx", stable_model)
    cand = tmp_path / "cand"
    write(cand / "model.onnx", cand_model)
    (cand / "metadata.json").write_text(json.dumps({"outputBounds": {"probabilities": {"max": 0.7}}}))
    np.save(tmp_path / "reference.npy", rng.normal(0, 1, (2000, 4)).astype(np.float32))
    subprocess.run([MODELROLLOUT, "profile", "--model", str(cand), "--data",
                    str(tmp_path / "reference.npy"), "--out", str(cand / "profile.json")],
                   check=True, capture_output=True, timeout=120)
    # Regressors: y = x and y = |x|.
    identity = write(tmp_path / "identity.onnx", unary("Identity", ["n", 1]))
    absolute = write(tmp_path / "abs.onnx", unary("Abs", ["n", 1]))
    models = {("tiny", "stable"): tmp_path / "stable", ("tiny", "cand"): cand,
              ("reg", "stable"): identity, ("reg", "cand"): absolute}
    servers = {(model, revision): start_server(["--model-uri", str(path), "--model-name", model,
                                                "--revision", revision])
               for (model, revision), path in models.items()}
    targets = [f"127.0.0.1:{s.port}" for s in servers.values()]
    prometheus = PrometheusProcess(tmp_path / "prometheus", targets)
    try:
        # Every series is scraped at 0 before any traffic, as in a rollout.
        wait_for(lambda: len(prometheus.query("modelrollout_server_monitored_rows_total")) == 4, 30,
                 "a first scrape of every server")
        x = rng.normal(0.3, 1.2, (REQUESTS, 4)).astype(np.float32)  # somewhat off the profile
        truth = rng.integers(0, 3, REQUESTS)
        values = rng.normal(0, 2, (REQUESTS, 1)).astype(np.float32)
        true_values = rng.normal(0, 2, REQUESTS)
        inputs = {"tiny": lambda i: fp32_request(x[i : i + 1], id=f"tiny-{i}"),
                  "reg": lambda i: fp32_request(values[i : i + 1], "x", id=f"reg-{i}")}
        labels = {"tiny": truth, "reg": true_values}
        with httpx.Client(timeout=10) as client:
            for i in range(REQUESTS):
                for (model, _), server in servers.items():
                    answer = client.post(f"{server.url}/v2/models/{model}/infer", json=inputs[model](i))
                    assert answer.status_code == 200
            for (model, _), server in servers.items():
                items = [{"id": f"{model}-{i}", "label": labels[model][i].item()} for i in range(REQUESTS)]
                answer = client.post(f"{server.url}/v2/models/{model}/feedback", json={"feedback": items})
                assert answer.json()["joined"] == REQUESTS
        for model, revision in servers:
            selector = f'{{model="{model}",revision="{revision}"}}'
            seen = (f"sum(modelrollout_server_monitored_rows_total{selector}) == {REQUESTS} and "
                    f"(sum(modelrollout_server_feedback_total{selector}) "
                    f"or sum(modelrollout_server_feedback_abs_error_count{selector})) == {REQUESTS}")
            wait_for(lambda q=seen: prometheus.query(q), 30, f"Prometheus to see all of {model}/{revision}")
        window = render(queries["input-drift-rows"], "tiny") + f" == {REQUESTS}"
        wait_for(lambda: prometheus.query(window), 30, "Prometheus to scrape the full drift window")

        def value(name: str, model: str = "tiny") -> float:
            (sample,) = prometheus.query(render(queries[name], model))
            return float(sample["value"][1])

        # What the client saw, computed here.
        stable_p, cand_p = (reference(m, {"input": x})[0] for m in (stable_model, cand_model))
        p = np.bincount(cand_p.argmax(1), minlength=3) / REQUESTS
        q = np.bincount(stable_p.argmax(1), minlength=3) / REQUESTS
        pf, qf = np.maximum(p, 1e-4), np.maximum(q, 1e-4)
        psi = float(((pf - qf) * np.log(pf / qf)).sum())
        assert value("prediction-shift-psi") == pytest.approx(psi, abs=1e-9)
        assert value("prediction-shift-js") == pytest.approx(jensenshannon(p, q) ** 2, abs=1e-9)
        assert value("prediction-shift-psi") > 0.05  # two different models do differ

        # Against the profile (the guard): the candidate's shares on the traffic, and the ones its
        # profile recorded on its own sample.
        profiled = json.loads((cand / "profile.json").read_text())["prediction"]["classFrequencies"]
        expected = np.array([profiled.get(str(k), 0.0) for k in range(3)])
        assert expected.sum() == pytest.approx(1.0)
        assert value("prediction-shift-reference") == pytest.approx(jensenshannon(p, expected) ** 2, abs=1e-9)
        assert value("prediction-shift-reference") > 0.001  # the traffic is off the profile's sample

        edges = np.array([*SCORE_BUCKETS, np.inf])
        stable_cdf = (values[:, 0][None, :] <= edges[:, None]).mean(axis=1)
        cand_cdf = (np.abs(values[:, 0])[None, :] <= edges[:, None]).mean(axis=1)
        ks = np.abs(cand_cdf - stable_cdf).max()
        assert value("prediction-shift-ks", "reg") == pytest.approx(ks, abs=1e-9)

        cand_samples = scrape(servers[("tiny", "cand")].url)
        drift = [v for n, _, v in cand_samples if n == "modelrollout_server_input_drift_psi"]
        assert len(drift) == 4 and value("input-drift") == pytest.approx(max(drift))
        assert value("input-drift") > 0.05  # the traffic is off the profile on purpose
        profile = json.loads((cand / "profile.json").read_text())
        low = np.array([f["range"]["min"] for f in profile["features"]])
        high = np.array([f["range"]["max"] for f in profile["features"]])
        violating = ((x < low) | (x > high)).any(axis=1).mean()
        assert violating > 0 and value("input-violations") == pytest.approx(violating, abs=1e-9)
        bounded = (cand_p > 0.7).any(axis=1).mean()
        assert 0 < bounded < 1 and value("output-violations") == pytest.approx(bounded, abs=1e-9)

        accuracy = (cand_p.argmax(1) == truth).mean()
        assert value("accuracy") == pytest.approx(accuracy, abs=1e-9)
        # increase() extrapolates to the end of the window: never below what was counted here,
        # and above it by up to the share of the window the series had been scraped for.
        assert REQUESTS <= value("accuracy-samples") < 2 * REQUESTS
        errors = np.abs(np.abs(values[:, 0]).astype(np.float64) - true_values)
        assert value("mean-abs-error", "reg") == pytest.approx(errors.mean(), rel=1e-6)
    finally:
        prometheus.stop()
