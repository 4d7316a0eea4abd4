"""Free loopback ports for the processes the harness starts."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel's choice).

    Another process may take it before the caller binds it; on one machine running
    tests and the demo that race has not been worth more than this.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
