"""The route file's parser: JSON and YAML give the same table, and a file that is neither
is refused naming the file. (That a change reaches the traffic, and that a refused one
leaves the old routes in force, is proved end to end in test_gateway_routing.py.)"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml
from modelrollout.serving.contract.routes import InvalidRoutes
from modelrollout.serving.gateway.route_file import RouteFile, parse_text


def table_doc(models: int) -> dict:
    return {"models": {f"m{i:03d}": {
        "revisions": [{"name": "v1", "role": "stable", "weight": 90, "endpoints": [f"127.0.0.1:{8000 + i}"]},
                      {"name": "v2", "role": "candidate", "weight": 10,
                       "endpoints": [{"address": "127.0.0.1:9000", "ready": False}]}],
        "mirror": {"revision": "v2", "percent": 50},
        "sticky": {"header": "x-user-id"}} for i in range(models)}}


def test_json_and_yaml_files_give_the_same_table(tmp_path: Path):
    doc = table_doc(30)
    from_json = parse_text(json.dumps(doc), tmp_path / "routes.json")
    from_yaml = parse_text(yaml.safe_dump(doc), tmp_path / "routes.yaml")
    assert from_json == from_yaml
    assert len(from_json.models) == 30
    route = from_json.models["m007"]
    assert [(r.name, r.weight) for r in route.revisions] == [("v1", 90), ("v2", 10)]
    assert route.revisions[0].endpoints[0].port == 8007 and not route.revisions[1].endpoints[0].ready
    assert route.mirror is not None and route.mirror.percent == 50


def test_yaml_that_is_not_json_is_still_read(tmp_path: Path):
    table = parse_text("models: {iris: {revisions: [{name: v1, weight: 100, endpoints: ['127.0.0.1:1']}]}}\n",
                       tmp_path / "routes.yaml")
    assert [r.name for r in table.models["iris"].revisions] == ["v1"]


def test_a_file_that_is_neither_is_refused_naming_it(tmp_path: Path):
    with pytest.raises(InvalidRoutes, match=r"routes\.yaml is not valid YAML or JSON"):
        parse_text("models: {iris: [unclosed\n", tmp_path / "routes.yaml")
    with pytest.raises(InvalidRoutes, match="add up to 100"):  # JSON, but breaks the schema
        parse_text(json.dumps({"models": {"iris": {"revisions": [{"name": "v1", "weight": 70,
                                                                   "endpoints": ["127.0.0.1:1"]}]}}}),
                   tmp_path / "routes.json")


def test_load_reads_the_file(tmp_path: Path):
    path = tmp_path / "routes.json"
    path.write_text(json.dumps(table_doc(3)))
    table = asyncio.run(RouteFile(path).load())
    assert sorted(table.models) == ["m000", "m001", "m002"]
