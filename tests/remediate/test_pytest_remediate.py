"""`pytest checks/ --remediate` end to end: the lab's PVE is changed, the checks fix it.

Every test starts a small lab (`pytest_side.SCENARIO`), makes drift through the PVE API, runs
the checks through pytester and reads what happened from three places: the JUnit file (each
case's outcome and properties), the terminal (summary line, plan) and the lab's request log
(which writes reached PVE).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_side import PBS1, PBS2, SCENARIO, STORAGES, ChecksRunner

from pbs_compliance.lab.runner import Lab

LabFactory = Callable[..., Lab]
JUNIT_XSD = Path(__file__).resolve().parents[1] / "data" / "junit-10.xsd"


@pytest.fixture
def lab(make_lab: LabFactory) -> Lab:
    """The small two-node lab every test here changes."""
    return make_lab(SCENARIO)


@pytest.fixture
def checks(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, lab: Lab) -> ChecksRunner:
    """Runs `pytest checks/` against `lab` from pytester's directory."""
    return ChecksRunner(pytester, monkeypatch, lab)


def drift_every_kind(checks: ChecksRunner) -> None:
    """alpha: a property changed; beta: deleted; gamma: disabled; delta: declared disabled."""
    with checks.pve() as pve:
        pve.update("alpha", {"prune-backups": "keep-last=1"})
        pve.delete("beta")
        pve.update("gamma", {"disable": "1"})
    checks.change("delta", enabled=False)


def html_text(path: Path) -> str:
    """The HTML report's text with pytest-html's two layers of escaping undone."""
    return html.unescape(html.unescape(path.read_text(encoding="utf-8")))


def params_of(write: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in write["params"].items() if k != "digest"}


# -- every action kind -----------------------------------------------------------------------


def test_remediate_fixes_every_kind_of_drift_and_reports_the_drift_cases_remediated(
    checks: ChecksRunner,
) -> None:
    drift_every_kind(checks)

    run = checks.run("--remediate")

    assert run.result.ret == pytest.ExitCode.OK, run.output
    assert run.ids("remediated") == {f"drift[{s}]" for s in STORAGES}
    assert run.ids("failed") == set()
    assert checks.drifted() == {}
    # the outcome's letter and word, and the summary line's count
    run.result.stdout.fnmatch_lines(["*test_pve.py::test_drift[[]beta[]] REMEDIATED *"])
    run.result.stdout.re_match_lines([r"^=+ \d+ passed, \d+ skipped, 4 remediated in [\d.]+s =+$"])
    # JUnit: the remediated cases marked by a property inside their testcase
    assert '<property name="remediated" value="true"' in run.junit.read_text(encoding="utf-8")
    assert run.cases["drift[gamma]"].properties == {
        "storage": "gamma",
        "server": PBS2,
        "check": "drift",
        "remediated": "true",
    }
    assert not any("remediated" in run.cases[c].properties for c in run.ids("passed"))
    # HTML: the fix is shown next to the drift it fixed
    report = html_text(run.html)
    assert "<strong>REMEDIATED</strong>" in report
    assert "gamma: enabled" in report


def test_remediate_writes_one_request_per_drifted_entry_and_enables_created_ones_after_the_nodes(
    checks: ChecksRunner,
) -> None:
    drift_every_kind(checks)

    run = checks.run("--remediate")

    assert len(run.writes) == 4 + 1, run.write_lines()
    by_storage: dict[str, list[dict[str, Any]]] = {}
    for write in run.writes:
        name = str(write["params"].get("storage") or write["path"].rsplit("/", 1)[-1])
        by_storage.setdefault(name, []).append(params_of(write))
    assert by_storage["alpha"] == [{"prune-backups": "keep-daily=7,keep-weekly=4"}]
    # enabling a disabled entry sends the declared password with it (every node logged in first)
    assert by_storage["gamma"] == [{"disable": "0", "password": "***"}]
    assert by_storage["delta"] == [{"disable": "1"}]
    created, enabled = by_storage["beta"]
    assert created["disable"] == "1"  # created disabled ...
    assert created["password"] == "***"  # ... with the password (redacted in the log)
    assert enabled == {"disable": "0"}
    # ... and enabled only after every node logged in to the PBS and listed the datastore
    post = next(i for i, r in enumerate(run.requests) if r["method"] == "POST")
    steps = [
        (r["method"], r["path"].removeprefix("/api2/json"), r["params"].get("disable"))
        for r in run.requests[post:]
        if r["method"] != "GET" or "/scan/pbs" in r["path"]
    ]
    assert steps[:4] == [
        ("POST", "/storage", "1"),
        ("GET", "/nodes/pve1/scan/pbs", None),
        ("GET", "/nodes/pve2/scan/pbs", None),
        ("PUT", "/storage/beta", "0"),
    ]


def test_a_second_remediate_run_passes_everything_and_writes_nothing(
    checks: ChecksRunner,
) -> None:
    drift_every_kind(checks)
    first = checks.run("--remediate")
    assert first.result.ret == 0, first.output

    second = checks.run("--remediate")

    assert second.result.ret == 0, second.output
    assert second.writes == []
    assert second.ids("remediated") == set()
    assert second.ids("failed") == set()
    assert second.outcome("drift[beta]") == "passed"
    assert "remediated" not in second.result.parseoutcomes()


# -- what cannot be fixed stays failed, with the reason ---------------------------------------


def move(checks: ChecksRunner, lab: Lab, what: str) -> str:
    """Declare a storage on another datastore, or on another server; returns its name."""
    if what == "datastore":
        checks.change("beta", datastore="homelab")
        return "beta"
    pbs = lab.pbs[PBS1]  # gamma moves from pbs2 to pbs1 (with pbs1's certificate and password)
    checks.change(
        "gamma",
        server=PBS1,
        datastore="homelab",
        port=pbs.port,
        fingerprint=pbs.fingerprint,
        password="${PBS_LAB_ALPHA_PASSWORD}",
    )
    return "gamma"


@pytest.mark.parametrize("what", ["datastore", "server"])
def test_a_changed_server_or_datastore_is_refused_without_allow_recreate(
    checks: ChecksRunner, lab: Lab, what: str
) -> None:
    name = move(checks, lab, what)

    run = checks.run("--remediate")

    assert run.result.ret == pytest.ExitCode.TESTS_FAILED
    assert run.ids("failed") == {f"drift[{name}]"}
    message = run.message(f"drift[{name}]")
    assert "remediation did not fix it" in message
    assert f"{name}: refused - PVE cannot change {what}" in message
    assert "`--allow-recreate`" in message
    assert run.writes == []


def test_allow_recreate_without_a_declared_password_is_refused(checks: ChecksRunner) -> None:
    checks.change("beta", datastore="homelab", password=None)

    run = checks.run("--remediate", "--allow-recreate")

    assert run.outcome("drift[beta]") == "failed"
    assert "deletes PVE's stored password and none is declared" in run.message("drift[beta]")
    assert run.writes == []


@pytest.mark.parametrize("what", ["datastore", "server"])
def test_allow_recreate_deletes_and_creates_the_entry_again_then_enables_it(
    checks: ChecksRunner, lab: Lab, what: str
) -> None:
    name = move(checks, lab, what)

    run = checks.run("--remediate", "--allow-recreate")

    assert run.result.ret == 0, run.output
    assert run.outcome(f"drift[{name}]") == "remediated"
    assert run.write_lines() == [f"DELETE /storage/{name}", "POST /storage", f"PUT /storage/{name}"]
    created = run.writes[1]["params"]
    assert (created["server"], created["datastore"], created["disable"]) == (PBS1, "homelab", "1")
    assert checks.drifted() == {}
    again = checks.run("--remediate")
    assert again.result.ret == 0, again.output
    assert again.writes == []


def test_a_certificate_that_no_longer_matches_the_declaration_refuses_the_fix(
    checks: ChecksRunner, lab: Lab
) -> None:
    lab.pbs[PBS2].renew_certificate()
    with checks.pve() as pve:
        pve.update("gamma", {"disable": "1"})

    run = checks.run("--remediate")

    assert run.result.ret == pytest.ExitCode.TESTS_FAILED
    assert run.outcome("drift[gamma]") == "failed"
    assert "`pbs fingerprint --update gamma`" in run.message("drift[gamma]")
    assert {"fingerprint[gamma]", "fingerprint[delta]", "drift[gamma]"} <= run.ids("failed")
    assert run.writes == []


def test_a_server_only_disabled_storages_use_is_probed_before_anything_is_written_about_them(
    checks: ChecksRunner, lab: Lab
) -> None:
    """gamma and delta (both on pbs2) are declared disabled, so the checks never probe pbs2;
    its certificate was renewed, so both declarations are out of date: nothing is written."""
    lab.pbs[PBS2].renew_certificate()
    checks.change("gamma", enabled=False)
    checks.change("delta", enabled=False)
    with checks.pve() as pve:
        pve.delete("delta")  # a create of a disabled entry would push the old fingerprint

    run = checks.run("--remediate")

    assert run.writes == [], run.write_lines()
    served = lab.pbs[PBS2].fingerprint.upper()
    for name in ("gamma", "delta"):
        assert run.outcome(f"drift[{name}]") == "failed"
        message = run.message(f"drift[{name}]")
        assert f"{name}: refused - {PBS2} serves a certificate with fingerprint {served}" in message
        assert f"`pbs fingerprint --update {name}`" in message


def test_rotate_secrets_sends_the_declared_password_with_the_update(checks: ChecksRunner) -> None:
    with checks.pve() as pve:
        pve.update("alpha", {"prune-backups": "keep-last=1"})

    run = checks.run("--remediate", "--rotate-secrets")

    assert run.outcome("drift[alpha]") == "remediated", run.output
    assert [
        (line, params_of(w)) for line, w in zip(run.write_lines(), run.writes, strict=True)
    ] == [
        ("PUT /storage/alpha", {"prune-backups": "keep-daily=7,keep-weekly=4", "password": "***"})
    ]


# -- dry run -----------------------------------------------------------------------------------


def test_dry_run_prints_and_attaches_the_plan_and_writes_nothing(checks: ChecksRunner) -> None:
    drift_every_kind(checks)

    run = checks.run("--remediate", "--dry-run")

    assert run.result.ret == pytest.ExitCode.TESTS_FAILED
    assert run.writes == []
    assert {f"drift[{s}]" for s in STORAGES} == run.ids("failed")
    assert "remediation dry run" in run.output  # the header
    for line in ("~ alpha  update", "+ beta  create", "~ delta  disable", "~ gamma  enable"):
        assert line in run.output
        assert line in run.message(f"drift[{line.split()[1]}]")
    assert "dry run, nothing written" in run.message("drift[beta]")
    report = html_text(run.html)
    assert "dry run: planned" in report
    assert "+ beta  create" in report
    assert checks.drifted().keys() == set(STORAGES)


# -- xdist -------------------------------------------------------------------------------------


def test_two_workers_remediating_one_cluster_at_once_converge(checks: ChecksRunner) -> None:
    with checks.pve() as pve:
        for name in STORAGES:
            pve.update(name, {"prune-backups": "keep-last=1"})
        pve.update("gamma", {"disable": "1"})

    run = checks.run("-n", "2", "--remediate")

    assert run.result.ret == 0, run.output
    assert run.ids("remediated") == {f"drift[{s}]" for s in STORAGES}
    assert run.result.parseoutcomes()["remediated"] == 4  # counted on the controller too
    assert checks.drifted() == {}
    done = [w for w in run.writes if w["status"] == 200]
    assert sorted(w["path"].rsplit("/", 1)[-1] for w in done) == sorted(STORAGES)
    # Every refused write was a digest conflict that was retried (bounded), never lost.
    assert all(w["status"] != 200 for w in run.writes if w not in done)
    assert checks.run("--remediate").writes == []


# -- faults ------------------------------------------------------------------------------------


class SlowPveOnceEvidenceIsIn:
    """In-process plugin: PVE answers slowly from the end of collection on, so the evidence is
    read normally and only the remediation's requests meet the latency."""

    def __init__(self, lab: Lab, latency: float) -> None:
        self.lab = lab
        self.latency = latency

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        assert self.lab.pve is not None
        self.lab.pve.faults.set(latency=self.latency)


class OtherWriterOnceEvidenceIsIn:
    """In-process plugin: another admin changes storage.cfg right after the remediation's own
    read of the entry (the evidence's list read is long done by then)."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        assert self.lab.pve is not None
        self.lab.pve.faults.set(concurrent_writer=True)


def test_a_server_error_on_one_update_fails_that_case_with_pves_message_and_fixes_the_others(
    checks: ChecksRunner, lab: Lab
) -> None:
    with checks.pve() as pve:
        pve.update("alpha", {"prune-backups": "keep-last=1"})
        pve.update("gamma", {"disable": "1"})
    assert lab.pve is not None
    lab.pve.faults.set(
        fail_path="/storage/alpha", fail_method="PUT", fail_message="storage 'alpha' is locked"
    )

    run = checks.run("--remediate")

    assert run.result.ret == pytest.ExitCode.TESTS_FAILED
    assert run.ids("failed") == {"drift[alpha]"}
    assert "alpha: failed - HTTP 500: storage 'alpha' is locked" in run.message("drift[alpha]")
    assert run.outcome("drift[gamma]") == "remediated"
    assert checks.drifted().keys() == {"alpha"}


def test_a_concurrent_writer_between_read_and_write_causes_a_retry_not_a_lost_update(
    checks: ChecksRunner, lab: Lab
) -> None:
    with checks.pve() as pve:
        pve.update("alpha", {"prune-backups": "keep-last=1"})
        local_before = pve.storage("local")["content"]
    run = checks.run("--remediate", plugins=[OtherWriterOnceEvidenceIsIn(lab)])

    assert run.result.ret == 0, run.output
    assert run.outcome("drift[alpha]") == "remediated"
    assert [(w["path"].rsplit("/", 1)[-1], w["status"]) for w in run.writes] == [
        ("alpha", 500),  # the digest read just before is stale already: refused
        ("alpha", 200),  # re-read, re-planned, sent again
    ]
    assert "alpha: updated (1 retry after digest conflict" in html_text(run.html)
    with checks.pve() as pve:
        assert pve.storage("local")["content"] != local_before  # the other writer's change stays
    assert checks.drifted() == {}


def test_a_pve_slower_than_the_client_timeout_is_reported_not_waited_for(
    checks: ChecksRunner, lab: Lab
) -> None:
    checks.set_pve(timeout=1.0)
    with checks.pve() as pve:
        pve.update("alpha", {"prune-backups": "keep-last=1"})

    run = checks.run("--remediate", plugins=[SlowPveOnceEvidenceIsIn(lab, latency=1.5)])

    assert run.result.ret == pytest.ExitCode.TESTS_FAILED
    message = run.message("drift[alpha]")
    assert "remediation failed: PVE at " in message  # its read of the entry gave up
    assert "did not answer within 1.0 s" in message
    assert run.result.duration < 10  # the PUT and the re-read each give up after 1 s


def test_an_unreachable_pbs_is_never_created_half_made(checks: ChecksRunner, lab: Lab) -> None:
    with checks.pve() as pve:
        pve.delete("beta")
    lab.pbs[PBS1].set_mode("down")

    run = checks.run("--remediate")

    assert run.result.ret == pytest.ExitCode.TESTS_FAILED
    message = run.message("drift[beta]")
    assert "beta: refused - the connectivity checks of pbs1.lab.example" in message
    assert "not created until they pass" in message
    assert {"port[beta]", "drift[beta]"} <= run.ids("failed")
    assert run.writes == []
    with checks.pve() as pve:
        assert "beta" not in {e["storage"] for e in pve.storages()}


# -- unmanaged entries ---------------------------------------------------------------------------


def add_stray(checks: ChecksRunner, lab: Lab) -> None:
    """An undeclared PBS entry, as someone might add by hand in the GUI."""
    pbs = lab.pbs[PBS1]
    with checks.pve() as pve:
        pve.create(
            {
                "storage": "stray",
                "type": "pbs",
                "server": PBS1,
                "datastore": "homelab",
                "username": "root@pam",
                "fingerprint": pbs.fingerprint,
                "port": str(pbs.port),
            },
            password=lab.pbs_password(PBS1, "root@pam"),
        )


def test_unmanaged_pbs_entries_are_only_reported_without_prune_unmanaged(
    checks: ChecksRunner, lab: Lab
) -> None:
    add_stray(checks, lab)

    run = checks.run("--remediate")

    assert run.result.ret == pytest.ExitCode.TESTS_FAILED
    assert run.ids("failed") == {"unmanaged"}
    assert "stray: server pbs1.lab.example, datastore homelab" in run.message("unmanaged")
    assert "--prune-unmanaged" in run.message("unmanaged")
    assert run.writes == []


def test_prune_unmanaged_deletes_undeclared_pbs_entries_and_never_other_storages(
    checks: ChecksRunner, lab: Lab
) -> None:
    add_stray(checks, lab)
    planned = checks.run("--remediate", "--prune-unmanaged", "--dry-run")
    assert planned.writes == []
    assert "- stray  delete" in planned.message("unmanaged")

    run = checks.run("--remediate", "--prune-unmanaged")

    assert run.result.ret == 0, run.output
    assert "pbs-compliance: remediation on (prune-unmanaged)" in run.output
    assert run.outcome("unmanaged") == "remediated"
    assert run.write_lines() == ["DELETE /storage/stray"]
    with checks.pve() as pve:
        left = {str(e["storage"]): e["type"] for e in pve.storages()}
    assert left == {"local": "dir", "local-images": "dir", **dict.fromkeys(STORAGES, "pbs")}


# -- options -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags", [["--dry-run"], ["--prune-unmanaged"], ["--allow-recreate", "--rotate-secrets"]]
)
def test_a_remediation_option_without_remediate_is_a_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, flags: list[str]
) -> None:
    monkeypatch.delenv("PBS_COMPLIANCE_CONFIG", raising=False)
    pytester.makefile(".yaml", **{"pbs-storage": "pbs_storages: []\n"})

    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "-p",
        "no:hypothesispytest",
        "--pbs-config=pbs-storage.yaml",
        *flags,
    )

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {', '.join(flags)} only make sense with --remediate"])
