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
