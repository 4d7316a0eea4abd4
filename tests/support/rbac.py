"""What manifests/rbac/ grants a ServiceAccount, and whether a recorded API call is allowed,
as the API server's RBAC authorizer decides: a ClusterRole (through a ClusterRoleBinding)
grants in every namespace and on cluster-scoped objects, a Role (through a RoleBinding)
in its own namespace only; a rule grants each combination of its apiGroups, resources and
verbs (no wildcards here: tests/install/test_rbac.py forbids them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

RBAC = Path(__file__).resolve().parents[2] / "manifests" / "rbac"


@dataclass(frozen=True)
class Grant:
    namespace: str | None  # None: every namespace and the cluster scope (a ClusterRole)
    group: str
    resource: str
    verb: str


def grants(files: list[str], service_account: str) -> set[Grant]:
    """Everything the bindings in ``files`` give ``service_account`` (its namespace is ours)."""
    docs = [d for name in files for d in yaml.safe_load_all((RBAC / name).read_text()) if d]
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in docs
             if d["kind"] in ("Role", "ClusterRole")}
    found: set[Grant] = set()
    for binding in (d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        subjects = binding["subjects"]
        if not any(s["kind"] == "ServiceAccount" and s["name"] == service_account for s in subjects):
            continue
        namespace = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        ref = binding["roleRef"]
        role = roles[(ref["kind"], namespace if ref["kind"] == "Role" else None, ref["name"])]
        for rule in role["rules"]:
            found |= {Grant(namespace, group, resource, verb) for group in rule["apiGroups"]
                      for resource in rule["resources"] for verb in rule["verbs"]}
    return found


def allowed(call: dict, granted: set[Grant]) -> bool:
    """Whether a recorded call (apiserver/audit.py: verb, group, resource, namespace) is granted."""
    return any(g.group == call["group"] and g.resource == call["resource"] and g.verb == call["verb"]
               and (g.namespace is None or g.namespace == call["namespace"]) for g in granted)


def service_account(identity: str) -> str:
    """The ServiceAccount a caller of the harness stands for: its token, up to any "#" (replicas)."""
    return identity.split("#", 1)[0]
