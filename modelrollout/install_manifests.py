"""The manifests inside the package, and the install set that `modelrollout manifests` prints.

The repository's manifests/ folder is the package ``modelrollout.manifests`` (pyproject.toml):
the wheel carries its YAML files byte for byte, and they are read here through importlib.resources,
so an installed modelrollout needs no checkout (tests/install/test_packaging.py compares the bytes).

The install set is what manifests/kustomization.yaml lists: the CRD, the RBAC, and the operator's
and gateway's Deployments, for every namespace. With namespaces, the operator's RBAC is
rbac/operator-namespaced.yaml (its Role and RoleBinding in each namespace instead of the sample
``ml``), the gateway's read-only ClusterRole becomes a Role in each namespace, and both processes
get ``--namespace`` for each. Documents print with their source's comments, except the ones
changed for namespaces.
"""

from __future__ import annotations

import copy
import importlib.resources
import re
from collections.abc import Mapping
from dataclasses import dataclass

import yaml

PACKAGE = "modelrollout.manifests"
CRD = "crd/modeldeployments.yaml"
KUSTOMIZATION = "kustomization.yaml"
OPERATOR_RBAC = "rbac/operator.yaml"
OPERATOR_RBAC_NAMESPACED = "rbac/operator-namespaced.yaml"
GATEWAY_RBAC = "rbac/gateway.yaml"
# Components whose process takes --namespace (the app.kubernetes.io/component label).
NAMESPACED_COMPONENTS = ("operator", "gateway")
# kubectl applies a stream in order: namespaces and CRDs before what lives in them or uses them.
KIND_ORDER = ("Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
              "Role", "RoleBinding", "Service", "Deployment")
_NAMESPACE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)


def read_text(relative: str) -> str:
    """A file of manifests/ (say ``crd/modeldeployments.yaml``), as the installed package has it."""
    return importlib.resources.files(PACKAGE).joinpath(relative).read_text(encoding="utf-8")


def model_deployment_crd() -> dict:
    """The ModelDeployment CustomResourceDefinition (manifests/crd/modeldeployments.yaml)."""
    (crd,) = [doc.obj for doc in split_documents(CRD, read_text(CRD))]
    return crd


def install_documents(namespaces: tuple[str, ...] = ()) -> list[Document]:
    """The install set, for every namespace (no ``namespaces``) or for the ones given."""
    files = install_files(read_text(KUSTOMIZATION))
    sources = {path: read_text(path) for path in (*files, OPERATOR_RBAC_NAMESPACED)}
    return install_set(files, sources, namespaces)


@dataclass(frozen=True)
class Document:
    source: str  # its file under manifests/
    obj: dict
    text: str  # the YAML printed: the source's own text (comments kept) unless obj was changed


def install_files(kustomization: str) -> list[str]:
    return list(yaml.safe_load(kustomization)["resources"])


def split_documents(source: str, text: str) -> list[Document]:
    """The documents of one multi-document YAML file, each with its own text."""
    documents = []
    for chunk in _SEPARATOR.split(text):
        obj = yaml.safe_load(chunk)
        if obj:
            documents.append(Document(source, obj, chunk.strip("\n") + "\n"))
    return documents


def check_namespace(name: str) -> str:
    if not _NAMESPACE_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a namespace name (lower-case letters, digits and '-', "
                         "at most 63, starting and ending with a letter or digit)")
    return name


def install_set(files: list[str], sources: Mapping[str, str], namespaces: tuple[str, ...]) -> list[Document]:
    """The documents of ``files`` (texts in ``sources``), made namespaced when ``namespaces`` are
    given, in the order kubectl can apply them."""
    namespaces = tuple(dict.fromkeys(check_namespace(n) for n in namespaces))
    documents: list[Document] = []
    for path in files:
        if namespaces and path == OPERATOR_RBAC:
            path = OPERATOR_RBAC_NAMESPACED
        for doc in split_documents(path, sources[path]):
            documents.extend(_for_namespaces(doc, namespaces) if namespaces else [doc])
    return sorted(documents, key=_install_rank)


def render(documents: list[Document]) -> str:
    """One YAML stream for `kubectl apply -f -`; each document says the file it comes from."""
    return "".join(f"---\n# Source: manifests/{doc.source}\n{doc.text}" for doc in documents)


def _for_namespaces(doc: Document, namespaces: tuple[str, ...]) -> list[Document]:
    kind = doc.obj["kind"]
    if doc.source == OPERATOR_RBAC_NAMESPACED and kind in ("Role", "RoleBinding") \
            and doc.obj["metadata"]["name"] == "modelrollout-operator":  # not leader election's, at home
        return [_changed(doc, _in_namespace(doc.obj, ns)) for ns in namespaces]
    if doc.source == GATEWAY_RBAC and kind == "ClusterRole":
        return [_changed(doc, _in_namespace({**doc.obj, "kind": "Role"}, ns)) for ns in namespaces]
    if doc.source == GATEWAY_RBAC and kind == "ClusterRoleBinding":
        binding = {**doc.obj, "kind": "RoleBinding", "roleRef": {**doc.obj["roleRef"], "kind": "Role"}}
        return [_changed(doc, _in_namespace(binding, ns)) for ns in namespaces]
    component = doc.obj["metadata"].get("labels", {}).get("app.kubernetes.io/component")
    if kind == "Deployment" and component in NAMESPACED_COMPONENTS:
        obj = copy.deepcopy(doc.obj)
        (container,) = obj["spec"]["template"]["spec"]["containers"]
        for ns in namespaces:
            container["args"] = [*container.get("args", []), "--namespace", ns]
        return [_changed(doc, obj)]
    return [doc]


def _in_namespace(obj: dict, namespace: str) -> dict:
    obj = copy.deepcopy(obj)
    obj["metadata"]["namespace"] = namespace
    return obj


def _changed(doc: Document, obj: dict) -> Document:
    return Document(doc.source, obj, yaml.safe_dump(obj, sort_keys=False, width=110))


def _install_rank(doc: Document) -> int:
    kind = doc.obj["kind"]
    return KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
