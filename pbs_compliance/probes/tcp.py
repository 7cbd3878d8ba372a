"""Can we open a TCP connection to the PBS port? Refused, timed out and unreachable differ."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from pbs_compliance.probes._common import (
    ConnectErrorKind,
    JsonForm,
    classify_connect_error,
    endpoint,
)

__all__ = ["TcpResult", "connect"]


@dataclass(frozen=True)
class TcpResult(JsonForm):
    address: str
    port: int
    ok: bool
    error: str | None
    elapsed: float
    kind: ConnectErrorKind | None = None

    def describe(self) -> str:
        if self.ok:
            return f"TCP {endpoint(self.address, self.port)} open ({self.elapsed * 1000:.0f} ms)"
        return f"TCP {self.error}"


def connect(address: str, port: int, timeout: float) -> TcpResult:
    """Open and close one connection; never raises for network trouble."""
    started = time.monotonic()
    try:
        sock = socket.create_connection((address.strip("[]"), port), timeout=timeout)
    except OSError as exc:
        kind, text = classify_connect_error(exc, address, port, timeout)
        return TcpResult(address, port, False, text, time.monotonic() - started, kind)
    sock.close()
    return TcpResult(address, port, True, None, time.monotonic() - started)
