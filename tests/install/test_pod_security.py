"""Every pod the operator creates passes the Kubernetes Restricted Pod Security Standard
(tests/support/pod_security.py: the controls as the Kubernetes documentation states them), whatever
the ModelDeployment asks: the spec has no field that reaches the pod's security context.
So do the operator's and the gateway's own pods (their namespace enforces Restricted).
Each control is shown to refuse a pod that breaks it."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from modelrollout.operator.engine import revision_of
from modelrollout.operator.kube.manifests import deployment
from modelrollout.operator.routing import Target
from modelrollout.operator.spec import parse_spec

from tests.support.pod_security import RESTRICTED, violations

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "manifests" / "examples").glob("*.yaml"))
TARGET = Target(name="iris", namespace="ml", model="iris", options={}, uid="uid-1")
# What a user controls that lands in the pod: env (values and valueFrom), resources, batching.
BUSY_SERVER = {"image": "ghcr.io/example/modelrollout-server:0.1.0",
               "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
               "env": [{"name": "MODELROLLOUT_LOG_LEVEL", "value": "DEBUG"},
                       {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
               "batching": {"maxBatchSize": 32, "maxQueueDelayMicroseconds": 2000}}


def pod_of(spec_doc: dict) -> tuple[dict, dict]:
    spec = parse_spec(spec_doc)
    template = deployment(TARGET, spec, revision_of(spec), 3)["spec"]["template"]
    return template["spec"], template["metadata"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_pods_of_every_example_pass_the_restricted_standard(path):
    spec_doc = yaml.safe_load(path.read_text())["spec"]
    for server in (spec_doc["server"], BUSY_SERVER):
        pod, meta = pod_of({**spec_doc, "server": server})
        assert violations(pod, meta) == []


def test_a_spec_cannot_reach_the_security_context():
    """Anything a user may put in server.env or resources leaves the security context as it is."""
    spec_doc = yaml.safe_load(EXAMPLES[0].read_text())["spec"]
    plain, _ = pod_of(spec_doc)
    busy, _ = pod_of({**spec_doc, "server": BUSY_SERVER})
    assert busy["securityContext"] == plain["securityContext"]
    assert busy["containers"][0]["securityContext"] == plain["containers"][0]["securityContext"]
    assert busy.get("hostNetwork") is None and busy.get("volumes") == plain.get("volumes")


@pytest.mark.parametrize("component", ["operator", "gateway"])
def test_the_operators_and_gateways_own_pods_pass_too(component):
    docs = yaml.safe_load_all((ROOT / "manifests" / "install" / f"{component}.yaml").read_text())
    (found,) = [d for d in docs if d and d["kind"] == "Deployment"]
    template = found["spec"]["template"]
    assert violations(template["spec"], template["metadata"]) == []


def _container(pod: dict) -> dict:
    return pod["containers"][0]


def _context(pod: dict) -> dict:
    return _container(pod)["securityContext"]


BREAKS = {
    "HostProcess": lambda p: p["securityContext"].update(windowsOptions={"hostProcess": True}),
    "Host Namespaces": lambda p: p.update(hostPID=True),
    "Privileged Containers": lambda p: _container(p)["securityContext"].update(privileged=True),
    "Capabilities (baseline)": lambda p: _context(p)["capabilities"].update(add=["NET_RAW"]),
    "HostPath Volumes": lambda p: p["volumes"].append({"name": "host", "hostPath": {"path": "/"}}),
    "Host Ports": lambda p: _container(p)["ports"][0].update(hostPort=8080),
    "Host Probes / Lifecycle Hooks": lambda p: _container(p)["startupProbe"]["httpGet"].update(host="h"),
    "AppArmor": lambda p: p["securityContext"].update(appArmorProfile={"type": "Unconfined"}),
    "SELinux": lambda p: _container(p)["securityContext"].update(seLinuxOptions={"user": "system_u"}),
    "/proc Mount Type": lambda p: _container(p)["securityContext"].update(procMount="Unmasked"),
    "Seccomp (baseline)": lambda p: _context(p).update(seccompProfile={"type": "Unconfined"}),
    "Sysctls": lambda p: p["securityContext"].update(sysctls=[{"name": "kernel.msgmax", "value": "1"}]),
    "Volume Types": lambda p: p["volumes"].append({"name": "nfs", "nfs": {"server": "x", "path": "/"}}),
    "Privilege Escalation": lambda p: _container(p)["securityContext"].pop("allowPrivilegeEscalation"),
    "Running as Non-root": lambda p: p["securityContext"].pop("runAsNonRoot"),
    "Running as Non-root user": lambda p: _container(p)["securityContext"].update(runAsUser=0),
    "Seccomp (restricted)": lambda p: p["securityContext"].pop("seccompProfile"),
    "Capabilities (restricted)": lambda p: _context(p)["capabilities"].update(drop=["NET_RAW"]),
}


def test_every_control_of_the_standard_has_a_case():
    assert set(BREAKS) == set(RESTRICTED)


@pytest.mark.parametrize("control", BREAKS, ids=str)
def test_each_control_refuses_a_pod_that_breaks_it(control):
    pod, meta = pod_of(yaml.safe_load(EXAMPLES[0].read_text())["spec"])
    broken = copy.deepcopy(pod)
    BREAKS[control](broken)
    found = violations(broken, meta)  # the unbroken pod has none (the tests above)
    assert any(v.startswith(control + ": ") for v in found), found
