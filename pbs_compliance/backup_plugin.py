"""The backup health checks (`datastore`, `capacity`, `backups`, `verified`) in a compliance run.

A pytest plugin the core plugin registers in every run (installed or from a checkout). It
gathers the backup evidence once per run on the controller through `pytest_pbs_gather`
(`backup_reads.gather_backups`: the PBS with the declared credentials, PVE's backup list, the
cluster's guests), beside the probes and the PVE reads; it travels to xdist workers with the
rest of the evidence, under `evidence.extra["backups"]`. A case is judged by `health.judge`
(`check`); a failed one records the guests it names as the JUnit property `guest`, and the
`backups` and `verified` cases show every guest's newest backup as a table in the HTML report.
The checks themselves are `checks/test_backup_health.py`; they are declared in the registry.
"""

from __future__ import annotations

import datetime as dt
import html
import threading
from collections.abc import Generator, Sequence
from typing import Any

import pytest
from pydantic import ValidationError

from pbs_compliance import api, health
from pbs_compliance.backup_reads import Backup, BackupEvidence, Guest, gather_backups
from pbs_compliance.config import StorageSpec
from pbs_compliance.config.model import format_duration
from pbs_compliance.evidence import Evidence
from pbs_compliance.settings import RunSettings
from pbs_compliance.verdicts import Verdict

__all__ = ["KEY", "NAME", "backup_evidence", "check", "guest_table_html"]

KEY = "backups"  # evidence.extra[KEY]
NAME = "pbs-compliance-backups"  # the plugin's name, and where a failed gather files its error
TABLE_CHECKS = ("backups", "verified")  # the cases that show the table of guests
_TABLE = pytest.StashKey[str]()

_lock = threading.Lock()
_parsed: dict[int, tuple[object, BackupEvidence]] = {}  # id(extra data) -> (data, parsed)


@pytest.hookimpl
def pytest_pbs_gather(settings: RunSettings) -> dict[str, Any]:
    """The PBS, PVE's backup lists and the guests, read once per run (never raises:
    `backup_reads`)."""
    return {KEY: gather_backups(settings).to_data()}


def backup_evidence(evidence: Evidence) -> BackupEvidence | str:
    """The run's backup evidence (parsed once per process, then shared by every case), or why
    there is none."""
    data = evidence.extra.get(KEY)
    if not isinstance(data, dict):
        failed = evidence.extra.get(NAME)
        if isinstance(failed, dict) and failed.get("error"):
            return f"reading the backups failed: {failed['error']}"
        return "the backups were not read in this run"
    with _lock:
        known = _parsed.get(id(data))
        if known is not None and known[0] is data:
            return known[1]
    try:
        parsed = BackupEvidence.from_data(data)
    except ValidationError as exc:  # another version's data: say so, never crash the case
        return f"the backup evidence cannot be read ({exc.error_count()} errors)"
    with _lock:
        _parsed[id(data)] = (data, parsed)
    return parsed


def check(pbs: api.Compliance, name: str, spec: StorageSpec) -> None:
    """Judge one backup health case and pass, skip or fail it."""
    __tracebackhide__ = True
    found = backup_evidence(pbs.evidence)
    if isinstance(found, str) and spec.enabled and spec.backups.judges(name):
        verdict = _unread(name, spec, found)
    else:
        ev = found if isinstance(found, BackupEvidence) else BackupEvidence()
        verdict = health.judge(
            name, spec, pbs.server(spec), pbs.evidence.live, ev, pbs.now, _who(pbs.settings)
        )
        if name in TABLE_CHECKS and pbs.node.config.getoption("htmlpath", None):
            rows = health.guest_table(spec, ev, pbs.now)
            if rows:
                pbs.node.stash[_TABLE] = guest_table_html(spec, rows, pbs.now)
    named = dict(verdict.facts).get(health.GUEST_FACT)
    if named and verdict.status == "fail":
        pbs.node.user_properties.append(("guest", named))
    pbs.check(verdict)


def _unread(name: str, spec: StorageSpec, why: str) -> Verdict:
    """No backup evidence at all: the datastore case names it, the others point at it."""
    if name == "datastore":
        return Verdict(name, spec.name, "fail", f"{why}; nothing about the backups is known")
    return Verdict(name, spec.name, "skip", f"{why} (see the datastore case)")


def _who(settings: RunSettings) -> str:
    pve = settings.pve
    if pve.token_id:
        return f"the PVE token {pve.token_id}"
    return f"the PVE user {pve.user}" if pve.user else "the PVE token"


# -- the HTML table of guests ------------------------------------------------------------------


def guest_table_html(
    spec: StorageSpec, rows: Sequence[tuple[Guest, Backup | None]], now: dt.datetime
) -> str:
    """Every judged guest of the storage with its newest finished backup, its age and its
    verification; a row past `max_age` or not verified ok is marked."""
    limit = spec.backups.max_age.total_seconds()
    head = "".join(
        f"<th style='text-align:left;padding-right:1em'>{h}</th>"
        for h in ("guest", "name", "node", "newest backup", "age", "verification")
    )
    body = []
    for guest, backup in rows:
        cells, stale, unverified = _cells(guest, backup, now, limit)
        style = " style='color:#c22'" if stale or unverified else ""
        body.append(
            f"<tr{style}>"
            + "".join(f"<td style='padding-right:1em'>{html.escape(c)}</td>" for c in cells)
            + "</tr>"
        )
    title = html.escape(f"newest backup of each guest on '{spec.name}' (max_age {_max_age(spec)})")
    return (
        f"<div class='pbs-compliance-guests'><p><b>{title}</b></p><table>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def _cells(
    guest: Guest, backup: Backup | None, now: dt.datetime, limit: float
) -> tuple[list[str], bool, bool]:
    kind = "ct" if guest.kind == "lxc" else "vm"
    first = [f"{kind} {guest.vmid}", guest.name or "-", guest.node]
    if backup is None:
        return [*first, "only one still being written", "-", "-"], True, False
    seconds = now.timestamp() - backup.ctime
    verification = backup.verification or "not verified"
    if backup.verification and backup.verified_at:
        verification += f" ({health.stamp(backup.verified_at)})"
    stale = seconds > limit
    age = health.age(seconds) + (" (stale)" if stale else "")
    cells = [*first, health.stamp(backup.ctime), age, verification]
    return cells, stale, backup.verification == "failed"


def _max_age(spec: StorageSpec) -> str:
    return format_duration(spec.backups.max_age)


def pytest_configure(config: pytest.Config) -> None:
    if api.active(config) and config.getoption("htmlpath", None):
        config.pluginmanager.register(_GuestTables(), f"{NAME}-html")


class _GuestTables:
    """The table of guests under the case's evidence table (pytest-html). Registered only in a
    run that writes the HTML report: every phase of every case calls a registered hook."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        table = item.stash.get(_TABLE, None)
        if table is not None and report.when == "call":
            api.add_html(report, table)
        return report
