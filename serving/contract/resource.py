"""The ModelDeployment's names on the API server: what the operator, its Kubernetes client, the
gateway, the kubectl plugin and the harness address it by. Its schema is the operator's API
module (operator/api/v1alpha1.py); the CRD is generated from both."""

GROUP = "modelrollout.io"
VERSION = "v1alpha1"  # the version the operator and the gateway read and write
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"
SINGULAR = "modeldeployment"
SHORT_NAMES = ("mdep",)
