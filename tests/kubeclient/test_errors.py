"""A refused call told in one line: the call, status and reason, the API server's message,
and what to check on 401, 403 and 404; what the API server actually answers (the harness's,
over HTTP, with refusals injected)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException

from modelrollout.harness.apiserver.faults import Fault
from modelrollout.harness.emulator import KubeEmulator
from modelrollout.kubeclient import (
    Api,
    configuration,
    describe_error,
    hint,
    is_api_answer,
    is_gone,
    retry_after_seconds,
    short_error,
)


@pytest.fixture(scope="module")
def kube(tmp_path_factory) -> Iterator[KubeEmulator]:
    with KubeEmulator(Path(tmp_path_factory.mktemp("kube"))) as emulator:
        yield emulator  # no CRD installed


@pytest.fixture
def api(kube: KubeEmulator) -> Iterator[Api]:
    client = Api(configuration(kube.kubeconfig_for("errors-test")))
    yield client
    kube.clear_faults()
    client.close()


def refusal(call) -> ApiException:
    with pytest.raises(ApiException) as refused:
        call()
    return refused.value


def test_a_missing_crd_is_named(api: Api):
    error = refusal(lambda: api.listing("ModelDeployment", "ml"))
    message = json.loads(error.body)["message"]
    assert describe_error(error) == ("404 Not Found for GET /apis/modelrollout.io/v1alpha1/namespaces/ml/"
                                     f"modeldeployments: {message} (is the ModelDeployment CRD installed?)")
    assert short_error(error) == "404 NotFound" and is_api_answer(error) and not is_gone(error)


def test_a_missing_object_is_not_taken_for_a_missing_crd(api: Api):
    error = refusal(lambda: api.merge_patch("Service", "ml", "nothing", {"metadata": {"labels": {"a": "b"}}}))
    assert error.status == 404 and hint(error) == ""
    assert describe_error(error).startswith("404 Not Found for PATCH /api/v1/namespaces/ml/services/nothing")


@pytest.mark.parametrize(("status", "check"), [
    (401, "are the kubeconfig's credentials or the service account's token valid?"),
    (403, "does RBAC allow this call to the identity the process runs as? manifests/rbac/ has the rules"),
])
def test_refused_credentials_and_permissions_say_what_to_check(kube: KubeEmulator, api: Api, status, check):
    kube.inject(Fault(status, verbs={"list"}, identity="errors-test"))
    error = refusal(lambda: api.list("Pod", None))
    assert describe_error(error).startswith(f"{status} {error.reason} for GET /api/v1/pods: ")
    assert describe_error(error).endswith(f"({check})")


def test_too_many_requests_carries_its_retry_after(kube: KubeEmulator, api: Api):
    kube.inject(Fault(429, verbs={"create"}, identity="errors-test", retry_after_seconds=3))
    error = refusal(lambda: api.create("Event", "ml", {"metadata": {"name": "e"}}))
    assert short_error(error) == "429 TooManyRequests" and retry_after_seconds(error) == 3.0
    assert describe_error(error).startswith("429 Too Many Requests for POST /api/v1/namespaces/ml/events: "
                                            "the server has received too many requests")


def test_gone_and_failures_that_are_not_answers():
    assert is_gone(ApiException(status=410, reason="Gone"))
    refused = ConnectionRefusedError(111, "Connection refused " + "x" * 500)
    assert not is_api_answer(refused) and short_error(refused) == "ConnectionRefusedError"
    assert describe_error(refused).startswith("ConnectionRefusedError: [Errno 111] Connection refused")
    assert len(describe_error(refused)) == 300
    assert retry_after_seconds(refused) == 0.0
