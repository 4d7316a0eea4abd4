"""One REST path per kind, and the names messages and RBAC use."""

from __future__ import annotations

import pytest

from modelrollout.kubeclient import GROUP, PLURAL, VERSION, path, resource_name
from modelrollout.kubeclient.paths import PATHS, custom_collection


def test_a_path_in_a_namespace_in_all_to_an_object_and_its_subresource():
    assert path("Deployment", "ml") == "/apis/apps/v1/namespaces/ml/deployments"
    assert path("Pod", None) == "/api/v1/pods"
    assert path("ModelDeployment", "ml", "iris", "status") == \
        f"/apis/{GROUP}/{VERSION}/namespaces/ml/{PLURAL}/iris/status"
    assert path("EndpointSlice", None) == "/apis/discovery.k8s.io/v1/endpointslices"


@pytest.mark.parametrize(("kind", "name"), [
    ("ModelDeployment", "modeldeployments.modelrollout.io"), ("Deployment", "deployments.apps"),
    ("Service", "services"), ("EndpointSlice", "endpointslices.discovery.k8s.io"),
    ("Lease", "leases.coordination.k8s.io"), ("HTTPRoute", "httproutes.gateway.networking.k8s.io"),
])
def test_resource_names_are_plural_dot_group(kind, name):
    assert resource_name(kind) == name


def test_only_the_collections_of_custom_kinds_are_taken_for_a_crd():
    assert custom_collection(path("ModelDeployment", "ml")) == "ModelDeployment"
    assert custom_collection(path("ModelDeployment", None)) == "ModelDeployment"
    assert custom_collection(path("HTTPRoute", "web")) == "HTTPRoute"
    assert custom_collection(path("ModelDeployment", "ml", "iris")) is None  # an object, not the CRD
    assert custom_collection(path("Deployment", "ml")) is None
    assert {"ModelDeployment", "Deployment", "Service", "Pod", "EndpointSlice", "Lease"} <= set(PATHS)
