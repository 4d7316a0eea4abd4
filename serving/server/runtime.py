"""The onnxruntime session of one model: metadata, input checks and inference."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from .dtypes import BY_ONNX, BY_V2
from .errors import BadRequest
from .graph import prepare
from .tensors import InferRequest

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str  # V2 name
    shape: tuple[int, ...]  # -1 for a dynamic dimension

    def as_metadata(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class RuntimeOptions:
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    execution_provider: str = "cpu"
    allow_nonfinite: bool = False  # NaN/Inf in float inputs


class ModelRuntime:
    def __init__(self, model_bytes: bytes, name: str, version: str, options: RuntimeOptions) -> None:
        if options.execution_provider not in PROVIDERS:
            raise ValueError(f"unknown execution provider {options.execution_provider!r}")
        provider = PROVIDERS[options.execution_provider]
        if provider not in ort.get_available_providers():
            raise RuntimeError(
                f"execution provider {options.execution_provider} is not available in this "
                f"onnxruntime build (available: {', '.join(ort.get_available_providers())}); "
                "install onnxruntime-gpu for cuda"
            )
        prepared = prepare(model_bytes)
        session_options = ort.SessionOptions()
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session_options.intra_op_num_threads = options.intra_op_threads
        session_options.inter_op_num_threads = options.inter_op_threads
        session_options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        providers = [provider] if provider == "CPUExecutionProvider" else [provider, "CPUExecutionProvider"]
        self.session = ort.InferenceSession(prepared.model_bytes, session_options, providers=providers)
        self.name = name
        self.version = version
        self.options = options
        self.opset = prepared.opset
        self.labels = prepared.labels
        self.provider = self.session.get_providers()[0]
        self.inputs = [_spec(arg) for arg in self.session.get_inputs()]
        self.outputs = [_spec(arg) for arg in self.session.get_outputs()]
        self._inputs_by_name = {spec.name: spec for spec in self.inputs}
        self._output_names = [spec.name for spec in self.outputs]
        self._outputs_by_name = {spec.name: spec for spec in self.outputs}
        # Rows of different requests can be stacked when every input and output
        # has a dynamic first dimension.
        self.is_batchable = all(
            len(s.shape) >= 1 and s.shape[0] == -1 for s in self.inputs + self.outputs
        )

    def metadata(self) -> dict:
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": "onnx_onnxv1",
            "inputs": [s.as_metadata() for s in self.inputs],
            "outputs": [s.as_metadata() for s in self.outputs],
        }

    def output_spec(self, name: str) -> TensorSpec:
        return self._outputs_by_name[name]

    def feeds(self, request: InferRequest) -> dict[str, np.ndarray]:
        """Check a request against the model; its inputs as onnxruntime feeds."""
        feeds: dict[str, np.ndarray] = {}
        for tensor in request.inputs:
            spec = self._inputs_by_name.get(tensor.name)
            if spec is None:
                raise BadRequest(
                    f"unknown input '{tensor.name}' for model '{self.name}'; "
                    f"inputs are: {', '.join(self._inputs_by_name)}"
                )
            if tensor.name in feeds:
                raise BadRequest(f"input '{tensor.name}' is given twice")
            if tensor.datatype != spec.datatype:
                raise BadRequest(
                    f"input '{tensor.name}' has datatype {tensor.datatype}, "
                    f"the model expects {spec.datatype}"
                )
            shape = tensor.data.shape
            if len(shape) != len(spec.shape) or any(
                want != -1 and want != got for want, got in zip(spec.shape, shape, strict=True)
            ):
                raise BadRequest(
                    f"input '{tensor.name}' has shape {list(shape)}, "
                    f"the model expects {list(spec.shape)} (-1: any size)"
                )
            data = tensor.data
            if (
                not self.options.allow_nonfinite
                and data.dtype.kind == "f"
                and not np.isfinite(data).all()
            ):
                raise BadRequest(
                    f"input '{tensor.name}' holds NaN or Infinity; "
                    "start the server with --allow-nonfinite to accept them"
                )
            if spec.datatype == "BYTES":
                data = _as_strings(tensor.name, data)
            feeds[tensor.name] = data
        missing = [name for name in self._inputs_by_name if name not in feeds]
        if missing:
            raise BadRequest(f"missing input(s) {', '.join(missing)} for model '{self.name}'")
        return feeds

    def output_names(self, request: InferRequest) -> list[str]:
        if request.outputs is None:
            return self._output_names
        names = []
        for requested in request.outputs:
            if requested.name not in self._outputs_by_name:
                raise BadRequest(
                    f"unknown output '{requested.name}' for model '{self.name}'; "
                    f"outputs are: {', '.join(self._output_names)}"
                )
            names.append(requested.name)
        return names

    def run(self, feeds: dict[str, np.ndarray], output_names: list[str]) -> list[np.ndarray]:
        return self.session.run(output_names, feeds)

    def example_feeds(self, rows: int = 1) -> dict[str, np.ndarray]:
        """Zero-valued inputs of the right types and shapes (dynamic dimensions -> ``rows``)."""
        feeds = {}
        for spec in self.inputs:
            shape = tuple(rows if dim == -1 else dim for dim in spec.shape)
            if spec.datatype == "BYTES":
                data = np.full(shape, "", dtype=object)
            else:
                data = np.zeros(shape, dtype=BY_V2[spec.datatype].numpy)
            feeds[spec.name] = data
        return feeds


def _spec(arg: ort.NodeArg) -> TensorSpec:
    dtype = BY_ONNX.get(arg.type)
    if dtype is None:
        raise RuntimeError(
            f"tensor '{arg.name}' has type {arg.type}, which the V2 protocol cannot carry"
        )
    shape = tuple(dim if isinstance(dim, int) and dim >= 0 else -1 for dim in (arg.shape or []))
    return TensorSpec(arg.name, dtype.v2, shape)


def _as_strings(name: str, data: np.ndarray) -> np.ndarray:
    """onnxruntime's string tensors take str; binary BYTES arrive as bytes."""
    if data.size and isinstance(data.reshape(-1)[0], bytes):
        try:
            return np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(data)
        except UnicodeDecodeError:
            raise BadRequest(f"input '{name}': BYTES elements must be UTF-8 text for this model") from None
    return data


def rows_of(feeds: dict[str, np.ndarray]) -> int:
    return next(iter(feeds.values())).shape[0]


