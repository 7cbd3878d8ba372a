"""PVE's backup jobs, guests and vzdump tasks as plain data, and PVE's own rules over them.

Pure functions only (the reads are in `job_reads`, the verdicts in `job_verdicts`):

- which guests a job selects, as `PVE::VZDump::get_included_guests` does: `pool` members, else
  the `vmid` list, else with `all` every guest minus `exclude`; then only those on the job's
  `node` when it has one. Templates are selected too (vzdump backs them up); the coverage check
  leaves them out of the guests that must be covered.
- which vzdump task is a run of which job. PVE's task list does not name the job (only the
  task log's first line does, `--job-id`): each node runs its own task for a job, whose `id` is
  the VMID when the job has exactly one guest on that node and empty otherwise. So a task on a
  node belongs to the enabled jobs with that shape of guests there; two jobs of the same shape
  on a node (one guest each, the same guest) share their runs, and the verdict says so.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pbs_compliance.calendar_event import CalendarEvent, CalendarEventError
from pbs_compliance.pvevalues import flag, split_list, text

__all__ = [
    "BackupJob",
    "Guest",
    "TaskRun",
    "job_runs",
    "parse_guest",
    "parse_job",
    "parse_task",
    "schedule_period",
    "selected",
]


@dataclass(frozen=True)
class Guest:
    """A VM or container as `/cluster/resources?type=vm` lists it."""

    vmid: int
    node: str
    type: str = "qemu"  # qemu | lxc
    name: str = ""
    template: bool = False
    tags: tuple[str, ...] = ()
    pool: str | None = None

    def label(self) -> str:
        """`vmid 100 'web' (qemu) on pve1` - what a message names a guest by."""
        name = f" '{self.name}'" if self.name else ""
        return f"vmid {self.vmid}{name} ({self.type}) on {self.node}"


@dataclass(frozen=True)
class BackupJob:
    """A `vzdump` job of `/cluster/backup` (the options the checks judge)."""

    id: str
    enabled: bool = True
    schedule: str | None = None
    storage: str | None = None  # None: vzdump.conf's storage, else `local`
    node: str | None = None  # None: every node
    all: bool = False
    vmids: tuple[int, ...] = ()
    exclude: tuple[int, ...] = ()
    pool: str | None = None
    comment: str = ""

    def describe(self) -> str:
        """`backup-homelab (storage homelab-backup, schedule 02:00)`."""
        return f"{self.id} (storage {self.storage or '(default)'}, schedule {self.schedule or '-'})"


@dataclass(frozen=True)
class TaskRun:
    """A finished vzdump task of one node (`/nodes/{node}/tasks?typefilter=vzdump`)."""

    upid: str
    node: str
    starttime: int
    endtime: int | None = None
    status: str | None = None  # OK, WARNINGS: n, or PVE's error text (e.g. `job errors`)
    id: str = ""  # the VMID of a single-guest run, else empty
    user: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "OK"

    @property
    def warnings(self) -> bool:
        return self.status is not None and self.status.startswith("WARNINGS:")


@dataclass(frozen=True)
class Selection:
    """The guests a job selects, per node (VMIDs it names that do not exist are left out)."""

    per_node: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def vmids(self) -> frozenset[int]:
        return frozenset(v for vmids in self.per_node.values() for v in vmids)


def _vmids(value: object) -> tuple[int, ...]:
    return tuple(int(v) for v in split_list(value) if v.isdigit())


def parse_job(item: Mapping[str, Any]) -> BackupJob:
    """One item of `GET /cluster/backup` (`enabled` is 1 when absent, as PVE means it)."""
    return BackupJob(
        id=str(item.get("id", "")),
        enabled=flag(item.get("enabled", 1)),
        schedule=text(item.get("schedule")),
        storage=text(item.get("storage")),
        node=text(item.get("node")),
        all=flag(item.get("all")),
        vmids=_vmids(item.get("vmid")),
        exclude=_vmids(item.get("exclude")),
        pool=text(item.get("pool")),
        comment=text(item.get("comment")) or "",
    )


def parse_guest(item: Mapping[str, Any]) -> Guest | None:
    """One item of `GET /cluster/resources?type=vm`; None for anything but qemu and lxc."""
    kind = item.get("type")
    if kind not in ("qemu", "lxc") or item.get("vmid") is None or not item.get("node"):
        return None
    return Guest(
        vmid=int(item["vmid"]),
        node=str(item["node"]),
        type=str(kind),
        name=text(item.get("name")) or "",
        template=flag(item.get("template")),
        tags=tuple(t for t in split_list(item.get("tags")) if t),
        pool=text(item.get("pool")),
    )


def parse_task(item: Mapping[str, Any]) -> TaskRun | None:
    """One item of `GET /nodes/{node}/tasks`; None for a task without UPID or start time."""
    if not item.get("upid") or item.get("starttime") is None:
        return None
    end = item.get("endtime")
    return TaskRun(
        upid=str(item["upid"]),
        node=str(item.get("node", "")),
        starttime=int(item["starttime"]),
        endtime=None if end is None else int(end),
        status=text(item.get("status")),
        id=text(item.get("id")) or "",
        user=str(item.get("user", "")),
    )


def selected(
    job: BackupJob, guests: Mapping[int, Guest], pools: Mapping[str, Sequence[int]]
) -> Selection:
    """`get_included_guests`: pool, else vmid list, else all minus exclude; then `node`."""
    if job.pool:
        vmids: Iterable[int] = pools.get(job.pool, ())
    elif job.vmids:
        vmids = job.vmids
    elif job.all:
        excluded = set(job.exclude)
        vmids = [v for v in guests if v not in excluded]
    else:
        return Selection()
    per_node: dict[str, list[int]] = {}
    for vmid in sorted(set(vmids)):
        guest = guests.get(vmid)
        if guest is None or (job.node is not None and job.node != guest.node):
            continue
        per_node.setdefault(guest.node, []).append(vmid)
    return Selection({node: tuple(v) for node, v in sorted(per_node.items())})


def _shape(vmids: Sequence[int]) -> str:
    """What a node's task `id` is for a job with these guests there: the one VMID, or ''."""
    return str(vmids[0]) if len(vmids) == 1 else ""


def job_runs(
    job: BackupJob,
    selections: Mapping[str, Selection],
    tasks: Mapping[str, Sequence[TaskRun]],
) -> dict[str, tuple[list[TaskRun], tuple[str, ...]]]:
    """Per node where `job` has guests: its finished runs there, newest first, and the other
    enabled jobs those runs may equally belong to (same shape of guests on that node).

    `selections` holds every enabled job's selection by job id (see the module doc)."""
    mine = selections.get(job.id, Selection())
    out: dict[str, tuple[list[TaskRun], tuple[str, ...]]] = {}
    for node, vmids in mine.per_node.items():
        shape = _shape(vmids)
        runs = [
            t
            for t in tasks.get(node, ())
            if t.endtime is not None and t.status is not None and t.id == shape
        ]
        runs.sort(key=lambda t: (t.starttime, t.endtime or 0), reverse=True)
        twins = tuple(
            sorted(
                other
                for other, sel in selections.items()
                if other != job.id and node in sel.per_node and _shape(sel.per_node[node]) == shape
            )
        )
        out[node] = (runs, twins)
    return out


def schedule_period(schedule: str | None, today: dt.date) -> tuple[dt.timedelta | None, str]:
    """A schedule's period (longest gap between two runs) and, when it has none, why."""
    if not schedule:
        return None, "it has no schedule"
    try:
        period = CalendarEvent.parse(schedule).period(today)
    except CalendarEventError as exc:
        return None, f"its schedule is not valid: {exc}"
    if period is None:
        return None, f"its schedule '{schedule}' does not repeat (one date)"
    return period, ""
