"""Run the gateway under uvicorn. SIGTERM: unready at once, then finish in-flight requests."""

from __future__ import annotations

import uvicorn

from .app import GatewayApp, RouteSource
from .route_file import RouteFile
from .settings import GatewaySettings


def sources_for(settings: GatewaySettings) -> list[RouteSource]:
    if settings.routes is not None:
        return [RouteFile(settings.routes)]
    from .watch import KubernetesRoutes  # only the Kubernetes source needs the client

    return [KubernetesRoutes(settings.namespaces, settings.kubeconfig)]


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: GatewayApp) -> None:
        super().__init__(config)
        self._app = app

    def handle_exit(self, sig, frame) -> None:
        self._app.draining = True
        if self.should_exit:
            self.force_exit = True
        self.should_exit = True  # not super(): it re-raises the signal and exits 143


def run(settings: GatewaySettings) -> None:
    app = GatewayApp(settings, sources_for(settings))
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=settings.grace_seconds,
        server_header=False,
        date_header=False,
    )
    _Server(config, app).run()
