"""The ASGI app of `modelrollout serve`: Open Inference Protocol V2 endpoints over one model.

Endpoints decode -> infer -> encode. The infer endpoint is a plain Starlette route
(no per-request pydantic model, no dependency injection); the rest are FastAPI routes.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
import zlib
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.metadata import version

import onnxruntime as ort
import orjson
from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from ..contract.metric_names import FAILURE_REASONS
from .batching import BatchingPolicy, Scheduler, Timings
from .codec import decode_request, encode_response
from .codec_binary import HEADER as BINARY_HEADER
from .cpu import usable_cpus
from .errors import BadRequest, ModelNotFound, NotReady, PayloadTooLarge, ServingError
from .loading import LoadError, fetch, resolve
from .metrics import ServerMetrics
from .predlog import PredictionLogger
from .runtime import ModelRuntime, RuntimeOptions
from .settings import ServerSettings
from .tensors import InferResponse, OutputTensor

log = logging.getLogger("modelrollout.serve")
__version__ = version("modelrollout")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_JSON = "application/json"
_ORT_BAD_INPUT = (ort.capi.onnxruntime_pybind11_state.InvalidArgument,)


@dataclass
class ModelState:
    """What the server knows about its one model; readiness is derived, never stored."""

    runtime: ModelRuntime | None = None
    scheduler: Scheduler | None = None
    extra_metadata: dict = field(default_factory=dict)
    load_error: str | None = None
    draining: bool = False

    @property
    def is_ready(self) -> bool:
        return self.scheduler is not None and not self.draining


def runtime_options(settings: ServerSettings) -> RuntimeOptions:
    return RuntimeOptions(
        intra_op_threads=settings.intra_op_threads or usable_cpus(),
        inter_op_threads=settings.inter_op_threads,
        execution_provider=settings.execution_provider,
        allow_nonfinite=settings.allow_nonfinite,
    )


def create_app(settings: ServerSettings, runtime: ModelRuntime | None = None) -> FastAPI:
    """Build the app. Without ``runtime`` the model is fetched and loaded after start-up,
    while the server already answers liveness (and readiness: false)."""
    state = ModelState()
    metrics = ServerMetrics(settings.model_name, settings.model_version)
    predictions: PredictionLogger | None = None
    if settings.prediction_log:
        predictions = PredictionLogger(
            settings.prediction_log, settings.prediction_log_sample_rate,
            settings.model_name, settings.model_version, metrics.prediction_log_dropped.inc,
        )
    policy = BatchingPolicy(
        max_batch_size=settings.max_batch_size,
        max_queue_delay_us=settings.max_queue_delay_us,
        max_queue_size=settings.max_queue_size,
        workers=settings.workers,
    )

    async def load_model() -> None:
        started = time.perf_counter()
        try:
            loaded = runtime or await asyncio.to_thread(_load_runtime, settings, state)
            if loaded.is_batchable is False and policy.max_batch_size:
                log.warning(
                    "model has no dynamic batch dimension: dynamic batching is off",
                    extra={"model": settings.model_name},
                )
            # Warm-up: the first run allocates and plans; pay for it before ready.
            await asyncio.to_thread(loaded.run, loaded.example_feeds(), [s.name for s in loaded.outputs])
        except LoadError as exc:
            _fail_load(state, metrics, settings, exc.reason, exc.message)
            return
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises many kinds
            _fail_load(state, metrics, settings, "load", f"{type(exc).__name__}: {exc}")
            return
        batching = policy if loaded.is_batchable else BatchingPolicy(
            max_batch_size=0, max_queue_size=policy.max_queue_size, workers=policy.workers
        )
        scheduler = Scheduler(loaded.run, batching, metrics.batch_size.observe)
        scheduler.start()
        state.runtime = loaded
        state.scheduler = scheduler
        seconds = time.perf_counter() - started
        metrics.load_duration.set(seconds)
        metrics.set_model_info(
            state.extra_metadata.get("sha256", "unknown"), loaded.opset, loaded.provider
        )
        metrics.model_ready.set(1)
        log.info(
            "model ready",
            extra={
                "model": settings.model_name, "version": settings.model_version,
                "load_seconds": round(seconds, 3), "provider": loaded.provider,
                "intra_op_threads": loaded.options.intra_op_threads,
                "dynamic_batching": scheduler.is_batching,
            },
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        loader = asyncio.create_task(load_model())
        app.state.model = state
        try:
            yield
        finally:
            state.draining = True
            loader.cancel()
            await asyncio.gather(loader, return_exceptions=True)
            if state.scheduler is not None:
                await state.scheduler.close()
            if predictions is not None:
                predictions.close()

    app = FastAPI(
        title="modelrollout serve",
        version=__version__,
        description="Open Inference Protocol (V2) server for one ONNX model",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.model = state
    app.state.metrics = metrics

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(exc.status_code, str(exc.detail), _request_id(request))

    @app.get("/v2")
    async def server_metadata() -> Response:
        return _json(200, {
            "name": "modelrollout",
            "version": __version__,
            "extensions": ["binary_tensor_data"],
        })

    @app.get("/v2/health/live")
    async def live() -> Response:
        return _json(200, {"live": True})

    @app.get("/v2/health/ready")
    async def ready() -> Response:
        if state.is_ready:
            return _json(200, {"ready": True})
        return _json(503, {"ready": False, "error": _unready_reason(state)})

    def check_model(name: str, version: str | None) -> None:
        if name != settings.model_name:
            raise ModelNotFound(f"unknown model '{name}'; this server serves '{settings.model_name}'")
        if version is not None and version != settings.model_version:
            raise ModelNotFound(
                f"unknown version '{version}' of model '{name}'; "
                f"this server serves version '{settings.model_version}'"
            )

    async def model_metadata(request: Request) -> Response:
        try:
            check_model(request.path_params["name"], request.path_params.get("version"))
            if state.runtime is None:
                raise NotReady(_unready_reason(state))
        except ServingError as exc:
            return _error(exc.status, exc.message, _request_id(request))
        doc = state.runtime.metadata()
        doc["parameters"] = state.extra_metadata
        for out in doc["outputs"]:
            labels = state.runtime.labels.get(out["name"])
            if labels:
                out["parameters"] = {"labels": labels}
        return _json(200, doc)

    async def model_ready(request: Request) -> Response:
        try:
            check_model(request.path_params["name"], request.path_params.get("version"))
        except ServingError as exc:
            return _error(exc.status, exc.message, _request_id(request))
        name = request.path_params["name"]
        if state.is_ready:
            return _json(200, {"name": name, "ready": True})
        return _json(503, {"name": name, "ready": False, "error": _unready_reason(state)})

    async def infer(request: Request) -> Response:
        started = time.perf_counter()
        request_id = _request_id(request)
        metrics.inflight.inc()
        try:
            response = await _infer(request, request_id)
        except ServingError as exc:
            if exc.reason in FAILURE_REASONS:
                metrics.count_failure(exc.reason)
            log.warning(
                "inference request refused",
                extra={"request_id": request_id, "status": exc.status, "error": exc.message},
            )
            response = _error(exc.status, exc.message, request_id, exc.headers)
        except _ORT_BAD_INPUT as exc:
            metrics.count_failure("bad_request")
            message = f"the model rejected the input: {exc}"
            log.warning("inference request refused", extra={"request_id": request_id, "error": message})
            response = _error(400, message, request_id)
        except Exception as exc:  # noqa: BLE001 - any other failure is the server's, 500
            metrics.count_failure("inference_error")
            log.exception("inference failed", extra={"request_id": request_id})
            response = _error(500, f"inference failed: {type(exc).__name__}: {exc}", request_id)
        finally:
            metrics.inflight.dec()
            metrics.queue_depth.set(state.scheduler.queue_depth if state.scheduler else 0)
        metrics.count_request(response.status_code)
        metrics.request_duration.observe(time.perf_counter() - started)
        if settings.access_log:
            log.info(
                "inference",
                extra={"request_id": request_id, "status": response.status_code,
                       "seconds": round(time.perf_counter() - started, 6)},
            )
        return response

    async def _infer(request: Request, request_id: str) -> Response:
        check_model(request.path_params["name"], request.path_params.get("version"))
        runtime, scheduler = state.runtime, state.scheduler
        if runtime is None or scheduler is None or state.draining:
            raise NotReady(f"model '{settings.model_name}' is not ready: {_unready_reason(state)}")
        body = await _read_body(request, settings.max_body_bytes)
        t0 = time.perf_counter()
        infer_request = decode_request(body, request.headers.get(BINARY_HEADER))
        feeds = runtime.feeds(infer_request)
        output_names = runtime.output_names(infer_request)
        t1 = time.perf_counter()
        metrics.stage["decode"].observe(t1 - t0)
        timings = Timings()
        outputs = await scheduler.infer(feeds, output_names, timings)
        metrics.stage["queue"].observe(timings.queue_seconds)
        metrics.stage["infer"].observe(timings.infer_seconds)
        t2 = time.perf_counter()
        binary_by_name = {o.name: o.binary for o in infer_request.outputs or ()}
        result = InferResponse(
            model_name=settings.model_name,
            model_version=settings.model_version,
            id=infer_request.id,
            outputs=[
                OutputTensor(
                    name,
                    runtime.output_spec(name).datatype,
                    data,
                    _is_binary(binary_by_name.get(name), infer_request.binary_outputs),
                )
                for name, data in zip(output_names, outputs)
            ],
        )
        payload, header_length = encode_response(result)
        headers = {"x-request-id": request_id}
        if header_length is None:
            media_type = _JSON
        else:
            media_type = "application/octet-stream"
            headers[BINARY_HEADER] = str(header_length)
        metrics.stage["encode"].observe(time.perf_counter() - t2)
        if predictions is not None:
            predictions.maybe_log(request_id, feeds, output_names, outputs)
        return Response(payload, 200, headers=headers, media_type=media_type)

    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        app.add_api_route(prefix, model_metadata, methods=["GET"], include_in_schema=True)
        app.add_api_route(prefix + "/ready", model_ready, methods=["GET"])
        app.add_route(prefix + "/infer", infer, methods=["POST"])

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _load_runtime(settings: ServerSettings, state: ModelState) -> ModelRuntime:
    path = fetch(
        settings.model_uri,
        settings.cache_dir,
        timeout_seconds=settings.download_timeout_seconds,
        retries=settings.download_retries,
    )
    files = resolve(path, settings.sha256)
    state.extra_metadata = {**files.metadata, "sha256": files.sha256}
    if files.labels:
        state.extra_metadata["labels"] = files.labels
    return ModelRuntime(
        files.onnx_path.read_bytes(), settings.model_name, settings.model_version,
        runtime_options(settings),
    )


def _fail_load(state: ModelState, metrics: ServerMetrics, settings: ServerSettings,
               reason: str, message: str) -> None:
    state.load_error = message
    metrics.count_failure(reason)
    log.error(
        "model not loaded; the server stays unready",
        extra={"model": settings.model_name, "version": settings.model_version,
               "reason": reason, "error": message},
    )


def _unready_reason(state: ModelState) -> str:
    if state.draining:
        return "shutting down"
    if state.load_error:
        return f"model failed to load: {state.load_error}"
    return "model is loading"


def _is_binary(requested: bool | None, request_default: bool) -> bool:
    return request_default if requested is None else requested


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id")
    if given and _REQUEST_ID.match(given):
        return given
    return uuid.uuid4().hex


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"request body of {length} bytes is over the limit of {limit} bytes")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding in ("gzip", "deflate"):
        body = _decompress(body, encoding, limit)
    elif encoding != "identity":
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


def _json(status: int, doc: dict) -> Response:
    return Response(orjson.dumps(doc), status, media_type=_JSON)


def _error(status: int, message: str, request_id: str, headers: dict | None = None) -> Response:
    return Response(
        orjson.dumps({"error": message}),
        status,
        headers={"x-request-id": request_id, **(headers or {})},
        media_type=_JSON,
    )
