"""Fixtures for the probe tests: real lab servers on loopback to probe."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture
def pbs_defaults(pbs_defaults: dict[str, Any]) -> dict[str, Any]:
    """The probes' PBS: the lab's pbs1.lab.example (one datastore), on 127.0.0.4."""
    return pbs_defaults | {"address": "127.0.0.4", "users": {"root@pam": "probe-test-pw"}}


@pytest.fixture
def plain_tcp_server() -> Iterator[Callable[[bytes], tuple[str, int]]]:
    """A TCP server that answers every connection with fixed bytes and hangs up (not TLS)."""
    listeners: list[socket.socket] = []
    threads: list[threading.Thread] = []

    def start(reply: bytes) -> tuple[str, int]:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(5)
        listeners.append(listener)

        def serve() -> None:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(4096)
                    conn.sendall(reply)
                except OSError:
                    pass

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        threads.append(thread)
        address, port = listener.getsockname()
        return str(address), int(port)

    yield start
    for listener in listeners:
        listener.close()
    for thread in threads:
        thread.join(timeout=5)
