"""Every verdict whole: which check, storage and node it belongs to, its facts, its exact message.

`test_verdicts.py` walks the branches; these tests pin what each branch hands to the report (the
HTML report shows `facts`, JUnit carries check/storage/node), and the boundaries: a certificate
valid from exactly now, days left equal to the threshold, the "(N days ago)" count.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from spec_builders import FP, certificate, entry_builder, storage_builder

from pbs_compliance import verdicts
from pbs_compliance.config import ComplianceConfig, StorageSpec
from pbs_compliance.drift import Drift, PropertyDiff
from pbs_compliance.evidence import LiveState, NodeScan, ServerEvidence, scan_key
from pbs_compliance.probes.dns import DnsResult, ResolverAnswer
from pbs_compliance.probes.tcp import TcpResult
from pbs_compliance.probes.tls import CertificateFacts, TlsResult
from pbs_compliance.verdicts import Status, Verdict

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
NAME = "homelab-backup"
SERVER = "pbs1.example"
OTHER_FP = ":".join(["CD"] * 32)
DISABLED = f"'{NAME}' is declared `enabled: false`: connectivity is not checked"
FIX_NODE = (
    "fix: from {node}, check `getent hosts pbs1.example`, the firewall to port 8007, the "
    "fingerprint and the credentials (journalctl -u pvestatd shows PVE's reason)"
)


spec = storage_builder(name=NAME, server=SERVER, datastore="homelab")


def cert(
    not_before: dt.datetime = NOW - dt.timedelta(days=10),
    not_after: dt.datetime = NOW + dt.timedelta(days=300),
    fingerprint: str = FP,
) -> CertificateFacts:
    return certificate(not_before, not_after, fingerprint, issuer="CN=Lab CA")


def handshake(facts: CertificateFacts | None = None) -> TlsResult:
    return TlsResult("127.0.0.2", 8007, SERVER, True, None, 0.01, facts or cert())


def evidence(
    addresses: tuple[str, ...] = ("127.0.0.2", "127.0.0.3"),
    tcp_ok: tuple[bool, ...] = (True, True),
    tls: TlsResult | str | None = "valid",
) -> ServerEvidence:
    answer = ResolverAnswer("192.0.2.53", 53, "addresses" if addresses else "nxdomain", addresses)
    dns = DnsResult(SERVER, addresses, (answer,), is_literal=False)
    tcp = tuple(
        TcpResult(a, 8007, ok, None if ok else "connection refused", 0.01)
        for a, ok in zip(addresses, tcp_ok, strict=False)
    )
    result = handshake() if tls == "valid" else tls
    assert not isinstance(result, str)
    return ServerEvidence(SERVER, 8007, dns, tcp, result)


def cert_facts(facts: CertificateFacts) -> tuple[tuple[str, str], ...]:
    return (
        ("subject", "CN=pbs1.example"),
        ("issuer", "CN=Lab CA"),
        ("valid", f"{facts.not_before:%Y-%m-%d} .. {facts.not_after:%Y-%m-%d}"),
        ("served fingerprint", facts.fingerprint),
    )


# ---- connectivity: dns, port, tls, fingerprint -------------------------------------------

Connectivity = Callable[[StorageSpec, ServerEvidence | None], Verdict]
CONNECTIVITY: dict[str, Connectivity] = {
    "dns": verdicts.dns,
    "port": verdicts.port,
    "tls": lambda s, ev: verdicts.tls(s, ev, NOW, 30),
    "fingerprint": verdicts.fingerprint,
}


@pytest.mark.parametrize("check", CONNECTIVITY)
def test_a_disabled_storage_skips_its_connectivity_check_even_with_evidence(check: str) -> None:
    for ev in (None, evidence()):
        assert CONNECTIVITY[check](spec(enabled=False), ev) == Verdict(
            check, NAME, "skip", DISABLED
        )


@pytest.mark.parametrize("check", CONNECTIVITY)
def test_an_enabled_storage_without_server_evidence_is_skipped_not_judged(check: str) -> None:
    verdict = CONNECTIVITY[check](spec(), None)
    assert (verdict.check, verdict.storage, verdict.status, verdict.node) == (
        check,
        NAME,
        "skip",
        None,
    )


def test_dns_passes_with_every_resolved_address_as_a_fact() -> None:
    assert verdicts.dns(spec(), evidence()) == Verdict(
        "dns",
        NAME,
        "pass",
        facts=(("server", SERVER), ("resolved", "127.0.0.2, 127.0.0.3")),
    )


def test_dns_fails_with_the_resolvers_answer_and_a_dash_for_no_address() -> None:
    ev = evidence(addresses=())
    verdict = verdicts.dns(spec(), ev)
    assert verdict == Verdict(
        "dns", NAME, "fail", ev.dns.describe(), (("server", SERVER), ("resolved", "-"))
    )
    assert verdict.message.startswith("pbs1.example: 192.0.2.53:53 answered NXDOMAIN. Fix: ")


def test_port_passes_with_each_address_open() -> None:
    assert verdicts.port(spec(), evidence()) == Verdict(
        "port",
        NAME,
        "pass",
        facts=(("tcp 127.0.0.2:8007", "open"), ("tcp 127.0.0.3:8007", "open")),
    )


def test_port_fails_naming_the_closed_address_and_the_fix() -> None:
    assert verdicts.port(spec(), evidence(tcp_ok=(True, False))) == Verdict(
        "port",
        NAME,
        "fail",
        "pbs1.example port 8007: no TCP connection to 1 of 2 address(es):\n"
        "  127.0.0.3:8007: connection refused\n"
        "fix: check that proxmox-backup-proxy runs on pbs1.example and that no firewall "
        "blocks TCP 8007 from here (and from the PVE nodes)",
        (("tcp 127.0.0.2:8007", "open"), ("tcp 127.0.0.3:8007", "connection refused")),
    )


def test_port_skips_pointing_at_dns_when_the_name_did_not_resolve() -> None:
    assert verdicts.port(spec(), evidence(addresses=())) == Verdict(
        "port", NAME, "skip", "pbs1.example did not resolve (see the dns case)"
    )


def test_tls_skips_pointing_at_port_without_a_tcp_connection() -> None:
    assert verdicts.tls(spec(), evidence(tls=None), NOW, 30) == Verdict(
        "tls", NAME, "skip", "no TCP connection to pbs1.example (see the port case)"
    )


def test_tls_fails_a_handshake_with_the_error_and_no_certificate_facts() -> None:
    broken = TlsResult("127.0.0.2", 8007, SERVER, False, "timed out after 1.0 s", 1.0)
    assert verdicts.tls(spec(), evidence(tls=broken), NOW, 30) == Verdict(
        "tls",
        NAME,
        "fail",
        "TLS handshake with pbs1.example:8007 failed: timed out after 1.0 s\n"
        "fix: is this really the PBS API port? A server that accepts TCP but never answers "
        "TLS is hung or behind a broken proxy",
    )


def test_tls_passes_with_the_certificate_as_facts() -> None:
    facts = cert()
    verdict = verdicts.tls(spec(), evidence(tls=handshake(facts)), NOW, 30)
    assert verdict == Verdict("tls", NAME, "pass", facts=cert_facts(facts))
    assert ("valid", "2026-11-16 .. 2027-09-22") in verdict.facts


def test_a_certificate_valid_from_exactly_now_passes() -> None:
    facts = cert(not_before=NOW)
    assert verdicts.tls(spec(), evidence(tls=handshake(facts)), NOW, 30).status == "pass"


def test_a_certificate_not_yet_valid_fails_pointing_at_the_clocks() -> None:
    facts = cert(not_before=NOW + dt.timedelta(minutes=1))
    assert verdicts.tls(spec(), evidence(tls=handshake(facts)), NOW, 30) == Verdict(
        "tls",
        NAME,
        "fail",
        "the certificate of pbs1.example is not valid before 2026-11-26 12:01 UTC "
        "- check the clocks of the PBS and of this machine",
        cert_facts(facts),
    )


@pytest.mark.parametrize(
    ("since", "ago"),
    [
        (dt.timedelta(0), 0),  # expires at this very second: expired, 0 days ago
        (dt.timedelta(days=2, hours=12), 2),  # whole days since, not rounded up
        (dt.timedelta(days=3), 3),
    ],
)
def test_an_expired_certificate_fails_with_whole_days_since_and_the_renewal(
    since: dt.timedelta, ago: int
) -> None:
    facts = cert(not_before=NOW - dt.timedelta(days=400), not_after=NOW - since)
    assert verdicts.tls(spec(), evidence(tls=handshake(facts)), NOW, 30) == Verdict(
        "tls",
        NAME,
        "fail",
        f"the certificate of pbs1.example expired on {facts.not_after:%Y-%m-%d} "
        f"({ago} days ago)\nfix: renew it on the PBS (proxmox-backup-manager cert update), "
        "then `pbs fingerprint --update homelab-backup`",
        cert_facts(facts),
    )


def test_days_left_equal_to_the_threshold_passes_one_less_fails() -> None:
    at_threshold = cert(not_after=NOW + dt.timedelta(days=30))
    assert verdicts.tls(spec(), evidence(tls=handshake(at_threshold)), NOW, 30).passed
    below = cert(not_after=NOW + dt.timedelta(days=29, hours=23))
    assert verdicts.tls(spec(), evidence(tls=handshake(below)), NOW, 30) == Verdict(
        "tls",
        NAME,
        "fail",
        "the certificate of pbs1.example expires on 2026-12-26 (29 days left, threshold 30)\n"
        "fix: renew it on the PBS, then `pbs fingerprint --update homelab-backup` "
        "(or lower --cert-expiry-days)",
        cert_facts(below),
    )


def test_a_malformed_certificate_fails_tls_with_each_problem_as_a_fact() -> None:
    facts = dataclasses.replace(cert(), problems=("serial number -1 is not positive", "no subject"))
    assert verdicts.tls(spec(), evidence(tls=handshake(facts)), NOW, 30) == Verdict(
        "tls",
        NAME,
        "fail",
        "the certificate of pbs1.example is malformed: serial number -1 is not positive; "
        "no subject\nfix: issue a new certificate on the PBS (proxmox-backup-manager cert "
        "update), then `pbs fingerprint --update homelab-backup`",
        (
            *cert_facts(facts),
            ("problem", "serial number -1 is not positive"),
            ("problem", "no subject"),
        ),
    )


def test_fingerprint_skips_pointing_at_tls_without_a_certificate() -> None:
    expected = Verdict(
        "fingerprint", NAME, "skip", "no certificate from pbs1.example (see the tls case)"
    )
    assert verdicts.fingerprint(spec(), evidence(tls=None)) == expected
    failed = TlsResult("127.0.0.2", 8007, SERVER, False, "reset", 0.01)
    assert verdicts.fingerprint(spec(), evidence(tls=failed)) == expected


def test_fingerprint_passes_with_the_declared_and_the_served_value() -> None:
    facts = cert()
    assert verdicts.fingerprint(spec(fingerprint=FP.lower()), evidence()) == Verdict(
        "fingerprint",
        NAME,
        "pass",
        facts=(("declared fingerprint", FP), *cert_facts(facts)),  # the model upper-cases it
    )


def test_fingerprint_fails_with_both_values_and_the_update_command() -> None:
    facts = cert(fingerprint=OTHER_FP)
    expected = Verdict(
        "fingerprint",
        NAME,
        "fail",
        "pbs1.example serves a certificate with another fingerprint (renewed certificate?)\n"
        f"  declared: {FP}\n"
        f"  served:   {OTHER_FP}\n"
        "fix: `pbs fingerprint pbs1.example:8007 --update homelab-backup` after "
        "confirming the new certificate is genuine; PVE refuses the connection until then",
        (("declared fingerprint", FP), *cert_facts(facts)),
    )
    assert verdicts.fingerprint(spec(), evidence(tls=handshake(facts))) == expected
    with_config = verdicts.fingerprint(spec(), evidence(tls=handshake(facts)), "conf/pbs.yaml")
    assert with_config.message == expected.message.replace(
        "--update homelab-backup`", "--update homelab-backup --config conf/pbs.yaml`"
    )


# ---- PVE: drift, nodes, unmanaged --------------------------------------------------------


def live(*entries: dict[str, Any], **kwargs: Any) -> LiveState:
    return LiveState(storages=list(entries), nodes=kwargs.pop("nodes", ["pve1", "pve2"]), **kwargs)


pbs_entry = entry_builder(storage=NAME, server=SERVER, datastore="homelab", fingerprint=FP.lower())


UNAVAILABLE = [
    (LiveState(skipped="no PVE credentials"), "skip", "no PVE credentials: PVE is not checked"),
    (LiveState(error="HTTP 401: no ticket"), "fail", "cannot read PVE: HTTP 401: no ticket"),
]


@pytest.mark.parametrize(("state", "status", "message"), UNAVAILABLE)
def test_an_unreadable_pve_is_reported_by_every_pve_check_under_its_own_identity(
    state: LiveState, status: Status, message: str
) -> None:
    config = ComplianceConfig(source=Path("pbs.yaml"), storages=(spec(),))
    assert verdicts.drift(spec(), state) == Verdict("drift", NAME, status, message)
    assert verdicts.node(spec(), "pve2", state) == Verdict(
        "nodes", NAME, status, message, node="pve2"
    )
    assert verdicts.unmanaged(config, state) == Verdict("unmanaged", "(all)", status, message)


def test_drift_passes_with_the_compliant_drift_attached() -> None:
    assert verdicts.drift(spec(), live(pbs_entry())) == Verdict(
        "drift", NAME, "pass", drift=Drift(NAME, missing=False)
    )


def test_drift_fails_with_one_fact_per_property_and_the_drift_attached() -> None:
    verdict = verdicts.drift(
        spec(prune_backups={"keep_daily": 7}, port=8008),
        live(pbs_entry(**{"prune-backups": "keep-daily=30"})),
    )
    expected_drift = Drift(
        NAME,
        missing=False,
        diffs=(
            PropertyDiff("port", "8008", "8007"),
            PropertyDiff("prune-backups", "keep-daily=7", "keep-daily=30"),
        ),
    )
    assert verdict == Verdict(
        "drift",
        NAME,
        "fail",
        expected_drift.describe(),
        (("port", "8008 -> 8007"), ("prune-backups", "keep-daily=7 -> keep-daily=30")),
        drift=expected_drift,
    )


def test_a_drift_fact_keeps_a_live_value_that_itself_contains_a_colon() -> None:
    verdict = verdicts.drift(spec(), live(pbs_entry(**{"prune-backups": "keep-daily=x"})))
    assert verdict.facts == (("prune-backups", "keep-all=1 -> unparsable: keep-daily=x=0"),)


def test_drift_of_a_declared_storage_missing_from_pve() -> None:
    missing = Drift(NAME, missing=True)
    assert verdicts.drift(spec(), live()) == Verdict(
        "drift", NAME, "fail", missing.describe(), drift=missing
    )


def test_a_non_pbs_storage_with_the_declared_name_fails_drift_asking_for_a_rename() -> None:
    assert verdicts.drift(spec(), live({"storage": NAME, "type": "dir"})) == Verdict(
        "drift",
        NAME,
        "fail",
        f"PVE has a storage '{NAME}' of type dir, not pbs; rename one of them",
    )


def views(active: int = 1, enabled: int = 1) -> dict[str, list[dict[str, Any]]]:
    item = {"storage": NAME, "type": "pbs", "enabled": enabled, "active": active}
    return {"pve1": [item], "pve2": [item]}


def test_a_node_that_uses_the_storage_passes_with_its_active_flag() -> None:
    assert verdicts.node(spec(), "pve2", live(pbs_entry(), node_views=views())) == Verdict(
        "nodes", NAME, "pass", facts=(("active", "1"),), node="pve2"
    )


def test_a_disabled_declaration_skips_the_node_case() -> None:
    assert verdicts.node(spec(enabled=False), "pve1", live(pbs_entry())) == Verdict(
        "nodes", NAME, "skip", f"'{NAME}' is declared `enabled: false`", node="pve1"
    )


def test_an_unreadable_node_view_fails_that_node() -> None:
    broken = live(pbs_entry(), node_errors={"pve1": "HTTP 595: no route to host"})
    assert verdicts.node(spec(), "pve1", broken) == Verdict(
        "nodes",
        NAME,
        "fail",
        "cannot read the view of pve1: HTTP 595: no route to host",
        node="pve1",
    )


def test_a_storage_missing_from_pve_skips_the_node_case_pointing_at_drift() -> None:
    assert verdicts.node(spec(), "pve1", live()) == Verdict(
        "nodes", NAME, "skip", f"'{NAME}' does not exist in PVE (see the drift case)", node="pve1"
    )


def test_a_node_that_does_not_list_the_storage_fails_with_the_fix() -> None:
    unlisted = live(pbs_entry(), node_views={"pve1": []})
    assert verdicts.node(spec(), "pve1", unlisted) == Verdict(
        "nodes",
        NAME,
        "fail",
        f"pve1 does not list '{NAME}' at all\n" + FIX_NODE.format(node="pve1"),
        node="pve1",
    )


def test_an_inactive_node_fails_with_its_active_flag_and_the_fix() -> None:
    inactive = live(pbs_entry(), node_views=views(active=0))
    assert verdicts.node(spec(), "pve2", inactive) == Verdict(
        "nodes",
        NAME,
        "fail",
        f"pve2 reports '{NAME}' enabled but NOT active: it cannot reach or log in to "
        "pbs1.example:8007 from there\n" + FIX_NODE.format(node="pve2"),
        (("active", "0"),),
        node="pve2",
    )


@pytest.mark.parametrize(
    ("live_nodes", "why"),
    [
        ("pve2", "is limited to nodes pve2 in PVE"),
        ("pve2,pve3", "is limited to nodes pve2,pve3 in PVE"),
        ("pve1,pve2", "is disabled in PVE"),  # pve1 is listed: the entry itself is disabled
        (None, "is disabled in PVE"),  # no node list: all nodes
        ("", "is disabled in PVE"),
    ],
)
def test_a_node_not_using_the_storage_tells_limited_to_nodes_from_disabled(
    live_nodes: str | None, why: str
) -> None:
    entry = pbs_entry(disable=1) if live_nodes is None else pbs_entry(nodes=live_nodes)
    state = live(entry, node_views=views(enabled=0))
    assert verdicts.node(spec(), "pve1", state) == Verdict(
        "nodes",
        NAME,
        "skip",
        f"'{NAME}' {why}, so pve1 does not use it (see the drift case)",
        node="pve1",
    )


def with_scan(scan: NodeScan | None, **view: int) -> tuple[StorageSpec, LiveState]:
    declared = spec(password="canary-Secret-123")
    scans = {} if scan is None else {scan_key("pve1", declared): scan}
    return declared, live(pbs_entry(), node_views=views(**view), scans=scans)


def test_a_password_that_works_from_the_node_is_a_fact() -> None:
    declared, state = with_scan(NodeScan(True, ("homelab",)))
    assert verdicts.node(declared, "pve1", state) == Verdict(
        "nodes",
        NAME,
        "pass",
        facts=(("active", "1"), ("password", "works from this node")),
        node="pve1",
    )


def test_a_password_without_a_scan_is_not_claimed_to_work() -> None:
    declared, state = with_scan(None)
    assert verdicts.node(declared, "pve1", state).facts == (("active", "1"),)


def test_a_refused_password_fails_the_node_with_the_login_error() -> None:
    declared, state = with_scan(NodeScan(False, error="401 authentication failure"))
    verdict = verdicts.node(declared, "pve1", state)
    assert (verdict.check, verdict.storage, verdict.status, verdict.node) == (
        "nodes",
        NAME,
        "fail",
        "pve1",
    )
    assert verdict.facts == (("active", "1"),)
    assert verdict.message.split("\n") == [
        "logging in from pve1 with the declared password failed: 401 authentication failure",
        FIX_NODE.format(node="pve1"),
    ]
    assert "canary-Secret-123" not in repr(verdict)


@pytest.mark.parametrize(
    ("datastores", "seen"), [(("media", "other"), "media, other"), ((), "(none)")]
)
def test_a_user_who_cannot_see_the_datastore_fails_the_node_naming_what_it_sees(
    datastores: tuple[str, ...], seen: str
) -> None:
    declared, state = with_scan(NodeScan(True, datastores))
    verdict = verdicts.node(declared, "pve1", state)
    assert verdict.status == "fail"
    assert verdict.facts == (("active", "1"),)
    assert verdict.message.split("\n") == [
        f"from pve1, root@pam sees datastores {seen} but not 'homelab': check its permissions "
        "on the PBS",
        FIX_NODE.format(node="pve1"),
    ]


def test_unmanaged_lists_each_undeclared_entry_sorted_with_a_fact_each() -> None:
    config = ComplianceConfig(source=Path("conf/pbs.yaml"), storages=(spec(),))
    state = live(
        pbs_entry(),
        pbs_entry(storage="zeta", server="pbs9.example", datastore="z"),
        pbs_entry(storage="alpha"),
        {"storage": "local", "type": "dir"},
    )
    assert verdicts.unmanaged(config, state) == Verdict(
        "unmanaged",
        "(all)",
        "fail",
        "2 PBS storage(s) in PVE are not declared in conf/pbs.yaml:\n"
        "  alpha: server pbs1.example, datastore homelab\n"
        "  zeta: server pbs9.example, datastore z\n"
        "fix: declare them (to manage them), or remove them with "
        "`--remediate --prune-unmanaged`",
        (("alpha", "unmanaged"), ("zeta", "unmanaged")),
    )
    assert verdicts.unmanaged(config, live(pbs_entry())) == Verdict("unmanaged", "(all)", "pass")


# ---- one fault, one red case: the pin left to the fingerprint case, nodes pointing ------------

THIRD_FP = ":".join(["EF"] * 32)


def serving(fingerprint: str, **kwargs: Any) -> ServerEvidence:
    return evidence(tls=handshake(cert(fingerprint=fingerprint)), **kwargs)


def test_drift_leaves_a_pin_pve_got_right_to_the_failing_fingerprint_case() -> None:
    result = Drift(NAME, missing=False, diffs=(PropertyDiff("fingerprint", FP, OTHER_FP),))
    verdict = verdicts.drift(spec(), live(pbs_entry(fingerprint=OTHER_FP)), serving(OTHER_FP))
    assert verdict == Verdict(
        "drift",
        NAME,
        "skip",
        f"the fingerprint PVE pins ({OTHER_FP}) is not the declared one: PVE pins the "
        "certificate the server serves, so the declaration is what is out of date "
        "(see the fingerprint case)",
        (("fingerprint", f"{FP} -> {OTHER_FP}"),),
        drift=result,
    )


def test_drift_fails_for_the_other_properties_and_still_points_at_fingerprint_for_the_pin() -> None:
    entry = pbs_entry(fingerprint=OTHER_FP, port=8008)
    verdict = verdicts.drift(spec(), live(entry), serving(THIRD_FP))
    pin, port = PropertyDiff("fingerprint", FP, OTHER_FP), PropertyDiff("port", "8007", "8008")
    assert verdict == Verdict(
        "drift",
        NAME,
        "fail",
        f"storage '{NAME}' drifted (declared -> live):\n"
        "  port: 8007 -> 8008\n"
        "can be fixed in place: `pytest checks/ --remediate` or `pbs apply`\n"
        f"the fingerprint PVE pins ({OTHER_FP}) is not the declared one: the server serves "
        "neither of them (see the fingerprint case)",
        (("fingerprint", f"{FP} -> {OTHER_FP}"), ("port", "8007 -> 8008")),
        drift=Drift(NAME, missing=False, diffs=(pin, port)),
    )


def test_the_pin_note_spells_a_missing_pin_as_unset() -> None:
    verdict = verdicts.drift(spec(), live(pbs_entry(fingerprint=None)), serving(OTHER_FP))
    assert verdict.status == "skip"
    assert verdict.message == (
        "the fingerprint PVE pins ((unset)) is not the declared one: the server serves neither "
        "of them (see the fingerprint case)"
    )


def test_an_inactive_node_points_at_the_port_case_failing_from_here() -> None:
    state = live(pbs_entry(), node_views=views(active=0))
    verdict = verdicts.node(spec(), "pve1", state, evidence(tcp_ok=(True, False)))
    assert verdict == Verdict(
        "nodes",
        NAME,
        "skip",
        f"pve1 reports '{NAME}' enabled but NOT active: it cannot reach or log in to "
        "pbs1.example:8007 from there\n"
        "pbs1.example:8007 does not accept TCP from here either: that is the fault "
        "(see the port case)",
        (("active", "0"),),
        node="pve1",
    )


def test_a_password_not_proven_because_of_another_fault_points_at_it() -> None:
    declared = spec(password="canary-Secret-123")
    refused = NodeScan(False, error="connection refused")
    state = live(pbs_entry(), node_views=views(), scans={scan_key("pve1", declared): refused})
    verdict = verdicts.node(declared, "pve1", state, evidence(tcp_ok=(False, False)))
    assert verdict == Verdict(
        "nodes",
        NAME,
        "skip",
        "the declared password was not proven from pve1: connection refused\n"
        "pbs1.example:8007 does not accept TCP from here either: that is the fault "
        "(see the port case)",
        (("active", "1"), ("password", "not proven (see the port case)")),
        node="pve1",
    )


def test_a_scan_is_not_judged_for_a_storage_declared_without_a_password() -> None:
    refused = NodeScan(False, error="401")
    state = live(pbs_entry(), node_views=views(), scans={scan_key("pve1", spec()): refused})
    assert verdicts.node(spec(), "pve1", state, evidence()) == Verdict(
        "nodes", NAME, "pass", facts=(("active", "1"),), node="pve1"
    )


@pytest.mark.parametrize(
    ("entry", "served", "why", "case"),
    [
        (
            {"server": "pbs2.example", "port": 8008},
            FP,
            "PVE's entry differs from the declaration in server, port",
            "drift",
        ),
        # The declared fingerprint is not served as well: still PVE's wrong server first.
        (
            {"server": "pbs2.example"},
            OTHER_FP,
            "PVE's entry differs from the declaration in server",
            "drift",
        ),
        # PVE pins a third fingerprint: the declared one is not served, that case names it.
        (
            {"fingerprint": THIRD_FP},
            OTHER_FP,
            "pbs1.example serves a certificate with another fingerprint",
            "fingerprint",
        ),
        # PVE pins what is served and the declaration is out of date: the fingerprint case.
        (
            {"fingerprint": OTHER_FP},
            OTHER_FP,
            "pbs1.example serves a certificate with another fingerprint",
            "fingerprint",
        ),
    ],
)
def test_an_inactive_node_names_the_case_of_the_fault_that_stops_every_node(
    entry: dict[str, Any], served: str, why: str, case: str
) -> None:
    state = live(pbs_entry(**entry), node_views=views(active=0))
    verdict = verdicts.node(spec(), "pve1", state, serving(served))
    assert verdict.status == "skip"
    assert verdict.message.split("\n")[1] == f"{why}: that is the fault (see the {case} case)"
