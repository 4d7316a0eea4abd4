"""Where each kind lives on the API server: one REST path per kind, and the ModelDeployment's
group, version and plural (serving/contract/resource.py names it)."""

from __future__ import annotations

import re

from modelrollout.serving.contract.resource import GROUP, PLURAL, VERSION

# The collection of each kind in one namespace; without "/namespaces/{namespace}", in all.
PATHS = {
    "ModelDeployment": f"/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/{PLURAL}",
    "Deployment": "/apis/apps/v1/namespaces/{namespace}/deployments",
    "Service": "/api/v1/namespaces/{namespace}/services",
    "Pod": "/api/v1/namespaces/{namespace}/pods",
    "EndpointSlice": "/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
    "Event": "/api/v1/namespaces/{namespace}/events",
    "HTTPRoute": "/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/httproutes",
    "Lease": "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases",
}
# Kinds a CRD defines: a 404 for their collection means the CRD is not installed.
CUSTOM_KINDS = ("ModelDeployment", "HTTPRoute")


def path(kind: str, namespace: str | None, name: str | None = None, subresource: str | None = None) -> str:
    """``namespace`` None: every namespace (lists and watches only)."""
    if namespace is None:
        found = PATHS[kind].replace("/namespaces/{namespace}", "")
    else:
        found = PATHS[kind].format(namespace=namespace)
    if name is not None:
        found += f"/{name}"
    if subresource is not None:
        found += f"/{subresource}"
    return found


def resource_name(kind: str) -> str:
    """The name kubectl and RBAC use: ``deployments.apps``, ``services`` (the core group has none)."""
    parts = PATHS[kind].split("/")
    plural = parts[-1]
    return plural if parts[1] == "api" else f"{plural}.{parts[2]}"


def custom_collection(request_path: str) -> str | None:
    """The kind a CRD defines whose collection ``request_path`` is (in a namespace or in all),
    else None."""
    for kind in CUSTOM_KINDS:
        pattern = re.escape(PATHS[kind]).replace(re.escape("/namespaces/{namespace}"), "(/namespaces/[^/]+)?")
        if re.fullmatch(pattern, request_path):
            return kind
    return None
