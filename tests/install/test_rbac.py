"""manifests/rbac/: least privilege for the operator, the gateway and kubectl plugin users.

Each document is a valid Kubernetes object (kubernetes-validate, strict), and the rules say
exactly what the code needs: no wildcards, no secrets or configmaps, a comment above every
rule naming each of its verbs and resources, a gateway that only reads, and a plugin role
that writes status and never spec.
"""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

RBAC = Path(__file__).resolve().parents[2] / "manifests" / "rbac"
FILES = sorted(RBAC.glob("*.yaml"))
READ_VERBS = {"get", "list", "watch"}
ROLE_KINDS = ("Role", "ClusterRole")


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _roles(path: Path) -> list[dict]:
    return [d for d in _docs(path) if d["kind"] in ROLE_KINDS]


def _role(path: Path, kind: str, name: str) -> dict:
    (role,) = [d for d in _docs(path) if d["kind"] == kind and d["metadata"]["name"] == name]
    return role


def _grants(*roles: dict) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) for every combination the roles allow."""
    return {(group, resource, verb) for role in roles for rule in role["rules"]
            for group in rule["apiGroups"] for resource in rule["resources"] for verb in rule["verbs"]}


ALL_RULES = [(path.name, role["metadata"]["name"], i, rule)
             for path in FILES for role in _roles(path) for i, rule in enumerate(role["rules"])]


def test_there_is_a_file_for_each_kind_of_user():
    assert [p.name for p in FILES] == ["gateway.yaml", "kubectl-plugin.yaml", "operator-namespaced.yaml",
                                       "operator.yaml"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_document_is_a_valid_kubernetes_object(path):
    docs = _docs(path)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30", strict=True)


@pytest.mark.parametrize("broken", [
    lambda role: role["rules"][0].update(verb=role["rules"][0].pop("verbs")),
    lambda role: role["rules"][0].update(verbs="get"),
    lambda role: role.update(kind="ClusterRoles"),
], ids=["misspelt field", "verbs not a list", "unknown kind"])
def test_kubernetes_validate_rejects_a_broken_role(broken):
    """The check above can fail: strict validation catches what the API server would reject."""
    role = _role(RBAC / "gateway.yaml", "ClusterRole", "modelrollout-gateway")
    broken(role)
    with pytest.raises((kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError)):
        kubernetes_validate.validate(role, "1.30", strict=True)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_binding_binds_a_role_of_its_file_to_a_service_account_of_ours(path):
    docs = _docs(path)
    roles = {(d["kind"], d["metadata"]["name"]) for d in docs if d["kind"] in ROLE_KINDS}
    for binding in (d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        assert (binding["roleRef"]["kind"], binding["roleRef"]["name"]) in roles
        for subject in binding["subjects"]:
            assert subject["kind"] == "ServiceAccount"
            assert subject["namespace"] == "modelrollout-system"
            assert subject["name"] in ("modelrollout-operator", "modelrollout-gateway")
        if binding["kind"] == "RoleBinding":
            role = _role(path, binding["roleRef"]["kind"], binding["roleRef"]["name"])
            assert role["metadata"].get("namespace") == binding["metadata"]["namespace"]


@pytest.mark.parametrize(("file", "role", "index", "rule"), ALL_RULES,
                         ids=[f"{file}:{role}:{index}" for file, role, index, _ in ALL_RULES])
def test_no_rule_uses_a_wildcard_or_touches_secrets_or_configmaps(file, role, index, rule):
    assert set(rule) == {"apiGroups", "resources", "verbs"}  # no nonResourceURLs, no resourceNames
    for field in ("apiGroups", "resources", "verbs"):
        assert rule[field] and all("*" not in value for value in rule[field]), (file, role, index)
    assert not {"secrets", "configmaps"} & {r.split("/")[0] for r in rule["resources"]}
    assert not {"escalate", "bind", "impersonate", "deletecollection"} & set(rule["verbs"])


def _comments_above_rules(path: Path) -> list[str]:
    """For each rule in the YAML text, in order, the comment lines right above it."""
    found = []
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^\s*- apiGroups:", line):
            comment = []
            j = i - 1
            while j >= 0 and lines[j].lstrip().startswith("#"):
                comment.insert(0, lines[j].strip().lstrip("#").strip())
                j -= 1
            found.append(" ".join(comment))
    return found


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_rule_has_a_comment_above_it_naming_each_verb_and_resource(path):
    rules = [rule for role in _roles(path) for rule in role["rules"]]
    comments = _comments_above_rules(path)
    assert len(comments) == len(rules) > 0
    for rule, comment in zip(rules, comments, strict=True):
        assert comment, rule
        for word in rule["verbs"] + rule["resources"]:
            assert re.search(rf"(?<![\w/]){re.escape(word)}(?![\w/])", comment), (word, comment)


def test_the_gateway_only_reads_modeldeployments_and_endpointslices():
    role = _role(RBAC / "gateway.yaml", "ClusterRole", "modelrollout-gateway")
    assert _grants(role) == {("modelrollout.io", "modeldeployments", v) for v in ("list", "watch")} | {
        ("discovery.k8s.io", "endpointslices", "list"), ("discovery.k8s.io", "endpointslices", "watch")}
    assert {verb for _, _, verb in _grants(role)} <= READ_VERBS


def test_the_plugin_writes_status_and_never_the_modeldeployment_itself():
    role = _role(RBAC / "kubectl-plugin.yaml", "ClusterRole", "modelrollout-rollout-manager")
    grants = _grants(role)
    assert {verb for _, resource, verb in grants if resource == "modeldeployments"} == READ_VERBS
    assert {verb for _, resource, verb in grants if resource == "modeldeployments/status"} == {"patch"}
    assert {(group, resource) for group, resource, _ in grants} == {
        ("modelrollout.io", "modeldeployments"), ("modelrollout.io", "modeldeployments/status")}
    assert "rbac.authorization.k8s.io/aggregate-to-edit" not in role["metadata"].get("labels", {})


# What the operator needs, resource by resource (the comments in operator.yaml say why;
# tests/e2e/test_e2e_rbac.py shows each verb used, and nothing else called).
OPERATOR_NAMESPACED = {
    ("modelrollout.io", "modeldeployments"): {"get", "list", "watch"},
    ("modelrollout.io", "modeldeployments/status"): {"patch"},
    ("apps", "deployments"): {"list", "watch", "create", "patch", "delete"},
    ("", "services"): {"list", "watch", "create", "patch", "delete"},
    ("", "pods"): {"list", "watch"},
    ("discovery.k8s.io", "endpointslices"): {"list", "watch", "create", "patch", "delete"},
    ("", "events"): {"create"},
    ("gateway.networking.k8s.io", "httproutes"): {"get", "create", "patch"},
}
OPERATOR_CLUSTER_SCOPED = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"},
}
LEADER_ELECTION = {("coordination.k8s.io", "leases"): {"get", "create", "update"}}


def _flatten(table: dict) -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for (group, resource), verbs in table.items() for verb in verbs}


def test_the_cluster_wide_operator_gets_exactly_what_it_needs():
    role = _role(RBAC / "operator.yaml", "ClusterRole", "modelrollout-operator")
    assert _grants(role) == _flatten(OPERATOR_NAMESPACED) | _flatten(OPERATOR_CLUSTER_SCOPED)


@pytest.mark.parametrize("path", [RBAC / "operator.yaml", RBAC / "operator-namespaced.yaml"],
                         ids=lambda p: p.name)
def test_leader_election_may_touch_leases_in_the_operators_namespace_only(path):
    role = _role(path, "Role", "modelrollout-operator-leader-election")
    assert role["metadata"]["namespace"] == "modelrollout-system"
    assert _grants(role) == _flatten(LEADER_ELECTION)
    other_roles = [r for r in _roles(path) if r["metadata"]["name"] != role["metadata"]["name"]]
    assert not {resource for _, resource, _ in _grants(*other_roles)} & {"leases"}


def test_the_namespaced_operator_gets_the_same_in_its_namespace_and_nothing_cluster_wide():
    path = RBAC / "operator-namespaced.yaml"
    role = _role(path, "Role", "modelrollout-operator")
    assert _grants(role) == _flatten(OPERATOR_NAMESPACED)
    kinds = [d["kind"] for d in _docs(path)]
    assert kinds == ["ServiceAccount", "Role", "RoleBinding", "Role", "RoleBinding"]


def test_the_operator_only_reads_modeldeployments_and_writes_their_status():
    """GitOps-safe: no write on the main resource (spec, finalizers, annotations), and no update
    (replace) of anything: every write is a create, a merge patch or a delete."""
    for path in (RBAC / "operator.yaml", RBAC / "operator-namespaced.yaml"):
        grants = _grants(*_roles(path))
        assert {verb for _, resource, verb in grants if resource == "modeldeployments"} == READ_VERBS
        status = {verb for _, resource, verb in grants if resource == "modeldeployments/status"}
        assert status == {"patch"}
        # update (a PUT) only for the Lease, whose writes carry the resourceVersion read.
        assert {(group, resource) for group, resource, verb in grants if verb == "update"} == {
            ("coordination.k8s.io", "leases")}


def test_a_recorded_call_is_allowed_only_where_a_binding_grants_it():
    """tests/support/rbac.py, which tests/e2e/test_e2e_rbac.py checks every recorded call with, can refuse."""
    from tests.support.rbac import allowed, grants

    def call(verb: str, group: str, resource: str, namespace: str | None) -> dict:
        return {"verb": verb, "group": group, "resource": resource, "namespace": namespace}

    namespaced = grants(["operator-namespaced.yaml"], "modelrollout-operator")
    cluster_wide = grants(["operator.yaml"], "modelrollout-operator")
    status = call("patch", "modelrollout.io", "modeldeployments/status", "ml")
    assert allowed(status, namespaced) and allowed(status, cluster_wide)
    assert not allowed({**status, "namespace": "prod"}, namespaced)  # a Role grants in its namespace only
    assert allowed({**status, "namespace": "prod"}, cluster_wide)
    assert not allowed({**status, "verb": "update"}, cluster_wide)
    assert not allowed(call("patch", "modelrollout.io", "modeldeployments", "ml"), cluster_wide)  # not spec
    lease = call("update", "coordination.k8s.io", "leases", "modelrollout-system")
    assert allowed(lease, namespaced) and not allowed({**lease, "namespace": "ml"}, cluster_wide)
    crds = call("list", "apiextensions.k8s.io", "customresourcedefinitions", None)
    assert allowed(crds, cluster_wide) and not allowed(crds, namespaced)
    assert not allowed(call("get", "", "secrets", "ml"), cluster_wide)
    assert grants(["operator.yaml"], "modelrollout-gateway") == set()  # bound to the operator only
