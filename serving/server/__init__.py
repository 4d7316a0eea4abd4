"""The ONNX inference server behind `modelrollout serve` (Open Inference Protocol V2).

Request path: codec (JSON or binary) -> tensors -> runtime (or the batcher in front of
it) -> codec. app.py wires the endpoints; errors.py maps domain errors to HTTP codes.
"""
