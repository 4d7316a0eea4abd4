"""The baseline: a V2 infer endpoint written the way a typical FastAPI user would.

pydantic request model, a sync ``def`` endpoint (FastAPI runs it in its thread pool),
numpy + ``session.run`` with onnxruntime's default session options, and a plain dict
returned through FastAPI's default JSON response. Nothing here is tuned on purpose.

Run: NAIVE_MODEL_PATH=model.onnx uvicorn bench.naive_server:app --port 8000
(uvicorn's defaults: 1 worker, access log on.)
"""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI
from pydantic import BaseModel

session = ort.InferenceSession(os.environ["NAIVE_MODEL_PATH"], providers=["CPUExecutionProvider"])
app = FastAPI()


class InferInput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[float]


class InferRequest(BaseModel):
    inputs: list[InferInput]


@app.get("/v2/health/ready")
def ready():
    return {"ready": True}


@app.post("/v2/models/{name}/infer")
def infer(name: str, request: InferRequest):
    feeds = {
        item.name: np.array(item.data, dtype=np.float32).reshape(item.shape)
        for item in request.inputs
    }
    outputs = session.run(None, feeds)
    return {
        "model_name": name,
        "outputs": [
            {
                "name": meta.name,
                "shape": list(out.shape),
                "datatype": "FP32",
                "data": out.flatten().tolist(),
            }
            for meta, out in zip(session.get_outputs(), outputs, strict=True)
        ],
    }
