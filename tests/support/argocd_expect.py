"""What health.lua must say of a ModelDeployment in each (phase, reason) the operator writes
(operator/status.py, operator/engine/): the Argo CD health status and words of the message a
person acts on. Used on the recorded documents (tests/data/argocd/) and on live objects."""

from __future__ import annotations

NEW = "New"  # just created: no status yet
UNOBSERVED = "Unobserved"  # the spec changed, the operator has not acted on it yet

# A rollout under way: phase Progressing with a candidate.
_ROLLING = ("NewRevision", "CandidateNotReady", "CandidateReady", "WeightSet", "MirrorSet", "StepDone",
            "AnalysisRunning", "PausedByStep", "Shadowing", "ScalingUp", "Switched", "WaitingForPromotion")
# Called off: phase Degraded, stable serves everything until the spec changes or a retry.
_ABORTED = ("AbortedByUser", "AnalysisFailed", "ProgressDeadlineExceeded", "CandidateCrashLoop",
            "SmokeTestFailed", "GoldenSetFailed")

EXPECTED: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {
    (NEW, ""): ("Progressing", ("Waiting for the modelrollout operator to pick up",)),
    (UNOBSERVED, ""): ("Progressing", ("Waiting for the operator to observe generation",)),
    ("Progressing", "StableReady"): ("Progressing", ("Waiting for stable",)),
    ("Healthy", "StableReady"): ("Healthy", ("Serving", "with all traffic")),
    ("Healthy", "Promoted"): ("Healthy", ("Serving", "with all traffic")),
    ("Healthy", "FastRevert"): ("Healthy", ("Serving", "with all traffic")),
    ("Progressing", "Promoted"): ("Progressing", ("keeping the previous revision warm", "kept at full size")),
    ("Progressing", "FastRevert"): ("Progressing", ("keeping the previous revision warm",)),
    ("Progressing", "ScaleDownDelay"): ("Progressing", ("keeping the previous revision warm", "until")),
    ("Paused", "PausedByStep"): ("Suspended", ("a pause with no duration", "resume", "promote")),
    ("Paused", "PausedByUser"): ("Suspended", ("Paused by a person", "resume", "abort")),
    ("Paused", "WaitingForPromotion"): ("Suspended", ("Waiting for a person", "promote switches", "abort")),
    ("Paused", "AnalysisInconclusive"): ("Suspended", ("inconclusive", "resume", "promote", "abort")),
    ("Degraded", "SpecInvalid"): ("Degraded", ("Invalid spec, fix it in Git", "spec.")),
    **{("Progressing", reason): ("Progressing", ("Rolling out", "% candidate")) for reason in _ROLLING},
    **{("Degraded", reason): ("Degraded", ("aborted", "serves all traffic", "retry")) for reason in _ABORTED},
}


def key_of(obj: dict) -> tuple[str, str]:
    """(phase, reason) of a ModelDeployment; (NEW, "") before its first status, (UNOBSERVED, "")
    while the operator has not acted on its generation yet."""
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation") or 0
    if not status.get("phase"):
        return NEW, ""
    if (status.get("observedGeneration") or 0) < generation:
        return UNOBSERVED, ""
    return status["phase"], status.get("reason") or ""


def check(obj: dict, verdict: dict) -> None:
    """AssertionError unless ``verdict`` (health.lua's answer) is what ``obj`` calls for."""
    key = key_of(obj)
    assert key in EXPECTED, f"no expectation for {key}: add one (health.lua said {verdict})"
    status, words = EXPECTED[key]
    assert verdict["status"] == status, f"{key}: {verdict} (wanted {status})"
    missing = [w for w in words if w not in verdict["message"]]
    assert not missing, f"{key}: message {verdict['message']!r} lacks {missing}"
    model_status = obj.get("status") or {}
    if status == "Healthy":  # the version the spec asks for, by name
        assert (obj["spec"]["model"]["version"]) in verdict["message"], verdict
    if key[0] == "Progressing" and model_status.get("candidateRevision"):
        assert str(model_status.get("candidateVersion")) in verdict["message"], verdict
