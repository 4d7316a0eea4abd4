"""The apply layer against the emulated API server, as a model: random sequences of what the
engine asks (ensure, scale, traffic) and of what others do to the objects (a person's
``kubectl scale``, a deleted Deployment, an edited pod template), and after each reconcile
the live objects are what the actions asked for."""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modelrollout.operator.actions import EnsureRevision, RecordEvent, ScaleRevision, SetTraffic
from modelrollout.operator.engine import Decision, revision_of
from modelrollout.operator.kube.api import Api, configuration
from modelrollout.operator.kube.apply import Applier
from modelrollout.operator.kube.converge import holds
from modelrollout.operator.kube.manifests import deployment
from modelrollout.operator.routing import Target, revision_name
from modelrollout.operator.spec import parse_spec
from modelrollout.operator.status import HistoryEntry, RolloutStatus

from modelrollout.harness.apiserver.faults import Fault
from modelrollout.harness.emulator import KubeEmulator
from tests.operator.test_operator_process import CRD, MD
from tests.support.operator_fixtures import SPEC

pytestmark = pytest.mark.slow

VERSIONS = ("1.0.0", "2.0.0", "3.0.0")
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
_namespaces = itertools.count()


def spec_of(version: str):
    doc = copy.deepcopy(SPEC)
    doc["model"] = {"uri": f"https://models.example.com/iris/{version}/model.onnx", "version": version}
    return parse_spec(doc)


SPECS = {version: spec_of(version) for version in VERSIONS}
REVISIONS = {version: revision_of(spec) for version, spec in SPECS.items()}


@pytest.fixture(scope="module")
def kube(tmp_path_factory) -> Iterator[KubeEmulator]:
    with KubeEmulator(tmp_path_factory.mktemp("apply")) as emulator:
        emulator.define_crd(CRD)
        yield emulator


@dataclass
class World:
    """What the actions asked for, per revision, and which objects others have touched since."""

    kube: KubeEmulator
    api: Api
    target: Target
    body: dict
    spec_version: str = "1.0.0"
    replicas: dict[str, int] = field(default_factory=dict)  # revision -> replicas asked for
    templates: dict[str, dict] = field(default_factory=dict)  # revision -> pod template it was built with
    stable: str | None = None
    candidate: str | None = None
    touched: set[str] = field(default_factory=set)  # revisions changed by others, not yet reconciled

    def reconcile(self, actions: list) -> None:
        spec = SPECS[self.spec_version]
        desired = REVISIONS[self.spec_version]  # the one revision this spec rebuilds
        history = tuple(HistoryEntry(revision=r, model_version="v", result="Promoted", at="t")
                        for r in REVISIONS.values())
        status = RolloutStatus(stable_revision=self.stable, candidate_revision=self.candidate,
                               history=history)
        asyncio.run(Applier(self.api).apply(self.target, spec, Decision(status, tuple(actions)), self.body,
                                            NOW))
        mentioned = set()
        for action in actions:
            if isinstance(action, (EnsureRevision, ScaleRevision)):
                mentioned.add(action.revision)
                rebuilt = isinstance(action, EnsureRevision) and action.revision == desired
                if rebuilt:
                    self.templates[desired] = deployment(self.target, spec, desired, 0)["spec"]["template"]
                if rebuilt or action.revision in self.replicas:
                    self.replicas[action.revision] = action.replicas
        for revision in self.replicas:
            if revision not in mentioned and revision not in (self.stable, self.candidate):
                self.replicas[revision] = 0  # nobody asked for it to run
                mentioned.add(revision)
        self.touched -= mentioned

    def check(self) -> None:
        for revision in REVISIONS.values():
            if revision in self.touched:
                continue  # changed by someone else and not reconciled since
            name = revision_name(self.target.name, revision)
            live = self.api.get("Deployment", self.target.namespace, name)
            if revision not in self.replicas:
                assert live is None, revision
                continue
            assert live is not None, revision
            assert live["spec"]["replicas"] == self.replicas[revision], (revision, self.replicas)
            assert holds(self.templates[revision], live["spec"]["template"])
        if self.stable is not None:
            entry = self.api.get("Service", self.target.namespace, self.target.name)
            assert entry["spec"]["selector"]["modelrollout.io/revision"] == self.stable


operator_steps = st.one_of(
    st.tuples(st.just("spec"), st.sampled_from(VERSIONS)),
    st.tuples(st.just("ensure"), st.sampled_from(VERSIONS), st.integers(0, 3)),
    st.tuples(st.just("scale"), st.sampled_from(VERSIONS), st.integers(0, 3)),
    st.tuples(st.just("traffic"), st.sampled_from(VERSIONS), st.sampled_from((None, *VERSIONS)),
              st.sampled_from((0, 30, 100))),
)
other_steps = st.one_of(
    st.tuples(st.just("kubectl-scale"), st.sampled_from(VERSIONS), st.integers(0, 5)),
    st.tuples(st.just("kubectl-delete"), st.sampled_from(VERSIONS)),
    st.tuples(st.just("kubectl-set-image"), st.sampled_from(VERSIONS)),
)


def run(world: World, step: tuple) -> None:
    kind, version, *rest = step
    revision = REVISIONS[version]
    name = revision_name(world.target.name, revision)
    namespace = world.target.namespace
    exists = revision in world.replicas
    if kind == "spec":
        world.spec_version = version
    elif kind == "ensure":
        world.reconcile([EnsureRevision(revision, rest[0])])
    elif kind == "scale":
        world.reconcile([ScaleRevision(revision, rest[0])])
    elif kind == "traffic":
        candidate_version, weight = rest
        candidate = REVISIONS[candidate_version] if candidate_version else None
        if candidate in (None, revision):
            candidate, weight = None, 0
        world.stable, world.candidate = revision, candidate
        world.reconcile([SetTraffic(revision, candidate, 100 - weight, weight)])
    elif kind == "kubectl-scale" and exists:
        world.api.merge_patch("Deployment", namespace, name, {"spec": {"replicas": rest[0]}})
        world.touched.add(revision)
    elif kind == "kubectl-delete" and exists:
        world.api.delete("Deployment", namespace, name)
        del world.replicas[revision]
    elif kind == "kubectl-set-image" and exists:
        live = world.api.get("Deployment", namespace, name)
        containers = live["spec"]["template"]["spec"]["containers"]
        containers[0]["image"] = "someone/else:latest"
        world.api.merge_patch("Deployment", namespace, name, {"spec": {"template": {"spec": {
            "containers": containers}}}})
        world.touched.add(revision)
    if kind in ("spec", "ensure", "scale", "traffic"):
        world.check()


@settings(max_examples=25, stateful_step_count=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.one_of(operator_steps, other_steps), min_size=1, max_size=18))
def test_live_objects_hold_what_the_actions_asked_for_whatever_happened_between(kube, steps):
    namespace = f"model-{next(_namespaces)}"
    body = {"apiVersion": MD, "kind": "ModelDeployment",
            "metadata": {"name": "iris", "namespace": namespace, "uid": "u"}, "spec": SPEC}
    kube.create(copy.deepcopy(body))
    api = Api(configuration(kube.kubeconfig))
    try:
        world = World(kube, api, Target("iris", namespace, "iris", {}, "u"), body)
        for step in steps:
            run(world, step)
    finally:
        api.close()


def test_a_drifted_deployment_is_put_back_in_one_reconcile_with_an_event(kube):
    namespace = "drift"
    body = {"apiVersion": MD, "kind": "ModelDeployment",
            "metadata": {"name": "iris", "namespace": namespace, "uid": "u"}, "spec": SPEC}
    kube.create(copy.deepcopy(body))
    api = Api(configuration(kube.kubeconfig))
    try:
        world = World(kube, api, Target("iris", namespace, "iris", {}, "u"), body)
        revision = REVISIONS["1.0.0"]
        world.stable = revision
        keep = [EnsureRevision(revision, 2), SetTraffic(revision, None, 100, 0)]
        world.reconcile(keep)
        world.reconcile(keep)
        assert _drift_events(api, namespace) == []  # nothing changed, nothing to say
        api.merge_patch("Deployment", namespace, f"iris-{revision}", {"spec": {"replicas": 0}})
        api.merge_patch("Service", namespace, "iris",
                        {"spec": {"selector": {"modelrollout.io/revision": "x"}}})
        world.reconcile(keep)
        world.check()
        messages = _drift_events(api, namespace)
        assert sorted(messages) == [
            f"Deployment iris-{revision}: spec.replicas was 0, set back to 2 (changed outside the operator)",
            f'Service iris: spec.selector.modelrollout.io/revision was "x", set back to "{revision}" '
            "(changed outside the operator)"]
    finally:
        api.close()


def _drift_events(api: Api, namespace: str) -> list[str]:
    return [e["message"] for e in api.list("Event", namespace) if e.get("reason") == "DriftRepaired"]


def test_an_event_the_api_server_refused_is_posted_at_the_next_reconcile_in_order(kube):
    """A decision is carried out once: its Events are not decided again, so a refused one
    waits, with those after it, for the next reconcile's apply."""
    namespace = "events"
    body = {"apiVersion": MD, "kind": "ModelDeployment",
            "metadata": {"name": "iris", "namespace": namespace, "uid": "u"}, "spec": SPEC}
    kube.create(copy.deepcopy(body))
    api = Api(configuration(kube.kubeconfig))
    target, spec = Target("iris", namespace, "iris", {}, "u"), parse_spec(SPEC)
    applier, now = Applier(api), datetime.now(UTC)
    said = [RecordEvent("Normal", "WeightSet", "candidate at 20%"), RecordEvent("Normal", "StepDone", "next")]

    def apply(events: list) -> None:
        decision = Decision(RolloutStatus(), tuple(events))
        asyncio.run(applier.apply(target, spec, decision, copy.deepcopy(body), now))

    def posted() -> list[str]:
        return [e["reason"] for e in sorted(api.list("Event", namespace),
                                            key=lambda e: int(e["metadata"]["resourceVersion"]))]

    try:
        kube.inject(Fault(500, verbs={"create"}, resource="events", count=1))
        apply(said)
        assert posted() == [] and len(applier.unsent[(namespace, "iris")]) == 2
        apply([RecordEvent("Normal", "Promoted", "done")])
        assert posted() == ["WeightSet", "StepDone", "Promoted"] and (namespace, "iris") not in applier.unsent
    finally:
        kube.clear_faults()
        api.close()
