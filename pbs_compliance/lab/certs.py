"""Certificates for the lab's PBS servers.

PBS ships a self-signed certificate and PVE pins it by SHA-256 fingerprint, so the lab needs
both: self-signed leaves (the default) and a small CA (for "valid chain, wrong pin" cases).
EC P-256 keys keep generation in the millisecond range, which matters when a benchmark starts
twenty servers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_BACKDATE = dt.timedelta(days=1)
DEFAULT_LIFETIME = dt.timedelta(days=730)

__all__ = [
    "CertPair",
    "CertificateAuthority",
    "fingerprint_of_der",
    "fingerprint_of_pem",
    "self_signed",
]


def fingerprint_of_der(der: bytes) -> str:
    """SHA-256 of a DER certificate as PVE shows it: upper-case hex pairs joined by ':'."""
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def fingerprint_of_pem(pem: bytes) -> str:
    """Fingerprint of the first certificate in ``pem`` (the leaf, for a chain file)."""
    cert = x509.load_pem_x509_certificate(pem)
    return fingerprint_of_der(cert.public_bytes(serialization.Encoding.DER))


@dataclass(frozen=True)
class CertPair:
    """A PEM certificate and its private key; the key stays out of the repr."""

    cert_pem: bytes
    key_pem: bytes = field(repr=False)

    @property
    def fingerprint(self) -> str:
        return fingerprint_of_pem(self.cert_pem)

    @property
    def not_after(self) -> dt.datetime:
        return x509.load_pem_x509_certificate(self.cert_pem).not_valid_after_utc

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """Write ``<stem>.pem`` and ``<stem>.key``; the key is created 0600 from the start."""
        directory.mkdir(parents=True, exist_ok=True)
        cert_path = directory / f"{stem}.pem"
        key_path = directory / f"{stem}.key"
        cert_path.write_bytes(self.cert_pem)
        # Open with the final mode so the key is never world-readable, not even briefly.
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(self.key_pem)
        key_path.chmod(0o600)
        return cert_path, key_path


class CertificateAuthority:
    """A throw-away CA that signs lab leaf certificates."""

    def __init__(self, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self._certificate = certificate
        self._key = key

    def __repr__(self) -> str:
        return f"CertificateAuthority({self._certificate.subject.rfc4514_string()!r})"

    @classmethod
    def create(cls, common_name: str) -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        name = _name(common_name)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - DEFAULT_BACKDATE)
            .not_valid_after(now + 5 * DEFAULT_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(certificate, key)

    @property
    def cert_pem(self) -> bytes:
        return self._certificate.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        common_name: str,
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[str] = (),
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> CertPair:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = _leaf_builder(common_name, dns_names, ip_addresses, not_before, not_after)
        certificate = (
            builder.issuer_name(self._certificate.subject)
            .public_key(key.public_key())
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        return CertPair(certificate.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def self_signed(
    common_name: str,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> CertPair:
    """A self-signed leaf, like the one PBS generates at install time."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _leaf_builder(common_name, dns_names, ip_addresses, not_before, not_after)
    certificate = (
        builder.issuer_name(_name(common_name))
        .public_key(key.public_key())
        .sign(key, hashes.SHA256())
    )
    return CertPair(certificate.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pbs-compliance lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _leaf_builder(
    common_name: str,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str],
    not_before: dt.datetime | None,
    not_after: dt.datetime | None,
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    start = not_before if not_before is not None else now - DEFAULT_BACKDATE
    end = not_after if not_after is not None else now + DEFAULT_LIFETIME
    if end <= start:
        raise ValueError(f"certificate for {common_name!r}: not_after {end} <= not_before {start}")
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
