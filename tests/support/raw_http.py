"""A raw HTTP/1.1 client for the front-end tests: one TCP connection on 127.0.0.1, bytes
sent exactly as written (malformed, pipelined, slow), answers read off it one by one."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field

import pytest


@dataclass
class Answer:
    status: int
    version: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k == name]
        assert len(values) <= 1, f"{name} sent {len(values)} times: {self.headers}"
        return values[0] if values else None

    def json(self):
        return json.loads(self.body)


def request(method: str, path: str, body: bytes | None = None, headers: tuple = (),
            version: str = "HTTP/1.1", host: str | None = "gateway") -> bytes:
    """One request as bytes: a Host header (unless ``host`` is None), ``headers``, and a
    Content-Length when there is a body."""
    lines = [f"{method} {path} {version}", *([f"Host: {host}"] if host is not None else []),
             *(f"{k}: {v}" for k, v in headers)]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


class Client:
    """One raw TCP connection to a front end (the gateway's, or a server's); reads answers
    off it one by one. ``request_ids``: every final answer must carry X-Request-ID (all of
    the gateway's do; a server's health and metadata answers do not)."""

    def __init__(self, port: int, timeout: float = 10.0, request_ids: bool = True) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""
        self.request_ids = request_ids

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def answer(self) -> Answer:
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        version, status, _ = status_line.split(" ", 2)
        answer = Answer(int(status), version)
        for line in lines:
            name, value = line.split(":", 1)
            answer.headers.append((name.strip().lower(), value.strip()))
        if answer.status >= 200:  # interim answers (100 Continue) have no body
            length = answer.header("content-length")
            assert length is not None, f"no content-length: {answer.headers}"
            while len(self.buffer) < int(length):
                self._fill()
            answer.body, self.buffer = self.buffer[:int(length)], self.buffer[int(length):]
            assert answer.header("x-request-id") or not self.request_ids, f"no x-request-id: {answer.headers}"
        return answer

    def closed_by_gateway(self, within: float = 5.0) -> bool:
        """True when the other end closes the connection within ``within`` s, nothing more sent."""
        self.sock.settimeout(within)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            return not self.buffer
        except TimeoutError:
            return False
        return data == b"" and not self.buffer

    closed = closed_by_gateway

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError(f"the connection was closed; unread: {self.buffer!r}")
        self.buffer += data


def trickle(client: Client, data: bytes, pause: float) -> None:
    """Send ``data`` a byte at a time, ``pause`` apart, until the other side answers or closes."""
    client.sock.settimeout(pause)
    for byte in data:
        try:
            client.send(bytes([byte]))
            chunk = client.sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return
        client.buffer += chunk
        return
    pytest.fail(f"sent all {len(data)} bytes without an answer")
