"""Network probes: DNS, TCP, TLS. Each is one module with one I/O function and pure parsing;
the results are frozen dataclasses that round-trip through JSON (``to_dict``/``from_dict``)."""

from __future__ import annotations

from pbs_compliance.probes.dns import DnsResult, ResolverAnswer, resolve
from pbs_compliance.probes.tcp import TcpResult, connect
from pbs_compliance.probes.tls import (
    CertificateFacts,
    TlsResult,
    facts_from_der,
    handshake,
    normalize_fingerprint,
)

__all__ = [
    "CertificateFacts",
    "DnsResult",
    "ResolverAnswer",
    "TcpResult",
    "TlsResult",
    "connect",
    "facts_from_der",
    "handshake",
    "normalize_fingerprint",
    "resolve",
]
