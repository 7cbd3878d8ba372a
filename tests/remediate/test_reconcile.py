"""The one reconcile path: reachability from the checks' verdicts, then read, plan, apply under
the cluster lock, re-read and verify - what `pbs apply` and `pytest --remediate` both run."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from spec_builders import FP, storage_builder

from pbs_compliance import verdicts
from pbs_compliance.config import load_config
from pbs_compliance.evidence import Evidence, ServerEvidence, gather_evidence, server_key
from pbs_compliance.lab.runner import Lab
from pbs_compliance.probes.dns import DnsResult, ResolverAnswer
from pbs_compliance.probes.tcp import TcpResult
from pbs_compliance.probes.tls import CertificateFacts, TlsResult
from pbs_compliance.settings import Overrides, RunSettings, resolve
from pbs_compliance.verdicts import Verdict
from remediate import (
    Kind,
    Outcome,
    Plan,
    PlanOptions,
    Reconciler,
    Results,
    Scope,
    Status,
    StorageResult,
    plan,
)
from remediate.reach import reachability

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
EXPIRY_DAYS = 14


spec = storage_builder(
    name="archive", server="pbs1.example", datastore="archive", password="pw-of-archive"
)


def probed(*, resolved: bool = True, days_left: int = 300) -> ServerEvidence:
    answer = ResolverAnswer("192.0.2.53", 53, "addresses" if resolved else "nxdomain")
    addresses = ("127.0.0.2",) if resolved else ()
    dns = DnsResult("pbs1.example", addresses, (answer,), is_literal=False)
    if not resolved:
        return ServerEvidence("pbs1.example", 8007, dns)
    tcp = (TcpResult("127.0.0.2", 8007, True, None, 0.01),)
    cert = CertificateFacts(
        "CN=pbs1",
        "CN=pbs1",
        NOW - dt.timedelta(days=30),
        NOW + dt.timedelta(days=days_left, hours=1),
        1,
        FP,
        (),
    )
    tls = TlsResult("127.0.0.2", 8007, "pbs1.example", True, None, 0.01, cert)
    return ServerEvidence("pbs1.example", 8007, dns, tcp, tls)


def evidence_of(ev: ServerEvidence) -> Evidence:
    return Evidence(servers={server_key("pbs1.example", 8007): ev})


# -- reachability is what the checks say ---------------------------------------------------------


def test_an_expiring_certificate_is_unreachable_for_the_reconciler_as_the_tls_case_fails() -> None:
    ev = probed(days_left=EXPIRY_DAYS - 4)

    reach = reachability(evidence_of(ev), [spec()], NOW, EXPIRY_DAYS)["archive"]

    tls_case = verdicts.tls(spec(), ev, NOW, EXPIRY_DAYS)
    assert tls_case.status == "fail"
    assert not reach.ok
    assert reach.served_fingerprint == FP  # the handshake happened: the pin is still known
    assert reach.problem.startswith("the tls case: the certificate of pbs1.example expires on ")
    assert f"({EXPIRY_DAYS - 4} days left, threshold {EXPIRY_DAYS})" in reach.problem


def test_a_certificate_outside_the_threshold_is_reachable() -> None:
    reach = reachability(evidence_of(probed(days_left=EXPIRY_DAYS + 1)), [spec()], NOW, 14)

    assert reach["archive"].ok
    assert reach["archive"].problem == ""


def test_the_first_failing_case_is_the_one_quoted() -> None:
    reach = reachability(evidence_of(probed(resolved=False)), [spec()], NOW, EXPIRY_DAYS)

    assert not reach["archive"].ok
    assert reach["archive"].problem.startswith("the dns case: ")
    assert reach["archive"].served_fingerprint is None


def test_a_declared_disabled_storage_is_judged_as_if_enabled() -> None:
    """The checks skip its connectivity; the reconciler probed it and judges the same way."""
    disabled = spec(enabled=False)

    expiring = reachability(evidence_of(probed(days_left=3)), [disabled], NOW, EXPIRY_DAYS)
    healthy = reachability(evidence_of(probed()), [disabled], NOW, EXPIRY_DAYS)

    assert not expiring["archive"].ok
    assert healthy["archive"].ok


def test_a_storage_without_a_probe_is_not_reachable() -> None:
    reach = reachability(Evidence(), [spec()], NOW, EXPIRY_DAYS)

    assert reach["archive"].problem == "pbs1.example was not probed"


def test_an_expiring_certificate_refuses_the_create() -> None:
    reach = reachability(evidence_of(probed(days_left=2)), [spec()], NOW, EXPIRY_DAYS)

    action = plan([spec()], [], PlanOptions(), reach).for_storage("archive")

    assert action is not None
    assert action.kind == Kind.REFUSE
    assert "the connectivity checks of pbs1.example:8007 failed (the tls case: " in action.reason
    assert "not created until they pass" in action.reason


# -- the outcome --------------------------------------------------------------------------------


def drift_case(storage: str, status: verdicts.Status) -> Verdict:
    return Verdict("drift", storage, status)


def test_a_result_the_re_read_contradicts_is_unconfirmed() -> None:
    results = Results(
        (
            StorageResult("a", Status.CHANGED),
            StorageResult("b", Status.UNCHANGED),
            StorageResult("c", Status.REFUSED),
        )
    )
    recheck = (drift_case("a", "fail"), drift_case("b", "pass"), drift_case("c", "fail"))

    outcome = Outcome(Plan(), results, recheck)

    assert outcome.unconfirmed == ("a",)  # c was refused: its drift is expected
    assert not outcome.ok
    assert outcome.to_dict()["verified"] == {
        "ok": False,
        "unconfirmed": ["a"],
        "checks": [
            {"check": "drift", "storage": "a", "status": "fail"},
            {"check": "drift", "storage": "b", "status": "pass"},
            {"check": "drift", "storage": "c", "status": "fail"},
        ],
    }


def test_an_outcome_without_a_re_read_is_not_ok_and_says_so() -> None:
    outcome = Outcome(Plan(), Results((StorageResult("a", Status.CHANGED),)), (), "HTTP 500")

    assert not outcome.ok
    assert outcome.to_dict()["verified"] is None
    assert outcome.verdict("drift", "a") is None


# -- against the lab ------------------------------------------------------------------------------


SERVER = "pbs1.lab.example"
SCENARIO: dict[str, Any] = {
    "nodes": ["pve1", "pve2"],
    "pbs_servers": [{"name": SERVER, "address": "127.0.0.11", "datastores": {"homelab": []}}],
    "storages": [
        {"name": "one", "server": SERVER, "datastore": "homelab"},
        {"name": "two", "server": SERVER, "datastore": "homelab"},
    ],
}


def lab_run(lab: Lab) -> tuple[RunSettings, Evidence]:
    settings = resolve(load_config(lab.config_path, environ=lab.env), Overrides(), environ={})
    return settings, gather_evidence(settings)


def writes(lab: Lab, since: int) -> list[str]:
    return [
        f"{r['method']} {str(r['path']).removeprefix('/api2/json')}"
        for r in lab.requests()[since:]
        if r["method"] != "GET" and "/_lab" not in str(r["path"])
    ]


@pytest.fixture
def drifted(make_lab: Callable[..., Lab]) -> tuple[Lab, RunSettings, Evidence]:
    lab = make_lab(SCENARIO)
    settings, _ = lab_run(lab)
    reconciler = Reconciler(settings, Evidence(), PlanOptions())
    reconciler.client.update("one", {"prune-backups": "keep-last=1"})
    reconciler.client.update("two", {"prune-backups": "keep-last=2"})
    settings, evidence = lab_run(lab)
    return lab, settings, evidence


def test_reconcile_applies_re_reads_and_confirms_with_the_drift_case(
    drifted: tuple[Lab, RunSettings, Evidence],
) -> None:
    lab, settings, evidence = drifted
    seen: list[Plan] = []
    before = len(lab.requests())

    outcome = Reconciler(settings, evidence, PlanOptions()).reconcile(on_plan=seen.append)

    assert [a.storage for a in seen[0].actions] == ["one", "two"]  # shown before any write
    assert writes(lab, before) == ["PUT /storage/one", "PUT /storage/two"]
    assert outcome.ok
    assert [(v.check, v.storage, v.status) for v in outcome.recheck] == [
        ("drift", "one", "pass"),
        ("drift", "two", "pass"),
    ]
    assert outcome.to_dict()["verified"]["ok"] is True
    assert outcome.done() == "one: updated\ntwo: updated"


def test_reconciling_one_storage_reads_and_writes_only_that_entry(
    drifted: tuple[Lab, RunSettings, Evidence],
) -> None:
    lab, settings, evidence = drifted
    before = len(lab.requests())

    outcome = Reconciler(settings, evidence, PlanOptions()).reconcile(Scope.storage("two"))

    paths = [str(r["path"]).removeprefix("/api2/json") for r in lab.requests()[before:]]
    assert writes(lab, before) == ["PUT /storage/two"]
    assert "/storage" not in paths  # never the whole list: the entry alone, before and after
    assert paths.count("/storage/two") == 3  # read, write, re-read
    assert [v.storage for v in outcome.recheck] == ["two"]
    assert outcome.ok


def test_a_dry_run_sends_nothing_not_even_a_read(
    drifted: tuple[Lab, RunSettings, Evidence],
) -> None:
    lab, settings, evidence = drifted
    before = len(lab.requests())

    outcome = Reconciler(settings, evidence, PlanOptions()).reconcile(dry_run=True)

    assert lab.requests()[before:] == []
    assert outcome.dry_run
    assert [r.status for r in outcome.results.results] == [Status.PLANNED, Status.PLANNED]
    assert not outcome.ok  # changes are pending
    assert outcome.to_dict()["verified"] is None
