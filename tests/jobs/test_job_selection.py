"""PVE's job rules as pure functions: parsing the API's items, selection, matching runs."""

from __future__ import annotations

import datetime as dt

import pytest
from jobs_data import GUESTS, run

from pbs_compliance.backup_jobs import (
    BackupJob,
    Guest,
    Selection,
    TaskRun,
    job_runs,
    parse_guest,
    parse_job,
    parse_task,
    schedule_period,
    selected,
)

GUEST_MAP = {g.vmid: g for g in GUESTS}
POOLS = {"prod": [100, 200], "empty": []}


def test_parse_job_as_pve_lists_it() -> None:
    job = parse_job(
        {"id": "backup-1", "type": "vzdump", "schedule": "02:00", "storage": "homelab",
         "vmid": "100, 101;102", "node": "pve1", "comment": "nightly", "next-run": 1}
    )  # fmt: skip

    assert job == BackupJob(
        id="backup-1", enabled=True, schedule="02:00", storage="homelab", node="pve1",
        all=False, vmids=(100, 101, 102), exclude=(), pool=None, comment="nightly",
    )  # fmt: skip


@pytest.mark.parametrize(("value", "enabled"), [(1, True), (0, False), ("0", False), (None, True)])
def test_enabled_is_one_when_absent(value: object, enabled: bool) -> None:
    item = {"id": "j"} if value is None else {"id": "j", "enabled": value}

    assert parse_job(item).enabled is enabled


def test_parse_job_all_exclude_pool_and_empty_storage() -> None:
    job = parse_job({"id": "j", "all": 1, "exclude": "100,bad,101", "pool": "", "storage": ""})

    assert (job.all, job.exclude, job.pool, job.storage) == (True, (100, 101), None, None)
    assert job.describe() == "j (storage (default), schedule -)"


def test_parse_guest() -> None:
    item = {"id": "lxc/101", "vmid": 101, "node": "pve1", "type": "lxc", "name": "dns",
            "template": 1, "tags": "a;b", "pool": "infra"}  # fmt: skip

    assert parse_guest(item) == Guest(101, "pve1", "lxc", "dns", True, ("a", "b"), "infra")
    assert parse_guest({"vmid": 5, "node": "pve1", "type": "storage"}) is None
    assert parse_guest({"node": "pve1", "type": "qemu"}) is None
    assert parse_guest({"vmid": 5, "type": "qemu"}) is None
    assert parse_guest({"vmid": 7, "node": "n", "type": "qemu"}) == Guest(7, "n", "qemu", "")


def test_guest_label() -> None:
    assert GUEST_MAP[100].label() == "vmid 100 'web' (qemu) on pve1"
    assert Guest(5, "n").label() == "vmid 5 (qemu) on n"


def test_parse_task() -> None:
    item = {"upid": "UPID:x", "node": "pve1", "starttime": 10, "endtime": 20, "status": "OK",
            "id": "", "user": "root@pam", "type": "vzdump"}  # fmt: skip

    assert parse_task(item) == TaskRun("UPID:x", "pve1", 10, 20, "OK", "", "root@pam")
    running = parse_task({"upid": "UPID:y", "node": "pve1", "starttime": 10, "id": "100"})
    assert running == TaskRun("UPID:y", "pve1", 10, None, None, "100", "")
    assert parse_task({"node": "pve1", "starttime": 10}) is None
    assert parse_task({"upid": "UPID:z", "node": "pve1"}) is None


@pytest.mark.parametrize(
    ("status", "ok", "warnings"),
    [("OK", True, False), ("WARNINGS: 2", False, True), ("job errors", False, False),
     (None, False, False)],
)  # fmt: skip
def test_task_status(status: str | None, ok: bool, warnings: bool) -> None:
    task = TaskRun("u", "n", 1, 2, status)

    assert (task.ok, task.warnings) == (ok, warnings)


@pytest.mark.parametrize(
    ("job", "per_node"),
    [
        (BackupJob("a", all=True), {"pve1": (100, 101), "pve2": (200, 9000)}),
        (BackupJob("b", all=True, exclude=(101, 9000)), {"pve1": (100,), "pve2": (200,)}),
        (BackupJob("c", vmids=(200, 101, 555)), {"pve1": (101,), "pve2": (200,)}),
        (BackupJob("d", pool="prod"), {"pve1": (100,), "pve2": (200,)}),
        (BackupJob("e", pool="prod", vmids=(101,), all=True), {"pve1": (100,), "pve2": (200,)}),
        (BackupJob("f", vmids=(101,), all=True), {"pve1": (101,)}),
        (BackupJob("g", all=True, node="pve2"), {"pve2": (200, 9000)}),
        (BackupJob("h", vmids=(100, 200), node="pve1"), {"pve1": (100,)}),
        (BackupJob("i", pool="gone"), {}),
        (BackupJob("j", pool="empty"), {}),
        (BackupJob("k"), {}),
        (BackupJob("l", exclude=(100,)), {}),  # exclude without all selects nothing
    ],
)
def test_selection_as_vzdump_does_it(job: BackupJob, per_node: dict[str, tuple[int, ...]]) -> None:
    assert selected(job, GUEST_MAP, POOLS) == Selection(per_node)


def test_selection_vmids() -> None:
    assert Selection({"a": (1, 2), "b": (3,)}).vmids() == frozenset({1, 2, 3})


def test_runs_are_matched_by_the_shape_of_the_job_on_each_node() -> None:
    many = BackupJob("many", all=True)
    one = BackupJob("one", vmids=(100,))
    other = BackupJob("other", pool="prod")
    selections = {j.id: selected(j, GUEST_MAP, POOLS) for j in (many, one, other)}
    older, newer = run("pve1", ended_ago=7200), run("pve1", ended_ago=3600)
    single = run("pve1", "job errors", ident="100")
    running = TaskRun("UPID:run", "pve1", 5, None, None, "")
    tasks = {"pve1": [older, single, newer, running], "pve2": [run("pve2", ident="200")]}

    assert job_runs(many, selections, tasks) == {"pve1": ([newer, older], ()), "pve2": ([], ())}
    assert job_runs(one, selections, tasks) == {"pve1": ([single], ("other",))}
    assert job_runs(other, selections, tasks) == {
        "pve1": ([single], ("one",)),
        "pve2": ([tasks["pve2"][0]], ()),
    }
    assert job_runs(BackupJob("unknown"), selections, tasks) == {}


def test_runs_of_the_same_start_sort_by_end() -> None:
    job = BackupJob("many", all=True)
    first = TaskRun("UPID:1", "pve1", 100, 200, "OK")
    second = TaskRun("UPID:2", "pve1", 100, 300, "OK")
    selections = {"many": selected(job, GUEST_MAP, POOLS)}

    runs = job_runs(job, selections, {"pve1": [first, second]})

    assert runs["pve1"][0] == [second, first]


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("02:00", (dt.timedelta(hours=24), "")),
        ("mon..fri 02:00", (dt.timedelta(hours=72), "")),
        (None, (None, "it has no schedule")),
        ("", (None, "it has no schedule")),
        ("25:00", (None, "its schedule is not valid: invalid calendar event '25:00' - hour "
                         "'25' out of range")),
        ("2027-03-01 02:00", (None, "its schedule '2027-03-01 02:00' does not repeat (one "
                                    "date)")),
    ],
)  # fmt: skip
def test_schedule_period(schedule: str | None, expected: tuple[object, str]) -> None:
    assert schedule_period(schedule, dt.date(2026, 12, 1)) == expected
