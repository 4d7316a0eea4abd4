"""What the server and the gateway share as HTTP processes: request ids, the shutdown
semantics below, and for the server, reading an ASGI request body under a size limit and
running under uvicorn. (The gateway has its own HTTP front end, gateway/frontend.py,
with the same shutdown semantics.)

Shutdown: on SIGTERM (or SIGINT) ``on_shutdown`` runs at once (the process turns
unready), after ``drain_seconds`` the listener closes, requests in flight get
``grace_seconds`` to finish, and the process exits 0. A second SIGINT forces the exit.
"""

from __future__ import annotations

import logging
import re
import signal
import time
from collections.abc import Callable
from types import FrameType

import uvicorn

log = logging.getLogger("modelrollout")


# A client's X-Request-ID is kept only when it is plain enough to log safely.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def is_sane_request_id(given: str | None) -> bool:
    return bool(given) and _REQUEST_ID.match(given) is not None


def announce_shutdown(sig: int, drain_seconds: float) -> None:
    """The log line of the first SIGTERM/SIGINT, once ``on_shutdown`` has run."""
    log.info(
        "shutdown requested: unready now, draining",
        extra={"signal": signal.Signals(sig).name, "drain_seconds": drain_seconds},
    )


class BodyTooLarge(Exception):
    """The body is over the limit; the message says by how much."""


class ClientGone(Exception):
    """The client closed the connection before its body arrived."""


async def read_body(receive, content_length: str | None, limit: int) -> bytes:
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise BodyTooLarge(f"request body of {content_length} bytes is over the limit of {limit} bytes")
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"request body is over the limit of {limit} bytes")
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class GracefulServer(uvicorn.Server):
    def __init__(
        self, config: uvicorn.Config, on_shutdown: Callable[[], None], drain_seconds: float = 0.0
    ) -> None:
        super().__init__(config)
        self._on_shutdown = on_shutdown
        self._drain_seconds = drain_seconds
        self._exit_at: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not calling super(): uvicorn re-raises the captured signal after shutdown,
        # which would end the process with 143 instead of 0.
        if self._exit_at is not None:
            if sig == signal.SIGINT:
                self.force_exit = True
            return
        self._on_shutdown()
        self._exit_at = time.monotonic() + self._drain_seconds
        announce_shutdown(sig, self._drain_seconds)

    async def on_tick(self, counter: int) -> bool:
        if self._exit_at is not None and time.monotonic() >= self._exit_at:
            self.should_exit = True
        return await super().on_tick(counter)


def run(
    app,
    host: str,
    port: int,
    grace_seconds: float,
    on_shutdown: Callable[[], None],
    drain_seconds: float = 0.0,
    http="httptools",
) -> None:
    """``http``: uvicorn's HTTP protocol (a name, or a factory such as the model server's
    server/http_protocol.py)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=http,
        lifespan="on",
        access_log=False,
        log_config=None,
        # As given: int(0.5) or None would turn a short grace into an unbounded wait.
        # uvicorn hands it to asyncio.wait_for, which takes any float (0: cancel at once).
        timeout_graceful_shutdown=grace_seconds,  # type: ignore[arg-type]
        server_header=False,
    )
    GracefulServer(config, on_shutdown, drain_seconds).run()
