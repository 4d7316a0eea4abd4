"""The data plane: the ONNX inference server (server/) and the traffic gateway.

contract/ holds the facts both sides and the operator share (route-table schema,
metric names); it imports nothing else of ours.
"""
