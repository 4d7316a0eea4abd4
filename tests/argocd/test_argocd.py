"""argocd/: the health check, the action discovery and the six actions, run under a real
Lua 5.1 as Argo CD runs them, on ModelDeployments recorded from real rollouts
(tests/support/argocd_recorder.py wrote tests/data/argocd/; it says how to record them again)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from modelrollout.operator.engine import COMMANDS
from modelrollout.operator.kube.observe import command_by, command_of
from modelrollout.operator.status import status_from_doc, status_to_doc

from tests.support import argocd_lua
from tests.support.argocd_expect import EXPECTED, NEW, UNOBSERVED, check, key_of
from tests.support.argocd_recorder import ANNOTATIONS, DATA, LABELS, SCENARIOS, file_name, merge_patch

RECORDED = sorted(DATA.glob("*.json"))
DOCS = Path(__file__).resolve().parents[2] / "docs" / "argocd.md"

# Every phase the issue names, for every strategy it can happen in: a recording must exist.
REQUIRED = {
    "canary": [(NEW, ""), (UNOBSERVED, ""), ("Progressing", "StableReady"), ("Healthy", "StableReady"),
               ("Progressing", "CandidateNotReady"), ("Progressing", "WeightSet"),
               ("Progressing", "PausedByStep"), ("Progressing", "AnalysisRunning"),
               ("Paused", "AnalysisInconclusive"), ("Paused", "PausedByStep"), ("Paused", "PausedByUser"),
               ("Healthy", "Promoted"), ("Degraded", "AbortedByUser"), ("Degraded", "SpecInvalid")],
    "blueGreen": [(NEW, ""), (UNOBSERVED, ""), ("Progressing", "AnalysisRunning"),
                  ("Paused", "WaitingForPromotion"), ("Paused", "AnalysisInconclusive"),
                  ("Progressing", "ScalingUp"), ("Progressing", "Switched"), ("Progressing", "Promoted"),
                  ("Progressing", "ScaleDownDelay"), ("Degraded", "AnalysisFailed"),
                  ("Healthy", "StableReady")],
    "shadow": [(NEW, ""), (UNOBSERVED, ""), ("Progressing", "Shadowing"), ("Paused", "PausedByUser"),
               ("Paused", "WaitingForPromotion"), ("Progressing", "Promoted"), ("Degraded", "AnalysisFailed"),
               ("Healthy", "StableReady")],
}

# (phase, reason) -> the actions discovery offers (the others are disabled).
OFFERED = {
    ("Healthy", "StableReady"): set(),
    ("Healthy", "Promoted"): set(),
    ("Paused", "PausedByUser"): {"promote-full", "abort", "resume"},
    ("Paused", "PausedByStep"): {"promote", "promote-full", "abort", "pause", "resume"},
    ("Paused", "AnalysisInconclusive"): {"promote", "promote-full", "abort", "pause", "resume"},
    ("Paused", "WaitingForPromotion"): {"promote", "promote-full", "abort", "pause"},
    ("Degraded", "AbortedByUser"): {"retry"},
    ("Degraded", "AnalysisFailed"): {"retry"},
    ("Progressing", "Shadowing"): {"promote", "promote-full", "abort", "pause"},
    ("Progressing", "CandidateNotReady"): {"abort", "pause"},
}


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_the_scripts_run_under_lua_5_1():
    assert argocd_lua.lua_version() == "Lua 5.1"


def test_there_is_one_action_script_per_command_of_the_operator():
    folders = {p.name for p in (argocd_lua.ROOT / "actions").iterdir() if p.is_dir()}
    assert folders == set(argocd_lua.ACTIONS) == set(COMMANDS)
    assert all(argocd_lua.action_path(name).is_file() for name in folders)


def test_every_strategy_and_phase_was_recorded():
    assert set(REQUIRED) == set(SCENARIOS)
    missing = [file_name(strategy, key) for strategy, keys in REQUIRED.items() for key in keys
               if not (DATA / file_name(strategy, key)).exists()]
    assert not missing, f"record again (tests/support/argocd_recorder.py): {missing}"


@pytest.mark.parametrize("path", RECORDED, ids=[p.stem for p in RECORDED])
def test_health_of_a_recorded_modeldeployment(path):
    obj = load(path)
    assert path.name == file_name(next(iter(obj["spec"]["strategy"])), key_of(obj))
    check(obj, argocd_lua.health(obj))


def test_the_recordings_are_what_git_applied():
    """Recorded after the manual actions too: labels and annotations as applied, nothing added."""
    for path in RECORDED:
        metadata = load(path)["metadata"]
        assert (metadata.get("labels"), metadata.get("annotations")) == (LABELS, ANNOTATIONS), path.name


def test_health_says_what_each_state_is_for_a_person():
    by_key = {key_of(load(p)): argocd_lua.health(load(p)) for p in RECORDED}
    assert "Waiting for the operator to observe generation" in by_key[(UNOBSERVED, "")]["message"]
    assert "kubectl modelrollout retry" in by_key[("Degraded", "AbortedByUser")]["message"]
    invalid = by_key[("Degraded", "SpecInvalid")]["message"]
    assert "no-such-metric" in invalid and "spec.strategy.canary.steps[1]" in invalid


def test_health_of_edge_cases():
    assert argocd_lua.health({"metadata": {"generation": 1}, "spec": {}})["status"] == "Progressing"
    healthy = load(DATA / "canary-Healthy-Promoted.json")
    healthy["spec"]["model"]["version"] = "9.9.9"  # a spec the operator has not caught up with
    verdict = argocd_lua.health(healthy)
    assert verdict["status"] == "Progressing" and "9.9.9" in verdict["message"]
    odd = load(DATA / "canary-Healthy-Promoted.json")
    odd["status"]["phase"] = "Sideways"
    assert argocd_lua.health(odd) == {"status": "Unknown", "message": f"Unknown phase Sideways: "
                                                                     f"{odd['status']['message']}"}


def test_every_expectation_has_a_recording_or_is_a_reason_of_the_operator():
    """The table in argocd_expect.py names only real reasons (operator/status.py)."""
    import modelrollout.operator.status as status
    reasons = {v for k, v in vars(status).items() if k.isupper() and isinstance(v, str)}
    assert {reason for _, reason in EXPECTED if reason} <= reasons


@pytest.mark.parametrize("path", RECORDED, ids=[p.stem for p in RECORDED])
def test_discovery_offers_only_what_the_operator_would_act_on(path):
    obj = load(path)
    disabled = argocd_lua.discovery(obj)
    assert set(disabled) == set(COMMANDS) == set(argocd_lua.ACTIONS)
    offered = {name for name, off in disabled.items() if not off}
    if key_of(obj) in OFFERED:
        assert offered == OFFERED[key_of(obj)]
    if not (obj.get("status") or {}).get("candidateRevision"):
        assert offered <= {"retry"}


@pytest.mark.parametrize("action", argocd_lua.ACTIONS)
def test_an_action_writes_the_plugins_command_and_nothing_else(action):
    """The same status.command {action, id, requestedAt, requestedBy} as `kubectl modelrollout`,
    read back by the operator's own parser; spec and metadata untouched."""
    for path in RECORDED:
        live = load(path)
        new = argocd_lua.action(action, live)
        patch = merge_patch(live, new)
        assert set(patch) == {"status"}, path.name  # Argo CD sends it to the status subresource
        command = new["status"]["command"]
        assert set(command) == {"action", "id", "requestedAt", "requestedBy"}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", command["requestedAt"])
        assert command_of(status_from_doc(new["status"])) == (action, command["id"])
        assert command_by(status_from_doc(new["status"])) == "argocd"
        # What Lua cannot hold (nulls) may come back missing: the operator reads the same status.
        before, after = status_from_doc(live.get("status")), status_from_doc(new["status"])
        assert status_to_doc(after) == status_to_doc(before)


def test_two_actions_in_one_second_are_two_commands():
    live = load(DATA / "canary-Paused-PausedByStep.json")
    first = argocd_lua.action("resume", live)
    second = argocd_lua.action("resume", first)
    assert second["status"]["command"]["id"] != first["status"]["command"]["id"]
    handled = {**first, "status": {**first["status"], "handledCommand": first["status"]["command"]["id"]}}
    handled["status"].pop("command")
    third = argocd_lua.action("resume", handled)
    assert third["status"]["command"]["id"] != first["status"]["command"]["id"]


def test_an_action_on_a_modeldeployment_without_status():
    new = argocd_lua.action("pause", {"metadata": {"name": "x"}, "spec": {}})
    assert new["status"]["command"]["action"] == "pause"


def test_the_lua_sandbox_is_argo_cds():
    """Only os.time and os.date: a script that reached further would fail in Argo CD."""
    for name in ("io", "debug", "loadstring", "dofile"):
        with pytest.raises(Exception, match="nil"):
            argocd_lua._runtime().execute(f"return {name}.x")
    assert argocd_lua._runtime().execute("return os.execute") is None


def _docs_config_map() -> dict:
    text = DOCS.read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    maps = [yaml.safe_load(b) for b in blocks if "kind: ConfigMap" in b]
    assert len(maps) == 1, "docs/argocd.md holds one argocd-cm ConfigMap snippet"
    return maps[0]


def test_the_docs_snippet_holds_exactly_the_lua_files():
    config = _docs_config_map()
    assert config["metadata"]["name"] == "argocd-cm"
    data = config["data"]
    assert data["resource.customizations.health.modelrollout.io_ModelDeployment"] == \
        argocd_lua.HEALTH.read_text()
    actions = yaml.safe_load(data["resource.customizations.actions.modelrollout.io_ModelDeployment"])
    assert actions["discovery.lua"] == argocd_lua.DISCOVERY.read_text()
    assert {d["name"]: d["action.lua"] for d in actions["definitions"]} == {
        name: argocd_lua.action_path(name).read_text() for name in argocd_lua.ACTIONS}
    assert argocd_lua.config_map_snippet() in DOCS.read_text()


def test_the_docs_application_is_an_argo_cd_application():
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), re.S)]
    app = next(b for b in blocks if b.get("kind") == "Application")
    assert app["apiVersion"] == "argoproj.io/v1alpha1"
    assert {"source", "destination", "project"} <= set(app["spec"])


def test_a_fired_guard_is_degraded_says_why_and_offers_recover_only():
    """The guard's fallback serving (docs/guard.md): Degraded with the operator's message, and the
    one action that sends traffic back."""
    obj = load(DATA / "canary-Healthy-Promoted.json")
    message = ("fallback a41f03 (simple) serves all traffic since t: guard fired on 7c9d1e: input-drift "
               "failed 3 times in a row")
    obj["status"].update(phase="Degraded", reason="FallbackActive", message=message,
                         guard={"revision": "7c9d1e", "state": "Fired", "since": "t"},
                         fallback={"revision": "a41f03", "kind": "model", "active": True, "since": "t"})
    verdict = argocd_lua.health(obj)
    assert verdict["status"] == "Degraded"
    assert verdict["message"].startswith(message) and "kubectl modelrollout recover" in verdict["message"]
    offered = {name for name, off in argocd_lua.discovery(obj).items() if not off}
    assert offered == {"recover"}
    watching = load(DATA / "canary-Healthy-Promoted.json")
    watching["status"]["guard"] = {"revision": "7c9d1e", "state": "Watching", "since": "t"}
    assert "recover" not in {name for name, off in argocd_lua.discovery(watching).items() if not off}
