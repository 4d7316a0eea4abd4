"""operator/analysis/queries.py: templates filled in, builtins that Prometheus accepts."""

from __future__ import annotations

from modelrollout.operator.analysis.queries import BUILTIN, query_for, render
from modelrollout.operator.spec import MetricSpec


def test_template_placeholders_are_filled_and_escaped():
    text = 'sum(rate(x{model="{{model}}",ns="{{namespace}}",rev="{{revision}}"}[{{interval}}]))'
    assert render(text, 'ir"is', "ml", "a41f03", 30) == (
        'sum(rate(x{model="ir\\"is",ns="ml",rev="a41f03"}[30s]))'
    )


def test_builtins_name_the_gateway_metrics_and_leave_only_known_placeholders():
    for name, query in BUILTIN.items():
        for text in (query.value, query.samples):
            filled = render(text, "iris", "ml", "v2", 10)
            assert "{{" not in filled and "}}" not in filled, name
            assert 'model="iris",revision="v2"' in filled and "[10s]" in filled


def test_custom_query_has_no_samples_query():
    metric = MetricSpec("orders", query="sum(orders)", min=1)
    assert query_for(metric).value == "sum(orders)" and query_for(metric).samples is None
    assert query_for(MetricSpec("error-rate", max=0.01)) is BUILTIN["error-rate"]
