"""ModelDeployment specs to run through validators: every example, the specs the tests and the
demo apply, and documents made invalid on purpose (each table's cases, applied)."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "manifests" / "examples"


def _canary_example() -> dict:
    return yaml.safe_load((EXAMPLES / "canary-builtin.yaml").read_text())["spec"]


def valid_specs() -> dict[str, dict]:
    """name -> spec: what users and tests apply, each expected to be accepted."""
    from modelrollout import demo
    from modelrollout.harness.cluster import model_deployment
    from tests.e2e import test_e2e_rbac, test_e2e_routing, test_e2e_strategies
    from tests.operator.test_operator_spec import GOOD
    from tests.support import operator_fixtures

    specs = {f"example {p.name}": yaml.safe_load(p.read_text())["spec"]
             for p in sorted(EXAMPLES.glob("*.yaml"))}
    for page in sorted((ROOT / "docs").rglob("*.md")):
        for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", page.read_text(), re.S)):
            for doc in yaml.safe_load_all(block):
                if isinstance(doc, dict) and doc.get("kind") == "ModelDeployment" and "spec" in doc:
                    # a page may show only the part it is about: it goes on top of the example
                    specs[f"{page.relative_to(ROOT)} block {i}"] = {**_canary_example(), **doc["spec"]}
    specs["test_operator_spec GOOD"] = GOOD
    for name in ("SPEC", "BLUE_GREEN", "SHADOW"):
        specs[f"operator_fixtures {name}"] = getattr(operator_fixtures, name)

    def harness(strategy: dict, metrics: list[dict], **more) -> dict:
        doc = model_deployment("m", Path("/models/m"), "1.0.0", "http://127.0.0.1:9090", [], 3.0, metrics,
                               strategy=strategy)["spec"]
        return {**doc, **more}

    error_rate = [{"name": "error-rate", "thresholdRange": {"max": 0.05}, "minSamples": 5}]
    for name, strategy in demo.STRATEGIES.items():
        specs[f"demo {name}"] = harness(strategy, demo.METRICS)
    for name, (strategy, _) in test_e2e_routing.STRATEGIES.items():
        specs[f"e2e routing {name}"] = harness(strategy, [], trafficRouting=test_e2e_routing.GATEWAY_API)
    for name, (strategy, routing, more) in test_e2e_rbac.ROLLOUTS.items():
        specs[f"e2e rbac {name}"] = harness(strategy, [], trafficRouting=routing, **more)
    shadow_metrics = test_e2e_strategies.SHADOW_METRICS
    specs["e2e shadow metrics"] = harness({"shadow": {"duration": "30s", "minComparisons": 50, "analysis": {
        "metrics": [m["name"] for m in shadow_metrics]}}}, shadow_metrics)
    specs["harness canary"] = harness({"canary": {"steps": [{"setWeight": 20}, {"analysis": {"metrics": [
        "error-rate"]}}, {"pause": {"duration": "3s"}}, {"setMirror": {"percent": 50}}]}}, error_rate,
        rollbackWindow={"revisions": 2}, goldenSet={"minAccuracy": 0.9})
    return {name: copy.deepcopy(spec) for name, spec in specs.items()}


def invalid_specs() -> dict[str, dict]:
    """name -> spec: each table's broken documents (the schema's, the CEL rules', parse_spec's)."""
    from tests.operator import test_operator_spec
    from tests.operator.api.test_crd import CEL_INVALID, SCHEMA_INVALID

    specs = {}
    for table, cases in (("schema", SCHEMA_INVALID), ("cel", CEL_INVALID)):
        for case, (change, _, _) in cases.items():
            spec = _canary_example()
            change(spec)
            specs[f"{table}: {case}"] = spec
    for test in ("test_invalid_specs_name_the_field_and_what_to_fix",
                 "test_hostile_specs_are_refused_with_the_field_path"):
        marks = getattr(test_operator_spec, test).pytestmark
        for i, (change, path, _) in enumerate(next(m for m in marks if m.name == "parametrize").args[1]):
            specs[f"parse_spec: {test} {i} {path}"] = test_operator_spec.broken(change)
    return specs
