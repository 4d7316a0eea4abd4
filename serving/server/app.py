"""The ASGI app of `modelrollout serve`: Open Inference Protocol V2 over one model.

``POST …/infer`` goes straight to InferEndpoint (infer.py), the hot path; everything
else (health, metadata, metrics) is an ordinary FastAPI route.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import orjson
from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from modelrollout import build_info

from ..contract.feedback import SUFFIX as FEEDBACK_SUFFIX
from .errors import ModelNotFound, NotReady, ServingError
from .feedback import FeedbackEndpoint
from .infer import InferEndpoint, check_model, error_body, request_id_of
from .lifecycle import ModelState, load_model
from .metrics import ServerMetrics
from .predlog import PredictionLogger
from .runtime import ModelRuntime
from .settings import ServerSettings

_INFER_PREFIX = "/v2/models/"
_INFER_SUFFIX = "/infer"


class ServerApp:
    """Routes inference requests to the hot path, feedback to its endpoint (the same kind of
    plain ASGI callable) and the rest to FastAPI."""

    def __init__(self, api: FastAPI, infer: InferEndpoint, feedback: FeedbackEndpoint) -> None:
        self.api = api
        self.infer = infer
        self.feedback = feedback
        self.state = api.state  # .model (ModelState), .metrics (ServerMetrics)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            if path.startswith(_INFER_PREFIX):
                if path.endswith(_INFER_SUFFIX):
                    endpoint, suffix = self.infer, _INFER_SUFFIX
                elif path.endswith(FEEDBACK_SUFFIX):
                    endpoint, suffix = self.feedback, FEEDBACK_SUFFIX
                else:
                    return await self.api(scope, receive, send)
                parts = path[len(_INFER_PREFIX) : -len(suffix)].split("/")
                if len(parts) == 1 and parts[0]:
                    return await endpoint(scope, receive, send, parts[0], None)
                if len(parts) == 3 and parts[1] == "versions" and parts[0] and parts[2]:
                    return await endpoint(scope, receive, send, parts[0], parts[2])
        await self.api(scope, receive, send)


def create_app(settings: ServerSettings, runtime: ModelRuntime | None = None) -> ServerApp:
    """Build the app. The model (``runtime``, or fetched from ``settings.model_uri``) is
    loaded after start-up, while the server already answers liveness and readiness: false."""
    state = ModelState()
    # The V2 server metadata's version is the server's own: the modelrollout release.
    server_version = build_info.version()
    metrics = ServerMetrics(settings.model_name, settings.model_version, settings.revision)
    predictions = None
    if settings.prediction_log:
        predictions = PredictionLogger(
            settings.prediction_log, settings.prediction_log_sample_rate,
            settings.model_name, settings.model_version, metrics.prediction_log_dropped.inc,
        )

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        loader = asyncio.create_task(load_model(settings, state, metrics, runtime))
        try:
            yield
        finally:
            state.draining = True
            loader.cancel()
            await asyncio.gather(loader, return_exceptions=True)
            if state.scheduler is not None:
                await state.scheduler.close()
            if state.monitor is not None:
                state.monitor.close()
            if predictions is not None:
                predictions.close()

    api = FastAPI(
        title="modelrollout serve",
        version=server_version,
        description="Open Inference Protocol (V2) server for one ONNX model",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    api.state.model = state
    api.state.metrics = metrics

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(exc.status_code, str(exc.detail), request)

    @api.get("/v2")
    async def server_metadata() -> Response:
        return _json(200, {"name": "modelrollout", "version": server_version,
                           "extensions": ["binary_tensor_data"]})

    @api.get("/v2/health/live")
    async def live() -> Response:
        return _json(200, {"live": True})

    @api.get("/v2/health/ready")
    async def ready() -> Response:
        if state.is_ready:
            return _json(200, {"ready": True})
        return _json(503, {"ready": False, "error": state.unready_reason()})

    async def model_metadata(request: Request) -> Response:
        try:
            check_model(settings, request.path_params["name"], request.path_params.get("version"))
            if state.runtime is None:
                raise NotReady(state.unready_reason())
        except ServingError as exc:
            return _error(exc.status, exc.message, request)
        doc = state.runtime.metadata()
        doc["parameters"] = state.extra_metadata
        for out in doc["outputs"]:
            labels = state.runtime.labels.get(out["name"])
            if labels:
                out["parameters"] = {"labels": labels}
        return _json(200, doc)

    async def model_ready(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            check_model(settings, name, request.path_params.get("version"))
        except ServingError as exc:
            return _error(exc.status, exc.message, request)
        if state.is_ready:
            return _json(200, {"name": name, "ready": True})
        return _json(503, {"name": name, "ready": False, "error": state.unready_reason()})

    async def gate_file(request: Request) -> Response:
        """profile.json or golden.json of the model folder, as loaded (docs/gates.md)."""
        which = request.url.path.rsplit("/", 1)[1]
        try:
            check_model(settings, request.path_params["name"], request.path_params.get("version"))
            if state.runtime is None:
                raise NotReady(state.unready_reason())
            raw = state.companions.profile if which == "profile" else state.companions.golden
            if raw is None:
                raise ModelNotFound(f"model '{settings.model_name}' has no {which}.json beside its "
                                    "model.onnx")
        except ServingError as exc:
            return _error(exc.status, exc.message, request)
        return Response(raw, 200, media_type="application/json")

    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        api.add_api_route(prefix, model_metadata, methods=["GET"])
        api.add_api_route(prefix + "/ready", model_ready, methods=["GET"])
        api.add_api_route(prefix + "/profile", gate_file, methods=["GET"])
        api.add_api_route(prefix + "/golden", gate_file, methods=["GET"])

    @api.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return ServerApp(api, InferEndpoint(settings, state, metrics, predictions),
                     FeedbackEndpoint(settings, state))


def _json(status: int, doc: dict) -> Response:
    return Response(orjson.dumps(doc), status, media_type="application/json")


def _error(status: int, message: str, request: Request) -> Response:
    request_id = request_id_of(request.headers.get("x-request-id"))
    return Response(error_body(message), status, headers={"x-request-id": request_id},
                    media_type="application/json")
