"""modelrollout: progressive delivery for ONNX models on Kubernetes.

modelrollout.serving is the data plane (server, gateway), modelrollout.operator the
control plane; this package holds only the command line that starts either.
"""
