"""The feedback API: ground truth for predictions already made. Shared by the server, which
joins labels to its own predictions, and the gateway, which sends each label on to the
revision (and the shadow) that made the prediction.

    POST /v2/models/{name}[/versions/{v}]/feedback
    {"id": "<request id>", "label": <true class or value>}           one prediction
    {"feedback": [{"id": ..., "label": ...}, ...]}                    several

The id is the request's X-Request-ID (the one the client sent, or the one the server or
gateway answered with) or the ``id`` field of the V2 request body. A request of N rows
takes a list of N labels (a single label for a one-row request). A class is given by
name or, when the model names its classes, by index (contract/predictions.py).

Answers. A single item: 200 with its result when joined, else the status of STATUS and an
Open Inference Protocol error body that also carries the id and the result. A batch:
always 200 (unless the body itself is malformed: 400), with a count per result and the
results in the order of the items. No answer is a 5xx because of an id.
"""

from __future__ import annotations

from dataclasses import dataclass

SUFFIX = "/feedback"
# Sent by the gateway when it guesses where a prediction was made (the id was not in its
# map and the client named the revision): a server that does not know the id answers as
# usual but does not count it as unknown, since another endpoint of the revision may.
PROBE_HEADER = "x-modelrollout-feedback-probe"
MAX_ITEMS = 10_000  # per request

JOINED = "joined"
# Why an item was not joined (and the reason label of the server's rejected counter):
UNKNOWN = "unknown"  # no prediction with this id here (never made, or pushed out by the size limit)
EXPIRED = "expired"  # the prediction is older than the store's TTL
DUPLICATE = "duplicate"  # a label was already joined to this prediction
INVALID = "invalid"  # the label does not fit the prediction (type, or number of rows)
# Only the gateway answers this: the endpoint that made the prediction cannot be reached.
UNREACHABLE = "unreachable"
RESULTS = (JOINED, UNKNOWN, EXPIRED, DUPLICATE, INVALID, UNREACHABLE)
STATUS = {JOINED: 200, UNKNOWN: 404, EXPIRED: 410, DUPLICATE: 409, INVALID: 400, UNREACHABLE: 502}


class InvalidFeedback(ValueError):
    """The body is not a feedback document (answered 400 as a whole)."""


@dataclass(frozen=True)
class FeedbackItem:
    id: str
    label: object  # a class name or index, a number, or a list of them (one per row)


def parse_feedback(doc: object) -> tuple[list[FeedbackItem], bool]:
    """The items of a feedback body and whether it was the batch form."""
    if not isinstance(doc, dict):
        raise InvalidFeedback('the body must be a JSON object: {"id": ..., "label": ...} '
                              'or {"feedback": [...]}')
    if "feedback" in doc:
        entries = doc["feedback"]
        if not isinstance(entries, list) or not entries:
            raise InvalidFeedback("'feedback' must be a non-empty list of {\"id\", \"label\"} objects")
        if len(entries) > MAX_ITEMS:
            raise InvalidFeedback(f"at most {MAX_ITEMS} feedback items per request, got {len(entries)}")
        return [_item(entry, f"feedback[{i}]") for i, entry in enumerate(entries)], True
    return [_item(doc, "the body")], False


def _item(doc: object, where: str) -> FeedbackItem:
    if not isinstance(doc, dict):
        raise InvalidFeedback(f"{where} must be an object with 'id' and 'label'")
    item_id = doc.get("id")
    if not isinstance(item_id, str) or not item_id:
        raise InvalidFeedback(f"{where}: 'id' must be the request id (a non-empty string)")
    if "label" not in doc:
        raise InvalidFeedback(f"{where}: 'label' is missing")
    return FeedbackItem(item_id, doc["label"])


def result(item_id: str, outcome: str, error: str | None = None, **extra: object) -> dict:
    """One item's result as it appears in an answer."""
    doc: dict = {"id": item_id, "result": outcome, **extra}
    if error is not None:
        doc["error"] = error
    return doc


def single_answer(item_result: dict) -> tuple[int, dict]:
    """Status and body for the single-item form."""
    return STATUS.get(item_result["result"], 500), item_result


def batch_answer(results: list[dict]) -> dict:
    counts = dict.fromkeys(RESULTS, 0)
    for item_result in results:
        counts[item_result["result"]] = counts.get(item_result["result"], 0) + 1
    return {**counts, "results": results}
