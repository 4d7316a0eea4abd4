"""The inference endpoint as a plain ASGI callable: the hot path of the server.

decode -> check against the model -> schedule -> encode, with no framework objects,
no per-request pydantic model and no standard json module in between. Every failure
becomes an Open Inference Protocol error body with the right status.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import zlib

import onnxruntime as ort
import orjson

from .. import hosting
from ..contract.metric_names import FAILURE_REASONS
from ..hosting import is_sane_request_id
from .batching import Timings
from .codec import decode_request
from .codec import encode_response as encode
from .codec_binary import HEADER as BINARY_HEADER
from .errors import BadRequest, ModelNotFound, NotReady, PayloadTooLarge, ServingError
from .lifecycle import ModelState
from .metrics import ServerMetrics
from .predlog import PredictionLogger
from .settings import ServerSettings
from .tensors import InferResponse, OutputTensor

log = logging.getLogger("modelrollout.serve")

_ORT_BAD_INPUT = (ort.capi.onnxruntime_pybind11_state.InvalidArgument,)
_BINARY_HEADER_BYTES = BINARY_HEADER.encode()
_JSON_TYPE = (b"content-type", b"application/json")
_BINARY_TYPE = (b"content-type", b"application/octet-stream")


def request_id_of(given: str | None) -> str:
    """The client's X-Request-ID when it is sane (no log injection), else a new one."""
    if is_sane_request_id(given):
        return given
    return uuid.uuid4().hex


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


class InferEndpoint:
    def __init__(
        self,
        settings: ServerSettings,
        state: ModelState,
        metrics: ServerMetrics,
        predictions: PredictionLogger | None,
    ) -> None:
        self.settings = settings
        self.state = state
        self.metrics = metrics
        self.predictions = predictions

    async def __call__(self, scope, receive, send, name: str, version: str | None) -> None:
        started = time.perf_counter()
        headers = _headers(scope)
        request_id = request_id_of(headers.get("x-request-id"))
        metrics = self.metrics
        metrics.inflight.inc()
        extra_headers: dict[str, str] = {}
        try:
            status, payload, header_length = await self._infer(receive, headers, request_id, name, version)
        except hosting.ClientGone:
            metrics.inflight.dec()
            return
        except asyncio.CancelledError:
            # The shutdown grace period ran out with this request still running: tell the
            # client in protocol terms rather than letting the connection drop bare.
            metrics.inflight.dec()
            if self.state.draining:
                await send_answer(send, 503, error_body("server shut down before the request finished"),
                                  None, request_id, {})
                metrics.count_request(503)
            raise
        except ServingError as exc:
            if exc.reason in FAILURE_REASONS:
                metrics.count_failure(exc.reason)
            status, payload, header_length = exc.status, error_body(exc.message), None
            extra_headers = exc.headers
            log.warning(
                "inference request refused",
                extra={"request_id": request_id, "status": status, "error": exc.message},
            )
        except _ORT_BAD_INPUT as exc:
            metrics.count_failure("bad_request")
            message = f"the model rejected the input: {exc}"
            status, payload, header_length = 400, error_body(message), None
            log.warning("inference request refused", extra={"request_id": request_id, "error": message})
        except Exception as exc:  # noqa: BLE001 - anything else is the server's fault: 500
            metrics.count_failure("inference_error")
            log.exception("inference failed", extra={"request_id": request_id})
            status = 500
            payload, header_length = error_body(f"inference failed: {type(exc).__name__}: {exc}"), None
        metrics.inflight.dec()
        await send_answer(send, status, payload, header_length, request_id, extra_headers)
        metrics.count_request(status)
        metrics.request_duration.observe(time.perf_counter() - started)
        if self.settings.access_log:
            log.info(
                "inference",
                extra={"request_id": request_id, "status": status,
                       "seconds": round(time.perf_counter() - started, 6)},
            )

    async def _infer(
        self, receive, headers: dict[str, str], request_id: str, name: str, version: str | None
    ) -> tuple[int, bytes, int | None]:
        settings, state, stage = self.settings, self.state, self.metrics.stage
        check_model(settings, name, version)
        runtime, scheduler = state.runtime, state.scheduler
        # Draining (SIGTERM, readiness already false) still serves: requests routed by
        # endpoints that have not yet heard of the shutdown are answered, not refused.
        if runtime is None or scheduler is None:
            raise NotReady(f"model '{settings.model_name}' is not ready: {state.unready_reason()}")
        body = await read_body(receive, headers, settings.max_body_bytes)
        t0 = time.perf_counter()
        request = decode_request(body, headers.get(BINARY_HEADER))
        feeds = runtime.feeds(request)
        output_names = runtime.output_names(request)
        t1 = time.perf_counter()
        stage["decode"].observe(t1 - t0)
        timings = Timings()
        outputs = await scheduler.infer(feeds, output_names, timings)
        stage["queue"].observe(timings.queue_seconds)
        stage["infer"].observe(timings.infer_seconds)
        t2 = time.perf_counter()
        binary = {o.name: o.binary for o in request.outputs or ()}
        response = InferResponse(
            model_name=settings.model_name,
            model_version=settings.model_version,
            id=request.id,
            outputs=[
                OutputTensor(
                    output_name,
                    runtime.output_spec(output_name).datatype,
                    data,
                    request.binary_outputs if binary.get(output_name) is None else binary[output_name],
                )
                for output_name, data in zip(output_names, outputs, strict=True)
            ],
        )
        payload, header_length = encode(response)
        stage["encode"].observe(time.perf_counter() - t2)
        if self.predictions is not None:
            self.predictions.maybe_log(request_id, feeds, output_names, outputs)
        monitor = state.monitor
        if monitor is not None:
            monitor.observe(request_id, request.id, feeds, output_names, outputs)
        return 200, payload, header_length


async def send_answer(send, status: int, payload: bytes, header_length: int | None,
                      request_id: str, extra_headers: dict[str, str]) -> None:
    headers = [
        _JSON_TYPE if header_length is None else _BINARY_TYPE,
        (b"content-length", str(len(payload)).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    if header_length is not None:
        headers.append((_BINARY_HEADER_BYTES, str(header_length).encode()))
    for key, value in extra_headers.items():
        headers.append((key.encode(), value.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def check_model(settings: ServerSettings, name: str, version: str | None) -> None:
    if name != settings.model_name:
        raise ModelNotFound(f"unknown model '{name}'; this server serves '{settings.model_name}'")
    if version is not None and version != settings.model_version:
        raise ModelNotFound(
            f"unknown version '{version}' of model '{name}'; "
            f"this server serves version '{settings.model_version}'"
        )


async def read_body(receive, headers: dict[str, str], limit: int) -> bytes:
    try:
        body = await hosting.read_body(receive, headers.get("content-length"), limit)
    except hosting.BodyTooLarge as exc:
        raise PayloadTooLarge(str(exc)) from None
    encoding = headers.get("content-encoding", "identity").lower()
    if encoding in ("gzip", "deflate"):
        return _decompress(body, encoding, limit)
    if encoding != "identity":
        raise BadRequest(f"unsupported Content-Encoding {encoding!r}; use gzip or deflate")
    return body


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    decompressor = zlib.decompressobj(wbits)
    try:
        data = decompressor.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"body is not valid {encoding}: {exc}") from None
    if len(data) > limit or decompressor.unconsumed_tail:
        raise PayloadTooLarge(f"decompressed request body is over the limit of {limit} bytes")
    return data


_WANTED = {b"content-length", b"content-encoding", b"x-request-id", _BINARY_HEADER_BYTES}


def _headers(scope) -> dict[str, str]:
    return {
        key.decode(): value.decode("latin-1")
        for key, value in scope["headers"]
        if key in _WANTED
    }
