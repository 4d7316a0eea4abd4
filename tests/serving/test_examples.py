"""The demo's model versions behave as their story says, on the inputs the demo's clients send."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from modelrollout.serving.examples import write_model_versions


def classes(path, inputs: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {"input": inputs})[0].argmax(axis=1)


def test_each_version_predicts_as_its_story_says(tmp_path):
    paths = write_model_versions(tmp_path)
    inputs = np.random.default_rng(0).random((2000, 4)).astype(np.float32)  # as harness.traffic sends
    stable = classes(paths["1.0.0"], inputs)
    assert len({p.read_bytes() for p in paths.values()}) == len(paths)  # every version its own bytes
    assert (classes(paths["1.0.1"], inputs) == stable).all()  # exported again
    assert (classes(paths["4.0.0"], inputs) != stable).mean() < 0.01  # retrained
    assert (classes(paths["6.0.0"], inputs) != stable).mean() > 0.3  # predicts otherwise
    assert (classes(paths["2.0.0"], inputs) != stable).mean() > 0.3


def test_seven_answers_todays_inputs_and_fails_on_drifted_ones_which_the_simple_model_answers(tmp_path):
    paths = write_model_versions(tmp_path)
    today = np.random.default_rng(1).random((1, 4)).astype(np.float32)
    drifted = today + 1.5
    session = ort.InferenceSession(str(paths["7.0.0"]), providers=["CPUExecutionProvider"])
    assert session.run(["probabilities"], {"input": today})[0].shape == (1, 3)
    with pytest.raises(Exception):  # noqa: B017 - onnxruntime's own error type: the server answers 500
        session.run(["probabilities"], {"input": drifted})
    assert classes(paths["simple"], drifted).shape == (1,)
