"""The builtin backend: the model's route in ModelDeployment ``status.route``. Pure.

``modelrollout gateway --kubernetes`` reads it (docs/gateway-kubernetes.md) and fills in
each revision's endpoints from the EndpointSlices of the Service named here. The route
also lets anyone reach a given revision on purpose, with the header
``x-modelrollout-revision: <revision>``, and the candidate with
``x-modelrollout-revision: preview`` (a blue-green preview, a candidate at weight 0).
A mirror carries the ModelDeployment's comparison tolerances (spec.comparison). With
spec.fallback.perRequest the fallback revision is listed too (role ``fallback``, weight 0)
and named under ``fallback``: the gateway answers from it a request the chosen revision fails.

Options (``spec.trafficRouting.builtin``): ``sticky: {header: x-user-id}`` or
``{cookie: name}`` keeps one user on one revision while the weights stay put.
"""

from __future__ import annotations

from modelrollout.serving.contract.routes import REVISION_HEADER

from ..actions import SetTraffic
from ..spec import InvalidSpec
from . import PREVIEW, Target, revision_name

_OPTIONS = ("sticky",)


def validate_options(options: dict, path: str = "spec.trafficRouting.builtin") -> None:
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise InvalidSpec(path, f"unknown option(s) {', '.join(unknown)}; known: {', '.join(_OPTIONS)}")
    sticky = options.get("sticky")
    if sticky is None:
        return
    if not isinstance(sticky, dict) or sorted(sticky) not in (["header"], ["cookie"]):
        raise InvalidSpec(f"{path}.sticky", "needs exactly one of header or cookie")
    value = next(iter(sticky.values()))
    if not isinstance(value, str) or not value:
        raise InvalidSpec(f"{path}.sticky", "the header or cookie name must be a non-empty string")


def route(target: Target, traffic: SetTraffic) -> dict:
    """``status.route``: the whole split, in the gateway's route schema."""
    revisions = [_revision(target, traffic.stable_revision, "stable", traffic.stable_weight)]
    if traffic.candidate_revision is not None:
        revisions.append(_revision(target, traffic.candidate_revision, "candidate", traffic.candidate_weight))
    match = [{"header": REVISION_HEADER, "value": r["name"], "revision": r["name"]} for r in revisions]
    if traffic.candidate_revision is not None:
        match.append({"header": REVISION_HEADER, "value": PREVIEW, "revision": traffic.candidate_revision})
    doc: dict = {"model": target.model, "revisions": revisions, "match": match}
    if traffic.candidate_revision is not None and traffic.mirror_percent > 0:
        comparison = target.comparison
        doc["mirror"] = {"revision": traffic.candidate_revision, "percent": traffic.mirror_percent,
                         "compare": comparison.model_dump(by_alias=True)}
    fallback = traffic.fallback
    if fallback is not None and fallback.revision not in (r["name"] for r in revisions):
        revisions.append(_revision(target, fallback.revision, "fallback", 0))
        match.append({"header": REVISION_HEADER, "value": fallback.revision, "revision": fallback.revision})
    if fallback is not None:
        doc["fallback"] = {"revision": fallback.revision,
                           **({"deadlineMs": fallback.deadline_ms} if fallback.deadline_ms else {})}
    sticky = target.options.get("sticky")
    if sticky:
        doc["sticky"] = dict(sticky)
    return doc


def _revision(target: Target, revision: str, role: str, weight: int) -> dict:
    service = revision_name(target.name, revision)
    return {"name": revision, "role": role, "weight": weight, "service": service}
