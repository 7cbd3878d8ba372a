"""The checks' judgement as pure functions: every branch from hand-made evidence."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from spec_builders import FP, certificate, entry_builder, storage_builder

from pbs_compliance import verdicts
from pbs_compliance.config import ComplianceConfig
from pbs_compliance.evidence import LiveState, NodeScan, ServerEvidence, scan_key
from pbs_compliance.probes.dns import DnsResult, ResolverAnswer
from pbs_compliance.probes.tcp import TcpResult
from pbs_compliance.probes.tls import CertificateFacts, TlsResult

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
OTHER_FP = ":".join(["CD"] * 32)
spec = storage_builder(name="homelab-backup", server="pbs1.example", datastore="homelab")
cert = certificate


def evidence(
    *,
    resolved: bool = True,
    tcp_ok: tuple[bool, ...] = (True,),
    tls: TlsResult | str | None = "valid",
) -> ServerEvidence:
    answer = ResolverAnswer(
        "192.0.2.53",
        53,
        "addresses" if resolved else "nxdomain",
        ("127.0.0.2",) if resolved else (),
    )
    dns = DnsResult("pbs1.example", answer.addresses, (answer,), is_literal=False)
    tcp = tuple(
        TcpResult(f"127.0.0.{i + 2}", 8007, ok, None if ok else "connection refused", 0.01)
        for i, ok in enumerate(tcp_ok)
    )
    if tls == "valid":
        facts = cert(NOW - dt.timedelta(days=10), NOW + dt.timedelta(days=300))
        tls = TlsResult("127.0.0.2", 8007, "pbs1.example", True, None, 0.01, facts)
    assert not isinstance(tls, str)
    return ServerEvidence("pbs1.example", 8007, dns, tcp if resolved else (), tls)


def tls_with(facts: CertificateFacts) -> TlsResult:
    return TlsResult("127.0.0.2", 8007, "pbs1.example", True, None, 0.01, facts)


def test_a_disabled_storage_skips_every_connectivity_check_with_the_reason() -> None:
    disabled = spec(enabled=False)
    for verdict in (
        verdicts.dns(disabled, None),
        verdicts.port(disabled, None),
        verdicts.tls(disabled, None, NOW, 30),
        verdicts.fingerprint(disabled, None),
    ):
        assert verdict.status == "skip"
        assert "enabled: false" in verdict.message


def test_an_unresolved_name_fails_dns_and_skips_port_pointing_at_dns() -> None:
    ev = evidence(resolved=False)
    assert verdicts.dns(spec(), ev).status == "fail"
    port = verdicts.port(spec(), ev)
    assert port.status == "skip"
    assert "see the dns case" in port.message


def test_one_closed_address_of_two_fails_port_and_names_it() -> None:
    verdict = verdicts.port(spec(), evidence(tcp_ok=(True, False)))
    assert verdict.status == "fail"
    assert "1 of 2 address(es)" in verdict.message
    assert "127.0.0.3:8007: connection refused" in verdict.message


def test_tls_skips_without_a_tcp_connection() -> None:
    assert verdicts.tls(spec(), evidence(tls=None), NOW, 30).status == "skip"


def test_a_failed_handshake_fails_tls_with_the_error() -> None:
    broken = TlsResult("127.0.0.2", 8007, "pbs1.example", False, "timed out after 1.0 s", 1.0)
    verdict = verdicts.tls(spec(), evidence(tls=broken), NOW, 30)
    assert verdict.status == "fail"
    assert "timed out after 1.0 s" in verdict.message


@pytest.mark.parametrize(
    ("not_before", "not_after", "status", "words"),
    [
        (NOW - dt.timedelta(days=400), NOW - dt.timedelta(days=3), "fail", "expired on 2026-11-23"),
        (NOW - dt.timedelta(days=300), NOW + dt.timedelta(days=12), "fail", "12 days left"),
        (NOW + dt.timedelta(days=1), NOW + dt.timedelta(days=400), "fail", "not valid before"),
        (NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=31), "pass", ""),
    ],
)
def test_the_certificate_validity_window_and_the_expiry_threshold(
    not_before: dt.datetime, not_after: dt.datetime, status: str, words: str
) -> None:
    verdict = verdicts.tls(spec(), evidence(tls=tls_with(cert(not_before, not_after))), NOW, 30)
    assert verdict.status == status
    assert words in verdict.message


def test_a_renewed_certificate_fails_fingerprint_with_both_values_and_the_fix() -> None:
    renewed = tls_with(cert(NOW, NOW + dt.timedelta(days=300), OTHER_FP))
    verdict = verdicts.fingerprint(spec(), evidence(tls=renewed), "config/pbs.yaml")
    assert verdict.status == "fail"
    assert f"declared: {FP}" in verdict.message
    assert f"served:   {OTHER_FP}" in verdict.message
    assert "--update homelab-backup --config config/pbs.yaml" in verdict.message


def test_fingerprint_compares_case_insensitively_and_skips_without_a_certificate() -> None:
    assert verdicts.fingerprint(spec(fingerprint=FP.lower()), evidence()).status == "pass"
    assert verdicts.fingerprint(spec(), evidence(tls=None)).status == "skip"


def live(*entries: dict[str, Any], **kwargs: Any) -> LiveState:
    return LiveState(storages=list(entries), nodes=kwargs.pop("nodes", ["pve1", "pve2"]), **kwargs)


pbs_entry = entry_builder(
    storage="homelab-backup", server="pbs1.example", datastore="homelab", fingerprint=FP.lower()
)


def test_drift_skips_without_credentials_and_fails_when_pve_is_unreachable() -> None:
    assert verdicts.drift(spec(), LiveState(skipped="no PVE credentials")).status == "skip"
    failed = verdicts.drift(spec(), LiveState(error="cannot reach PVE at https://pve:8006"))
    assert failed.status == "fail"
    assert "cannot read PVE" in failed.message


def test_drift_passes_on_pve_normalisation_and_fails_on_a_gui_edit() -> None:
    assert verdicts.drift(spec(), live(pbs_entry())).status == "pass"
    edited = verdicts.drift(
        spec(prune_backups={"keep_daily": 7, "keep_weekly": 4}),
        live(pbs_entry(**{"prune-backups": "keep-daily=30"})),
    )
    assert edited.status == "fail"
    assert "prune-backups: keep-daily=7,keep-weekly=4 -> keep-daily=30" in edited.message


def test_a_non_pbs_storage_with_the_declared_name_is_reported_not_diffed() -> None:
    verdict = verdicts.drift(spec(), live({"storage": "homelab-backup", "type": "dir"}))
    assert verdict.status == "fail"
    assert "of type dir, not pbs" in verdict.message


def node_view(active: int = 1, enabled: int = 1) -> dict[str, list[dict[str, Any]]]:
    item = {"storage": "homelab-backup", "type": "pbs", "enabled": enabled, "active": active}
    return {"pve1": [item], "pve2": [item]}


def test_node_cases_pass_when_active_and_fail_when_inactive_with_the_fix() -> None:
    assert verdicts.node(spec(), "pve1", live(pbs_entry(), node_views=node_view())).passed
    inactive = verdicts.node(spec(), "pve2", live(pbs_entry(), node_views=node_view(active=0)))
    assert inactive.status == "fail"
    assert "pve2 reports 'homelab-backup' enabled but NOT active" in inactive.message
    assert "getent hosts pbs1.example" in inactive.message


def test_node_cases_skip_for_missing_or_disabled_entries_and_report_view_errors() -> None:
    assert verdicts.node(spec(), "pve1", live()).status == "skip"
    disabled = live(pbs_entry(disable=1), node_views=node_view(enabled=0))
    assert verdicts.node(spec(), "pve1", disabled).status == "skip"
    assert verdicts.node(spec(enabled=False), "pve1", live(pbs_entry())).status == "skip"
    broken = live(pbs_entry(), node_errors={"pve1": "HTTP 595: no route to host"})
    assert "no route to host" in verdicts.node(spec(), "pve1", broken).message
    unlisted = verdicts.node(spec(), "pve1", live(pbs_entry(), node_views={"pve1": []}))
    assert "does not list" in unlisted.message


def test_the_password_is_proven_per_node_through_scan_without_being_read_back() -> None:
    with_password = spec(password="canary-Secret-123")
    key = scan_key("pve1", with_password)
    assert "canary-Secret-123" not in key
    ok = live(pbs_entry(), node_views=node_view(), scans={key: NodeScan(True, ("homelab",))})
    assert ("password", "works from this node") in verdicts.node(with_password, "pve1", ok).facts
    refused = live(pbs_entry(), node_views=node_view(), scans={key: NodeScan(False, error="401")})
    assert (
        "with the declared password failed: 401"
        in verdicts.node(with_password, "pve1", refused).message
    )
    other = live(pbs_entry(), node_views=node_view(), scans={key: NodeScan(True, ("media",))})
    assert "but not 'homelab'" in verdicts.node(with_password, "pve1", other).message


def test_unmanaged_lists_undeclared_pbs_entries_only() -> None:
    config = ComplianceConfig(source=Path("pbs.yaml"), storages=(spec(),))
    entries = (pbs_entry(), pbs_entry(storage="stray"), {"storage": "local", "type": "dir"})
    verdict = verdicts.unmanaged(config, live(*entries))
    assert verdict.status == "fail"
    assert "stray: server pbs1.example" in verdict.message
    assert "local" not in verdict.message
    assert verdicts.unmanaged(config, live(pbs_entry())).passed
    assert verdicts.unmanaged(config, LiveState(skipped="no credentials")).status == "skip"


def test_node_targets_follow_the_nodes_a_storage_applies_to() -> None:
    config = ComplianceConfig(
        source=Path("pbs.yaml"), storages=(spec(), spec(name="offsite", nodes=["pve2"]))
    )
    pairs = [(s.name, n) for s, n in verdicts.node_targets(config, live(nodes=["pve2", "pve1"]))]
    assert pairs == [("homelab-backup", "pve1"), ("homelab-backup", "pve2"), ("offsite", "pve2")]
