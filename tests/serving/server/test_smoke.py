import httpx
import numpy as np
import onnxruntime as ort

from tests.support.models import tiny_mlp


def test_tiny_model_answers_like_onnxruntime(tiny_server):
    x = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)
    body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": x.ravel().tolist()}]}
    response = httpx.post(f"{tiny_server.url}/v2/models/tiny/infer", json=body)
    assert response.status_code == 200
    out = response.json()["outputs"][0]
    expected = ort.InferenceSession(tiny_mlp()).run(None, {"input": x})[0]
    assert out["name"] == "probabilities" and out["shape"] == [1, 3]
    np.testing.assert_allclose(out["data"], expected.ravel(), rtol=1e-6)
