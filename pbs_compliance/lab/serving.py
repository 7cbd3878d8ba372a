"""What the lab's servers share: an HTTP handler that hands every method to one `_dispatch`,
and a select loop on a thread that a socket pair stops (a blocking select cannot be interrupted
any other way)."""

from __future__ import annotations

import selectors
import socket
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any

__all__ = ["MethodHandler", "SelectLoop"]


class MethodHandler(BaseHTTPRequestHandler):
    """GET, POST, PUT and DELETE all go to `_dispatch(method)`; nothing is logged (request lines
    would interleave with test output; the servers keep their own records)."""

    protocol_version = "HTTP/1.1"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Silent."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        raise NotImplementedError


class SelectLoop:
    """A daemon thread that calls `ready(sock)` for each readable socket of `sockets`, until
    `ready` returns False or `stop()` is called."""

    def __init__(
        self, sockets: Sequence[socket.socket], ready: Callable[[Any], bool], name: str
    ) -> None:
        self._wake = socket.socketpair()
        self._thread = threading.Thread(
            target=self._run, args=(tuple(sockets), ready), name=name, daemon=True
        )
        self._thread.start()

    def _run(self, sockets: tuple[socket.socket, ...], ready: Callable[[Any], bool]) -> None:
        wake = self._wake[0]
        with selectors.DefaultSelector() as selector:
            for sock in (*sockets, wake):
                selector.register(sock, selectors.EVENT_READ)
            while True:
                for key, _ in selector.select():
                    if key.fileobj is wake or not ready(key.fileobj):
                        return

    def stop(self) -> None:
        """Wake the thread, wait for it (5 s at most), and close the socket pair."""
        self._wake[1].send(b"x")
        self._thread.join(timeout=5.0)
        for sock in self._wake:
            sock.close()
