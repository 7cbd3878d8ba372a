"""Fixtures for the probe tests: real lab servers on loopback to probe."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pbs_compliance.lab.dns_server import DnsServer
from pbs_compliance.lab.pbs_server import PbsServer, PbsServerSpec


@pytest.fixture
def start_pbs(tmp_path: Path) -> Iterator[Callable[..., PbsServer]]:
    """Start a lab PBS (name pbs1.lab.example on 127.0.0.4 unless overridden); stopped after."""
    servers: list[PbsServer] = []

    def start(**overrides: Any) -> PbsServer:
        values: dict[str, Any] = {
            "name": "pbs1.lab.example",
            "address": "127.0.0.4",
            "datastores": {"homelab": []},
            "users": {"root@pam": "probe-test-pw"},
        }
        values.update(overrides)
        server = PbsServer(PbsServerSpec(**values), tmp_path / f"certs{len(servers)}")
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def pbs(start_pbs: Callable[..., PbsServer]) -> PbsServer:
    """One running lab PBS."""
    return start_pbs()


@pytest.fixture
def start_dns() -> Iterator[Callable[..., DnsServer]]:
    """Start a lab DNS server on 127.0.0.1 (ephemeral port); every one is stopped afterwards."""
    servers: list[DnsServer] = []

    def start(*args: Any, **kwargs: Any) -> DnsServer:
        server = DnsServer(*args, **kwargs)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


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
