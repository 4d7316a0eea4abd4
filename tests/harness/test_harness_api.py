"""The pure parts of the harness's API server: selectors, printer-column JSONPath, Tables,
structural schema validation (with the API server's messages), patches, OpenAPI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from modelrollout.harness.api import jsonpath, openapi, patches, schema, tables
from modelrollout.harness.api.selectors import SelectorError, field_selector, label_selector
from modelrollout.install_manifests import model_deployment_crd


def labelled(**labels: str) -> dict:
    return {"metadata": {"name": "x", "labels": labels}}


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ("app=iris", {"app": "iris"}, True),
    ("app==iris", {"app": "other"}, False),
    ("app!=iris", {}, True),
    ("tier in (a, b),app", {"tier": "b", "app": "x"}, True),
    ("tier notin (a,b)", {"tier": "a"}, False),
    ("!canary", {"canary": "1"}, False),
    ("", {"any": "thing"}, True),
])
def test_label_selectors(selector, labels, expected):
    assert label_selector(selector)(labelled(**labels)) is expected


def test_field_selectors_read_any_dotted_path_and_bad_ones_are_refused():
    event = {"metadata": {"name": "e1", "namespace": "ml"}, "involvedObject": {"uid": "u-1", "kind": "Pod"}}
    assert field_selector("involvedObject.uid=u-1,metadata.namespace==ml")(event)
    assert not field_selector("involvedObject.kind!=Pod")(event)
    with pytest.raises(SelectorError):
        field_selector("metadata.name in (a)")


def test_jsonpath_of_printer_columns():
    obj = {"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Other", "status": "No"}],
                      "traffic": {"candidate": 10}}, "spec": {"ports": [{"port": 1}, {"port": 2}]}}
    assert jsonpath.find(obj, ".status.traffic.candidate") == [10]
    assert jsonpath.find(obj, '.status.conditions[?(@.type=="Ready")].status') == ["True"]
    assert jsonpath.find(obj, ".spec.ports[*].port") == [1, 2]
    assert jsonpath.find(obj, ".spec.ports[1].port") == [2]
    assert jsonpath.find(obj, ".status.missing") == []
    with pytest.raises(jsonpath.JsonPathError):
        jsonpath.parse(".a..b")


def test_a_crd_table_follows_its_printer_columns_whatever_they_are():
    version = {"additionalPrinterColumns": [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Weight", "type": "integer", "jsonPath": ".status.weight", "priority": 1},
        {"name": "Since", "type": "date", "jsonPath": ".status.since"}]}
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    obj = {"metadata": {"name": "iris"}, "status": {"phase": "Paused", "weight": 40,
                                                      "since": (now - timedelta(minutes=5)).isoformat()}}
    table = tables.table([obj], tables.columns_of_crd(version), now)
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Phase", "Weight", "Since"]
    assert [c["priority"] for c in table["columnDefinitions"]] == [0, 0, 1, 0]
    assert table["rows"][0]["cells"] == ["iris", "Paused", 40, "5m"]
    assert table["rows"][0]["object"]["metadata"]["name"] == "iris"
    # The real CRD's columns, read from the document, not from a list kept here.
    crd_version = model_deployment_crd()["spec"]["versions"][0]
    names = [c.name for c in tables.columns_of_crd(crd_version)]
    assert names == ["Name", *(c["name"] for c in crd_version["additionalPrinterColumns"])]


@pytest.mark.parametrize(("seconds", "shown"), [(5, "5s"), (150, "2m30s"), (600, "10m"),
                                                (4 * 3600 + 60, "4h1m"),
                                                (30 * 3600, "30h"), (3 * 86400 + 3600, "3d1h")])
def test_ages_read_as_kubectl_shows_them(seconds, shown):
    assert tables.human_duration(seconds) == shown


def test_schema_problems_carry_the_api_servers_words():
    crd_schema = model_deployment_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    doc = {"apiVersion": "modelrollout.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": "iris"},
           "spec": {"model": {"uri": "ftp://x", "version": "1"}, "replicas": -1,
                    "server": {"image": "i"}, "strategy": {"canary": {"steps": []}}}}
    problems = schema.validate(doc, crd_schema)
    assert ("spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0"
            in problems)
    assert any(p.startswith('spec.model.uri: Invalid value: "ftp://x": spec.model.uri in body should match')
               for p in problems)
    del doc["spec"]["server"]
    assert "spec.server: Required value" in schema.validate(doc, crd_schema)
    doc["spec"]["bogus"] = 1
    assert schema.unknown_fields(doc, crd_schema) == ["spec.bogus"]
    typed = {"type": "object", "properties": {"replicas": {"type": "integer"}}}
    assert schema.validate({"replicas": "3"}, typed) == [
        'replicas: Invalid value: "3": replicas in body must be of type integer: "string"']


def test_patches():
    live = {"spec": {"a": 1, "b": {"c": 2}, "list": [1, 2]}, "metadata": {"name": "x"}}
    assert patches.merge_patch(live, {"spec": {"a": None, "b": {"d": 3}, "list": [3]}})["spec"] == \
        {"b": {"c": 2, "d": 3}, "list": [3]}
    assert patches.json_patch(live, [{"op": "replace", "path": "/spec/a", "value": 5},
                                     {"op": "add", "path": "/spec/list/-", "value": 9},
                                     {"op": "remove", "path": "/spec/b"}])["spec"] \
        == {"a": 5, "list": [1, 2, 9]}
    with pytest.raises(patches.PatchError):
        patches.json_patch(live, [{"op": "test", "path": "/spec/a", "value": 2}])
    deployment = {"spec": {"template": {"spec": {"containers": [
        {"name": "server", "image": "a", "env": [{"name": "X", "value": "1"}]},
        {"name": "sidecar", "image": "s"}]}}}}
    patched = patches.strategic_merge_patch(deployment, {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "server"}, {"name": "sidecar"}],
        "containers": [{"name": "server", "image": "b", "env": [{"name": "Y", "value": "2"}]},
                       {"name": "sidecar", "$patch": "delete"}]}}}})
    assert patched["spec"]["template"]["spec"]["containers"] == [
        {"name": "server", "image": "b", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}]
    assert live["spec"]["a"] == 1  # inputs are never modified


def test_openapi_offers_field_validation_on_every_write_and_the_crd_schema():
    crd = model_deployment_crd()
    crd_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    document = openapi.group_version_document("modelrollout.io", "v1alpha1", [
        openapi.Resource("modeldeployments", "ModelDeployment", True, crd_schema, ("status",))])
    item = document["paths"]["/apis/modelrollout.io/v1alpha1/namespaces/{namespace}/modeldeployments/{name}"]
    assert {"dryRun", "fieldValidation"} <= {p["name"] for p in item["patch"]["parameters"]}
    assert item["patch"]["x-kubernetes-group-version-kind"]["kind"] == "ModelDeployment"
    schema_doc = document["components"]["schemas"]["io.modelrollout.v1alpha1.ModelDeployment"]
    assert schema_doc["properties"]["spec"] == crd_schema["properties"]["spec"]
    index = openapi.index({"apis/modelrollout.io/v1alpha1": document})
    assert index["paths"]["apis/modelrollout.io/v1alpha1"]["serverRelativeURL"].startswith(
        "/openapi/v3/apis/modelrollout.io/v1alpha1?hash=")
