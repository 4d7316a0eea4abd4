"""The alert rules (monitoring/alerts.py -> charts/modelrollout/files/alerts.yaml): committed as
generated, accepted by the real promtool, unit-tested by it with input series for each alert firing
and not firing (tests/promtool/), each with a runbook paragraph in docs/alerts.md, written only with
metrics and labels of the catalogue."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.monitoring.test_dashboard import ROOT, check_query, load
from tests.support.promtool import promtool

COMMITTED = ROOT / "charts" / "modelrollout" / "files" / "alerts.yaml"
PROMTOOL_TESTS = sorted((ROOT / "tests" / "promtool").glob("*.yaml"))
RUNBOOKS = ROOT / "docs" / "alerts.md"

alerts = load("alerts")


def test_the_committed_rules_are_what_the_generator_writes():
    assert COMMITTED.read_text() == alerts.render(), "run: python monitoring/alerts.py"
    result = subprocess.run([sys.executable, "-P", str(ROOT / "monitoring" / "alerts.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_rules_name_every_alert_the_issue_asks_for():
    names = [a.name for a in alerts.alerts()]
    assert names == ["ModelRolloutAborted", "ModelRolloutStuck", "ModelRolloutAnalysisInconclusive",
                     "ModelFallbackActive", "ModelGuardFiredWithoutFallback",
                     "ModelCandidateErrorRatioHigher", "ModelCandidateSlower", "ModelShadowDisagreement",
                     "ModelRevisionNoReadyEndpoint", "ModelServerNotReady", "ModelRolloutOperatorDown",
                     "ModelRolloutReconcileErrors", "ModelLoadFailures"]
    rules = yaml.safe_load(COMMITTED.read_text())["groups"][0]["rules"]
    assert [r["alert"] for r in rules] == names
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}


def test_promtool_accepts_the_rules():
    result = promtool("check", "rules", str(COMMITTED))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts.alerts())} rules found" in result.stdout


def test_promtool_unit_tests_pass():
    assert PROMTOOL_TESTS
    result = promtool("test", "rules", *map(str, PROMTOOL_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def expected(alert: str) -> list[list]:
    """Every exp_alerts list the promtool tests give for ``alert``."""
    found = []
    for path in PROMTOOL_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            found += [t["exp_alerts"] for t in case.get("alert_rule_test", []) if t["alertname"] == alert]
    return found


def test_each_alert_is_tested_firing_and_not_firing():
    for alert in alerts.alerts():
        cases = expected(alert.name)
        assert any(cases), f"{alert.name}: no test where it fires"
        # Besides the series beside the firing ones that must not fire (promtool compares the whole
        # set: test_a_changed_rule_fails_its_tests shows it), an evaluation expecting nothing.
        assert [] in cases, f"{alert.name}: no test where it stays silent"


def run_with(tmp_path: Path, alert: str, expr: str) -> subprocess.CompletedProcess:
    """promtool's unit tests against the rules with ``alert``'s expression replaced."""
    doc = yaml.safe_load(COMMITTED.read_text())
    for rule in doc["groups"][0]["rules"]:
        if rule["alert"] == alert:
            rule["expr"] = expr
    rules = tmp_path / "files" / "alerts.yaml"
    rules.parent.mkdir(parents=True, exist_ok=True)
    rules.write_text(yaml.safe_dump(doc, sort_keys=False))
    paths = []
    for path in PROMTOOL_TESTS:
        test = yaml.safe_load(path.read_text())
        test["rule_files"] = [str(rules)]
        paths.append(tmp_path / path.name)
        paths[-1].write_text(yaml.safe_dump(test, sort_keys=False))
    return promtool("test", "rules", *map(str, paths))


def test_a_changed_rule_fails_its_tests(tmp_path):
    """Each alert's tests catch a rule that never fires, and one that fires where it must not."""
    for alert in alerts.alerts():
        never = run_with(tmp_path, alert.name, "vector(0) > 1")
        assert never.returncode != 0, f"{alert.name}: tests pass with a rule that never fires"
        # One more series, labelled as no real one is, at every evaluation.
        mutant = 'label_replace(vector(1), "mutant", "1", "", "")'
        always = run_with(tmp_path, alert.name, f"({alert.expr}) or {mutant}")
        assert always.returncode != 0, f"{alert.name}: tests pass with a rule that always fires"


def test_every_alert_has_a_runbook_paragraph_at_its_url():
    text = RUNBOOKS.read_text()
    headings = {line.removeprefix("### ").strip().lower()
                for line in text.splitlines() if line.startswith("### ")}
    for rule in yaml.safe_load(COMMITTED.read_text())["groups"][0]["rules"]:
        url = rule["annotations"]["runbook_url"]
        assert url.startswith(alerts.RUNBOOKS + "#"), url
        anchor = url.split("#", 1)[1]
        assert anchor in headings, f"docs/alerts.md has no heading for {rule['alert']}"
        paragraph = text.split(f"### {rule['alert']}", 1)[1].split("\n### ", 1)[0]
        assert len(paragraph.split()) > 40, f"{rule['alert']}: the runbook says too little"


def test_every_metric_and_label_of_the_rules_is_in_the_catalogue():
    for alert in alerts.alerts():
        if alert.name == "ModelRolloutOperatorDown":
            assert alert.expr == 'absent(up{job="modelrollout-operator"} == 1)'
            continue
        check_query(alert.expr)
