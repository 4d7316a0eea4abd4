"""Run the server under uvicorn with Kubernetes-friendly shutdown.

SIGTERM (or SIGINT): readiness turns false at once; after ``drain_seconds`` the
listener closes, in-flight requests get ``grace_seconds`` to finish, and the process
exits 0. A second SIGINT forces the exit.
"""

from __future__ import annotations

import logging
import signal
import time
from types import FrameType

import uvicorn

from .app import ModelState, create_app
from .loading import stop_downloads
from .settings import ServerSettings

log = logging.getLogger("modelrollout.serve")


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state: ModelState, drain_seconds: float) -> None:
        super().__init__(config)
        self._state = state
        self._drain_seconds = drain_seconds
        self._exit_at: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not calling super(): uvicorn re-raises the captured signal after shutdown,
        # which would end the process with 143 instead of 0.
        if self._exit_at is not None:
            if sig == signal.SIGINT:
                self.force_exit = True
            return
        self._state.draining = True
        stop_downloads()  # a model still downloading will never serve now
        self._exit_at = time.monotonic() + self._drain_seconds
        log.info(
            "shutdown requested: unready now, draining",
            extra={"signal": signal.Signals(sig).name, "drain_seconds": self._drain_seconds},
        )

    async def on_tick(self, counter: int) -> bool:
        if self._exit_at is not None and time.monotonic() >= self._exit_at:
            self.should_exit = True
        return await super().on_tick(counter)


def serve(settings: ServerSettings) -> None:
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        # As given: int(0.5) or None would turn a short grace into an unbounded wait.
        # uvicorn hands it to asyncio.wait_for, which takes any float (0: cancel at once).
        timeout_graceful_shutdown=settings.grace_seconds,  # type: ignore[arg-type]
        server_header=False,
    )
    GracefulServer(config, app.state.model, settings.drain_seconds).run()
