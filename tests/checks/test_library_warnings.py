"""A library's warning is a fact of a case, never the end of a compliance run (#10 item 9).

Two real sources: a PBS certificate whose serial number is not positive (`cryptography` warns
when it parses one) and `pve.verify_ssl: false` (urllib3 warns on every request, in the
gathering's worker threads). Runs go through subprocesses with the strictest filters a user
could set, so nothing here depends on this suite's own warning settings.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ssl
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from checks_harness import (
    BUILTIN_IDS,
    RunChecks,
    WriteConfig,
    html_report_text,
    lab_config,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pbs_compliance.lab.certs import CertPair, self_signed
from pbs_compliance.lab.pbs_server import PbsServer, PbsServerSpec
from pbs_compliance.lab.runner import Lab
from pbs_compliance.probes.tls import facts_from_der, handshake


def _tlv(data: bytes, at: int) -> tuple[int, int, int]:
    """DER: (tag, start of content, end of content) of the element at `at`."""
    tag, length, start = data[at], data[at + 1], at + 2
    if length & 0x80:
        size = length & 0x7F
        length, start = int.from_bytes(data[start : start + size], "big"), start + size
    return tag, start, start + length


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + content


def with_serial(pair: CertPair, serial: bytes) -> CertPair:
    """The same certificate with the raw INTEGER bytes `serial` (cryptography refuses to build a
    non-positive one, OpenSSL serves it), re-signed with its own key."""
    der = x509.load_pem_x509_certificate(pair.cert_pem).public_bytes(serialization.Encoding.DER)
    _, body, _ = _tlv(der, 0)
    _, tbs_start, tbs_end = _tlv(der, body)
    tbs = der[tbs_start:tbs_end]
    at = 0
    tag, _, end = _tlv(tbs, at)
    if tag == 0xA0:  # [0] version
        at = end
    tag, _, end = _tlv(tbs, at)
    assert tag == 0x02
    new_tbs = _der(0x30, tbs[:at] + _der(0x02, serial) + tbs[end:])
    _, _, algorithm_end = _tlv(der, tbs_end)
    algorithm = der[tbs_end:algorithm_end]
    key = serialization.load_pem_private_key(pair.key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    signature = key.sign(new_tbs, ec.ECDSA(hashes.SHA256()))
    cert = _der(0x30, new_tbs + algorithm + _der(0x03, b"\x00" + signature))
    return CertPair(ssl.DER_cert_to_PEM_cert(cert).encode(), pair.key_pem)


def fingerprint_of(server: PbsServer) -> str:
    """Computed here: the lab's own helper parses the certificate (and would warn)."""
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(server.cert_pem.decode())).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, 64, 2)).upper()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[bytes], PbsServer]]:
    """A lab PBS on 127.0.0.14 serving its certificate with the given raw serial bytes."""
    servers: list[PbsServer] = []

    def start(serial: bytes) -> PbsServer:
        name = "pbs-odd.lab.example"
        pair = with_serial(self_signed(name, [name], ["127.0.0.14"]), serial)
        spec = PbsServerSpec(name=name, address="127.0.0.14", datastores={"odd": []})
        server = PbsServer(spec, tmp_path / f"certs{len(servers)}", certificate=pair)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.mark.parametrize(("serial", "shown"), [(b"\xff\x12", -238), (b"\x00", 0)])
def test_a_certificate_with_a_serial_that_is_not_positive_is_read_without_a_warning(
    serve: Callable[[bytes], PbsServer], serial: bytes, shown: int
) -> None:
    server = serve(serial)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # whatever the caller's filters, the probe stays silent
        result = handshake(server.address, server.port, "pbs-odd.lab.example", 2.0)
        facts = facts_from_der(ssl.PEM_cert_to_DER_cert(server.cert_pem.decode()))

    assert result.ok, result.error
    assert result.certificate == facts
    assert facts.serial == shown
    assert facts.fingerprint == fingerprint_of(server)
    assert facts.subject == "CN=pbs-odd.lab.example,O=pbs-compliance lab"
    assert facts.sans == ("DNS:pbs-odd.lab.example", "IP:127.0.0.14")
    assert facts.not_after.date() >= dt.datetime.now(dt.UTC).date()
    assert facts.problems == (
        f"its serial number ({shown}) is not positive, which RFC 5280 forbids; the cryptography "
        "library already warns when it reads it and will refuse such certificates",
    )


def _odd_declaration(server: PbsServer) -> dict[str, Any]:
    return {
        "pbs_storages": [
            {
                "name": "odd",
                "server": server.address,
                "port": server.port,
                "datastore": "odd",
                "fingerprint": fingerprint_of(server),
            }
        ]
    }


def test_a_run_fails_the_tls_case_of_such_a_certificate_even_with_warnings_as_errors(
    serve: Callable[[bytes], PbsServer], run_checks: RunChecks, write_config: WriteConfig
) -> None:
    server = serve(b"\xfe")
    config = write_config(_odd_declaration(server))

    run = run_checks(None, config=config, subprocess=True, extra_env={"PYTHONWARNINGS": "error"})

    assert run.result.ret == 1, run.output
    assert run.failed == {"tls[odd]"}
    assert run.message("tls[odd]") == (
        f"the certificate of {server.address} is malformed: its serial number (-2) is not "
        "positive, which RFC 5280 forbids; the cryptography library already warns when it "
        "reads it and will refuse such certificates\n"
        "fix: issue a new certificate on the PBS (proxmox-backup-manager cert update), then "
        "`pbs fingerprint --update odd`"
    )
    assert run.cases["fingerprint[odd]"].outcome == "passed"
    assert "problem" in html_report_text(run.html)
    assert "Warning" not in run.output


@pytest.mark.usefixtures("checkout")  # where the development settings make warnings errors
def test_an_unverified_pve_is_stated_once_and_never_ends_the_run(
    shared_lab: Lab, pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    config = lab_config(shared_lab)
    del config["pve"]["ca_file"]
    config["pve"]["verify_ssl"] = False
    path = write_config(config)

    for attempt in range(3):  # the old failure came and went with thread timing
        html = pytester.path / f"report-{attempt}.html"
        result = pytester.runpytest_subprocess(
            "checks/", f"--pbs-config={path}", f"--html={html}", "-rA", timeout=120
        )

        output = result.stdout.str() + result.stderr.str()
        assert result.ret == pytest.ExitCode.OK, output
        result.assert_outcomes(passed=len(BUILTIN_IDS))
        result.stdout.fnmatch_lines(
            [f"pbs-compliance: PVE {shared_lab.url} (certificate not verified: pve.verify_ssl *"]
        )
        assert "InsecureRequestWarning" not in output
        shown = html_report_text(html)
        assert "PVE</th><td><code>certificate not verified: pve.verify_ssl is false" in shown
