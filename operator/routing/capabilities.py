"""What each routing backend can do, and the specs that ask for more. Pure.

    builtin     the modelrollout gateway: exact weights, an instant switch, mirroring with
                every mirrored answer compared, a preview by header (and the preview Service)
    gatewayAPI  an HTTPRoute: exact weights, an instant switch, a RequestMirror filter (the
                Gateway throws the copies' answers away: nothing compares them), a preview
                by header (a header-matched rule) and the preview Service
    replicas    no router: weights approximated by endpoint counts, an instant switch (the
                entry Service's endpoints swapped), no copies, the preview Service only

refuse_unsupported() raises InvalidSpec, naming the field and what to change, for a spec
its backend cannot carry out; the CRD's CEL rules say the same where structure can.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..spec import SHADOW_METRICS, InvalidSpec, Spec
from . import builtin, gateway_api, replicas


@dataclass(frozen=True)
class Capabilities:
    weights: bool  # a share of traffic for the candidate
    exact_weights: bool  # the share is what was asked, not approximated
    instant_switch: bool  # all traffic from one revision to the other in one write
    mirroring: bool  # copies of requests sent to the candidate
    header_preview: bool  # a request header reaches the candidate on purpose
    response_comparison: bool  # each mirrored answer compared with the one the client got


CAPABILITIES = {
    "builtin": Capabilities(True, True, True, True, True, True),
    "gatewayAPI": Capabilities(True, True, True, True, True, False),
    "replicas": Capabilities(True, False, True, False, False, False),
}
_OPTIONS = {
    "builtin": builtin.validate_options,
    "gatewayAPI": gateway_api.validate_options,
    "replicas": replicas.validate_options,
}
_ROUTERS = "trafficRouting.builtin or gatewayAPI"


def refuse_unsupported(spec: Spec) -> Spec:
    """``spec``, when its routing backend can carry it out; InvalidSpec otherwise."""
    routing = spec.traffic_routing.kind
    _OPTIONS[routing](spec.traffic_routing.options)
    can = CAPABILITIES[routing]
    where = f"trafficRouting.{routing}"
    if not can.mirroring:
        for index, step in enumerate(spec.strategy.canary.steps if spec.strategy.canary else ()):
            if step.set_mirror is not None:
                raise InvalidSpec(f"spec.strategy.canary.steps[{index}].setMirror",
                                  f"needs a router that copies requests ({_ROUTERS}); {where} cannot mirror")
        if spec.strategy.shadow is not None:
            raise InvalidSpec("spec.strategy.shadow",
                              f"needs a router that copies requests ({_ROUTERS}); {where} cannot mirror: "
                              "use blueGreen or canary with replicas routing")
        for index, metric in enumerate(spec.analysis.metrics):
            if metric.query is None and metric.name in SHADOW_METRICS:
                raise InvalidSpec(f"spec.analysis.metrics[{index}]",
                                  f"'{metric.name}' reads mirrored requests, which {where} cannot send: "
                                  f"use {_ROUTERS}")
    if spec.fallback is not None and spec.fallback.per_request is not None and routing != "builtin":
        raise InvalidSpec("spec.fallback.perRequest",
                          f"needs the modelrollout gateway (trafficRouting.builtin), which answers a failed "
                          f"request from the fallback; {where} cannot")
    if spec.guard is not None and spec.guard.recovery.automatic and not can.mirroring:
        raise InvalidSpec("spec.guard.recovery.automatic",
                          "needs copies of the requests sent to the guarded revision while the fallback "
                          f"serves, to measure it ({_ROUTERS}); {where} cannot mirror: recover by hand")
    if not can.response_comparison:
        for index, metric in enumerate(spec.analysis.metrics):
            if metric.query is None and metric.name == "shadow-agreement":
                raise InvalidSpec(f"spec.analysis.metrics[{index}]",
                                  "'shadow-agreement' needs every mirrored answer compared, which only "
                                  "the modelrollout gateway does (trafficRouting.builtin); with "
                                  f"{where} the copies' answers are thrown away: use shadow-error-rate "
                                  "and shadow-latency-ratio")
    return spec
