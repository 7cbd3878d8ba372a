"""Fixtures for the lab's own tests: real PBS servers, DNS servers and node agents on loopback."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from typing import Any

import pytest

from pbs_compliance.lab.pbs_server import PbsServerSpec

ROOT_PASSWORD = "root-secret-pw"
BACKUP_PASSWORD = "backup-secret-pw"
TOKEN_SECRET = "3f1c5e0a-7d2b-4c1e-9a55-0b6a1e3c7f7d"  # shaped like a real PBS token secret


def default_spec(**overrides: Any) -> PbsServerSpec:
    values: dict[str, Any] = {
        "name": "pbs1.lab.example",
        "address": "127.0.0.2",
        "datastores": {"homelab": ["prod", "prod/vms"], "offsite": []},
        "users": {"root@pam": ROOT_PASSWORD, "backup@pbs": BACKUP_PASSWORD},
        "tokens": {"sync@pbs!ci": TOKEN_SECRET},
        "acl": {"backup@pbs": ["homelab"], "sync@pbs!ci": ["homelab"]},
    }
    values.update(overrides)
    return PbsServerSpec(**values)


@pytest.fixture
def pbs_defaults() -> dict[str, Any]:
    """The lab tests' PBS: two datastores, a restricted user and a token (see `default_spec`)."""
    return vars(default_spec()).copy()


def peer_certificate(address: str, port: int, timeout: float = 2.0) -> bytes:
    """DER of the certificate the server presents now (no verification: we only look)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((address, port), timeout=timeout) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


@pytest.fixture
def fetch_certificate() -> Callable[..., bytes]:
    """``fetch_certificate(address, port)`` -> DER of the presented leaf certificate."""
    return peer_certificate
