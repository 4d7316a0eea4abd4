"""An HTTP proxy in front of a real service (Prometheus, in the fault tests) that can be
made slow, down or flapping on command, as an overloaded or restarting Prometheus is.

    with UnreliableProxy("http://127.0.0.1:9090") as proxy:   # proxy.url: point clients here
        proxy.slow(7.0)        # every answer comes after 7 s (past a client's timeout)
        proxy.flapping()       # every other request fails (503), the others pass
        proxy.down()           # every request gets 503 at once
        proxy.healthy()        # pass everything straight through
        proxy.requests, proxy.failed   # counts

Only GET is forwarded (Prometheus' query API); the answer's status, content type and
body go back unchanged. "Flapping" alternates per request, so no two requests in a row
both succeed: anything that needs two answers at once (an analysis measurement asks for
a value and its sample count) never gets both while it lasts.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Self

import aiohttp
import aiohttp.web

from .ports import free_port

_START_SECONDS = 10.0


class UnreliableProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.mode = "healthy"
        self.delay_seconds = 0.0
        self.requests = 0
        self.failed = 0
        self._turn = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread: threading.Thread | None = None

    # --- what tests switch ---

    def healthy(self) -> None:
        self.mode = "healthy"

    def slow(self, seconds: float) -> None:
        self.mode, self.delay_seconds = "slow", seconds

    def flapping(self) -> None:
        self.mode, self._turn = "flapping", 0

    def down(self) -> None:
        self.mode = "down"

    # --- lifecycle ---

    def start(self) -> Self:
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), name="unreliable-proxy",
                                        daemon=True)
        self._thread.start()
        if not self._started.wait(_START_SECONDS):
            raise TimeoutError("the proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(_START_SECONDS)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # --- on the proxy's loop ---

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with aiohttp.ClientSession() as session:
            app = aiohttp.web.Application()
            async def forward(request: aiohttp.web.Request) -> aiohttp.web.Response:
                return await self._forward(session, request)

            app.router.add_get("/{path:.*}", forward)
            runner = aiohttp.web.AppRunner(app, shutdown_timeout=0.2)
            await runner.setup()
            await aiohttp.web.TCPSite(runner, "127.0.0.1", self.port).start()
            self._started.set()
            try:
                await self._stop.wait()
            finally:
                await runner.cleanup()

    async def _forward(self, session: aiohttp.ClientSession,
                       request: aiohttp.web.Request) -> aiohttp.web.Response:
        self.requests += 1
        mode = self.mode
        if mode == "flapping":
            self._turn += 1
            mode = "down" if self._turn % 2 else "healthy"
        if mode == "down":
            self.failed += 1
            return aiohttp.web.Response(status=503, text="Service Unavailable (the harness's proxy is down)")
        if mode == "slow":
            await asyncio.sleep(self.delay_seconds)
        async with session.get(f"{self.upstream}{request.rel_url}") as answer:
            body = await answer.read()
            return aiohttp.web.Response(status=answer.status, body=body,
                                        content_type=answer.content_type or "application/json")
