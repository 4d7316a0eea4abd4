"""The real kubectl binary against the harness's API server (harness/apiserver.py): every
behaviour kubectl relies on, tried as a user types it. No operator here: statuses are
written by the test, as the operator would write them."""

from __future__ import annotations

import copy
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from modelrollout.harness.emulator import KubeEmulator
from modelrollout.harness.process import wait_for
from modelrollout.install_manifests import model_deployment_crd
from tests.support.kubectl import kubectl_binary, kubectl_env, run_kubectl

ROOT = Path(__file__).resolve().parents[2]
MD = "modelrollout.io/v1alpha1"
CRD = model_deployment_crd()
EXAMPLE = yaml.safe_load((ROOT / "manifests" / "examples" / "canary-builtin.yaml").read_text())


@pytest.fixture(scope="module")
def kube(tmp_path_factory) -> Iterator[KubeEmulator]:
    with KubeEmulator(tmp_path_factory.mktemp("api")) as emulator:
        emulator.define_crd(CRD)
        yield emulator


@pytest.fixture(scope="module")
def env(kube: KubeEmulator, tmp_path_factory) -> dict[str, str]:
    env = kubectl_env(kube.kubeconfig, tmp_path_factory.mktemp("home"))
    run_kubectl(env, "create", "namespace", "ml")
    return env


def kubectl(env: dict[str, str], *args: str, stdin: str | None = None, ok: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess:
    return run_kubectl(env, *args, stdin=stdin, ok=ok, timeout=timeout)


def model_deployment(name: str, **spec) -> dict:
    doc = copy.deepcopy(EXAMPLE)
    doc["metadata"] = {"name": name, "namespace": "ml"}
    doc["spec"].update(spec)
    return doc


def apply(env: dict[str, str], doc: dict, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    return kubectl(env, "apply", "-f", "-", *args, stdin=yaml.safe_dump(doc), ok=ok)


def printer_header(crd: dict) -> list[str]:
    """What `kubectl get` must print as its header: NAME, then the CRD's printer columns."""
    columns = crd["spec"]["versions"][0].get("additionalPrinterColumns") or [{"name": "Age"}]
    return ["NAME", *(c["name"].upper() for c in columns if not c.get("priority"))]


def test_the_core_group_serves_namespaces_and_discovery_has_short_names(env):
    table = kubectl(env, "get", "namespaces").stdout.split()
    assert table[:5] == ["NAME", "STATUS", "AGE", "ml", "Active"]
    uid = kubectl(env, "get", "ns", "ml", "-o", "jsonpath={.metadata.uid}").stdout
    assert len(uid) == 36
    resources = kubectl(env, "api-resources").stdout
    short_names = CRD["spec"]["names"]["shortNames"]
    line = next(line for line in resources.splitlines() if line.startswith("modeldeployments"))
    assert line.split()[1] == ",".join(short_names)
    assert "namespaces" in resources and "services" in resources


def test_the_install_manifest_applies_namespace_deployment_and_service_and_reapplies_unchanged(env):
    manifest = str(ROOT / "manifests" / "install" / "operator.yaml")
    first = kubectl(env, "apply", "-f", manifest).stdout
    assert "namespace/modelrollout-system created" in first
    assert "deployment.apps/modelrollout-operator created" in first
    assert "service/modelrollout-operator-metrics created" in first
    again = kubectl(env, "apply", "-f", manifest).stdout
    assert again.count("unchanged") == len(again.strip().splitlines())
    table = kubectl(env, "get", "deploy,svc", "-n", "modelrollout-system").stdout
    assert "READY   UP-TO-DATE   AVAILABLE" in table and "9180/TCP" in table


def test_get_by_short_name_prints_the_crds_printer_columns(env, kube):
    apply(env, model_deployment("cols"))
    kube.merge_patch(MD, "ModelDeployment", "cols", {"status": {"phase": "Paused", "currentStep": 3}}, "ml",
                     subresource="status")
    lines = kubectl(env, "get", "mdep", "-n", "ml").stdout.splitlines()
    assert lines[0].split() == printer_header(CRD)
    row = next(line.split() for line in lines if line.startswith("cols "))
    assert "Paused" in row and "3" in row


def test_get_shows_how_long_the_guards_fallback_has_served(env, kube):
    apply(env, model_deployment("fell"))
    since = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    fallback = {"revision": "a41f03", "kind": "model", "active": True, "since": since}
    status = {"phase": "Degraded", "reason": "FallbackActive", "fallback": fallback}
    kube.merge_patch(MD, "ModelDeployment", "fell", {"status": status}, "ml", subresource="status")
    lines = kubectl(env, "get", "mdep", "-n", "ml").stdout.splitlines()
    starts = [match.start() for match in re.finditer(r"\S+", lines[0])]  # empty cells: read by position
    row = next(line for line in lines if line.startswith("fell "))
    ends = [*starts[1:], None]
    cells = {lines[0][a:b].strip(): row[a:b].strip() for a, b in zip(starts, ends, strict=True)}
    assert cells["PHASE"] == "Degraded" and cells["FALLBACK"] == "3d"


def test_lists_carry_their_kind_in_every_output_form(env):
    apply(env, model_deployment("listed"))
    listed = yaml.safe_load(kubectl(env, "get", "modeldeployments", "-n", "ml", "-o", "yaml").stdout)
    assert listed["kind"] == "List" and {i["kind"] for i in listed["items"]} == {"ModelDeployment"}
    names = kubectl(env, "get", "mdep", "-n", "ml", "-o", "name").stdout
    assert "modeldeployment.modelrollout.io/listed" in names
    everywhere = kubectl(env, "get", "mdep", "-A").stdout.splitlines()
    assert everywhere[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert kubectl(env, "get", "mdep", "-n", "ml", "-o", "wide").stdout.splitlines()[0].split()[0] == "NAME"
    custom = kubectl(env, "get", "mdep", "listed", "-n", "ml", "-o",
                     "custom-columns=NAME:.metadata.name,REPLICAS:.spec.replicas").stdout.split()
    assert custom == ["NAME", "REPLICAS", "listed", str(EXAMPLE["spec"]["replicas"])]


def test_label_selectors_filter_lists(env):
    for name, app in (("sel-a", "a"), ("sel-b", "b")):
        apply(env, {"apiVersion": "v1", "kind": "Service", "metadata": {
            "name": name, "namespace": "ml", "labels": {"app": app}}, "spec": {"ports": [{"port": 80}]}})
    assert kubectl(env, "get", "svc", "-n", "ml", "-l", "app=a", "-o", "name").stdout.split() == \
        ["service/sel-a"]
    assert kubectl(env, "get", "svc", "-n", "ml", "-l", "app in (a,b)", "-o", "name").stdout.split() == \
        ["service/sel-a", "service/sel-b"]


def test_a_spec_the_schema_refuses_is_refused_by_kubectl_apply_with_the_schemas_message(env):
    bad = model_deployment("refused", replicas=-1)
    done = apply(env, bad, ok=False)
    assert done.returncode != 0
    assert "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0" \
        in done.stderr
    unknown = model_deployment("refused")
    unknown["spec"]["bogus"] = True
    done = apply(env, unknown, ok=False)
    assert done.returncode != 0 and 'unknown field "spec.bogus"' in done.stderr
    missing = kubectl(env, "get", "mdep", "refused", "-n", "ml", ok=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr  # nothing reached the store


def test_server_dry_run_and_diff_write_nothing(env):
    apply(env, model_deployment("dry", replicas=4))
    before = kubectl(env, "get", "mdep", "dry", "-n", "ml", "-o", "json").stdout
    seven = model_deployment("dry", replicas=7)
    assert "configured (server dry run)" in apply(env, seven, "--dry-run=server").stdout
    diff = kubectl(env, "diff", "-f", "-", stdin=yaml.safe_dump(seven), ok=False)
    assert diff.returncode == 1 and "+  replicas: 7" in diff.stdout and "-  replicas: 4" in diff.stdout
    assert kubectl(env, "get", "mdep", "dry", "-n", "ml", "-o", "json").stdout == before


def test_replace_uses_put_and_a_stale_resource_version_is_a_conflict(env):
    apply(env, model_deployment("put", replicas=1))
    current = yaml.safe_load(kubectl(env, "get", "mdep", "put", "-n", "ml", "-o", "yaml").stdout)
    current["spec"]["replicas"] = 2
    assert "replaced" in kubectl(env, "replace", "-f", "-", stdin=yaml.safe_dump(current)).stdout
    fields = "jsonpath={.spec.replicas} {.metadata.generation}"
    assert kubectl(env, "get", "mdep", "put", "-n", "ml", "-o", fields).stdout == "2 2"
    stale = kubectl(env, "replace", "-f", "-", stdin=yaml.safe_dump(current), ok=False)
    assert stale.returncode != 0 and "the object has been modified" in stale.stderr


def test_kubectl_scale_sets_spec_replicas_through_the_scale_subresource(env, kube):
    apply(env, model_deployment("scaled", replicas=2))
    kube.merge_patch(MD, "ModelDeployment", "scaled", {"status": {
        "replicas": 2, "selector": "modelrollout.io/model-deployment=scaled"}}, "ml", "status")
    assert "scaled" in kubectl(env, "scale", "mdep/scaled", "-n", "ml", "--replicas", "6").stdout
    fields = "jsonpath={.spec.replicas} {.metadata.generation}"
    assert kubectl(env, "get", "mdep", "scaled", "-n", "ml", "-o", fields).stdout == "6 2"
    scale = yaml.safe_load(kubectl(env, "get", "mdep", "scaled", "-n", "ml", "--subresource=scale",
                                   "-o", "yaml").stdout)
    assert (scale["apiVersion"], scale["kind"]) == ("autoscaling/v1", "Scale")
    assert scale["spec"] == {"replicas": 6}
    assert scale["status"] == {"replicas": 2, "selector": "modelrollout.io/model-deployment=scaled"}
    table = kubectl(env, "get", "mdep", "scaled", "-n", "ml", "--subresource=scale").stdout.split()
    assert table == ["NAME", "DESIRED", "AVAILABLE", "scaled", "6", "2"]
    # --current-replicas is a precondition; a negative count and a resource without one are refused.
    stale = kubectl(env, "scale", "mdep/scaled", "-n", "ml", "--replicas", "1", "--current-replicas", "2",
                    ok=False)
    assert stale.returncode != 0 and "Expected replicas to be 2, was 6" in stale.stderr
    negative = kubectl(env, "patch", "mdep/scaled", "-n", "ml", "--subresource=scale", "--type=merge",
                       "-p", '{"spec":{"replicas":-1}}', ok=False)
    assert negative.returncode != 0 and "must be greater than or equal to 0" in negative.stderr
    assert kubectl(env, "get", "mdep", "scaled", "-n", "ml", "-o", fields).stdout == "6 2"
    namespace = kubectl(env, "scale", "namespace/ml", "--replicas", "2", ok=False)
    assert namespace.returncode != 0


def test_server_side_apply_is_refused_with_a_clear_message(env):
    done = apply(env, model_deployment("ssa"), "--server-side", ok=False)
    assert done.returncode != 0
    assert "server-side apply is not supported by the modelrollout harness" in done.stderr


def test_watch_streams_changes_as_json_that_kubectl_get_w_prints(env, kube):
    apply(env, model_deployment("watched"))
    response = httpx.get(f"{kube.url}/apis/{MD}/namespaces/ml/modeldeployments",
                         params={"watch": "true", "timeoutSeconds": "1"}, timeout=10)
    assert response.headers["content-type"].startswith("application/json")
    assert '"type": "ADDED"' in response.text
    watcher = subprocess.Popen([kubectl_binary(), "get", "mdep", "watched", "-n", "ml", "-w"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(watcher.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any(line.startswith("watched") for line in lines), 30, "the first row")
        kube.merge_patch(MD, "ModelDeployment", "watched", {"status": {"phase": "Degraded"}}, "ml",
                         subresource="status")
        wait_for(lambda: any("Degraded" in line for line in lines), 30, "the watched change")
    finally:
        watcher.terminate()
        watcher.wait(10)
    assert lines[0].split() == printer_header(CRD)  # one header, then rows
    assert sum(1 for line in lines if line.startswith("NAME")) == 1


def test_kubectl_wait_for_a_condition_returns_once_it_is_true(env, kube):
    apply(env, model_deployment("waited"))
    waiting = subprocess.Popen([kubectl_binary(), "wait", "mdep/waited", "-n", "ml",
                                "--for=condition=Available", "--timeout=60s"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1)  # kubectl is watching by now, or lists the change when it starts
        assert waiting.poll() is None
        kube.merge_patch(MD, "ModelDeployment", "waited", {"status": {"conditions": [
            {"type": "Available", "status": "True", "reason": "StableReady"}]}}, "ml", subresource="status")
        out, err = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert waiting.returncode == 0, err
    assert "modeldeployment.modelrollout.io/waited condition met" in out
    never = kubectl(env, "wait", "mdep/waited", "-n", "ml", "--for=condition=Degraded", "--timeout=2s",
                    ok=False)
    assert never.returncode != 0 and "timed out" in never.stderr


def test_describe_shows_the_objects_events(env, kube):
    apply(env, model_deployment("described"))
    uid = kubectl(env, "get", "mdep", "described", "-n", "ml", "-o", "jsonpath={.metadata.uid}").stdout
    kube.create({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "described.1", "namespace": "ml"},
                 "involvedObject": {"apiVersion": MD, "kind": "ModelDeployment", "name": "described",
                                    "namespace": "ml", "uid": uid},
                 "reason": "WeightSet", "message": "candidate at 10%", "type": "Normal", "count": 1,
                 "source": {"component": "modelrollout-operator"},
                 "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z"})
    kube.create({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "other.1", "namespace": "ml"},
                 "involvedObject": {"kind": "ModelDeployment", "name": "other", "namespace": "ml",
                                    "uid": "x"},
                 "reason": "Unrelated", "message": "not this one", "type": "Normal"})
    described = kubectl(env, "describe", "mdep", "described", "-n", "ml").stdout
    events = described[described.index("Events:"):]
    assert "WeightSet" in events and "candidate at 10%" in events and "Unrelated" not in events


def test_the_plugin_is_found_by_kubectl(env, kube):
    apply(env, model_deployment("plugged"))
    status = {"status": {"phase": "Healthy", "stableVersion": "2.0.0"}}
    kube.merge_patch(MD, "ModelDeployment", "plugged", status, "ml", subresource="status")
    out = kubectl(env, "modelrollout", "status", "plugged", "-n", "ml").stdout
    assert "Name:       ml/plugged" in out and "Healthy" in out


def test_deleting_an_owner_deletes_its_dependents(env, kube):
    apply(env, model_deployment("owner"))
    uid = kubectl(env, "get", "mdep", "owner", "-n", "ml", "-o", "jsonpath={.metadata.uid}").stdout
    kube.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "owned", "namespace": "ml",
        "ownerReferences": [{"apiVersion": MD, "kind": "ModelDeployment", "name": "owner", "uid": uid}]}})
    assert kubectl(env, "get", "cm", "owned", "-n", "ml", "-o", "name").stdout.strip() == "configmap/owned"
    kubectl(env, "delete", "mdep", "owner", "-n", "ml")
    gone = kubectl(env, "get", "cm", "owned", "-n", "ml", ok=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_a_crd_applied_with_kubectl_serves_its_resource_by_short_name_and_category(env):
    widgets = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"kind": "Widget", "plural": "widgets", "singular": "widget",
                           "shortNames": ["wdg"], "categories": ["gadgets"]},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "additionalPrinterColumns": [{"name": "Size", "type": "integer",
                                                             "jsonPath": ".spec.size"}],
                               "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                   "spec": {"type": "object", "properties": {
                                       "size": {"type": "integer", "maximum": 10}}}}}}}]},
    }
    assert "customresourcedefinition.apiextensions.k8s.io/widgets.example.com created" in \
        apply(env, widgets).stdout
    kubectl(env, "wait", "crd/widgets.example.com", "--for=condition=Established", "--timeout=30s")
    widget = {"apiVersion": "example.com/v1", "kind": "Widget",
              "metadata": {"name": "w1", "namespace": "ml"}, "spec": {"size": 3}}
    apply(env, widget)
    # Given columns replace the default AGE, as on a real API server.
    assert kubectl(env, "get", "wdg", "-n", "ml").stdout.split() == ["NAME", "SIZE", "w1", "3"]
    by_category = kubectl(env, "get", "gadgets", "-n", "ml", "-o", "name").stdout.split()
    assert by_category == ["widget.example.com/w1"]
    widget["spec"]["size"] = 11
    too_big = apply(env, widget, ok=False)
    assert too_big.returncode != 0
    assert "spec.size in body should be less than or equal to 10" in too_big.stderr


def test_kubectl_explain_reads_the_crd_schema_from_openapi_v3(env):
    replicas = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"][
        "replicas"]
    explained = kubectl(env, "explain", "mdep.spec.replicas").stdout
    assert "FIELD: replicas <integer>" in explained and replicas["description"] in explained
