"""Model files over HTTP on loopback, as a model store would serve them in a cluster.

    with ModelFiles(folder) as files:       # every file of folder, read-only
        files.url("iris-1.0.0.onnx")         # http://127.0.0.1:<port>/iris-1.0.0.onnx
"""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path
from typing import Self


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        pass


class ModelFiles:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def start(self) -> Self:
        handler = functools.partial(_Quiet, directory=str(self.folder))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="model-files", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
