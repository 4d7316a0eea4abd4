"""charts/modelrollout, rendered and linted (--strict) by the real Helm engine over a matrix of
values (the values files of charts/examples/, which docs/install.md's commands use): every object
valid for Kubernetes (kubernetes-validate), prometheus-operator or KEDA (cloudcoil's models), every pod
Restricted, bad values refused by values.schema.json, and the defaults the same objects as
`kubectl kustomize manifests/` (one source of truth)."""

from __future__ import annotations

import json
import subprocess
import tomllib

import click
import helm_python as helm
import kubernetes_validate
import pydantic
import pytest
import yaml
from cloudcoil.models.prometheus_operator import v1 as monitoring_v1
from modelrollout.operator.kube.manifests import deployment as server_deployment
from modelrollout.operator.routing import Target
from modelrollout.operator.spec import parse_spec

from modelrollout.cli import main
from modelrollout.install_manifests import install_documents
from tests.install.test_chart_autoscaling import validate_keda
from tests.support import go_yaml, pod_security
from tests.support.chart import (
    CHART,
    EXAMPLES,
    MONITORING_GROUP,
    NAMESPACE,
    ROOT,
    Install,
    chart,
    commands,
    crds,
    find,
    lint,
    pod_templates,
    render,
)

KUBECTL = "/usr/bin/kubectl"
DOCS = ROOT / "docs" / "install.md"
MONITORING_KINDS = {"ServiceMonitor": monitoring_v1.ServiceMonitor, "PodMonitor": monitoring_v1.PodMonitor,
                    "PrometheusRule": monitoring_v1.PrometheusRule}
EVERYTHING = tuple(sorted(str(p.relative_to(ROOT)) for p in EXAMPLES.glob("*.yaml")))
MATRIX = {
    "defaults": Install(),
    "namespaced": Install(values_files=("charts/examples/namespaced.yaml",)),
    "monitoring": Install(values_files=("charts/examples/monitoring.yaml",)),
    "ha": Install(values_files=("charts/examples/ha.yaml",)),
    "network-policy": Install(values_files=("charts/examples/network-policy.yaml",)),
    "autoscaling": Install(values_files=("charts/examples/autoscaling.yaml",)),
    "everything": Install(values_files=EVERYTHING),
    "everything, namespaced in the release's namespace": Install(
        namespace="ml", values_files=EVERYTHING, sets=("namespaces=null",)),
}


def _objects(case: str) -> list[dict]:
    return render(MATRIX[case])


def _kinds(objects: list[dict]) -> set[str]:
    return {o["kind"] for o in objects}


# --- the engine: lint, render, schema ------------------------------------------------------


@pytest.mark.parametrize("case", MATRIX)
def test_helm_lint_strict_passes(case):
    report = lint(MATRIX[case])
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []  # 2 warning, 3 error


def test_lint_strict_fails_on_values_the_schema_refuses():
    report = lint(Install(sets=("operator.replicas=two",)))
    assert any("replicas" in error for error in report["errors"])


@pytest.mark.parametrize("case", MATRIX)
def test_every_object_is_valid_for_kubernetes_or_prometheus_operator(case):
    objects = _objects(case)
    assert objects
    for obj in objects:
        if obj["apiVersion"].startswith(MONITORING_GROUP + "/"):
            _validate_monitoring(obj)
        elif obj["apiVersion"].startswith("keda.sh/"):
            validate_keda(obj)
        else:
            kubernetes_validate.validate(obj, "1.30", strict=True)


def _validate_monitoring(obj: dict) -> None:
    """prometheus-operator's schema, as cloudcoil's generated models hold it; the models ignore an
    unknown field, so a field lost on the way through them is one the schema does not have."""
    model = MONITORING_KINDS[obj["kind"]].model_validate(obj)
    assert model.model_dump(by_alias=True, exclude_none=True, mode="json") == obj


def test_the_monitoring_check_catches_an_unknown_field_and_a_wrong_type():
    monitor = find(_objects("monitoring"), "ServiceMonitor", "modelrollout-gateway")
    _validate_monitoring(monitor)
    misspelt = json.loads(json.dumps(monitor))
    misspelt["spec"]["endpoints"][0]["intervall"] = "30s"
    with pytest.raises(AssertionError):
        _validate_monitoring(misspelt)
    wrong = json.loads(json.dumps(monitor))
    wrong["spec"]["endpoints"][0]["interval"] = "half a minute"
    with pytest.raises(pydantic.ValidationError):
        _validate_monitoring(wrong)


BAD_VALUES = {
    "unknown top-level key": ({"replica": 2}, "additional properties 'replica' not allowed"),
    "unknown nested key": ({"operator": {"imagee": {}}}, "additional properties 'imagee' not allowed"),
    "wrong type": ({"clusterWide": "yes"}, "/clusterWide"),
    "replicas not an integer": ({"operator": {"replicas": "2"}}, "/operator/replicas"),
    "replicas below one": ({"gateway": {"replicas": 0}}, "/gateway/replicas"),
    "bad pull policy": ({"operator": {"image": {"pullPolicy": "Sometimes"}}}, "/operator/image/pullPolicy"),
    "bad service type": ({"gateway": {"service": {"type": "Ingress"}}}, "/gateway/service/type"),
    "bad log level": ({"gateway": {"logLevel": "LOUD"}}, "/gateway/logLevel"),
    "two operators without leader election": ({"operator": {"replicas": 2, "leaderElection": False}},
                                              "/operator/leaderElection"),
    "namespaces while cluster-wide": ({"namespaces": ["ml"]}, "/namespaces"),
    "not a namespace name": ({"clusterWide": False, "namespaces": ["ML_team"]}, "/namespaces/0"),
    "bad scrape interval": ({"monitoring": {"interval": "30 seconds"}}, "/monitoring/interval"),
    "no memory limit": ({"gateway": {"resources": {"limits": {"memory": None}}}},
                        "/gateway/resources/limits"),
    "dashboard label not a string": ({"grafanaDashboard": {"labels": {"grafana_dashboard": 1}}},
                                     "/grafanaDashboard/labels/grafana_dashboard"),
}


@pytest.mark.parametrize("case", BAD_VALUES)
def test_the_schema_refuses_bad_values_naming_the_field(case):
    values, named = BAD_VALUES[case]
    with pytest.raises(helm.HelmValuesError) as refused:
        render(_with(values))
    assert named in str(refused.value)


def _with(values: dict) -> Install:
    return Install(set_json=tuple(f"{key}={json.dumps(value)}" for key, value in _flat(values)))


def _flat(values: dict, prefix: str = ""):
    for key, value in values.items():
        if isinstance(value, dict) and value:
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


# --- every pod ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", MATRIX)
def test_every_pod_is_restricted_with_resources_and_probes(case):
    templates = pod_templates(_objects(case))
    assert templates
    for where, template in templates:
        spec = template["spec"]
        assert pod_security.violations(spec, template["metadata"]) == [], where
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True and security["capabilities"]["drop"] == ["ALL"]
            assert security["allowPrivilegeEscalation"] is False
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), where
            assert "memory" in container["resources"]["limits"], where
            assert container["livenessProbe"]["httpGet"]["port"] in {p["name"] for p in container["ports"]}
            assert container["readinessProbe"]["httpGet"]["port"] in {p["name"] for p in container["ports"]}


def test_the_restricted_check_fails_a_pod_that_breaks_it():
    (_, template), *_ = pod_templates(_objects("defaults"))
    spec = json.loads(json.dumps(template["spec"]))
    spec["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    assert pod_security.violations(spec) != []


@pytest.mark.parametrize("case", MATRIX)
def test_the_processes_accept_their_arguments(case):
    objects = _objects(case)
    for name, command in (("modelrollout-operator", "operator"), ("modelrollout-gateway", "gateway")):
        (container,) = find(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"]
        with click.Context(main.commands[command]) as context:
            main.commands[command].parse_args(context, list(container["args"]))


# --- modes: namespaced, HA -----------------------------------------------------------------


def test_namespaced_mode_grants_in_each_namespace_only_and_passes_them_to_both_processes():
    objects = _objects("namespaced")
    cluster_roles = {o["metadata"]["name"] for o in objects
                     if o["kind"] in ("ClusterRole", "ClusterRoleBinding")}
    assert cluster_roles == {"modelrollout-rollout-manager"}  # people's role, bound per namespace
    for ns in ("ml", "ml-staging"):
        for name in ("modelrollout-operator", "modelrollout-gateway"):
            find(objects, "Role", name, ns)
            binding = find(objects, "RoleBinding", name, ns)
            assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}]
    for name in ("modelrollout-operator", "modelrollout-gateway"):
        (container,) = find(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"]
        assert container["args"][-4:] == ["--namespace", "ml", "--namespace", "ml-staging"]


def test_namespaced_mode_without_namespaces_serves_the_release_namespace():
    objects = render(Install(namespace="ml", sets=("clusterWide=false",)))
    find(objects, "Role", "modelrollout-operator", "ml")
    operator = find(objects, "Deployment", "modelrollout-operator")
    (container,) = operator["spec"]["template"]["spec"]["containers"]
    assert container["args"][-2:] == ["--namespace", "ml"]


def test_namespaced_mode_is_what_modelrollout_manifests_prints_for_those_namespaces():
    """The chart's namespaced RBAC and processes against `modelrollout manifests --namespace ml
    --namespace ml-staging` (modelrollout/install_manifests.py), the other namespaced source."""
    printed = [d.obj for d in install_documents(("ml", "ml-staging"))]
    assert _comparable(render(MATRIX["namespaced"]) + _chart_crds()) == _comparable(printed)


def test_ha_runs_two_operators_with_leader_election_and_a_guarded_autoscaled_gateway():
    objects = _objects("ha")
    operator = find(objects, "Deployment", "modelrollout-operator")
    assert operator["spec"]["replicas"] == 2
    assert "--leader-elect" in operator["spec"]["template"]["spec"]["containers"][0]["args"]
    lease = find(objects, "Role", "modelrollout-operator-leader-election", NAMESPACE)
    assert lease["rules"] == [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                               "verbs": ["get", "create", "update"]}]
    gateway = find(objects, "Deployment", "modelrollout-gateway")
    assert "replicas" not in gateway["spec"]  # the HPA owns it
    hpa = find(objects, "HorizontalPodAutoscaler", "modelrollout-gateway")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": "modelrollout-gateway"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    pdb = find(objects, "PodDisruptionBudget", "modelrollout-gateway")
    assert _selects(pdb["spec"]["selector"]["matchLabels"], gateway["spec"]["template"])
    assert "HorizontalPodAutoscaler" not in _kinds(_objects("defaults"))
    assert "PodDisruptionBudget" not in _kinds(_objects("defaults"))


def test_without_leader_election_the_operator_has_no_lease_and_one_replica_only():
    objects = render(Install(sets=("operator.leaderElection=false",)))
    operator = find(objects, "Deployment", "modelrollout-operator")
    assert "--leader-elect" not in operator["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not [o for o in objects if "leader-election" in o["metadata"]["name"]]


# --- monitoring ----------------------------------------------------------------------------


def _selects(labels: dict, template: dict) -> bool:
    return labels.items() <= template["metadata"]["labels"].items()


def test_monitoring_off_renders_no_monitoring_object_nor_dashboard():
    for case in ("defaults", "namespaced", "ha", "network-policy"):
        objects = _objects(case)
        assert not _kinds(objects) & {*MONITORING_KINDS, "ConfigMap"}, case


def test_service_monitors_select_the_services_and_their_ports():
    objects = _objects("monitoring")
    for component, service_name in (("operator", "modelrollout-operator-metrics"),
                                    ("gateway", "modelrollout-gateway")):
        monitor = find(objects, "ServiceMonitor", f"modelrollout-{component}")
        service = find(objects, "Service", service_name)
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_the_pod_monitor_selects_the_model_servers_the_operator_creates():
    example = yaml.safe_load((ROOT / "manifests/examples/canary-builtin.yaml").read_text())
    name = example["metadata"]["name"]
    target = Target(name=name, namespace="ml", model=name, options={})
    server = server_deployment(target, parse_spec(example["spec"]), "abc123", 1)["spec"]["template"]
    for case, selector in (("monitoring", {"any": True}), ("everything", None)):
        monitor = find(_objects(case), "PodMonitor", "modelrollout-model-servers")
        assert _selects(monitor["spec"]["selector"]["matchLabels"], server)
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        assert endpoint["port"] in {p["name"] for p in server["spec"]["containers"][0]["ports"]}
        if selector is not None:
            assert monitor["spec"]["namespaceSelector"] == selector
    both = ("charts/examples/monitoring.yaml", "charts/examples/namespaced.yaml")
    namespaced = render(Install(values_files=both))
    monitor = find(namespaced, "PodMonitor", "modelrollout-model-servers")
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["ml", "ml-staging"]}


def test_the_monitors_label_series_as_the_dashboard_and_the_alerts_select_them():
    """The job of each process and the model_deployment of each server pod, as the metric
    contract names them, set by relabeling (the local harness's Prometheus does the same)."""
    from modelrollout.operator.routing import MODEL_DEPLOYMENT_LABEL
    from modelrollout.serving.contract import metric_names as names

    objects = _objects("monitoring")
    for kind, name, job in (("ServiceMonitor", "modelrollout-operator", names.JOB_OPERATOR),
                            ("ServiceMonitor", "modelrollout-gateway", names.JOB_GATEWAY),
                            ("PodMonitor", "modelrollout-model-servers", names.JOB_SERVERS)):
        monitor = find(objects, kind, name)
        (endpoint,) = monitor["spec"]["endpoints" if kind == "ServiceMonitor" else "podMetricsEndpoints"]
        relabel = {"action": "replace", "targetLabel": "job", "replacement": job}
        assert relabel in endpoint["relabelings"], name
    (servers,) = find(objects, "PodMonitor", "modelrollout-model-servers")["spec"]["podMetricsEndpoints"]
    meta = "__meta_kubernetes_pod_label_" + "".join(c if c.isalnum() else "_" for c in MODEL_DEPLOYMENT_LABEL)
    relabel = {"action": "replace", "sourceLabels": [meta], "targetLabel": "model_deployment"}
    assert relabel in servers["relabelings"]


def test_the_prometheus_rule_holds_the_groups_of_files_alerts_yaml():
    rule = find(_objects("monitoring"), "PrometheusRule", "modelrollout")
    groups = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())["groups"]
    assert groups and rule["spec"]["groups"] == groups


def test_the_dashboard_config_map_carries_files_dashboard_json_and_the_sidecar_label():
    config_map = find(_objects("monitoring"), "ConfigMap", "modelrollout-dashboard")
    text = (CHART / "files" / "dashboard.json").read_text()
    assert config_map["data"] == {"modelrollout.json": text}
    json.loads(config_map["data"]["modelrollout.json"])
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    moved = render(Install(values_files=("charts/examples/monitoring.yaml",), sets=(
        "grafanaDashboard.namespace=grafana", "grafanaDashboard.labels.grafana_dashboard=null",
        "grafanaDashboard.labels.find_me=yes")))
    config_map = find(moved, "ConfigMap", "modelrollout-dashboard")
    assert config_map["metadata"]["namespace"] == "grafana"
    assert config_map["metadata"]["labels"]["find_me"] == "yes"
    assert "grafana_dashboard" not in config_map["metadata"]["labels"]


# --- network policy ------------------------------------------------------------------------


def test_network_policies_admit_the_pods_own_ports_from_the_peers_given():
    objects = _objects("network-policy")
    peers = yaml.safe_load((EXAMPLES / "network-policy.yaml").read_text())["networkPolicy"]["metricsFrom"]
    for name, port, source in (("modelrollout-operator", "metrics", peers),
                               ("modelrollout-gateway", "http", None)):
        policy = find(objects, "NetworkPolicy", name)
        template = find(objects, "Deployment", name)["spec"]["template"]
        assert _selects(policy["spec"]["podSelector"]["matchLabels"], template)
        (rule,) = policy["spec"]["ingress"]
        assert rule["ports"] == [{"port": port, "protocol": "TCP"}]
        assert port in {p["name"] for p in template["spec"]["containers"][0]["ports"]}
        assert rule.get("from") == source
    assert "NetworkPolicy" not in _kinds(_objects("defaults"))


# --- one source of truth: manifests/ -------------------------------------------------------


def _kustomized() -> list[dict]:
    done = subprocess.run([KUBECTL, "kustomize", str(ROOT / "manifests")], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return go_yaml.load_all(done.stdout)


def _chart_crds() -> list[dict]:
    return [obj for _path, text in crds() for obj in go_yaml.load_all(text)]


_POD_FIELDS = ("serviceAccountName", "securityContext", "volumes", "terminationGracePeriodSeconds")
_CONTAINER_FIELDS = ("name", "image", "args", "env", "ports", "securityContext", "livenessProbe",
                     "readinessProbe", "resources", "volumeMounts")


def _comparable(objects: list[dict]) -> dict:
    """What matters of each object, by (kind, namespace, name): what a pod runs and may do, what
    RBAC grants and to whom, where Services send traffic, the CRD whole. Labels are compared as
    the selectors that use them (Helm adds its own)."""
    out = {}
    for obj in objects:
        meta, kind = obj["metadata"], obj["kind"]
        if kind == "Namespace":
            continue  # the chart installs into a namespace the user creates (docs/install.md)
        if kind == "Deployment":
            spec = obj["spec"]
            pod = spec["template"]["spec"]
            fact = {"replicas": spec.get("replicas"), "strategy": spec["strategy"],
                    "selector": spec["selector"], "pod_labels": spec["template"]["metadata"]["labels"],
                    "pod": {f: pod.get(f) for f in _POD_FIELDS},
                    "containers": [{f: c.get(f) for f in _CONTAINER_FIELDS} for c in pod["containers"]]}
        elif kind in ("ClusterRole", "Role"):
            fact = obj["rules"]
        elif kind in ("ClusterRoleBinding", "RoleBinding"):
            fact = {"roleRef": obj["roleRef"], "subjects": obj["subjects"]}
        elif kind == "Service":
            fact = {"selector": obj["spec"]["selector"], "ports": obj["spec"]["ports"],
                    "type": obj["spec"].get("type", "ClusterIP")}
        elif kind == "ServiceAccount":
            fact = {}
        else:
            fact = obj
        out[(obj["apiVersion"], kind, meta.get("namespace", ""), meta["name"])] = fact
    return out


def test_the_chart_defaults_install_the_objects_of_kubectl_kustomize_manifests():
    chart = _comparable(render() + _chart_crds())
    manifests = _comparable(_kustomized())
    assert sorted(chart) == sorted(manifests)
    for key in manifests:
        assert chart[key] == manifests[key], key


def test_the_drift_comparison_sees_a_changed_argument_and_a_changed_rule():
    manifests = _kustomized()
    baseline = _comparable(render() + _chart_crds())
    operator = next(o for o in manifests if o["kind"] == "Deployment" and "operator" in o["metadata"]["name"])
    operator["spec"]["template"]["spec"]["containers"][0]["args"].append("--resync-seconds=60")
    role = next(o for o in manifests if o["kind"] == "ClusterRole")
    role["rules"][0]["verbs"].append("delete")
    changed = _comparable(manifests)
    assert sorted(k for k in changed if changed[k] != baseline[k]) == sorted([
        ("apps/v1", "Deployment", operator["metadata"]["namespace"], operator["metadata"]["name"]),
        ("rbac.authorization.k8s.io/v1", "ClusterRole", "", role["metadata"]["name"])])


def test_the_namespace_docs_create_is_the_one_manifests_define():
    (namespace,) = [o for o in _kustomized() if o["kind"] == "Namespace"]
    text = DOCS.read_text()
    assert f"kubectl create namespace {namespace['metadata']['name']}" in text
    for label, value in namespace["metadata"]["labels"].items():
        if label.startswith("pod-security.kubernetes.io/"):
            assert f"{label}={value}" in text


def test_the_crd_is_the_same_bytes_as_manifests():
    ((path, text),) = crds()
    assert path == "crds/modeldeployments.yaml"
    assert text == (ROOT / "manifests/crd/modeldeployments.yaml").read_text()


def test_chart_version_and_app_version_are_the_project_version():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert meta["version"] == meta["appVersion"] == project
    operator = find(render(), "Deployment", "modelrollout-operator")
    assert operator["spec"]["template"]["spec"]["containers"][0]["image"].endswith(f":{project}")


# --- docs/install.md -----------------------------------------------------------------------


def test_every_helm_command_of_the_install_docs_renders_and_is_in_the_matrix():
    found = commands(DOCS.read_text())
    assert len(found) >= 4
    tested = {(i.values_files, i.sets) for i in MATRIX.values()}
    for install in found:
        for path in install.values_files:
            assert (ROOT / path).is_file(), path
        assert render(install)
        assert lint(install)["errors"] == []
        assert (install.values_files, install.sets) in tested or install.values_files == (), install
    every_example = {str(p.relative_to(ROOT)) for p in EXAMPLES.glob("*.yaml")}
    assert every_example <= {path for install in found for path in install.values_files}


def test_the_install_docs_link_the_argocd_and_alerts_pages():
    text = DOCS.read_text()
    assert "(argocd.md)" in text and "(alerts.md)" in text



# --- references between the objects ----------------------------------------------------------

REFERENCE_CASES = {**MATRIX,
                   "another release name": Install(release="prod", values_files=EVERYTHING),
                   "no gateway": Install(values_files=EVERYTHING, sets=("gateway.enabled=false",))}


@pytest.mark.parametrize("case", REFERENCE_CASES)
def test_every_reference_names_an_object_the_chart_renders(case):
    """Bindings bind rendered roles to rendered ServiceAccounts, pods run as one, Services,
    monitors, budgets and policies select rendered pods, an HPA scales a rendered Deployment or,
    like a ScaledObject, a ModelDeployment through the scale subresource of the chart's CRD."""
    install = REFERENCE_CASES[case]
    objects = render(install)
    (crd,) = [yaml.safe_load(text) for _, text in crds()]
    names = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects}
    accounts = {(ns, name) for kind, ns, name in names if kind == "ServiceAccount"}
    templates = [o["spec"]["template"] for o in objects if o["kind"] == "Deployment"]
    for obj in objects:
        kind, spec, ns = obj["kind"], obj.get("spec", {}), obj["metadata"].get("namespace")
        if kind in ("RoleBinding", "ClusterRoleBinding"):
            ref = obj["roleRef"]
            assert (ref["kind"], ns if ref["kind"] == "Role" else None, ref["name"]) in names, obj
            assert {(s["namespace"], s["name"]) for s in obj["subjects"]} <= accounts, obj
        elif kind == "Deployment":
            assert (ns, spec["template"]["spec"]["serviceAccountName"]) in accounts
            assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
        elif kind == "Service":
            assert any(_selects(spec["selector"], t) for t in templates), obj["metadata"]["name"]
        elif kind in ("PodDisruptionBudget", "ServiceMonitor"):
            assert any(_selects(spec["selector"]["matchLabels"], t) for t in templates), obj
        elif kind == "NetworkPolicy":
            assert any(_selects(spec["podSelector"]["matchLabels"], t) for t in templates), obj
        elif kind in ("HorizontalPodAutoscaler", "ScaledObject"):
            ref = spec["scaleTargetRef"]
            if ref.get("kind") == "ModelDeployment":  # the user's, served by the chart's CRD
                assert ref["apiVersion"] == f"{crd['spec']['group']}/{crd['spec']['versions'][0]['name']}"
                assert "scale" in crd["spec"]["versions"][0]["subresources"]
            else:
                assert ("Deployment", ns, ref["name"]) in names
    if install.release == "prod":
        assert ("Deployment", NAMESPACE, "prod-modelrollout-operator") in names
    gateway_objects = [n for n in names if "gateway" in n[2]]
    assert bool(gateway_objects) == ("gateway.enabled=false" not in install.sets)


def test_the_install_notes_name_the_gateway_url_and_the_namespaces_served():
    notes = chart().render(Install().values(), name="modelrollout", namespace=NAMESPACE)
    text = notes["modelrollout/templates/NOTES.txt"]
    assert "http://modelrollout-gateway.modelrollout-system/v2/models/<model>/infer" in text
    assert "serving every namespace" in text
    namespaced = chart().render(Install(values_files=("charts/examples/namespaced.yaml",)).values(),
                                name="modelrollout", namespace=NAMESPACE)
    assert "serving ml, ml-staging" in namespaced["modelrollout/templates/NOTES.txt"]
