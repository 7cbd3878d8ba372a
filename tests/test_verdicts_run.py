"""One fault, one red case, as pure judgement: the case that names a fault fails, others point.

The rule is in `pbs_compliance.verdicts`' module doc; the lab-wide proof is
`tests/checks/test_one_fault.py`. Here every branch of the attribution, from hand-made evidence.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from spec_builders import FP, storage_builder

from pbs_compliance import verdicts
from pbs_compliance.evidence import Evidence, LiveState, NodeScan, ServerEvidence, scan_key
from pbs_compliance.probes.dns import DnsResult, ResolverAnswer
from pbs_compliance.probes.tcp import TcpResult
from pbs_compliance.probes.tls import CertificateFacts, TlsResult

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
SERVED = ":".join(["CD"] * 32)
OTHER = ":".join(["EF"] * 32)
PASSWORD = "canary-Verdict-pw-41"


spec = storage_builder(
    name="homelab-backup", server="pbs1.example", datastore="homelab", password=PASSWORD
)


def server(
    *, resolved: bool = True, tcp_ok: bool = True, tls_ok: bool = True, served: str = FP
) -> ServerEvidence:
    answer = ResolverAnswer("192.0.2.53", 53, "addresses" if resolved else "nxdomain")
    addresses = ("127.0.0.2",) if resolved else ()
    dns = DnsResult("pbs1.example", addresses, (answer,), is_literal=False)
    if not resolved:
        return ServerEvidence("pbs1.example", 8007, dns)
    tcp = (TcpResult("127.0.0.2", 8007, tcp_ok, None if tcp_ok else "refused", 0.01),)
    if not tcp_ok:
        return ServerEvidence("pbs1.example", 8007, dns, tcp)
    cert = CertificateFacts(
        "CN=pbs1",
        "CN=pbs1",
        NOW - dt.timedelta(days=1),
        NOW + dt.timedelta(days=300),
        1,
        served,
        (),
    )
    tls = TlsResult("127.0.0.2", 8007, "pbs1.example", tls_ok, None if tls_ok else "hung", 0.5)
    if tls_ok:
        tls = TlsResult("127.0.0.2", 8007, "pbs1.example", True, None, 0.01, cert)
    return ServerEvidence("pbs1.example", 8007, dns, tcp, tls)


def live(active: int = 1, scan: NodeScan | None = None, **entry: Any) -> LiveState:
    item = {"storage": "homelab-backup", "type": "pbs", "enabled": 1, "active": active}
    pbs = {
        "storage": "homelab-backup",
        "type": "pbs",
        "server": "pbs1.example",
        "datastore": "homelab",
        "fingerprint": FP,
        "content": "backup",
    }
    pbs.update(entry)
    scans = {} if scan is None else {scan_key("pve1", spec()): scan}
    return LiveState(storages=[pbs], nodes=["pve1"], node_views={"pve1": [item]}, scans=scans)


def test_the_scan_of_a_storage_is_filed_by_names_with_nothing_derived_from_its_password() -> None:
    assert scan_key("pve1", spec()) == "pve1|homelab-backup"
    assert scan_key("pve1", spec(password="another")) == scan_key("pve1", spec())
    state = live(scan=NodeScan(True, ("homelab",)))
    shown = repr(state) + repr(Evidence(live=state)) + Evidence(live=state).to_json()
    prefix = hashlib.sha256(PASSWORD.encode()).hexdigest()[:16]
    assert prefix not in shown
    assert PASSWORD not in shown


def test_an_inactive_node_points_at_the_connectivity_case_that_fails_from_here() -> None:
    for evidence, case, why in [
        (server(resolved=False), "dns", "pbs1.example does not resolve from here either"),
        (server(tcp_ok=False), "port", "pbs1.example:8007 does not accept TCP from here either"),
        (server(tls_ok=False), "tls", "the TLS handshake with pbs1.example:8007 fails from here"),
        (server(served=SERVED), "fingerprint", "pbs1.example serves a certificate with another"),
    ]:
        verdict = verdicts.node(spec(), "pve1", live(active=0), evidence)
        assert verdict.status == "skip", case
        assert "pve1 reports 'homelab-backup' enabled but NOT active" in verdict.message
        assert why in verdict.message
        assert verdict.message.endswith(f"that is the fault (see the {case} case)")


def test_an_inactive_node_with_nothing_failing_from_here_fails_on_its_own() -> None:
    verdict = verdicts.node(spec(), "pve1", live(active=0), server())
    assert verdict.status == "fail"
    assert "fix: from pve1, check `getent hosts pbs1.example`" in verdict.message
    assert verdicts.node(spec(), "pve1", live(active=1), server()).passed


def test_a_node_using_what_pve_holds_points_at_drift_for_a_connection_property() -> None:
    for prop, value in [("port", "1"), ("username", "sync@pbs"), ("server", "pbs9.example")]:
        verdict = verdicts.node(spec(), "pve1", live(active=0, **{prop: value}), server())
        assert verdict.status == "skip", prop
        assert f"PVE's entry differs from the declaration in {prop}" in verdict.message
        assert "(see the drift case)" in verdict.message
    # Retention is no connection property: an inactive node is its own fault then.
    retention = live(active=0, **{"prune-backups": "keep-last=1"})
    assert verdicts.node(spec(), "pve1", retention, server()).status == "fail"


def test_an_unproven_password_points_at_the_fault_that_stopped_the_proof() -> None:
    refused = NodeScan(False, error="error fetching datastores - connection refused")
    verdict = verdicts.node(spec(), "pve1", live(active=0, scan=refused), server(tcp_ok=False))
    assert verdict.status == "skip"
    assert "the declared password was not proven from pve1: error fetching" in verdict.message
    assert ("password", "not proven (see the port case)") in verdict.facts
    # With nothing else failing, a refused password is the node case's own fault.
    wrong = NodeScan(False, error="error fetching datastores - authentication failed")
    failed = verdicts.node(spec(), "pve1", live(active=1, scan=wrong), server())
    assert failed.status == "fail"
    assert "logging in from pve1 with the declared password failed" in failed.message


def test_a_declared_fingerprint_pve_does_not_pin_is_the_fingerprint_cases_fault() -> None:
    # The declaration is out of date; PVE pins what the server serves.
    outdated = verdicts.drift(spec(), live(fingerprint=SERVED), server(served=SERVED))
    assert outdated.status == "skip"
    assert outdated.message == (
        f"the fingerprint PVE pins ({SERVED}) is not the declared one: PVE pins the certificate "
        "the server serves, so the declaration is what is out of date (see the fingerprint case)"
    )
    # ... and the nodes, which use PVE's pin, are not touched by it.
    assert verdicts.node(spec(), "pve1", live(fingerprint=SERVED), server(served=SERVED)).passed
    # Another property drifted as well: drift fails for that one, and still points for the pin.
    both = verdicts.drift(
        spec(), live(fingerprint=SERVED, namespace="other"), server(served=SERVED)
    )
    assert both.status == "fail"
    assert "  namespace: (unset) -> other" in both.message
    assert f"fingerprint: {FP}" not in both.message
    assert both.message.endswith("(see the fingerprint case)")
    # The server serves neither: still the fingerprint case's.
    neither = verdicts.drift(spec(), live(fingerprint=OTHER), server(served=SERVED))
    assert "the server serves neither of them (see the fingerprint case)" in neither.message


def test_a_pin_that_only_pve_has_wrong_is_drift_and_the_nodes_point_at_it() -> None:
    wrong_pin = live(active=0, fingerprint=OTHER)
    drifted = verdicts.drift(spec(), wrong_pin, server())
    assert drifted.status == "fail"
    assert f"  fingerprint: {FP} -> {OTHER}" in drifted.message
    node = verdicts.node(spec(), "pve1", wrong_pin, server())
    assert node.status == "skip"
    assert "differs from the declaration in fingerprint" in node.message
    # Without the probe of the server (the CLI, the reconciler) drift judges the pin as ever.
    assert verdicts.drift(spec(), live(fingerprint=SERVED)).status == "fail"
