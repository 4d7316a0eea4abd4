"""The whole system on one machine, as the tests and `modelrollout demo` run it.

    with LocalCluster(folder) as cluster:             # API server, kubelet, Prometheus,
        cluster.apply(model_deployment)               # gateway and operator, all started
        cluster.wait_for(lambda s: s.get("phase") == "Healthy")
        httpx.post(f"{cluster.gateway.url}/v2/models/iris/infer", json=...)

- the API server: kmock's KubernetesEmulator made honest for kubectl (emulator.py,
  apiserver/) with the ModelDeployment CRD installed (its schema enforced, not its CEL
  rules: see docs/harness.md);
- the kubelet stand-in (kubelet.py): Deployments become real `modelrollout serve`
  processes, with Pods, Deployment status and EndpointSlices kept true;
- real Prometheus scraping every pod, the gateway and the operator through file SD;
- `modelrollout gateway --kubernetes` and `modelrollout operator`, real processes reading
  the emulated API over HTTP with a kubeconfig, exactly as they would a cluster's.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self

from modelrollout.operator.routing import MANAGED_BY_LABELS
from modelrollout.serving.contract.resource import API_VERSION, KIND

from ..install_manifests import model_deployment_crd
from .components import GatewayProcess, OperatorProcess
from .emulator import KubeEmulator
from .kubelet import Kubelet
from .process import wait_for
from .prometheus import PrometheusProcess

# Who calls the API server (each component's bearer token, apiserver/audit.py): the names of
# the ServiceAccounts in manifests/rbac/, and the harness's kubelet stand-in.
OPERATOR = "modelrollout-operator"
GATEWAY = "modelrollout-gateway"
KUBELET = "harness-kubelet"
API_CALLS = "api-calls.json"  # written at close: every call each of them made, the namespaces watched


def model_deployment(name: str, model: Path, version: str, prometheus_url: str, steps: list,
                     interval_seconds: float, metrics: list[dict], progress_deadline_seconds: int = 120,
                     strategy: dict | None = None, **analysis) -> dict:
    """A ModelDeployment for the harness: one replica of a local model file, builtin routing,
    a canary of ``steps`` unless ``strategy`` (spec.strategy) says otherwise."""
    return {
        "apiVersion": API_VERSION, "kind": KIND,
        "metadata": {"name": name},
        "spec": {
            "model": {"uri": model.resolve().as_uri(), "version": version},  # as_uri() needs an absolute path
            "replicas": 1,
            "server": {"image": "modelrollout-server:local"},  # the kubelet stand-in runs it locally
            "trafficRouting": {"builtin": {}},
            "strategy": strategy or {"canary": {"steps": steps}},
            "analysis": {"interval": f"{interval_seconds:g}s", "prometheus": {"address": prometheus_url},
                         "metrics": metrics, **analysis},
            "progressDeadlineSeconds": progress_deadline_seconds,
        },
    }


class LocalCluster:
    """``namespace`` is where apply/get/status act. The kubelet stand-in, the gateway and the
    operator watch that namespace only, or every namespace with ``all_namespaces`` (then the
    kubelet runs only the Deployments the operator made)."""

    def __init__(self, folder: Path, namespace: str = "ml", tick_seconds: float = 0.5,
                 all_namespaces: bool = False, operator_args: Sequence[str] = ()) -> None:
        """``operator_args``: more flags for the operator (LEADER_ELECTION, ...)."""
        self.folder = folder
        self.operator_args = tuple(operator_args)
        self._operators: list[OperatorProcess] = []
        self.namespace = namespace
        self.tick_seconds = tick_seconds
        self.all_namespaces = all_namespaces
        self.kube: KubeEmulator | None = None
        self.kubelet: Kubelet | None = None
        self.prometheus: PrometheusProcess | None = None
        self.gateway: GatewayProcess | None = None
        self.operator: OperatorProcess | None = None

    def start(self) -> Self:
        crd = model_deployment_crd()
        self.folder.mkdir(parents=True, exist_ok=True)
        watched = [] if self.all_namespaces else [self.namespace]
        try:
            self.kube = KubeEmulator(self.folder).start()
            self.kube.define_crd(crd)
            file_sd = self.folder / "scrape-targets.json"
            labels = MANAGED_BY_LABELS if self.all_namespaces else None
            self.kubelet = Kubelet(self.kube.kubeconfig_for(KUBELET), self.folder / "kubelet",
                                   watched or None, file_sd=file_sd, deployment_labels=labels).start()
            self.prometheus = PrometheusProcess(self.folder / "prometheus", file_sd=file_sd)
            self.gateway = GatewayProcess(self.kube.kubeconfig_for(GATEWAY), watched,
                                          self.folder / "gateway.log")
            self.operator = self.start_operator(self.folder / "operator.log", self.operator_args)
            self.gateway.wait_healthy()
            self.kubelet.add_scrape_target(f"127.0.0.1:{self.gateway.port}", {"job": "modelrollout-gateway"})
            self.kubelet.add_scrape_target(f"127.0.0.1:{self.operator.metrics_port}",
                                           {"job": "modelrollout-operator"})
        except BaseException:
            self.close()
            raise
        return self

    def start_operator(self, log_path: Path, args: Sequence[str] = (),
                       identity: str = OPERATOR) -> OperatorProcess:
        """An operator process (another replica, with LEADER_ELECTION in ``args``), healthy.
        ``identity``: its bearer token; give replicas their own (``OPERATOR + "#b"``) to tell
        their calls apart or to refuse one's; the part before "#" names its ServiceAccount."""
        watched = [] if self.all_namespaces else [self.namespace]
        operator = OperatorProcess(self.kube.kubeconfig_for(identity), watched, log_path, self.tick_seconds,
                                   args)
        self._operators.append(operator)
        operator.wait_healthy()
        return operator

    def close(self) -> None:
        for part in (*self._operators, self.gateway):
            if part is not None:
                part.stop()
        if self.kubelet is not None:
            self.kubelet.close()
        if self.prometheus is not None:
            self.prometheus.stop()
        if self.kube is not None:
            with contextlib.suppress(RuntimeError):  # the emulator is not running
                watched = [] if self.all_namespaces else [self.namespace]
                doc = {"namespaces": watched, "calls": self.kube.audit()}
                (self.folder / API_CALLS).write_text(json.dumps(doc, indent=1))
            self.kube.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- ModelDeployments ---

    def apply(self, doc: dict) -> None:
        """Create the ModelDeployment, or replace its spec as `kubectl apply` would."""
        doc = copy.deepcopy(doc)
        doc.setdefault("metadata", {})["namespace"] = self.namespace
        name = doc["metadata"]["name"]
        if self.get(name) is None:
            self.kube.create(doc)
        else:
            # A JSON patch replaces the whole spec: a merge patch would keep keys left out.
            replace = [{"op": "replace", "path": "/spec", "value": doc["spec"]}]
            self.kube.json_patch(API_VERSION, KIND, name, replace, self.namespace)

    def get(self, name: str) -> dict | None:
        try:
            return self.kube.get(API_VERSION, KIND, name, self.namespace)
        except Exception as exc:  # noqa: BLE001 - the dynamic client's NotFoundError
            if getattr(exc, "status", None) == 404:
                return None
            raise

    def status(self, name: str) -> dict:
        return (self.get(name) or {}).get("status") or {}

    def command(self, name: str, action: str, command_id: str) -> None:
        """What `kubectl modelrollout <action>` writes."""
        command = {"action": action, "id": command_id}
        self.kube.merge_patch(API_VERSION, KIND, name, {"status": {"command": command}}, self.namespace,
                              subresource="status")

    def wait_for(self, name: str, check: Callable[[dict], object], timeout: float = 120.0,
                 what: str = "condition") -> dict:
        """Poll the status until ``check(status)`` is true; the status that passed."""
        last: dict = {}

        def passed() -> dict | None:
            last.update(status=self.status(name))
            return last["status"] if check(last["status"]) else None

        def story() -> str:
            tail = self.operator.logs()[-3000:] if self.operator else ""
            return f"{what}; last status: {last.get('status')}\noperator log tail:\n{tail}"

        return wait_for(passed, timeout, story, poll_seconds=0.2)
