"""Run `modelrollout gateway` (HTTP and shutdown behaviour: frontend.py)."""

from __future__ import annotations

from . import frontend
from .app import GatewayApp, RouteSource
from .route_file import RouteFile
from .settings import GatewaySettings


def sources_for(settings: GatewaySettings) -> list[RouteSource]:
    if settings.routes is not None:
        return [RouteFile(settings.routes)]
    from .watch import KubernetesRoutes  # only the Kubernetes source needs the client

    return [KubernetesRoutes(settings.namespaces, settings.kubeconfig)]


def run(settings: GatewaySettings) -> None:
    app = GatewayApp(settings, sources_for(settings))

    def on_shutdown() -> None:
        app.draining = True

    frontend.run(app, settings.host, settings.port, max_body_bytes=settings.max_body_bytes,
                 grace_seconds=settings.shutdown.grace_seconds, on_shutdown=on_shutdown,
                 drain_seconds=settings.shutdown.drain_seconds, limits=settings.http)
