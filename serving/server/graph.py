"""Rewrite an ONNX graph so every output is a tensor the V2 protocol can carry.

scikit-learn classifiers converted with skl2onnx's default options end in a ZipMap
node whose output is a sequence of {label: probability} maps. V2 has no map type, so
the ZipMap is cut off: the output keeps its name and becomes the FP32 [N, classes]
tensor that fed the ZipMap, and the class labels go into the model metadata.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx
from onnx import TensorProto, helper


@dataclass
class PreparedGraph:
    model_bytes: bytes
    opset: int
    labels: dict[str, list[str]] = field(default_factory=dict)  # output name -> class labels


def prepare(model_bytes: bytes) -> PreparedGraph:
    model = onnx.load_model_from_string(model_bytes)
    opset = next(
        (imp.version for imp in model.opset_import if imp.domain in ("", "ai.onnx")), 0
    )
    labels = _strip_zipmaps(model.graph)
    if labels:
        model_bytes = model.SerializeToString()
    return PreparedGraph(model_bytes=model_bytes, opset=opset, labels=labels)


def _strip_zipmaps(graph: onnx.GraphProto) -> dict[str, list[str]]:
    output_names = {out.name for out in graph.output}
    labels: dict[str, list[str]] = {}
    for node in list(graph.node):
        if node.op_type != "ZipMap" or node.output[0] not in output_names:
            continue
        out_name, source = node.output[0], node.input[0]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        classes = attrs.get("classlabels_strings") or attrs.get("classlabels_int64s") or []
        labels[out_name] = [c.decode() if isinstance(c, bytes) else str(c) for c in classes]
        graph.node.remove(node)
        for other in graph.node:  # the ZipMap's input now carries the output's name
            for i, name in enumerate(other.output):
                if name == source:
                    other.output[i] = out_name
            for i, name in enumerate(other.input):
                if name == source:
                    other.input[i] = out_name
        for i, out in enumerate(graph.output):
            if out.name == out_name:
                graph.output.remove(out)
                graph.output.insert(
                    i,
                    helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["N", len(classes)]),
                )
                break
    return labels
