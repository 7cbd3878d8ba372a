"""The backup health plugin's own logic: the evidence it hands to the cases (parsed once, or why
there is none), the verdicts without evidence, and the HTML table of guests (the end-to-end
view of both is in tests/checks/test_backup_health_checks.py)."""

from __future__ import annotations

import datetime as dt
import html
import re

from pbs_compliance import backup_plugin
from pbs_compliance.backup_reads import Backup, BackupEvidence, Guest
from pbs_compliance.config import StorageSpec
from pbs_compliance.config.model import BackupHealth, PveSettings
from pbs_compliance.evidence import Evidence

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
T = int(NOW.timestamp())
H = 3600
SPEC = StorageSpec(
    name="homelab",
    server="pbs1.example",
    datastore="store1",
    fingerprint=":".join(["AB"] * 32),
    backups=BackupHealth(max_age=dt.timedelta(hours=26)),
)


def test_the_evidence_is_parsed_once_per_data_and_says_why_when_missing() -> None:
    data = BackupEvidence(guests={100: Guest(100, "web", "pve1", "qemu")}).to_data()
    evidence = Evidence(extra={backup_plugin.KEY: data})

    first = backup_plugin.backup_evidence(evidence)
    assert isinstance(first, BackupEvidence)
    assert first.guests[100].name == "web"
    assert backup_plugin.backup_evidence(evidence) is first  # parsed once, shared by the cases

    assert backup_plugin.backup_evidence(Evidence()) == "the backups were not read in this run"
    failed = Evidence(extra={backup_plugin.NAME: {"error": "RuntimeError: boom"}})
    assert backup_plugin.backup_evidence(failed) == (
        "reading the backups failed: RuntimeError: boom"
    )
    broken = Evidence(extra={backup_plugin.KEY: {"guests": "not a mapping"}})
    found = backup_plugin.backup_evidence(broken)
    assert isinstance(found, str)
    assert found.startswith("the backup evidence cannot be read (")


def test_without_evidence_the_datastore_case_fails_and_the_others_point_at_it() -> None:
    why = "reading the backups failed: RuntimeError: boom"

    datastore = backup_plugin._unread("datastore", SPEC, why)
    assert (datastore.check, datastore.storage, datastore.status) == (
        "datastore",
        "homelab",
        "fail",
    )
    assert datastore.message == f"{why}; nothing about the backups is known"
    for check in ("capacity", "backups", "verified"):
        verdict = backup_plugin._unread(check, SPEC, why)
        assert (verdict.check, verdict.status) == (check, "skip")
        assert verdict.message == f"{why} (see the datastore case)"


def test_who_names_the_pve_token_or_user() -> None:
    class Settings:
        def __init__(self, pve: PveSettings) -> None:
            self.pve = pve

    token = PveSettings(url="https://pve1:8006", token_id="root@pam!check", token_secret="x")
    user = PveSettings(url="https://pve1:8006", user="audit@pve", password="x")

    assert backup_plugin._who(Settings(token)) == "the PVE token root@pam!check"  # type: ignore[arg-type]
    assert backup_plugin._who(Settings(user)) == "the PVE user audit@pve"  # type: ignore[arg-type]


def cells(table: str) -> list[tuple[str, list[str]]]:
    rows = re.findall(r"<tr([^>]*)>(.*?)</tr>", table)
    return [(style, re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row)) for style, row in rows]


def test_the_table_shows_each_guest_and_marks_stale_and_failed_rows() -> None:
    rows = [
        (Guest(100, "web", "pve1", "qemu"), Backup(100, "vm", T - 6 * H, 10, "ok", T - 5 * H)),
        (Guest(101, "", "pve1", "lxc"), Backup(101, "ct", T - 26 * H - 1, 10, None)),
        (Guest(200, "db<1>", "pve2", "qemu"), Backup(200, "vm", T - 26 * H, 10, "failed")),
        (Guest(300, "mail", "pve3", "qemu"), None),
    ]

    table = backup_plugin.guest_table_html(SPEC, rows, NOW)

    assert "newest backup of each guest on &#x27;homelab&#x27; (max_age 26h)" in table
    found = cells(table)
    assert found[0] == (
        "",
        ["guest", "name", "node", "newest backup", "age", "verification"],
    )
    red = " style='color:#c22'"
    assert found[1:] == [
        ("", ["vm 100", "web", "pve1", "2025-06-01 06:00 UTC", "6h", "ok (2025-06-01 07:00 UTC)"]),
        (red, ["ct 101", "-", "pve1", "2025-05-31 09:59 UTC", "26h (stale)", "not verified"]),
        # exactly max_age is not stale; a failed verification is marked all the same
        (red, ["vm 200", html.escape("db<1>"), "pve2", "2025-05-31 10:00 UTC", "26h", "failed"]),
        (red, ["vm 300", "mail", "pve3", "only one still being written", "-", "-"]),
    ]
