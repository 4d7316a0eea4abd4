"""operator/analysis/queries.py: templates filled in, builtins that Prometheus accepts."""

from __future__ import annotations

from modelrollout.operator.analysis.queries import BUILTIN, query_for, render
from modelrollout.operator.spec import MetricSpec


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
                assert 'model="iris",revision="v2"' in filled and "[10s]" in filled


def test_builtins_read_the_gateway_only_when_it_routes():
    metric = MetricSpec("error-rate", max=0.01)
    assert "modelrollout_gateway_requests_total" in query_for(metric, "builtin").value
    for routing in ("gatewayAPI", "replicas"):  # no gateway of ours in the path
        value = query_for(metric, routing).value
        assert "modelrollout_server_requests_total" in value and "gateway" not in value


def test_custom_query_has_no_samples_query():
    metric = MetricSpec("orders", query="sum(orders)", min=1)
    for routing in ("builtin", "gatewayAPI"):
        query = query_for(metric, routing)
        assert query.value == "sum(orders)" and query.samples is None
    assert query_for(MetricSpec("error-rate", max=0.01), "builtin") is BUILTIN["builtin"]["error-rate"]


def test_the_stable_revision_placeholder_is_filled_too():
    assert render('x{revision="{{stableRevision}}"}', "iris", "ml", "v2", 10, "v1") == 'x{revision="v1"}'


def test_shadow_metrics_read_the_gateways_comparisons_or_the_servers_behind_a_gateway_api_route():
    agreement = query_for(MetricSpec("shadow-agreement", min=0.99), "builtin")
    assert 'result="agree"' in agreement.value and 'result=~"agree|disagree"' in agreement.samples
    ratio = query_for(MetricSpec("shadow-latency-ratio", max=1.5), "builtin").value
    assert "modelrollout_shadow_request_duration_seconds_bucket" in ratio
    assert "modelrollout_shadow_primary_request_duration_seconds_bucket" in ratio
    server_ratio = render(query_for(MetricSpec("shadow-latency-ratio", max=1.5), "gatewayAPI").value,
                          "iris", "ml", "v2", 10, "v1")
    assert 'revision="v2"' in server_ratio and 'revision="v1"' in server_ratio
    assert "shadow-agreement" not in BUILTIN["server"]  # refused for those routings (capabilities)
