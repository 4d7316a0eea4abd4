"""A kube-proxy stand-in for one Service: what reaches a ClusterIP, on a loopback port.

    with ServiceProxy(kube, "ml", "iris") as proxy:
        httpx.post(f"{proxy.url}/v2/models/iris/infer", ...)

Every TCP connection to 127.0.0.1:<port> is forwarded to one ready endpoint of the
Service, picked at random per connection as kube-proxy's iptables mode does, from the
Service's EndpointSlices in the emulated API (read every ``poll_seconds``). A keep-alive
connection stays with the endpoint it got, as in a cluster. Used for replicas routing,
where no gateway stands between clients and pods. A connection that finds no ready
endpoint is closed at once (a cluster refuses it too).
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import socketserver
import threading
from typing import Self

from modelrollout.serving.contract.endpoint_slices import endpoints_by_service
from modelrollout.serving.contract.routes import Endpoint

from .emulator import KubeEmulator

log = logging.getLogger("modelrollout.harness")

_CHUNK = 65536


class ServiceProxy:
    def __init__(self, kube: KubeEmulator, namespace: str, service: str, poll_seconds: float = 0.25) -> None:
        self.kube = kube
        self.namespace = namespace
        self.service = service
        self.poll_seconds = poll_seconds
        self._endpoints: tuple[Endpoint, ...] = ()
        self._stop = threading.Event()
        self._random = random.Random(0)
        self._server: socketserver.ThreadingTCPServer | None = None
        self._threads: list[threading.Thread] = []

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def endpoints(self) -> tuple[Endpoint, ...]:
        """The ready endpoints connections go to now."""
        return self._endpoints

    def start(self) -> Self:
        self._refresh()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._forward(self.request)

        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self._threads = [threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True,
                                          name=f"proxy-{self.service}"),
                         threading.Thread(target=self._poll, daemon=True, name=f"proxy-poll-{self.service}")]
        for thread in self._threads:
            thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self._refresh()
            except Exception as exc:  # noqa: BLE001 - the API server may be restarting; keep the last view
                log.debug("service proxy %s: could not read EndpointSlices: %s", self.service, exc)

    def _refresh(self) -> None:
        slices = self.kube.list("discovery.k8s.io/v1", "EndpointSlice", self.namespace)
        found = endpoints_by_service(slices).get((self.namespace, self.service), ())
        self._endpoints = tuple(e for e in found if e.ready)

    def _forward(self, client: socket.socket) -> None:
        endpoints = self._endpoints
        if not endpoints:
            return
        endpoint = self._random.choice(endpoints)
        try:
            upstream = socket.create_connection((endpoint.host, endpoint.port), timeout=10)
        except OSError:
            return
        with upstream:
            client.settimeout(None)
            upstream.settimeout(None)
            back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
            back.start()
            _pump(client, upstream)
            back.join(30)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy until ``source`` ends, then pass the end on."""
    try:
        while data := source.recv(_CHUNK):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
