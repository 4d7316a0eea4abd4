"""`kubectl modelrollout status`: what it prints from a ModelDeployment."""

from __future__ import annotations

from modelrollout.kubectl import describe

BODY = {
    "metadata": {"name": "churn", "namespace": "ml"},
    "spec": {"strategy": {"canary": {"steps": [{"setWeight": 30}, {"pause": {}}]}}},
    "status": {"phase": "Paused", "reason": "PausedByStep", "stableRevision": "aaa", "stableVersion": "1",
               "candidateRevision": "bbb", "candidateVersion": "2", "currentStep": 1,
               "traffic": {"stable": 70, "candidate": 30, "mirror": 0}},
}


def test_status_shows_the_split_and_the_step():
    text = describe(BODY)
    assert "Traffic:    stable 70%, candidate 30%" in text
    assert "Step:       2/2" in text
    assert "Pods:" not in text  # a router splits exactly: no pod counts to show


def test_replicas_routing_shows_the_split_the_pods_really_give():
    body = {**BODY, "status": {**BODY["status"], "replicaRouting": {
        "stableEndpoints": 2, "candidateEndpoints": 1, "requestedWeight": 30, "candidateWeight": 33}}}
    assert "Pods:       1 candidate and 2 stable behind the Service = 33% candidate" in describe(body)


def test_blue_green_shows_the_active_revision_the_preview_and_how_to_reach_it():
    body = {"metadata": {"name": "iris", "namespace": "ml"},
            "spec": {"strategy": {"blueGreen": {"previewReplicas": 1}}},
            "status": {"phase": "Paused", "reason": "WaitingForPromotion", "stableRevision": "aaa",
                       "candidateRevision": "bbb", "currentStep": 1, "strategy": "blueGreen",
                       "preview": {"header": "x-modelrollout-revision: preview", "service": "iris-preview"},
                       "blueGreen": {"activeRevision": "aaa", "previewRevision": "bbb", "switchedAt": None,
                                     "scaleDownAt": None},
                       "history": [{"revision": "ccc", "modelVersion": "0.9", "sha256": None,
                                    "result": "Aborted", "at": "t", "reason": "AbortedByUser",
                                    "by": "alice"}]}}
    text = describe(body)
    assert "Strategy:   blueGreen" in text and "Step:       2/4 awaiting promotion" in text
    assert "Active:     aaa, preview bbb" in text
    assert "Preview:    header 'x-modelrollout-revision: preview' or Service iris-preview" in text
    assert "History:    ccc (0.9) Aborted (AbortedByUser) by alice at t" in text


def test_shadow_shows_what_was_mirrored_and_compared():
    body = {"metadata": {"name": "iris", "namespace": "ml"},
            "spec": {"strategy": {"shadow": {}}},
            "status": {"phase": "Progressing", "reason": "Shadowing", "stableRevision": "aaa",
                       "candidateRevision": "bbb", "currentStep": 0,
                       "traffic": {"stable": 100, "candidate": 0, "mirror": 100},
                       "shadow": {"mirrorPercent": 100, "comparisons": 420, "agreement": 0.9976}}}
    text = describe(body)
    assert "Shadow:     100% mirrored, 420 compared, agreement 0.9976" in text
    assert "Step:       1/3 shadowing" in text  # Shadowing, AwaitingPromotion, ScalingUp


def test_a_fired_guard_shows_what_fired_and_the_fallback_serving():
    body = {"metadata": {"name": "iris", "namespace": "ml"},
            "spec": {"strategy": {"canary": {"steps": [{"setWeight": 10}]}}},
            "status": {"phase": "Degraded", "reason": "FallbackActive", "stableRevision": "bbb",
                       "guard": {"revision": "bbb", "state": "Fired", "since": "t0", "firedAt": "t9",
                                 "trigger": "input-drift failed 3 times in a row since t5",
                                 "analysis": [{"metric": "input-drift", "at": "t9", "value": 0.7,
                                               "phase": "Failed"}]},
                       "fallback": {"revision": "aaa", "kind": "previousStable", "version": "1.0.0",
                                    "active": True, "since": "t9", "readyReplicas": 2}}}
    text = describe(body)
    assert "Guard:      Fired bbb since t0 (no end); fired at t9: input-drift failed 3 times" in text
    assert "Guarded:    input-drift = 0.7: Failed (t9)" in text
    assert "Fallback:   aaa (1.0.0, previousStable) SERVING since t9; 2 ready" in text
