"""What certificate does the PBS present? Pinning-style: no chain verification, like PVE.

PVE trusts a PBS by the SHA-256 fingerprint of its leaf certificate, so the probe completes
the handshake whatever the chain says and reports the facts: fingerprint, validity, names.
The whole probe (TCP connect + handshake) runs against one deadline, so a server that accepts
TCP but never speaks TLS costs exactly ``timeout``.

Library warnings are facts, not events: the probe runs in a worker thread, where a warning
turned into an error by someone's filters would abort it, and where no filter can be set safely.
A certificate with a serial number that is not positive (RFC 5280 forbids it; `cryptography`
warns when it parses one, and will refuse it) is therefore recognised first, from its DER, and
parsed with a positive stand-in serial; the problem is recorded in `CertificateFacts.problems`.
(pyOpenSSL's own getters are deprecated, and warn too.)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import select
import socket
import time
from dataclasses import dataclass, replace
from typing import Literal

from cryptography import x509
from OpenSSL import SSL, crypto

from pbs_compliance.probes._common import (
    JsonForm,
    classify_connect_error,
    endpoint,
    is_ip_literal,
)

TlsErrorKind = Literal["refused", "timeout", "unreachable", "error", "tls", "closed"]

__all__ = [
    "CertificateFacts",
    "TlsResult",
    "facts_from_der",
    "handshake",
    "normalize_fingerprint",
]


@functools.lru_cache(maxsize=4096)
def normalize_fingerprint(text: str) -> str:
    """Upper-case colon hex, whatever case or separators were used ('ab:cd', 'abcd', 'AB CD').

    Cached: every case of a storage compares the same few fingerprints again."""
    digits = "".join(ch for ch in text if ch not in ": \t\n-").upper()
    return ":".join(digits[i : i + 2] for i in range(0, len(digits), 2))


@dataclass(frozen=True)
class CertificateFacts(JsonForm):
    subject: str
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    serial: int
    fingerprint: str
    sans: tuple[str, ...]
    problems: tuple[str, ...] = ()  # what makes it malformed (the tls case fails on these)

    @property
    def self_signed(self) -> bool:
        return self.subject == self.issuer

    def days_left(self, now: dt.datetime) -> int:
        """Whole days until expiry; negative once expired."""
        return (self.not_after - now) // dt.timedelta(days=1)

    def is_expired(self, now: dt.datetime) -> bool:
        return now >= self.not_after

    def matches(self, fingerprint: str) -> bool:
        return normalize_fingerprint(fingerprint) == self.fingerprint


def facts_from_der(der: bytes) -> CertificateFacts:
    """Facts of one DER certificate. Pure, and silent (see the module doc)."""
    serial, start, end = _serial_field(der)
    if serial > 0:
        return _facts(der)
    # Parsed with a positive stand-in serial, so that `cryptography` has nothing to warn about;
    # the fingerprint and the serial are the served certificate's own.
    stand_in = _facts(_replace(der, start, end, b"\x01"))
    problem = (
        f"its serial number ({serial}) is not positive, which RFC 5280 forbids; the cryptography "
        "library already warns when it reads it and will refuse such certificates"
    )
    fingerprint = normalize_fingerprint(hashlib.sha256(der).hexdigest())
    return replace(stand_in, serial=serial, fingerprint=fingerprint, problems=(problem,))


def _facts(der: bytes) -> CertificateFacts:
    cert = x509.load_der_x509_certificate(der)
    sans: list[str] = []
    try:
        extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        pass
    else:
        sans += [f"DNS:{name}" for name in extension.get_values_for_type(x509.DNSName)]
        sans += [f"IP:{ip}" for ip in extension.get_values_for_type(x509.IPAddress)]
    digest = hashlib.sha256(der).hexdigest()
    return CertificateFacts(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        serial=cert.serial_number,
        fingerprint=normalize_fingerprint(digest),
        sans=tuple(sans),
    )


# A few lines of DER (X.690) for the one field `cryptography` warns about: Certificate ::=
# SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber INTEGER, ... }, ... }.


def _tlv(data: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start, end) of the content of the element at `at`."""
    if at + 2 > len(data):
        raise ValueError("truncated DER")
    tag, length, start = data[at], data[at + 1], at + 2
    if length & 0x80:
        size = length & 0x7F
        length, start = int.from_bytes(data[start : start + size], "big"), start + size
    if start + length > len(data):
        raise ValueError("truncated DER")
    return tag, start, start + length


def _serial_field(der: bytes) -> tuple[int, int, int]:
    """The serial number and where its content bytes are (positions in `der`)."""
    _, body, _ = _tlv(der, 0)
    _, tbs, _ = _tlv(der, body)
    tag, _, end = _tlv(der, tbs)
    at = end if tag == 0xA0 else tbs
    tag, start, end = _tlv(der, at)
    if tag != 0x02:
        raise ValueError("no serial number where RFC 5280 puts it")
    return int.from_bytes(der[start:end], "big", signed=True), start, end


def _replace(der: bytes, start: int, end: int, content: bytes) -> bytes:
    """`der` with the content at start..end replaced, the lengths of its enclosing elements
    (the serial's INTEGER, the TBS and the certificate) re-encoded."""
    _, body, _ = _tlv(der, 0)
    _, tbs, tbs_end = _tlv(der, body)
    tag, _, _ = _tlv(der, tbs)
    at = _tlv(der, tbs)[2] if tag == 0xA0 else tbs
    new_tbs = _encode(0x30, der[tbs:at] + _encode(0x02, content) + der[end:tbs_end])
    return _encode(0x30, new_tbs + der[tbs_end : _tlv(der, 0)[2]])


def _encode(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + content


@dataclass(frozen=True)
class TlsResult(JsonForm):
    address: str
    port: int
    server_name: str | None
    ok: bool
    error: str | None
    elapsed: float
    certificate: CertificateFacts | None = None
    protocol: str | None = None
    kind: TlsErrorKind | None = None

    @property
    def fingerprint(self) -> str | None:
        return self.certificate.fingerprint if self.certificate else None

    def days_left(self, now: dt.datetime) -> int | None:
        return self.certificate.days_left(now) if self.certificate else None

    def is_expired(self, now: dt.datetime) -> bool:
        return self.certificate is not None and self.certificate.is_expired(now)

    def matches(self, fingerprint: str) -> bool:
        return self.certificate is not None and self.certificate.matches(fingerprint)

    def describe(self) -> str:
        where = endpoint(self.address, self.port)
        if not self.ok or self.certificate is None:
            return f"TLS {where}: {self.error}"
        cert = self.certificate
        return (
            f"TLS {where}: {self.protocol}, certificate {cert.subject} "
            f"(fingerprint {cert.fingerprint}, valid until {cert.not_after:%Y-%m-%d})"
        )


def handshake(address: str, port: int, server_name: str | None, timeout: float) -> TlsResult:
    """Connect, handshake (SNI when ``server_name`` is a name), report the leaf certificate."""
    started = time.monotonic()
    deadline = started + timeout

    def failed(kind: TlsErrorKind, error: str) -> TlsResult:
        elapsed = time.monotonic() - started
        return TlsResult(address, port, server_name, False, error, elapsed, kind=kind)

    try:
        sock = socket.create_connection((address.strip("[]"), port), timeout=timeout)
    except OSError as exc:
        return failed(*classify_connect_error(exc, address, port, timeout))
    where = endpoint(address, port)
    try:
        context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        context.set_verify(SSL.VERIFY_NONE)  # we pin by fingerprint, as PVE does
        conn = SSL.Connection(context, sock)
        if server_name and not is_ip_literal(server_name):
            conn.set_tlsext_host_name(server_name.encode("idna"))
        conn.set_connect_state()
        sock.setblocking(False)
        _drive_handshake(conn, sock, deadline)
        # pyOpenSSL's own object: converting it to `cryptography` would parse (and warn) here.
        peer = conn.get_peer_certificate()
        protocol = conn.get_protocol_version_name()
        with contextlib.suppress(SSL.Error):  # best-effort close_notify
            conn.shutdown()
    except TimeoutError:
        return failed(
            "timeout",
            f"TLS handshake with {where} did not complete within {timeout:g} s: the port "
            "accepts TCP but nothing speaks TLS (hung service, or a middlebox eating packets)",
        )
    except SSL.SysCallError as exc:
        return failed("closed", f"{where} closed the connection during the TLS handshake ({exc})")
    except SSL.Error as exc:
        return failed("tls", f"TLS handshake with {where} failed: {_ssl_reason(exc)}")
    except OSError as exc:
        return failed("error", f"TLS handshake with {where} failed: {exc}")
    finally:
        sock.close()
    if peer is None:  # pragma: no cover - a server must send a certificate for these suites
        return failed("tls", f"{where} completed the handshake without a certificate")
    facts = facts_from_der(crypto.dump_certificate(crypto.FILETYPE_ASN1, peer))
    return TlsResult(
        address, port, server_name, True, None, time.monotonic() - started, facts, protocol
    )


def _drive_handshake(conn: SSL.Connection, sock: socket.socket, deadline: float) -> None:
    while True:
        try:
            conn.do_handshake()
            return
        except SSL.WantReadError:
            _wait(sock, deadline, write=False)
        except SSL.WantWriteError:
            _wait(sock, deadline, write=True)


def _wait(sock: socket.socket, deadline: float, *, write: bool) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError
    readable, writable, _ = select.select(
        [] if write else [sock], [sock] if write else [], [], remaining
    )
    if not readable and not writable:
        raise TimeoutError


def _ssl_reason(exc: SSL.Error) -> str:
    """OpenSSL's error queue as text: [('SSL routines', '', 'wrong version number')] -> reason."""
    queue = exc.args[0] if exc.args and isinstance(exc.args[0], list) else []
    reasons = [str(item[-1]) for item in queue if isinstance(item, tuple) and item]
    return "; ".join(reasons) or str(exc) or type(exc).__name__
