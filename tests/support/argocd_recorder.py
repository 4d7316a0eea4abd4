"""Real rollouts of every strategy, driven as Git and a person would through Argo CD, with
every distinct ModelDeployment they go through kept: the recordings in tests/data/argocd/
that health.lua is tested on, and the live run of tests/argocd/test_argocd_e2e.py.

Re-record (about two minutes; replaces tests/data/argocd/*.json):

    .venv/bin/python tests/support/argocd_recorder.py

Git's part: ``Rollouts.apply`` writes spec, labels and annotations as `kubectl apply` (and
Argo CD's sync) would. The person's part: ``Rollouts.act`` runs an argocd/actions script on
the live object and applies the result as Argo CD does (a JSON merge patch of live -> new,
its ``status`` part sent to the status subresource), then waits for the operator to carry
the command out.
"""

from __future__ import annotations

import contextlib
import copy
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the tests package, found after the standard library
    sys.path.append(str(Path(__file__).resolve().parents[2]))

from kubernetes.config import new_client_from_config  # noqa: E402 - after the path above
from kubernetes.dynamic import DynamicClient  # noqa: E402
from modelrollout.serving.examples import write_model_versions  # noqa: E402

from modelrollout.harness.cluster import API_VERSION, KIND, LocalCluster, model_deployment  # noqa: E402
from modelrollout.harness.process import wait_for  # noqa: E402
from modelrollout.harness.traffic import Traffic, wait_serving  # noqa: E402
from tests.support import argocd_lua  # noqa: E402
from tests.support.argocd_expect import NEW, UNOBSERVED, key_of  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data" / "argocd"
INTERVAL = 3.0
ERROR_RATE = {"name": "error-rate", "thresholdRange": {"max": 0.05}, "minSamples": 5}
SHADOW_METRICS = [
    {"name": "shadow-agreement", "thresholdRange": {"min": 0.99}, "minSamples": 20},
    {"name": "shadow-latency-ratio", "thresholdRange": {"max": 10}, "minSamples": 20, "failureLimit": 2},
    {"name": "shadow-error-rate", "thresholdRange": {"max": 0.01}, "minSamples": 20},
]
PREVIEW = {"x-modelrollout-revision": "preview"}
# What a user keeps in Git beside the spec: none of it may be touched by anyone else.
LABELS = {"app.kubernetes.io/part-of": "shop", "team": "ml"}
ANNOTATIONS = {"example.com/owner": "ml-platform", "argocd.argoproj.io/sync-wave": "1"}
# API server bookkeeping that says nothing about the rollout (and changes on every write).
_VOLATILE = ("managedFields", "resourceVersion", "uid", "creationTimestamp")

Seen = Callable[[str, tuple[str, str], dict], None]


def merge_patch(live: object, new: object) -> object:
    """The RFC 7386 merge patch that turns ``live`` into ``new`` (what Argo CD computes
    after an action: jsonpatch.CreateMergePatch). Lists are replaced whole."""
    if not (isinstance(live, dict) and isinstance(new, dict)):
        return copy.deepcopy(new)
    patch: dict = {key: None for key in live if key not in new}
    for key, value in new.items():
        if key not in live:
            patch[key] = copy.deepcopy(value)
        elif live[key] != value:
            patch[key] = merge_patch(live[key], value)
    return patch


class Rollouts:
    """ModelDeployments on ``cluster``; ``seen(strategy, key, obj)`` hears of every object
    with a (phase, reason) not seen before for that strategy (argocd_expect.key_of)."""

    def __init__(self, cluster: LocalCluster, models: dict[str, Path], seen: Seen) -> None:
        self.cluster, self.models, self.seen = cluster, models, seen
        self.applied: dict[str, dict] = {}  # name -> the last document applied
        self.actions: list[tuple[str, str]] = []  # (name, action) carried out
        self._keys: set[tuple[str, tuple[str, str]]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="argocd-watch", daemon=True)

    def __enter__(self) -> Rollouts:
        self._watcher.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._watcher.join(10)

    def _watch(self) -> None:
        """Every version of every ModelDeployment, as the API server's watch sends them: states
        the operator leaves within a tick (WeightSet, Switched) are seen too."""
        client = DynamicClient(new_client_from_config(str(self.cluster.kube.kubeconfig)))
        resource = client.resources.get(api_version=API_VERSION, kind=KIND)
        version = None
        while not self._stop.is_set():
            try:
                for event in resource.watch(namespace=self.cluster.namespace, resource_version=version,
                                            timeout=2):
                    obj = event["raw_object"]
                    version = obj["metadata"].get("resourceVersion")
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._see(obj)
                    if self._stop.is_set():
                        return
            except Exception:  # noqa: BLE001 - a broken or expired stream: watch again from now
                version = None
                self._stop.wait(0.2)

    def document(self, name: str, version: str, strategy: dict, metrics: list[dict]) -> dict:
        doc = model_deployment(name, self.models[version], version, self.cluster.prometheus.url, [], INTERVAL,
                               metrics, strategy=strategy)
        doc["metadata"].update(labels=dict(LABELS), annotations=dict(ANNOTATIONS))
        return doc

    def apply(self, doc: dict) -> dict:
        """Create, or replace spec, labels and annotations; the API server's answer (the
        new generation, not yet observed by the operator) is seen too."""
        cluster, name = self.cluster, doc["metadata"]["name"]
        doc = copy.deepcopy(doc)
        doc["metadata"]["namespace"] = cluster.namespace
        if cluster.get(name) is None:
            answer = cluster.kube.create(doc)
        else:
            operations = [{"op": "add", "path": f"/metadata/{part}", "value": doc["metadata"][part]}
                          for part in ("labels", "annotations")]
            operations.append({"op": "replace", "path": "/spec", "value": doc["spec"]})
            answer = cluster.kube.json_patch(API_VERSION, KIND, name, operations, cluster.namespace)
        self.applied[name] = doc
        self._see(answer)
        return answer

    def follow(self, name: str, done: Callable[[dict], object], what: str, timeout: float = 150) -> dict:
        """Poll the object until ``done(status)``; every one read is seen."""
        def check() -> dict | None:
            obj = self.cluster.get(name)
            self._see(obj)
            return obj if done(obj.get("status") or {}) else None

        return wait_for(check, timeout, lambda: f"{name}: {what}; last status "
                        f"{(self.cluster.get(name) or {}).get('status')}", poll_seconds=0.2)

    def act(self, name: str, action: str, timeout: float = 60) -> dict:
        """Run argocd/actions/<action>/action.lua as Argo CD does; the object once the
        operator has carried the command out."""
        live = self.cluster.get(name)
        new = argocd_lua.action(action, live)
        patch = merge_patch(live, new)
        outside = {key: value for key, value in patch.items() if key != "status"}
        assert not outside, f"action {action} changes more than status: {outside}"
        self.cluster.kube.merge_patch(API_VERSION, KIND, name, {"status": patch["status"]},
                                      self.cluster.namespace, subresource="status")
        command_id = new["status"]["command"]["id"]
        self.actions.append((name, action))
        return self.follow(name, lambda s: s.get("handledCommand") == command_id, f"{action} carried out",
                           timeout)

    def _see(self, obj: dict) -> None:
        strategy = next(iter((obj.get("spec") or {}).get("strategy") or {"?": None}))
        key = key_of(obj)
        with self._lock:
            if (strategy, key) in self._keys:
                return
            self._keys.add((strategy, key))
        kept = copy.deepcopy(obj)
        for field in _VOLATILE:
            kept.get("metadata", {}).pop(field, None)
        self.seen(strategy, key, kept)


def _gate_passed(status: dict) -> bool:
    return bool(status.get("gatePassed"))


def _is(phase: str, reason: str) -> Callable[[dict], bool]:
    return lambda s: (s.get("phase"), s.get("reason")) == (phase, reason)


def healthy_on(version: str) -> Callable[[dict], bool]:
    return lambda s: s.get("phase") == "Healthy" and s.get("stableVersion") == version


def canary(r: Rollouts) -> None:
    """No client traffic: the analysis step is inconclusive (an idle canary proves nothing).
    Every manual action, an abort and a retry, an invalid spec, and a revert in Git."""
    name = "argo-canary"
    steps = [{"setWeight": 20}, {"pause": {"duration": "2s"}}, {"analysis": {"metrics": ["error-rate"]}},
             {"pause": {}}, {"setWeight": 50}]

    def doc(version: str, step_list: list = steps) -> dict:
        return r.document(name, version, {"canary": {"steps": step_list}}, [ERROR_RATE])

    r.apply(doc("1.0.0"))
    r.follow(name, healthy_on("1.0.0"), "1.0.0 healthy")
    r.apply(doc("2.0.0"))
    r.follow(name, lambda s: s.get("reason") == "AnalysisInconclusive", "the analysis inconclusive")
    r.act(name, "promote")  # skip the analysis
    r.follow(name, _is("Paused", "PausedByStep"), "the pause step")
    r.act(name, "pause")
    r.follow(name, lambda s: s.get("reason") == "PausedByUser", "paused by a person")
    r.act(name, "resume")
    r.follow(name, lambda s: s.get("reason") == "PausedByStep", "back at the pause step")
    r.act(name, "promote-full")
    r.follow(name, healthy_on("2.0.0"), "2.0.0 promoted")
    r.apply(doc("4.0.0"))
    r.follow(name, _gate_passed, "4.0.0 past its gate")
    r.act(name, "abort")
    r.follow(name, lambda s: s.get("phase") == "Degraded", "4.0.0 aborted")
    r.act(name, "retry")
    r.follow(name, _gate_passed, "4.0.0 past its gate again")
    r.act(name, "abort")
    r.follow(name, _is("Degraded", "AbortedByUser"), "aborted again")
    bad = [{"setWeight": 20}, {"analysis": {"metrics": ["no-such-metric"]}}]
    r.apply(doc("4.0.0", bad))
    r.follow(name, lambda s: s.get("reason") == "SpecInvalid", "the invalid spec reported")
    r.apply(doc("2.0.0"))  # a revert in Git: what stable serves
    r.follow(name, lambda s: healthy_on("2.0.0")(s) and s.get("reason") == "StableReady", "back to 2.0.0")


def blue_green(r: Rollouts) -> None:
    """Clients through the gateway and testers on the preview: pre-promotion analysis on the
    preview, a person promotes, the switch, post-promotion analysis, the old revision kept
    warm; then a failing model promoted by a person without its preview analysis, and
    switched back by the post-promotion analysis."""
    name = "argo-bg"
    # Two replicas, a preview of one: the scale-up before the switch takes a while, as it would.
    strategy = {"blueGreen": {"previewReplicas": 1, "prePromotionAnalysis": {"metrics": ["error-rate"]},
                              "postPromotionAnalysis": {"metrics": ["error-rate"]},
                              "scaleDownDelaySeconds": 4, "abortScaleDownDelaySeconds": 2}}
    gateway = r.cluster.gateway.url

    def doc(version: str) -> dict:
        made = r.document(name, version, strategy, [ERROR_RATE])
        made["spec"]["replicas"] = 2
        return made

    r.apply(doc("1.0.0"))
    r.follow(name, healthy_on("1.0.0"), "1.0.0 healthy")
    wait_serving(gateway, name)
    clients = Traffic(gateway, name, rate_per_second=20).start()
    try:
        r.apply(doc("2.0.0"))
        with _testers(r, name):
            r.follow(name, _resumed(r, name, lambda s: s.get("reason") == "WaitingForPromotion"),
                     "the 2.0.0 preview waiting for a person")
        r.act(name, "promote")
        r.follow(name, _resumed(r, name, healthy_on("2.0.0")), "2.0.0 switched and promoted")
        # 3.0.0 fails on half of the real inputs. No testers this time: the pre-promotion
        # analysis has nothing to judge, a person promotes anyway, and the post-promotion
        # analysis on the clients' traffic switches every client back in one write.
        r.apply(doc("3.0.0"))
        r.follow(name, _skipped(r, name, lambda s: s.get("phase") == "Degraded"), "3.0.0 switched back")
    finally:
        clients.stop()
    r.apply(doc("2.0.0"))  # the revert in Git
    r.follow(name, lambda s: healthy_on("2.0.0")(s) and not s.get("abortedRevision"), "2.0.0 alone again")


@contextlib.contextmanager
def _testers(r: Rollouts, name: str) -> Iterator[Traffic]:
    """Testers on the preview once it passed its gate (header-routed requests), as people would."""
    r.follow(name, _gate_passed, "the preview past its gate")
    testers = Traffic(r.cluster.gateway.url, name, rate_per_second=20, headers=PREVIEW).start()
    try:
        yield testers
    finally:
        testers.stop()


def _resumed(r: Rollouts, name: str, done: Callable[[dict], bool]) -> Callable[[dict], bool]:
    """``done``; meanwhile, what a person does with the preview: resume an analysis that had
    no traffic yet to judge, and promote a preview waiting for it (unless that is ``done``)."""
    handled: set[str] = set()

    def check(status: dict) -> bool:
        if done(status):
            return True
        reason, message = status.get("reason"), status.get("message") or ""
        waiting = status.get("phase") == "Paused" and status.get("candidateRevision")
        if waiting and (reason, message) not in handled:
            handled.add((reason, message))
            r.act(name, "resume" if reason == "AnalysisInconclusive" else "promote")
        return False

    return check


def _skipped(r: Rollouts, name: str, done: Callable[[dict], bool]) -> Callable[[dict], bool]:
    """``done``; meanwhile a person promotes past an analysis that is inconclusive."""
    handled: set[str] = set()

    def check(status: dict) -> bool:
        if done(status):
            return True
        message = status.get("message") or ""
        if status.get("reason") == "AnalysisInconclusive" and message not in handled:
            handled.add(message)
            r.act(name, "promote")
        return False

    return check


def shadow(r: Rollouts) -> None:
    """A re-export shadowed, paused and resumed by a person, waiting for and given a person's
    promote, the old revision kept warm; then a model that answers otherwise, caught."""
    name = "argo-shadow"
    strategy = {"shadow": {"duration": "4s", "minComparisons": 20, "then": "manual",
                           "scaleDownDelaySeconds": 3,
                           "analysis": {"metrics": [m["name"] for m in SHADOW_METRICS]}}}
    gateway = r.cluster.gateway.url
    r.apply(r.document(name, "1.0.0", strategy, SHADOW_METRICS))
    r.follow(name, healthy_on("1.0.0"), "1.0.0 healthy")
    wait_serving(gateway, name)
    clients = Traffic(gateway, name, rate_per_second=20).start()
    try:
        r.apply(r.document(name, "1.0.1", strategy, SHADOW_METRICS))
        r.follow(name, lambda s: s.get("reason") == "Shadowing" and (s.get("traffic") or {}).get("mirror"),
                 "the shadow")
        r.act(name, "pause")
        r.follow(name, lambda s: s.get("reason") == "PausedByUser", "paused by a person")
        r.act(name, "resume")
        r.follow(name, lambda s: s.get("reason") == "WaitingForPromotion", "the shadow passed")
        r.act(name, "promote")
        r.follow(name, healthy_on("1.0.1"), "1.0.1 promoted")
        r.apply(r.document(name, "2.0.0", strategy, SHADOW_METRICS))
        r.follow(name, lambda s: s.get("phase") == "Degraded", "2.0.0 caught disagreeing")
    finally:
        clients.stop()
    r.apply(r.document(name, "1.0.1", strategy, SHADOW_METRICS))
    r.follow(name, healthy_on("1.0.1"), "1.0.1 alone again")


SCENARIOS = {"canary": canary, "blueGreen": blue_green, "shadow": shadow}


def file_name(strategy: str, key: tuple[str, str]) -> str:
    phase, reason = key
    return f"{strategy}-{phase}" + (f"-{reason}" if reason else "") + ".json"


def record(folder: Path = DATA) -> list[Path]:
    """Run every scenario on a fresh local cluster; write each distinct object seen."""
    written: list[Path] = []

    def keep(strategy: str, key: tuple[str, str], obj: dict) -> None:
        path = folder / file_name(strategy, key)
        path.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")
        written.append(path)

    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.json"):  # a state the operator no longer reaches goes with them
        old.unlink()
    with tempfile.TemporaryDirectory() as scratch:
        models = write_model_versions(Path(scratch) / "models")
        with LocalCluster(Path(scratch) / "cluster", tick_seconds=0.5) as cluster, \
                Rollouts(cluster, models, keep) as rollouts:
            for run in SCENARIOS.values():
                started = time.monotonic()
                run(rollouts)
                print(f"{run.__name__}: {time.monotonic() - started:.0f}s", file=sys.stderr)
    return written


__all__ = ["NEW", "SCENARIOS", "UNOBSERVED", "Rollouts", "file_name", "merge_patch", "record"]

if __name__ == "__main__":
    for path in record():
        print(path.name)
