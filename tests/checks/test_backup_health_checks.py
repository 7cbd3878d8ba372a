"""The backup health checks (`datastore`, `capacity`, `backups`, `verified`) run against the lab.

Each failure kind is made the way it happens - a guest whose newest backup is 50 hours old, a
failed verification, a datastore in maintenance, a namespace PVE points at but the PBS lacks, a
datastore 97 % full or predicted full in 10 days, a PBS token that may not see the backups - and
must fail exactly the case that names it, with the others pointing at it; `-n 2` judges the same;
no secret reaches any output.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from checks_harness import (
    RunChecks,
    WriteConfig,
    html_report_text,
    lab_config,
    pve_client,
    storage,
)
from lab_edits import token_without_audit

from pbs_compliance.lab.fixtures import LabFactory
from pbs_compliance.lab.runner import Lab, env_name

HEALTH = ("datastore", "capacity", "backups", "verified")
ONLY_HEALTH = ("-m", " or ".join(HEALTH))
STORAGES = ("archive", "homelab-backup", "media", "offsite")
CANARY = "canary-secret-1d2f"


def ids(name: str, checks: tuple[str, ...] = HEALTH) -> set[str]:
    return {f"{check}[{name}]" for check in checks}


def test_the_built_in_lab_passes_all_four_with_a_table_of_guests(
    shared_lab: Lab, run_checks: RunChecks
) -> None:
    run = run_checks(shared_lab, *ONLY_HEALTH, "--strict-markers")

    assert run.result.ret == 0, run.output
    expected = set().union(*(ids(s) for s in STORAGES))
    assert set(run.cases) == expected
    assert run.ids("passed") == expected
    assert run.cases["backups[offsite]"].properties == {
        "storage": "offsite",
        "server": "pbs2.lab.example",
        "check": "backups",
    }
    run.result.stdout.fnmatch_lines(
        [
            "*pbs-compliance matrix*",
            "*storage*datastore*capacity*backups*verified*",
            "*archive*PASS*PASS*PASS*PASS*",
            "*offsite*PASS*PASS*PASS*PASS*",
        ]
    )
    shown = html_report_text(run.html)
    # One table per storage under its backups case (and its verified case): every guest that
    # still exists with its newest backup, age and verification.
    assert "newest backup of each guest on 'offsite' (max_age 26h)" in shown
    table = shown.split("newest backup of each guest on 'archive'", 1)[1].split("</table>")[0]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table)
    cells = [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row) for row in rows]
    assert cells[0] == ["guest", "name", "node", "newest backup", "age", "verification"]
    assert [c[:3] for c in cells[1:]] == [
        ["vm 100", "web", "pve1"],
        ["vm 200", "db", "pve2"],
        ["vm 300", "mail", "pve3"],
    ]
    for row in cells[1:]:
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", row[3]), row
        assert re.fullmatch(r"\d+h", row[4]), row
        assert re.fullmatch(r"ok \(\d{4}-\d\d-\d\d \d\d:\d\d UTC\)", row[5]), row
    assert re.search(r"<th[^>]*>guests judged</th><td><code>3 \(0 stale\)</code></td>", shown)
    assert re.search(r"<th[^>]*>used</th><td><code>[\d.]+ TiB of [\d.]+ TiB \(", shown)


@pytest.fixture
def broken(lab: Lab, write_config: WriteConfig) -> tuple[Lab, Path]:
    """The built-in lab with one fault of each kind (and its declaration to match)."""
    admin = lab.admin
    assert admin is not None
    # offsite: vm 300 (mail) has only a backup from two days ago there; the datastore is
    # read-only, and 80 % full growing so that PBS predicts it full in 10 days (PBS fits a
    # month of history: a trend that started below 0 % would predict later).
    admin.add_backup(
        {"server": "pbs2.lab.example", "datastore": "offsite", "backup": "vm/300", "age": 50 * 3600}
    )
    admin.maintenance("pbs2.lab.example", ["offsite"], {"maintenance": "read-only"})
    admin.fill(
        {"server": "pbs2.lab.example", "datastore": "offsite", "used_percent": 80,
         "full_in": 10 * 86400}
    )  # fmt: skip
    # media: the newest backup of ct 101 (dns) failed verification; 97 % full.
    admin.add_backup(
        {"server": "pbs3.lab.example", "datastore": "media", "backup": "ct/101", "age": 600,
         "verify": "failed"}
    )  # fmt: skip
    admin.fill({"server": "pbs3.lab.example", "datastore": "media", "used_percent": 97})
    # homelab-backup: its datastore is offline for a disk swap.
    admin.maintenance(
        "pbs1.lab.example", ["homelab"], {"maintenance": "offline", "message": "disk swap"}
    )
    # archive: PVE and the declaration point at a namespace the PBS does not have.
    pve_client(lab).update("archive", {"namespace": "prod/missing"})
    config = lab_config(lab)
    storage(config, "archive")["namespace"] = "prod/missing"
    return lab, write_config(config)


def test_each_failure_fails_the_case_that_names_it_and_n2_judges_the_same(
    broken: tuple[Lab, Path], run_checks: RunChecks
) -> None:
    lab, config = broken

    serial = run_checks(lab, *ONLY_HEALTH, config=config)
    parallel = run_checks(lab, *ONLY_HEALTH, "-n", "2", config=config)

    assert serial.failed == {
        "datastore[homelab-backup]",
        "datastore[offsite]",
        "datastore[archive]",
        "backups[offsite]",
        "capacity[offsite]",
        "capacity[media]",
        "verified[media]",
    }, serial.output
    assert serial.skipped == {
        "capacity[homelab-backup]",
        "backups[homelab-backup]",
        "verified[homelab-backup]",
        "backups[archive]",
        "verified[archive]",
    }
    message = serial.message
    offline = message("datastore[homelab-backup]")
    assert (
        "datastore 'homelab' on pbs1.lab.example is in maintenance mode 'offline' (message: disk "
        "swap): PVE can neither write nor read backups there" in offline
    )
    assert "proxmox-backup-manager datastore update homelab --delete maintenance-mode" in offline
    for case in ("capacity", "backups", "verified"):
        assert serial.cases[f"{case}[homelab-backup]"].message == (
            "datastore 'homelab' is in offline maintenance (see the datastore case)"
        )
    assert (
        "datastore 'offsite' on pbs2.lab.example is in maintenance mode 'read-only': backups "
        "cannot be written to it" in message("datastore[offsite]")
    )
    assert (
        "namespace 'prod/missing' does not exist in datastore 'archive' on pbs1.lab.example: "
        "PVE does not check it, so 'archive' looks active until the first backup fails with "
        "`namespace not found`" in message("datastore[archive]")
    )
    for case in ("backups", "verified"):
        assert serial.cases[f"{case}[archive]"].message == (
            "namespace 'prod/missing' is missing (see the datastore case)"
        )
    assert serial.cases["capacity[archive]"].outcome == "passed"
    stale = message("backups[offsite]")
    assert "1 of 3 guests have no backup younger than 26h on 'offsite':" in stale
    assert re.search(
        r"  vm 300 \(mail\) on pve3: newest \d{4}-\d\d-\d\d \d\d:\d\d UTC, 50h ago, ok", stale
    ), stale
    assert "vm 100" not in stale
    assert re.search(
        r"  ct 101 \(dns\) on pve1: newest backup \d{4}-\d\d-\d\d \d\d:\d\d UTC: verification "
        r"failed",
        message("verified[media]"),
    ), message("verified[media]")
    assert re.search(
        r"datastore 'media' on pbs3\.lab\.example: [\d.]+ TiB of [\d.]+ TiB used \(97\.0 %\), "
        r"more than max_used_percent 90 %",
        message("capacity[media]"),
    ), message("capacity[media]")
    assert re.search(
        r"PBS predicts it full on \d{4}-\d\d-\d\d \(in 10 days\), within min_days_to_full 30 "
        r"days",
        message("capacity[offsite]"),
    ), message("capacity[offsite]")
    # JUnit: storage and check on every case, guest where one is named.
    assert serial.cases["backups[offsite]"].properties == {
        "storage": "offsite",
        "server": "pbs2.lab.example",
        "check": "backups",
        "guest": "300",
    }
    assert serial.cases["verified[media]"].properties["guest"] == "101"
    assert "guest" not in serial.cases["capacity[media]"].properties
    serial.result.stdout.fnmatch_lines(
        [
            "*storage*datastore*capacity*backups*verified*",
            "*archive*FAIL*PASS*skip*skip*",
            "*homelab-backup*FAIL*skip*skip*skip*",
            "*media*PASS*FAIL*PASS*FAIL*",
            "*offsite*FAIL*FAIL*FAIL*PASS*",
        ]
    )
    shown = html_report_text(serial.html)
    assert re.search(r"<tr style='color:#c22'><td[^>]*>vm 300</td>", shown), "stale row marked"

    assert "2 workers" in parallel.output
    assert parallel.outcomes() == serial.outcomes()
    assert {k: c.message for k, c in parallel.cases.items()} == {
        k: c.message for k, c in serial.cases.items()
    }
    assert {k: c.properties for k, c in parallel.cases.items()} == {
        k: c.properties for k, c in serial.cases.items()
    }
    # The table of guests is made where the case ran (a worker) and still reaches the report.
    stale_row = r"<tr style='color:#c22'><td[^>]*>vm 300</td>"
    assert re.search(stale_row, html_report_text(parallel.html))


def test_skip_reasons_no_password_and_a_probe_fault_point_at_their_case(
    lab: Lab, run_checks: RunChecks, write_config: WriteConfig
) -> None:
    lab.pbs["pbs2.lab.example"].set_mode("down")
    config = lab_config(lab)
    del storage(config, "media")["password"]

    run = run_checks(lab, config=write_config(config))

    port = lab.pbs["pbs2.lab.example"].port
    assert "port[offsite]" in run.failed
    for case in HEALTH:
        assert run.cases[f"{case}[offsite]"].outcome == "skipped"
        assert run.message(f"{case}[offsite]") == (
            f"no TCP connection to pbs2.lab.example:{port} (see the port case)"
        )
    no_password = (
        "no password declared for 'media' (password or password_file): the PBS itself "
        "(datastore, namespace, maintenance, capacity) is not read"
    )
    assert run.message("datastore[media]") == no_password
    assert run.message("capacity[media]") == no_password
    # PVE still lists media's backups with the password it stores.
    assert run.cases["backups[media]"].outcome == "passed"
    assert run.cases["verified[media]"].outcome == "passed"
    assert not run.failed & (ids("media") | ids("archive") | ids("homelab-backup"))


def test_a_pbs_token_that_may_not_see_the_backups_fails_naming_the_privilege(
    make_lab: LabFactory, run_checks: RunChecks
) -> None:
    lab = make_lab(token_without_audit())

    run = run_checks(lab, *ONLY_HEALTH)

    assert run.cases["datastore[archive]"].outcome == "passed"
    assert run.failed & ids("archive") == {"backups[archive]"}
    assert run.message("backups[archive]").startswith(
        "PVE lists no backups on 'archive': the PBS credentials backup@pbs!pve lack "
        "Datastore.Audit on /datastore/archive/prod/vms, so the PBS shows them only the backup "
        "groups they own (none)\nfix: on the PBS, `proxmox-backup-manager acl update "
        "/datastore/archive/prod/vms DatastoreAudit --auth-id backup@pbs!pve`"
    )
    assert run.message("verified[archive]") == (
        "no finished backup to judge on 'archive' (see the backups case)"
    )


def test_no_secret_in_any_output_with_locals_and_long_tracebacks(
    lab: Lab, run_checks: RunChecks
) -> None:
    assert lab.admin is not None
    lab.admin.add_backup(
        {"server": "pbs3.lab.example", "datastore": "media", "backup": "ct/201", "age": 60,
         "verify": "failed"}
    )  # fmt: skip
    secrets = [v for v in lab.env.values() if len(v) >= 8]

    run = run_checks(
        lab,
        "-l",
        "--tb=long",
        "--full-trace",
        extra_env={env_name("offsite"): CANARY},  # the declared password is wrong
    )

    # The nodes cases name the refused password (one fault, one red case); PVE still lists
    # offsite's backups with the password it stores.
    assert {"nodes[offsite:pve1]", "nodes[offsite:pve2]"} <= run.failed
    for case in ("datastore", "capacity"):
        assert run.message(f"{case}[offsite]") == (
            f"the PBS pbs2.lab.example:{lab.pbs['pbs2.lab.example'].port} refuses the declared "
            "credentials of sync@pbs (see the nodes cases)"
        )
    assert run.cases["backups[offsite]"].outcome == "passed"
    assert "verified[media]" in run.failed
    shown = [
        run.output,
        run.junit.read_text(encoding="utf-8"),
        run.html.read_text(encoding="utf-8"),
        html_report_text(run.html),
    ]
    for text in shown:
        assert CANARY not in text
        assert [s for s in secrets if s in text] == []


GATHER_TIMES = """
import os
import time
from pathlib import Path


class Timed:
    def pytest_pbs_gather(self, settings):
        Path(os.environ["GATHER_LOG"], "gather").write_text(repr(time.monotonic()))
        return {}


def pytest_configure(config):
    config.pluginmanager.register(Timed(), "timed")


def pytest_sessionstart(session):
    Path(os.environ["GATHER_LOG"], "start").write_text(repr(time.monotonic()))
"""


def test_the_backup_reads_run_beside_the_probes_so_a_dead_pbs_costs_one_timeout(
    lab: Lab, run_checks: RunChecks, pytester: pytest.Pytester, tmp_path: Path
) -> None:
    lab.pbs["pbs1.lab.example"].set_mode("blackhole")  # TCP yes, TLS never
    (pytester.path / "checks" / "conftest_timed.py").write_text(GATHER_TIMES, encoding="utf-8")
    conftest = pytester.path / "checks" / "conftest.py"
    conftest.write_text(
        conftest.read_text(encoding="utf-8") + "\nfrom conftest_timed import *  # noqa\n",
        encoding="utf-8",
    )

    run = run_checks(
        lab, "--probe-timeout", "2", *ONLY_HEALTH, extra_env={"GATHER_LOG": str(tmp_path)}
    )

    gathered = float((tmp_path / "gather").read_text())
    session = float((tmp_path / "start").read_text())
    # The plugins' gathering starts with the probes (pbs1's TLS probe alone waits 2 s), not
    # after them: the backup reads' own wait for pbs1 (one login timeout, test_backup_reads)
    # overlaps the probes' instead of adding to it. (Wall time is not asserted: PVE's node
    # views of a dead PBS take the lab's node timeouts anyway, and the machine is shared.)
    assert gathered - session < 1.0
    port = lab.pbs["pbs1.lab.example"].port
    for name in ("homelab-backup", "archive"):
        for case in HEALTH:
            assert run.message(f"{case}[{name}]") == (
                f"no TLS with pbs1.lab.example:{port} (see the tls case)"
            )
    assert run.ids("passed") == ids("media") | ids("offsite")
