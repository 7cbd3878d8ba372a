"""Tiny helpers shared by the probes, so that the probes need not import each other."""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Mapping
from typing import Any, Literal, Self, cast

from pydantic import TypeAdapter

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


class JsonForm:
    """`to_dict`/`from_dict` for a probe's frozen dataclass: pydantic's JSON form of its fields
    (the one the evidence file holds them in), so a field added cannot be left out of either."""

    def to_dict(self) -> dict[str, Any]:
        return cast(dict[str, Any], _adapter(type(self)).dump_python(self, mode="json"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cast(Self, _adapter(cls).validate_python(data))


_ADAPTERS: dict[type, TypeAdapter[Any]] = {}


def _adapter(kind: type) -> TypeAdapter[Any]:
    """One adapter per class, built at first use (after the dataclass decorator has run)."""
    if kind not in _ADAPTERS:
        _ADAPTERS[kind] = TypeAdapter(kind)
    return _ADAPTERS[kind]
