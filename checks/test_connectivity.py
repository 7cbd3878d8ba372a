"""Can this machine reach each declared PBS: name, port, TLS, and the pinned certificate?"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from pbs_compliance import verdicts
from pbs_compliance.config import ComplianceConfig, StorageSpec
from pbs_compliance.evidence import ServerEvidence
from pbs_compliance.settings import RunSettings

Check = Callable[[verdicts.Verdict], None]


@pytest.mark.dns
def test_dns(
    pbs_storage: StorageSpec, pbs_server_evidence: ServerEvidence | None, pbs_check: Check
) -> None:
    """The server name resolves through the configured nameservers."""
    pbs_check(verdicts.dns(pbs_storage, pbs_server_evidence))


@pytest.mark.port
def test_port(
    pbs_storage: StorageSpec, pbs_server_evidence: ServerEvidence | None, pbs_check: Check
) -> None:
    """Every resolved address accepts TCP on the storage's port (8007 unless declared)."""
    pbs_check(verdicts.port(pbs_storage, pbs_server_evidence))


@pytest.mark.tls
def test_tls(
    pbs_storage: StorageSpec,
    pbs_server_evidence: ServerEvidence | None,
    pbs_settings: RunSettings,
    pbs_now: dt.datetime,
    pbs_check: Check,
) -> None:
    """The TLS handshake completes and the certificate is valid for a while yet."""
    pbs_check(
        verdicts.tls(pbs_storage, pbs_server_evidence, pbs_now, pbs_settings.cert_expiry_days)
    )


@pytest.mark.fingerprint
def test_fingerprint(
    pbs_storage: StorageSpec,
    pbs_server_evidence: ServerEvidence | None,
    pbs_config: ComplianceConfig,
    pbs_check: Check,
) -> None:
    """The declared fingerprint is the one the server presents (PVE pins it)."""
    pbs_check(verdicts.fingerprint(pbs_storage, pbs_server_evidence, str(pbs_config.source)))
