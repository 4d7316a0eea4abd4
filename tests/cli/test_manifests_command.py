"""`modelrollout manifests`: the install set of manifests/ (what manifests/kustomization.yaml lists),
read by the real kubectl (`kubectl apply --dry-run=client -f -` against the emulated API server);
with --namespace, the namespaced RBAC and processes; valid objects in an order kubectl can apply."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import click
import httpx
import kubernetes_validate
import pytest
import yaml

from modelrollout.cli import main
from modelrollout.harness.emulator import KubeEmulator
from modelrollout.install_manifests import install_files, split_documents
from tests.support import go_yaml
from tests.support.processes import MODELROLLOUT

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
KUBECTL = "/usr/bin/kubectl"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def run_manifests(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "MODELROLLOUT_NAMESPACE"}
    return subprocess.run([MODELROLLOUT, "manifests", *args], capture_output=True, text=True, timeout=60,
                          env={**environment, **(env or {})})


def printed(*args: str, env: dict[str, str] | None = None) -> str:
    done = run_manifests(*args, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def key(obj: dict) -> tuple[str, str, str, str]:
    meta = obj["metadata"]
    return obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"]


def by_key(objects: list[dict]) -> dict[tuple, dict]:
    keyed = {key(obj): obj for obj in objects}
    assert len(keyed) == len(objects), "two objects with the same kind, namespace and name"
    return keyed


def file_objects(relative: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all((MANIFESTS / relative).read_text()) if doc]


def kustomized() -> list[dict]:
    done = subprocess.run([KUBECTL, "kustomize", str(MANIFESTS)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return go_yaml.load_all(done.stdout)


@pytest.fixture(scope="module")
def kube(tmp_path_factory) -> KubeEmulator:
    """The emulated API server, for kubectl's discovery (client dry-run still maps each kind)."""
    folder = tmp_path_factory.mktemp("kube")
    with KubeEmulator(folder) as kube:
        # kmock 0.8 answers /api/v1 with groupVersion "/v1", so kubectl finds no core kind
        # (Namespace, ServiceAccount, Service); serve the same list under its real name "v1".
        url = yaml.safe_load(kube.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
        core = httpx.get(url + "/api/v1").json()
        core["groupVersion"] = "v1"
        kube.on_loop(lambda: kube.emulator["get /api/v1"] << core)
        yield kube


def kubectl_dry_run(kube: KubeEmulator, stream: str, cache: Path) -> list[dict]:
    """The objects `kubectl apply --dry-run=client -f -` would create from ``stream``, in order.
    --validate=false: the emulator serves no OpenAPI (kubernetes-validate checks the schemas)."""
    done = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kube.kubeconfig), "--cache-dir", str(cache),
         "apply", "--dry-run=client", "--validate=false", "-o", "json", "-f", "-"],
        input=stream, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    objects = answer["items"] if answer["kind"] == "List" else [answer]
    for obj in objects:  # what kubectl adds to remember the applied object
        annotations = obj["metadata"].get("annotations", {})
        annotations.pop(LAST_APPLIED)
        if not annotations:
            obj["metadata"].pop("annotations", None)
    return objects


def test_the_kustomization_lists_every_install_file_and_no_example():
    listed = install_files((MANIFESTS / "kustomization.yaml").read_text())
    on_disk = {str(p.relative_to(MANIFESTS)) for folder in ("crd", "rbac", "install")
               for p in (MANIFESTS / folder).glob("*.yaml")}
    assert set(listed) == on_disk - {"rbac/operator-namespaced.yaml"}  # its namespaced variant
    assert len(listed) == len(set(listed))


def test_kubectl_kustomize_builds_the_files_unchanged():
    listed = install_files((MANIFESTS / "kustomization.yaml").read_text())
    assert by_key(kustomized()) == by_key([obj for path in listed for obj in file_objects(path)])


def test_the_splitter_keeps_every_document_of_every_file():
    for path in MANIFESTS.rglob("*.yaml"):
        text = path.read_text()
        assert [d.obj for d in split_documents(path.name, text)] == [d for d in yaml.safe_load_all(text) if d]


def test_cluster_wide_through_kubectl_is_the_objects_of_manifests(kube, tmp_path):
    stream = printed()
    assert printed("--cluster-wide") == stream
    applied = kubectl_dry_run(kube, stream, tmp_path / "cache")
    assert by_key(applied) == by_key(kustomized())
    assert "# Source: manifests/rbac/operator.yaml" in stream
    # Documents print as their files have them, comments on every verb included.
    assert "# modeldeployments/status: patch, for the one merge patch per reconcile" in stream


@pytest.mark.parametrize("args", [(), ("--namespace", "ml")], ids=["cluster-wide", "namespaced"])
def test_objects_are_valid_and_come_in_an_order_kubectl_can_apply(args):
    objects = [doc for doc in yaml.safe_load_all(printed(*args)) if doc]
    for obj in objects:
        kubernetes_validate.validate(obj, "1.30", strict=True)
    kinds = [obj["kind"] for obj in objects]
    assert kinds[:2] == ["Namespace", "CustomResourceDefinition"]
    (install_namespace,) = [obj["metadata"]["name"] for obj in objects if obj["kind"] == "Namespace"]
    assert {obj["metadata"].get("namespace") for obj in objects} <= {None, install_namespace, *args[1:]}
    assert kinds.index("ServiceAccount") < kinds.index("Deployment")


def test_namespaced_rbac_and_processes(kube, tmp_path):
    namespaces = ("ml", "prod")
    stream = printed("--namespace", "ml", "--namespace", "prod")
    applied = by_key(kubectl_dry_run(kube, stream, tmp_path / "cache"))
    cluster_wide = by_key(kustomized())
    rbac = "rbac.authorization.k8s.io/v1"
    namespaced_file = by_key(file_objects("rbac/operator-namespaced.yaml"))
    operator_role = namespaced_file[(rbac, "Role", "ml", "modelrollout-operator")]
    gateway_file = by_key(file_objects("rbac/gateway.yaml"))
    gateway_role = gateway_file[(rbac, "ClusterRole", "", "modelrollout-gateway")]

    # Nothing cluster-wide grants access to ModelDeployments or workloads: only the kubectl
    # plugin's role, bound to no one here.
    cluster_roles = {k[3] for k in applied if k[1] in ("ClusterRole", "ClusterRoleBinding")}
    assert cluster_roles == {"modelrollout-rollout-manager"}
    # Leader election's Lease stays at home, in the operator's own namespace, once.
    for kind in ("Role", "RoleBinding"):
        key = (rbac, kind, "modelrollout-system", "modelrollout-operator-leader-election")
        assert applied[key] == namespaced_file[key]
    assert not [k for k in applied if k[3] == "modelrollout-operator-leader-election"
                and k[2] != "modelrollout-system"]
    for ns in namespaces:
        role, binding = applied[(rbac, "Role", ns, "modelrollout-operator")], \
            applied[(rbac, "RoleBinding", ns, "modelrollout-operator")]
        assert role["rules"] == operator_role["rules"]
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "modelrollout-operator",
                                        "namespace": "modelrollout-system"}]
        role, binding = applied[(rbac, "Role", ns, "modelrollout-gateway")], \
            applied[(rbac, "RoleBinding", ns, "modelrollout-gateway")]
        assert role["rules"] == gateway_role["rules"]
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": "modelrollout-gateway"}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "modelrollout-gateway",
                                        "namespace": "modelrollout-system"}]

    for component in ("operator", "gateway"):
        deployment_key = ("apps/v1", "Deployment", "modelrollout-system", f"modelrollout-{component}")
        (container,) = applied[deployment_key]["spec"]["template"]["spec"]["containers"]
        (before,) = cluster_wide[deployment_key]["spec"]["template"]["spec"]["containers"]
        assert container["args"] == [*before["args"], "--namespace", "ml", "--namespace", "prod"]
        command = main.commands[component]
        with click.Context(command) as context:  # the process accepts them and serves both namespaces
            command.parse_args(context, list(container["args"]))
            assert context.params["namespaces"] == namespaces
        assert {**container, "args": before["args"]} == before  # nothing else changed

    # Everything else is the cluster-wide install as it is.
    unchanged = {k for k in applied if k[1] not in ("Role", "RoleBinding", "Deployment")}
    shared = unchanged & cluster_wide.keys()
    assert {k: applied[k] for k in shared} == {k: cluster_wide[k] for k in shared}
    assert unchanged - shared == set()


@pytest.mark.parametrize(("args", "message"), [
    (("--namespace", "ML"), "'ML' is not a namespace name"),
    (("--namespace", "-ml"), "'-ml' is not a namespace name"),
    (("--namespace", "ml", "--cluster-wide"), "--cluster-wide and --namespace exclude each other"),
])
def test_bad_arguments_are_usage_errors_and_print_nothing(args, message):
    done = run_manifests(*args)
    assert (done.returncode, done.stdout) == (2, "")
    assert message in done.stderr


def test_namespaces_from_the_environment_and_cluster_wide_over_them():
    namespaced = printed("--namespace", "ml", "--namespace", "prod")
    assert printed(env={"MODELROLLOUT_NAMESPACE": "ml prod"}) == namespaced != printed()
    assert printed("--cluster-wide", env={"MODELROLLOUT_NAMESPACE": "ml prod"}) == printed()
