"""Tiny helpers shared by the probes, so that the probes need not import each other."""

from __future__ import annotations

import datetime as dt
import errno
import ipaddress
import socket
from typing import Literal

ConnectErrorKind = Literal["refused", "timeout", "unreachable", "error"]

_UNREACHABLE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL, errno.ENETDOWN}


def is_ip_literal(text: str) -> bool:
    """True for '127.0.0.2', '::1' and '[::1]' (PVE accepts the bracketed form as server)."""
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def endpoint(address: str, port: int) -> str:
    """'host:port', with IPv6 addresses in brackets as everybody writes them."""
    bare = address.strip("[]")
    return f"[{bare}]:{port}" if ":" in bare else f"{bare}:{port}"


def classify_connect_error(
    exc: OSError, address: str, port: int, timeout: float
) -> tuple[ConnectErrorKind, str]:
    """Kind and a 3 a.m. readable sentence for a failed TCP connect."""
    where = endpoint(address, port)
    if isinstance(exc, ConnectionRefusedError):
        return "refused", (
            f"connection to {where} refused: nothing listens on that port "
            "(service stopped?) or a firewall rejects it"
        )
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timeout", (
            f"no answer from {where} within {timeout:g} s: host down, wrong address, "
            "or a firewall silently drops the packets"
        )
    if exc.errno in _UNREACHABLE:
        return "unreachable", f"{where} is unreachable: {exc.strerror or exc}"
    return "error", f"cannot connect to {where}: {exc.strerror or exc}"


def to_iso(value: dt.datetime) -> str:
    return value.isoformat()


def from_iso(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)
