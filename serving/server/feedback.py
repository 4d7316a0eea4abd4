"""``POST /v2/models/{name}[/versions/{v}]/feedback``: labels for predictions already made
(the API is in serving/contract/feedback.py). A plain ASGI callable like the infer endpoint,
so the body limit and Content-Encoding are handled the same way; the join itself runs on a
worker thread (monitor.py), never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging

import orjson

from .. import hosting
from ..contract import feedback
from .errors import BadRequest, NotReady, ServingError
from .infer import check_model, error_body, read_body, request_id_of, send_answer
from .lifecycle import ModelState
from .settings import ServerSettings

log = logging.getLogger("modelrollout.serve")


class FeedbackEndpoint:
    def __init__(self, settings: ServerSettings, state: ModelState) -> None:
        self.settings = settings
        self.state = state

    async def __call__(self, scope, receive, send, name: str, version: str | None) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = request_id_of(headers.get("x-request-id"))
        try:
            status, doc = await self._feedback(receive, headers, name, version)
            payload = orjson.dumps(doc)
        except hosting.ClientGone:
            return
        except ServingError as exc:
            status, payload = exc.status, error_body(exc.message)
            log.warning("feedback refused", extra={"request_id": request_id, "status": status,
                                                   "error": exc.message})
        except Exception as exc:  # noqa: BLE001 - a bug here must still answer in protocol terms
            log.exception("feedback failed", extra={"request_id": request_id})
            status, payload = 500, error_body(f"feedback failed: {type(exc).__name__}: {exc}")
        await send_answer(send, status, payload, None, request_id, {})

    async def _feedback(self, receive, headers: dict[str, str], name: str, version: str | None):
        settings, state = self.settings, self.state
        check_model(settings, name, version)
        monitor = state.monitor
        if monitor is None:
            raise NotReady(f"model '{settings.model_name}' is not ready: {state.unready_reason()}")
        if monitor.store is None:
            why = ("the server keeps no predictions (--feedback-store-size 0)" if monitor.kind
                   else "the server found no prediction output to compare labels with (name one in the "
                        "model metadata: \"prediction\": {\"output\": ..., \"kind\": ...})")
            raise BadRequest(f"model '{name}' takes no feedback: {why}")
        body = await read_body(receive, headers, settings.max_body_bytes)
        try:
            items, is_batch = feedback.parse_feedback(orjson.loads(body))
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"malformed JSON: {exc}") from None
        except feedback.InvalidFeedback as exc:
            raise BadRequest(str(exc)) from None
        probe = headers.get(feedback.PROBE_HEADER) == "1"
        results = await asyncio.to_thread(monitor.feedback, items, probe)
        if is_batch:
            return 200, feedback.batch_answer(results)
        return feedback.single_answer(results[0])
