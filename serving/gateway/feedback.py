"""POST /v2/models/{name}[/versions/{v}]/feedback through the gateway: each label goes to the
server process that made the prediction (each keeps its own), and to the shadow process
that got the mirrored copy of the request, so a shadow's accuracy is measured too.

Where a prediction was made comes from the gateway's map of answered request ids
(answers.py). An id not in it (too old, pushed out, answered through another gateway
replica) goes to every endpoint of the revision the client names in the
``x-modelrollout-revision`` header (the one every answer carried) and of the shadow, as a
probe: a process that does not know the id says so without counting it. Without the
header such an id is answered "unknown" (404 in the single form) and counted here.

The version in the path is not used: labels follow the request id, and a stable and a
candidate of one model may serve different versions. Answers are those of the feedback API
(serving/contract/feedback.py), merged item by item.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import quote

import orjson

from ..contract import feedback
from ..contract.routes import REVISION_HEADER, Endpoint, ModelRoute, Revision
from .answers import AnsweredBy
from .balancer import Balancer
from .metrics import GatewayMetrics
from .upstream import UpstreamError

log = logging.getLogger("modelrollout.gateway")

_REVISION_HEADER = REVISION_HEADER.encode()
_PROBE = (feedback.PROBE_HEADER.encode(), b"1")
_JSON = (b"content-type", b"application/json")
# When several endpoints answer for one item (a probe), the most telling answer wins.
_RANK = {feedback.UNKNOWN: 0, feedback.UNREACHABLE: 1}

Target = tuple[Revision, Endpoint, bool]  # revision, endpoint, probe


class FeedbackRouter:
    def __init__(self, balancer: Balancer, answers: AnsweredBy | None, metrics: GatewayMetrics,
                 timeout_seconds: float) -> None:
        self._balancer = balancer
        self._answers = answers
        self._metrics = metrics
        self._timeout = timeout_seconds

    async def handle(self, model: str, route: ModelRoute, headers: list[tuple[bytes, bytes]], body: bytes,
                     request_id: bytes, now: float) -> tuple[int, dict]:
        """The answer (status, JSON document) to one feedback request for ``model``."""
        try:
            items, is_batch = feedback.parse_feedback(orjson.loads(body))
        except orjson.JSONDecodeError as exc:
            return 400, {"error": f"malformed JSON: {exc}"}
        except feedback.InvalidFeedback as exc:
            return 400, {"error": str(exc)}
        named = next((v.decode("latin-1") for k, v in headers if k == _REVISION_HEADER), None)
        results: list[dict | None] = [None] * len(items)
        primary: dict[Target, list[int]] = {}
        shadow: dict[Target, list[int]] = {}
        for i, item in enumerate(items):
            results[i] = self._place(i, item, model, route, named, now, primary, shadow)
        path = b"/v2/models/" + quote(model, safe="").encode() + feedback.SUFFIX.encode()
        sends = [self._send(model, target, [items[i] for i in members], path, request_id)
                 for target, members in (*primary.items(), *shadow.items())]
        answered = await asyncio.gather(*sends)
        for (_, members), answers in zip(primary.items(), answered[: len(primary)], strict=True):
            for i, answer in zip(members, answers, strict=True):
                if results[i] is None or _RANK.get(answer["result"], 2) > _RANK.get(results[i]["result"], 2):
                    results[i] = answer
        probed = {i for (_, _, probe), members in primary.items() if probe for i in members}
        lost = sum(1 for i in probed if results[i]["result"] == feedback.UNKNOWN)
        if lost:  # no endpoint of the named revision knew the id: counted here, as no server did
            self._metrics.feedback_unrouted.labels(model).inc(lost)
        if is_batch:
            return 200, feedback.batch_answer(results)
        return feedback.single_answer(results[0])

    def _place(self, i: int, item: feedback.FeedbackItem, model: str, route: ModelRoute, named: str | None,
               now: float, primary: dict[Target, list[int]], shadow: dict[Target, list[int]]) -> dict | None:
        """Add item ``i`` to the sends it needs; its result when it needs none."""
        answer = self._answers.get(item.id.encode(), now) if self._answers is not None else None
        if answer is not None and answer.model == model:
            target = _routed(route, answer.revision, answer.endpoint)
            if answer.shadow_revision is not None:
                shadow_target = _routed(route, answer.shadow_revision, answer.shadow_endpoint)
                if shadow_target is not None:
                    shadow.setdefault(shadow_target, []).append(i)
            if target is None:
                return feedback.result(item.id, feedback.UNREACHABLE,
                                       f"revision '{answer.revision}' endpoint {_address(answer.endpoint)}, "
                                       "which made this prediction, is no longer in the route table")
            primary.setdefault(target, []).append(i)
            return None
        revision = route.revision(named) if named else None
        if revision is None:
            self._metrics.feedback_unrouted.labels(model).inc()
            why = (f"model '{model}' has no revision '{named}'" if named else
                   f"the gateway has no record of request id '{item.id}' (older than its TTL, pushed out by "
                   f"its size limit, or answered through another gateway): send the {REVISION_HEADER} "
                   "header the answer carried")
            return feedback.result(item.id, feedback.UNKNOWN, why)
        if not revision.endpoints:
            return feedback.result(item.id, feedback.UNREACHABLE, f"revision '{named}' has no endpoint")
        for endpoint in revision.endpoints:
            primary.setdefault((revision, endpoint, True), []).append(i)
        mirrored = route.revision(route.mirror.revision) if route.mirror is not None else None
        if mirrored is not None and mirrored is not revision:
            for endpoint in mirrored.endpoints:
                shadow.setdefault((mirrored, endpoint, True), []).append(i)
        return None

    async def _send(self, model: str, target: Target, items: list[feedback.FeedbackItem], path: bytes,
                    request_id: bytes) -> list[dict]:
        """The results of ``items`` as the target process gave them (or why it gave none)."""
        revision, endpoint, probe = target
        body = orjson.dumps({"feedback": [{"id": item.id, "label": item.label} for item in items]})
        headers = [_JSON, (b"x-request-id", request_id)] + ([_PROBE] if probe else [])
        where = f"revision '{revision.name}' endpoint {endpoint.address}"
        try:
            pool = self._balancer.pool(endpoint)
            response = await pool.request(b"POST", path, headers, body, self._timeout)
        except (UpstreamError, TimeoutError) as exc:
            return self._failed(model, revision, items, feedback.UNREACHABLE,
                                f"{where} did not answer: {exc or 'timeout'}")
        try:
            doc = orjson.loads(response.body)
        except orjson.JSONDecodeError:
            doc = {}
        results = doc.get("results") if isinstance(doc, dict) else None
        if response.status == 200 and isinstance(results, list) and len(results) == len(items):
            self._metrics.feedback.labels(model, revision.name, revision.role, "sent").inc(len(items))
            return results
        outcome = feedback.INVALID if 400 <= response.status < 500 else feedback.UNREACHABLE
        error = doc.get("error") if isinstance(doc, dict) else None
        return self._failed(model, revision, items, outcome,
                            f"{where} answered {response.status}: {error or 'no feedback results'}")

    def _failed(self, model: str, revision: Revision, items: list[feedback.FeedbackItem], outcome: str,
                message: str) -> list[dict]:
        self._metrics.feedback.labels(model, revision.name, revision.role, "failed").inc(len(items))
        log.warning("feedback not delivered",
                    extra={"model": model, "revision": revision.name, "error": message})
        return [feedback.result(item.id, outcome, message) for item in items]


def _routed(route: ModelRoute, revision_name: str, endpoint: tuple[str, int] | None) -> Target | None:
    """The revision and endpoint as the current route table has them (ready or not: a
    draining process still holds its predictions), or None when they are gone."""
    revision = route.revision(revision_name)
    if revision is None or endpoint is None:
        return None
    host, port = endpoint
    found = next((e for e in revision.endpoints if e.host == host and e.port == port), None)
    return None if found is None else (revision, found, False)


def _address(endpoint: tuple[str, int]) -> str:
    return f"{endpoint[0]}:{endpoint[1]}"
