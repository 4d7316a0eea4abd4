"""Plain request and response values that know no wire format."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(slots=True)
class Tensor:
    name: str
    datatype: str  # V2 name, e.g. "FP32"
    data: np.ndarray  # already shaped


@dataclass(slots=True)
class RequestedOutput:
    name: str
    binary: bool | None  # None: follow the request's binary_data_output


@dataclass(slots=True)
class InferRequest:
    inputs: list[Tensor]
    outputs: list[RequestedOutput] | None = None  # None: every output of the model
    id: str | None = None
    binary_outputs: bool = False  # request parameter binary_data_output
    parameters: dict = field(default_factory=dict)


@dataclass(slots=True)
class OutputTensor:
    name: str
    datatype: str
    data: np.ndarray
    binary: bool


@dataclass(slots=True)
class InferResponse:
    model_name: str
    model_version: str
    outputs: list[OutputTensor]
    id: str | None = None
