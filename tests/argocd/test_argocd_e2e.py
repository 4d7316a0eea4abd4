"""End to end: canary, blue-green and shadow rollouts driven as Argo CD drives them (spec,
labels and annotations applied as from Git; every manual step an argocd/actions script
applied as Argo CD applies it), on the local cluster. health.lua is evaluated on every
distinct live object the API server's watch sends, so the recordings in tests/data/argocd/
cannot go stale unnoticed; and at the end the stored spec, labels and annotations are exactly
what was applied: nothing the operator or an action did is drift."""

from __future__ import annotations

import pytest

from tests.argocd.test_argocd import REQUIRED
from tests.support import argocd_lua
from tests.support.argocd_expect import check
from tests.support.argocd_recorder import DATA, SCENARIOS, Rollouts, file_name

pytestmark = pytest.mark.slow

ACTIONS_USED = {
    "canary": {"promote", "pause", "resume", "promote-full", "abort", "retry"},
    "blueGreen": {"promote"},  # and resume, when the preview's first measurement had no traffic yet
    "shadow": {"pause", "resume", "promote"},
}


@pytest.mark.parametrize("strategy", list(SCENARIOS))
def test_a_rollout_through_argo_cd_has_the_right_health_throughout_and_no_drift(cluster, models, strategy):
    seen: list[tuple[tuple[str, str], dict, dict]] = []

    def evaluate(kind: str, key: tuple[str, str], obj: dict) -> None:
        seen.append((key, obj, argocd_lua.health(obj)))  # asserted below, not in the watch's thread

    with Rollouts(cluster, models, evaluate) as rollouts:
        SCENARIOS[strategy](rollouts)
    for _, obj, verdict in seen:
        check(obj, verdict)
    keys = {key for key, _, _ in seen}
    # Every state the scenario waits for was judged live (the fleeting ones may pass between
    # two events of a watch that reconnects, so they are required of the recordings only).
    assert {key for key in REQUIRED[strategy] if key[0] != "Progressing"} <= keys
    # And what it waits for is recorded: a new state of the operator means recording again.
    # (An analysis of the preview or the shadow may be inconclusive once on a loaded machine.)
    settled = {key for key in keys if key[0] in ("Healthy", "Paused", "Degraded")
               and (strategy == "canary" or key[1] != "AnalysisInconclusive")}
    assert not [file_name(strategy, key) for key in settled if not (DATA / file_name(strategy, key)).exists()]
    used = {action for _, action in rollouts.actions}
    assert ACTIONS_USED[strategy] <= used <= ACTIONS_USED[strategy] | {"resume"}
    for name, applied in rollouts.applied.items():
        live = cluster.get(name)
        assert live["spec"] == applied["spec"]
        for part in ("labels", "annotations"):
            assert live["metadata"].get(part) == applied["metadata"][part], part
