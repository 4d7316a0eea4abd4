"""operator/analysis/queries.py: templates filled in, builtins that Prometheus accepts."""

from __future__ import annotations

import re

from modelrollout.operator.analysis.queries import BUILTIN, REFERENCE, query_for, render

from tests.support.operator_fixtures import metric


def test_template_placeholders_are_filled_and_escaped():
    text = 'sum(rate(x{model="{{model}}",ns="{{namespace}}",rev="{{revision}}"}[{{interval}}]))'
    assert render(text, 'ir"is', "ml", "a41f03", 30) == (
        'sum(rate(x{model="ir\\"is",ns="ml",rev="a41f03"}[30s]))'
    )


def test_builtins_leave_only_known_placeholders():
    for source, queries in BUILTIN.items():
        for name, query in queries.items():
            for text in (query.value, query.samples):
                filled = render(text, "iris", "ml", "v2", 10, "v1")
                assert "{{" not in filled and "}}" not in filled, (source, name)
                assert 'model="iris",revision="v2"' in filled
                assert "[10s]" in filled or not re.search(r"rate\(|increase\(", text)  # counted: a window


def test_builtins_read_the_gateway_only_when_it_routes():
    errors = metric("error-rate", max=0.01)
    assert "modelrollout_gateway_requests_total" in query_for(errors, "builtin").value
    for routing in ("gatewayAPI", "replicas"):  # no gateway of ours in the path
        value = query_for(errors, routing).value
        assert "modelrollout_server_requests_total" in value and "gateway" not in value


def test_custom_query_has_no_samples_query():
    orders = metric("orders", query="sum(orders)", min=1)
    for routing in ("builtin", "gatewayAPI"):
        query = query_for(orders, routing)
        assert query.value == "sum(orders)" and query.samples is None
    assert query_for(metric("error-rate", max=0.01), "builtin") is BUILTIN["builtin"]["error-rate"]


def test_the_stable_revision_placeholder_is_filled_too():
    assert render('x{revision="{{stableRevision}}"}', "iris", "ml", "v2", 10, "v1") == 'x{revision="v1"}'


def test_shadow_metrics_read_the_gateways_comparisons_or_the_servers_behind_a_gateway_api_route():
    agreement = query_for(metric("shadow-agreement", min=0.99), "builtin")
    assert 'result="agree"' in agreement.value and 'result=~"agree|disagree"' in agreement.samples
    ratio = query_for(metric("shadow-latency-ratio", max=1.5), "builtin").value
    assert "modelrollout_shadow_request_duration_seconds_bucket" in ratio
    assert "modelrollout_shadow_primary_request_duration_seconds_bucket" in ratio
    server_ratio = render(query_for(metric("shadow-latency-ratio", max=1.5), "gatewayAPI").value,
                          "iris", "ml", "v2", 10, "v1")
    assert 'revision="v2"' in server_ratio and 'revision="v1"' in server_ratio
    assert "shadow-agreement" not in BUILTIN["server"]  # refused for those routings (capabilities)


def test_the_model_aware_builtins_are_the_queries_docs_gates_md_runs_on_a_real_prometheus():
    """One source: each builtin model-aware query, rendered, is the query of docs/gates.md that
    tests/serving/test_gates_promql.py checks against hand-computed PSI and scipy's JS and KS."""
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "gates.md").read_text()
    documented = {name: " ".join(body.split()) for name, body in
                  re.findall(r"<!-- query: ([\w-]+) -->\n```promql\n(.*?)```", page, re.S)}

    def ours(name: str, part: str = "value") -> str:
        template = getattr(BUILTIN["server"][name], part)
        text = render(template, "{{model}}", "ns", "{{revision}}", 1, "{{stable}}")
        return " ".join(text.replace("[1s]", "[{{interval}}]").split())

    same = lambda a, b: a.replace(" ", "") == b.replace(" ", "")  # noqa: E731 - spacing is free
    assert same(ours("input-drift"), documented["input-drift"])
    assert same(ours("accuracy", "samples").removesuffix(" or vector(0)"), documented["accuracy-samples"])
    reference = render(REFERENCE["prediction-shift"].value, "{{model}}", "ns", "{{revision}}", 1, "")
    assert same(" ".join(reference.replace("[1s]", "[{{interval}}]").split()),
                documented["prediction-shift-reference"])
    js, ks = ours("prediction-shift").split(") or (")
    assert same(js.removeprefix("("), documented["prediction-shift-js"])
    assert same(ks.removesuffix(")"), documented["prediction-shift-ks"])
    for name in ("input-violations", "output-violations", "accuracy"):
        value = ours(name).replace(") or vector(0))", ")").replace("(sum(rate(", "sum(rate(", 1)
        assert same(value, documented[name]), name
