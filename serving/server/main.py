"""Run `modelrollout serve` (shutdown behaviour: serving/hosting.py)."""

from __future__ import annotations

from .. import hosting
from .app import create_app
from .http_protocol import protocol_for
from .loading import stop_downloads
from .settings import ServerSettings


def serve(settings: ServerSettings) -> None:
    app = create_app(settings)
    state = app.state.model

    def on_shutdown() -> None:
        state.draining = True
        stop_downloads()  # a model still downloading will never serve now

    hosting.run(app, settings.host, settings.port, settings.shutdown.grace_seconds, on_shutdown,
                settings.shutdown.drain_seconds, protocol_for(settings.http, settings.max_body_bytes))
