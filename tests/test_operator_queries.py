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
                filled = render(text, "iris", "ml", "v2", 10)
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
