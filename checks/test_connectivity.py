"""Can this machine reach each declared PBS: name, port, TLS, and the pinned certificate?"""

from __future__ import annotations

from pbs_compliance import verdicts
from pbs_compliance.api import Compliance, StorageSpec, check


@check("dns")
def test_dns(pbs_storage: StorageSpec, pbs: Compliance) -> None:
    """The server name resolves through the configured nameservers."""
    pbs.check(verdicts.dns(pbs_storage, pbs.server(pbs_storage)))


@check("port")
def test_port(pbs_storage: StorageSpec, pbs: Compliance) -> None:
    """Every resolved address accepts TCP on the storage's port (8007 unless declared)."""
    pbs.check(verdicts.port(pbs_storage, pbs.server(pbs_storage)))


@check("tls")
def test_tls(pbs_storage: StorageSpec, pbs: Compliance) -> None:
    """The TLS handshake completes and the certificate is valid for a while yet."""
    expiry_days = pbs.settings.cert_expiry_days
    pbs.check(verdicts.tls(pbs_storage, pbs.server(pbs_storage), pbs.now, expiry_days))


@check("fingerprint")
def test_fingerprint(pbs_storage: StorageSpec, pbs: Compliance) -> None:
    """The declared fingerprint is the one the server presents (PVE pins it)."""
    pbs.check(verdicts.fingerprint(pbs_storage, pbs.server(pbs_storage), str(pbs.config.source)))
