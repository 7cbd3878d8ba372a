"""One connectivity fault at a time: exactly the expected cases fail, dependants skip with a reason.

Each test breaks one thing of a fresh lab (`media` on pbs3 unless said otherwise) and asserts the
full set of failed cases, their messages, and the skips pointing at the root case. Node cases are
what the lab's PVE nodes really report, so a PBS the nodes cannot use fails them too.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from checks_harness import (
    BUILTIN_IDS,
    RunChecks,
    WriteConfig,
    lab_config,
    pve_client,
    storage,
    storage_ids,
)
from cryptography import x509

from pbs_compliance.lab.fixtures import LabFactory
from pbs_compliance.lab.runner import Lab

MEDIA = storage_ids("media")
MEDIA_NODES = {MEDIA["node:pve1"], MEDIA["node:pve2"], MEDIA["node:pve3"]}
# The backup health cases skip pointing at the connectivity case that names the fault.
MEDIA_HEALTH = {MEDIA[c] for c in ("datastore", "capacity", "backups", "verified")}


def test_a_name_the_resolver_does_not_know_fails_dns_and_skips_port_tls_and_fingerprint(
    lab: Lab, run_checks: RunChecks
) -> None:
    assert lab.dns is not None
    lab.dns.set_records({n: [p.address] for n, p in lab.pbs.items() if n != "pbs3.lab.example"})

    run = run_checks(lab)

    assert run.failed == {MEDIA["dns"]}
    message = run.message(MEDIA["dns"])
    assert f"pbs3.lab.example: {lab.dns.address}:{lab.dns.port} answered NXDOMAIN" in message
    assert "Fix: add an A/AAAA record for pbs3.lab.example" in message
    for check in ("port", "tls", "fingerprint"):
        assert MEDIA[check] in run.skipped
    assert "pbs3.lab.example did not resolve (see the dns case)" in run.message(MEDIA["port"])
    assert "see the port case" in run.message(MEDIA["tls"])
    assert "see the tls case" in run.message(MEDIA["fingerprint"])
    assert run.ids("passed") == BUILTIN_IDS - run.failed - run.skipped


def test_a_refused_port_fails_port_and_its_nodes_tls_and_fingerprint_point_at_it(
    lab: Lab, run_checks: RunChecks
) -> None:
    pbs = lab.pbs["pbs3.lab.example"]
    pbs.set_mode("down")

    run = run_checks(lab)

    assert run.failed == {MEDIA["port"]}
    message = run.message(MEDIA["port"])
    assert f"pbs3.lab.example port {pbs.port}: no TCP connection to 1 of 1 address(es)" in message
    assert f"127.0.0.13:{pbs.port}:" in message
    assert "refused" in message.lower()
    assert "fix: check that proxmox-backup-proxy runs on pbs3.lab.example" in message
    assert run.skipped == {MEDIA["tls"], MEDIA["fingerprint"], *MEDIA_NODES, *MEDIA_HEALTH}
    assert run.message(MEDIA["backups"]).endswith("(see the port case)")
    assert "(see the port case)" in run.message(MEDIA["tls"])
    # The nodes really cannot use it, for the same reason: said, and pointed at the port case.
    node = run.message(MEDIA["node:pve2"])
    assert "pve2 reports 'media' enabled but NOT active" in node
    assert f"pbs3.lab.example:{pbs.port} does not accept TCP from here either" in node
    assert node.endswith("that is the fault (see the port case)")


def test_a_port_that_never_speaks_tls_fails_tls_within_the_probe_timeout(
    lab: Lab, run_checks: RunChecks
) -> None:
    lab.pbs["pbs3.lab.example"].set_mode("blackhole")

    run = run_checks(lab, "--probe-timeout", "0.5")

    assert run.failed == {MEDIA["tls"]}
    message = run.message(MEDIA["tls"])
    assert "TLS handshake with pbs3.lab.example" in message
    assert "did not complete within 0.5 s" in message
    assert "fix: is this really the PBS API port?" in message
    assert run.skipped == {MEDIA["fingerprint"], *MEDIA_NODES, *MEDIA_HEALTH}
    assert run.message(MEDIA["datastore"]).endswith("(see the tls case)")
    assert "no certificate from pbs3.lab.example (see the tls case)" in run.message(
        MEDIA["fingerprint"]
    )
    assert "(see the tls case)" in run.message(MEDIA["node:pve1"])


def _accept_current_certificate(lab: Lab, write_config: WriteConfig) -> Path:
    """Declare and configure in PVE the fingerprint pbs3 serves now."""
    fingerprint = lab.pbs["pbs3.lab.example"].fingerprint
    pve_client(lab).update("media", {"fingerprint": fingerprint})
    config = lab_config(lab)
    storage(config, "media")["fingerprint"] = fingerprint
    return write_config(config)


def test_an_expired_certificate_fails_only_tls_with_its_date(
    lab: Lab, run_checks: RunChecks, write_config: WriteConfig
) -> None:
    lab.pbs["pbs3.lab.example"].set_expired(True)
    config = _accept_current_certificate(lab, write_config)

    run = run_checks(lab, config=config)

    assert run.failed == {MEDIA["tls"]}
    message = run.message(MEDIA["tls"])
    assert re.search(
        r"the certificate of pbs3\.lab\.example expired on \d{4}-\d\d-\d\d \(30 days ago\)",
        message,
    ), message
    assert "`pbs fingerprint --update media`" in message


def _days_left(lab: Lab, server: str) -> int:
    cert = x509.load_pem_x509_certificate(lab.pbs[server].cert_pem)
    return (cert.not_valid_after_utc - dt.datetime.now(dt.UTC)).days


def test_a_certificate_expiring_within_the_threshold_fails_tls_with_the_days_left(
    shared_lab: Lab, run_checks: RunChecks
) -> None:
    days = _days_left(shared_lab, "pbs3.lab.example")

    run = run_checks(shared_lab, "--cert-expiry-days", str(days + 1))

    tls_cases = {f"tls[{name}]" for name in ("archive", "homelab-backup", "media", "offsite")}
    assert run.failed == tls_cases
    message = run.message("tls[media]")
    assert re.search(
        rf"the certificate of pbs3\.lab\.example expires on \d{{4}}-\d\d-\d\d "
        rf"\({days} days left, threshold {days + 1}\)",
        message,
    ), message
    assert "(or lower --cert-expiry-days)" in message


def test_a_certificate_with_exactly_the_threshold_of_days_left_passes_tls(
    shared_lab: Lab, run_checks: RunChecks
) -> None:
    days = _days_left(shared_lab, "pbs1.lab.example")

    run = run_checks(shared_lab, "-m", "tls", "--cert-expiry-days", str(days))

    assert run.failed == set()
    assert len(run.ids("passed")) == 4


def test_a_renewed_certificate_fails_the_fingerprint_with_both_values_and_the_fix(
    lab: Lab, run_checks: RunChecks
) -> None:
    pbs = lab.pbs["pbs3.lab.example"]
    declared = pbs.fingerprint
    served = pbs.renew_certificate()

    run = run_checks(lab)

    # PVE pins the old fingerprint too: the nodes cannot use it, and point at the one fault.
    assert run.failed == {MEDIA["fingerprint"]}
    assert run.skipped == MEDIA_NODES | MEDIA_HEALTH
    assert run.message(MEDIA["capacity"]).endswith(
        "serves another certificate than the declared one, so nothing is sent to it (see the "
        "fingerprint case)"
    )
    node = run.message(MEDIA["node:pve3"])
    assert "pve3 reports 'media' enabled but NOT active" in node
    assert "pbs3.lab.example serves a certificate with another fingerprint" in node
    assert "(see the fingerprint case)" in node
    message = run.message(MEDIA["fingerprint"])
    assert f"declared: {declared}" in message
    assert f"served:   {served}" in message
    assert f"`pbs fingerprint pbs3.lab.example:{pbs.port} --update media --config " in message
    assert run.cases[MEDIA["tls"]].outcome == "passed"


def test_a_node_whose_resolver_lacks_the_server_fails_only_that_nodes_cases(
    make_lab: LabFactory, run_checks: RunChecks
) -> None:
    lab = make_lab(_builtin_with(dns_hidden={"pve3": ["pbs1.lab.example"]}))

    run = run_checks(lab)

    assert run.failed == {"nodes[homelab-backup:pve3]", "nodes[archive:pve3]"}
    message = run.message("nodes[archive:pve3]")
    assert "pve3 reports 'archive' enabled but NOT active" in message
    assert "getent hosts pbs1.lab.example" in message
    login = run.message("nodes[homelab-backup:pve3]")
    assert "logging in from pve3 with the declared password failed" in login
    assert "Name or service not known" in login


def _builtin_with(**changes: Any) -> dict[str, Any]:
    from pbs_compliance.lab.scenario import builtin

    data: dict[str, Any] = builtin().model_dump()
    data.update(changes)
    return data
