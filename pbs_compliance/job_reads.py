"""Read what the `coverage` and `jobs` checks judge, from the PVE API only, once per run.

`GET /cluster/backup` (the jobs), `GET /cluster/resources?type=vm` (the guests), `GET
/pools?poolid=X` for each pool an enabled job selects (its members), and `GET
/nodes/{node}/tasks?typefilter=vzdump&since=...` once per node where a judged job has guests,
bounded by `since` (twice the longest age a judged job's last run may have). Every call has the
client's timeout; the reads run concurrently.

This is a boundary like `evidence`: nothing raised here leaves it. A read that fails is
recorded under its name (`jobs`, `guests`, `pool NAME`, `tasks NODE`) with PVE's words and, for
a refusal, the privilege it takes; the verdicts judge what could be read and name what could
not. No secret is kept: the result is jobs, guests, pool members and task lists, which
serialise to plain JSON for xdist's workers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import TypeAdapter

from pbs_compliance.backup_jobs import (
    BackupJob,
    Guest,
    Selection,
    TaskRun,
    parse_guest,
    parse_job,
    parse_task,
    schedule_period,
    selected,
)
from pbs_compliance.config import ComplianceConfig
from pbs_compliance.evidence import MAX_WORKERS, NO_CREDENTIALS, unexpected
from pbs_compliance.pve import PveClient, PveError, PveNotFound, PvePermissionError
from pbs_compliance.settings import RunSettings

__all__ = ["JobEvidence", "JobsClient", "gather_jobs", "judged_jobs", "lookback", "read_jobs"]

T = TypeVar("T")
TASK_LIMIT = 5000  # PVE lists 50 tasks unless told; a node keeps far fewer vzdump tasks a window
MIN_LOOKBACK = dt.timedelta(days=2)
MAX_LOOKBACK = dt.timedelta(days=400)
# What each read needs (pve-manager's permission checks), named in a refusal.
PRIVILEGES = {
    "jobs": "Sys.Audit on / (e.g. the role PVEAuditor on /)",
    "guests": "VM.Audit on /vms (e.g. the role PVEAuditor on /); without it guests are hidden",
    "pool": "Pool.Audit on /pool/NAME (e.g. the role PVEAuditor on /)",
    "tasks": "Sys.Audit on /nodes/NODE (e.g. the role PVEAuditor on /); without it a token "
    "sees only its own tasks",
}


class JobsClient(PveClient):
    """The PVE client with the reads of this module (same timeout, errors and redaction)."""

    def backup_jobs(self) -> list[dict[str, Any]]:
        """`GET /cluster/backup` (Sys.Audit on /)."""
        return list(self._call(lambda: self.api.cluster.backup.get()))

    def vm_resources(self) -> list[dict[str, Any]]:
        """`GET /cluster/resources?type=vm`: every guest the caller may audit."""
        return list(self._call(lambda: self.api.cluster.resources.get(type="vm")))

    def pool_members(self, pool: str) -> list[int]:
        """`GET /pools?poolid=NAME`: the VMIDs of the pool's guests."""
        found = list(self._call(lambda: self.api.pools.get(poolid=pool)))
        members = found[0].get("members", []) if found else []
        return sorted(
            int(m["vmid"]) for m in members if m.get("type") in ("qemu", "lxc") and "vmid" in m
        )

    def vzdump_tasks(self, node: str, since: int) -> list[dict[str, Any]]:
        """`GET /nodes/{node}/tasks?typefilter=vzdump&since=...`: finished backup tasks."""
        return list(
            self._call(
                lambda: self.api.nodes(node).tasks.get(
                    typefilter="vzdump", since=since, limit=TASK_LIMIT
                )
            )
        )


@dataclass
class JobEvidence:
    """The backup jobs, guests, pools and vzdump tasks of one run (see the module doc)."""

    jobs: list[BackupJob] = field(default_factory=list)
    guests: list[Guest] = field(default_factory=list)
    pools: dict[str, list[int]] = field(default_factory=dict)  # pool -> member VMIDs
    tasks: dict[str, list[TaskRun]] = field(default_factory=dict)  # node -> its vzdump tasks
    since: int = 0  # tasks were read from this time on (epoch seconds)
    errors: dict[str, str] = field(default_factory=dict)  # read -> why it failed
    skipped: str | None = None  # why PVE was not asked at all (no credentials)

    def guest_map(self) -> dict[int, Guest]:
        return {g.vmid: g for g in self.guests}

    def selections(self) -> dict[str, Selection]:
        """Every enabled job's selection, by job id."""
        guests = self.guest_map()
        return {j.id: selected(j, guests, self.pools) for j in self.jobs if j.enabled}

    def to_data(self) -> dict[str, Any]:
        """Plain JSON-able data (what `pytest_pbs_gather` ships to xdist workers)."""
        data: dict[str, Any] = _ADAPTER.dump_python(self, mode="json")
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> JobEvidence:
        return _ADAPTER.validate_python(dict(data))


_ADAPTER: TypeAdapter[JobEvidence] = TypeAdapter(JobEvidence)


def judged_jobs(config: ComplianceConfig, jobs: list[BackupJob]) -> list[BackupJob]:
    """The jobs the `jobs` check has a case for: enabled, to a declared storage."""
    declared = {s.name for s in config.storages}
    return [j for j in jobs if j.enabled and j.storage in declared]


def lookback(config: ComplianceConfig, jobs: list[BackupJob], today: dt.date) -> dt.timedelta:
    """How far back tasks are read: twice the longest age a judged job's last run may have,
    so a run just too old is still seen (and named); at least 2 days, at most 400."""
    ages = [
        config.jobs.allowed_age(job.id, schedule_period(job.schedule, today)[0])
        for job in judged_jobs(config, jobs)
    ]
    longest = max((a for a in ages if a is not None), default=MIN_LOOKBACK)
    return min(max(2 * longest, MIN_LOOKBACK), MAX_LOOKBACK)


def gather_jobs(settings: RunSettings, now: dt.datetime) -> JobEvidence:
    """What a run judges about jobs: skipped without PVE credentials, else `read_jobs`."""
    if not settings.has_pve_credentials:
        return JobEvidence(skipped=NO_CREDENTIALS)
    try:
        client = JobsClient(settings.pve, settings.secrets)
    except PveError as exc:  # pragma: no cover - has_pve_credentials checked what it needs
        return JobEvidence(errors={"jobs": str(exc)})
    return read_jobs(client, settings.config, now)


def read_jobs(client: JobsClient, config: ComplianceConfig, now: dt.datetime) -> JobEvidence:
    """Read jobs, guests, pools and tasks (never raises: see the module doc)."""
    ev = JobEvidence()
    try:
        _read(client, config, now, ev)
    except Exception as exc:  # the boundary: the checks carry the reason
        ev.errors["jobs"] = unexpected(exc, client.redact)
    return ev


def _read(client: JobsClient, config: ComplianceConfig, now: dt.datetime, ev: JobEvidence) -> None:
    with ThreadPoolExecutor(max_workers=MAX_WORKERS) as pool:
        jobs = pool.submit(_guarded, client.backup_jobs, client)
        guests = pool.submit(_guarded, client.vm_resources, client)
        job_items, job_error = jobs.result()
        guest_items, guest_error = guests.result()
        _note(ev, "jobs", job_error)
        _note(ev, "guests", guest_error)
        ev.jobs = [parse_job(item) for item in job_items or ()]
        ev.guests = sorted(
            (g for g in (parse_guest(item) for item in guest_items or ()) if g is not None),
            key=lambda g: g.vmid,
        )
        names = sorted({j.pool for j in ev.jobs if j.enabled and j.pool})
        members = {
            name: pool.submit(_guarded, lambda n=name: client.pool_members(n), client)
            for name in names
        }
        for name, future in members.items():
            vmids, error = future.result()
            if error is not None and error[0] is PveNotFound:
                ev.pools[name] = []  # deleted since the job was saved: the job selects no one
                continue
            _note(ev, f"pool {name}", error)
            if vmids is not None:
                ev.pools[name] = vmids
        if job_error is not None or guest_error is not None:
            return  # without jobs and guests, no node is known to have a judged job's guests
        ev.since = int((now - lookback(config, ev.jobs, now.date())).timestamp())
        selections = ev.selections()
        nodes = sorted(
            {node for job in judged_jobs(config, ev.jobs) for node in selections[job.id].per_node}
        )
        lists = {
            node: pool.submit(_guarded, lambda n=node: client.vzdump_tasks(n, ev.since), client)
            for node in nodes
        }
        for node, listed in lists.items():
            task_items, error = listed.result()
            _note(ev, f"tasks {node}", error)
            if task_items is not None:
                runs = (parse_task({"node": node, **item}) for item in task_items)
                ev.tasks[node] = [t for t in runs if t is not None]


ReadError = tuple[type[Exception], str]  # (kind, what PVE said)


def _guarded(read: Callable[[], T], client: PveClient) -> tuple[T | None, ReadError | None]:
    """One read's result, or its failure (PVE's words; unexpected errors in one line)."""
    try:
        return read(), None
    except PveError as exc:
        return None, (type(exc), str(exc))
    except Exception as exc:  # the boundary
        return None, (Exception, unexpected(exc, client.redact))


def _note(ev: JobEvidence, name: str, error: ReadError | None) -> None:
    """Record a failed read under `name` (`jobs`, `pool prod`, `tasks pve1`); a refusal
    names the privilege the read takes."""
    if error is None:
        return
    kind, text = error
    what, _, subject = name.partition(" ")
    if kind is PvePermissionError:
        privilege = PRIVILEGES[what].replace("NAME", subject).replace("NODE", subject)
        text = f"{text} - the PVE token or user needs {privilege}"
    ev.errors[name] = text
