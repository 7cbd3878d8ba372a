"""PVE backup jobs: `/cluster/backup[/{id}[/included_volumes]]` and
`/cluster/backup-info/not-backed-up`, following pve-manager 9 (`PVE/API2/Backup.pm`,
`PVE/API2/Cluster/BackupInfo.pm`, `PVE/VZDump.pm`) and what the real handlers answered:

- checks before the jobs.cfg lock are ordinary errors: schema (400 with `errors`), a pool that
  does not exist (403), a missing schedule (400);
- checks inside the lock die as text, so PVE answers 500 and the reason phrase is the
  exception's first line: `400 Parameter verification failed.` for option conflicts, a missing
  selection, an unknown `delete` key or a job deleted twice (detail only in `message`);
  `Job '<id>' already exists`, `no such vzdump job`, `no options specified` as they are;
- `exclude` implies `all`; setting `vmid` drops `all`, `exclude` and `pool`;
- `not-backed-up` counts every job, enabled or not (PVE's blind spot), and shows only guests
  the caller may audit; `included_volumes` honours the job's `node`.

Over 400 lines on purpose: the schema, the checks and the handlers are one piece of PVE
whose order of checks is the behaviour; split apart, that order would be hard to see.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

from pbs_compliance.calendar_event import CalendarEvent, CalendarEventError
from pbs_compliance.lab.pve_auth import Principal, require_any
from pbs_compliance.lab.pve_cluster import ClusterStore, Guest, Job
from pbs_compliance.lab.pve_errors import PveError, param_error
from pbs_compliance.lab.pve_schema import (
    Params,
    Prop,
    Value,
    parse_prune_backups,
    split_list,
    validate,
)

__all__ = [
    "JOB_CREATE_SCHEMA",
    "create_job",
    "delete_job",
    "included_guests",
    "included_volumes",
    "list_jobs",
    "not_backed_up",
    "read_job",
    "update_job",
]

_B = Prop("boolean")
_S = Prop("string")
_I0 = Prop("integer", minimum=0)
# PVE::VZDump::Common $confdesc: every option a job can hold.
_CONFDESC: Mapping[str, Prop] = {
    "vmid": Prop("string", format="pve-vmid-list"),
    "node": Prop("string", format="pve-node"),
    "all": _B,
    "stdexcludes": _B,
    "compress": Prop("string", enum=("0", "1", "gzip", "lzo", "zstd")),
    "pigz": Prop("integer"),
    "zstd": Prop("integer"),
    "quiet": _B,
    "mode": Prop("string", enum=("snapshot", "suspend", "stop")),
    "exclude": Prop("string", format="pve-vmid-list"),
    "exclude-path": _S,
    "mailto": _S,
    "mailnotification": Prop("string", enum=("always", "failure")),
    "notification-mode": Prop("string", enum=("auto", "legacy-sendmail", "notification-system")),
    "tmpdir": _S,
    "dumpdir": _S,
    "script": _S,
    "storage": Prop("string", format="pve-storage-id"),
    "stop": _B,
    "bwlimit": _I0,
    "ionice": Prop("integer", minimum=0, maximum=8),
    "performance": _S,
    "fleecing": _S,
    "lockwait": _I0,
    "stopwait": _I0,
    "prune-backups": Prop("string", format="prune-backups"),
    "remove": _B,
    "pool": _S,
    "notes-template": Prop("string", max_length=1024),
    "protected": _B,
    "pbs-change-detection-mode": Prop("string", enum=("legacy", "data", "metadata")),
}
_REQUIRES = {"notes-template": "storage", "protected": "storage", "dow": "starttime"}
_JOB_EXTRAS: Mapping[str, Prop] = {
    "schedule": Prop("string", format="pve-calendar-event", max_length=128),
    "starttime": Prop("string", pattern=r"\d{1,2}:\d{1,2}"),
    "dow": Prop("string", format="pve-day-of-week-list"),
    "enabled": _B,
    "repeat-missed": _B,
    "comment": Prop("string", max_length=512),
}
_JOB_ID = Prop("string", optional=False, max_length=50)
JOB_CREATE_SCHEMA: Mapping[str, Prop] = {
    **_CONFDESC,
    **_JOB_EXTRAS,
    "id": Prop("string", format="pve-configid"),
}
JOB_UPDATE_SCHEMA: Mapping[str, Prop] = {
    **_CONFDESC,
    **_JOB_EXTRAS,
    "id": _JOB_ID,
    "delete": Prop("string", format="pve-configid-list"),
}
JOB_ID_SCHEMA: Mapping[str, Prop] = {"id": _JOB_ID}
_NUMBERS = {k for k, p in {**_CONFDESC, **_JOB_EXTRAS}.items() if p.type in ("boolean", "integer")}
_OBJECTS = ("prune-backups", "fleecing", "performance")
_DELETABLE = {"comment", "repeat-missed"}
_SYS_AUDIT = ("Sys.Audit",)
_SYS_MODIFY = ("Sys.Modify",)
_VMID_RE = re.compile(r"^[1-9][0-9]{2,8}$")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _format_error(fmt: str, value: str) -> str | None:
    """The job-specific formats; None when the value passes."""
    if fmt == "pve-vmid-list":
        if any(not _VMID_RE.match(v) for v in split_list(value)):
            return "value does not look like a valid VM ID"
    elif fmt == "pve-calendar-event":
        try:
            CalendarEvent.parse(value)
        except CalendarEventError as exc:
            return str(exc)
    elif fmt == "pve-day-of-week-list":
        bad = [d for d in split_list(value) if d not in _DAYS]
        if bad:
            return f"invalid day '{bad[0]}'"
    return None


def _validate(params: Params, schema: Mapping[str, Prop]) -> dict[str, Value]:
    """The generic schema check, then the job formats and `requires` (JSONSchema.pm)."""
    own = {"pve-vmid-list", "pve-calendar-event", "pve-day-of-week-list"}
    plain = {k: (Prop(p.type, p.optional, None, p.pattern, p.enum, p.minimum, p.maximum,
                      p.max_length, p.min_length) if p.format in own else p)
             for k, p in schema.items()}  # fmt: skip
    errors: dict[str, str] = {}
    try:
        checked = validate(params, plain)
    except PveError as exc:
        errors.update(exc.errors or {})
        checked = {k: v for k, v in params.items() if k not in errors}
    for key, prop in schema.items():
        value = checked.get(key)
        if prop.format in own and isinstance(value, str) and key not in errors:
            problem = _format_error(prop.format or "", value)
            if problem is not None:
                errors[key] = f"invalid format - {problem}\n"
    for key, needed in _REQUIRES.items():
        if key in schema and checked.get(key) is not None and checked.get(needed) is None:
            errors.setdefault(needed, f"missing property - '{key}' requires this property")
    if errors:
        raise param_error(errors)
    return checked


def _locked_param_error(errors: Mapping[str, str]) -> PveError:
    """A `raise_param_exc` inside `cfs_lock_file`: re-died as text, so a 500 whose first line
    is the exception's `400 Parameter verification failed.`"""
    detail = "".join(f"{k}: {v}\n" for k, v in errors.items())
    return PveError(500, "400 Parameter verification failed.\n" + detail)


def _verify(job: dict[str, str], check_missing: bool) -> None:
    """`PVE::VZDump::verify_vzdump_parameters` (raised inside the lock)."""
    truthy = set(_truthy(job))
    for key in ("all", "exclude", "pool"):
        if key in truthy and "vmid" in truthy:
            raise _locked_param_error({key: "option conflicts with option 'vmid'"})
    if job.get("prune-backups") is not None:
        try:
            parse_prune_backups(job["prune-backups"])
        except PveError as exc:
            raise _locked_param_error({"prune-backups": exc.message.strip()}) from None
    template = job.get("notes-template")
    if template:
        problem = _notes_template_problem(template)
        if problem:
            raise _locked_param_error({"notes-template": problem})
    if job.get("exclude") is not None and not job.get("pool"):
        job["all"] = "1"
    if check_missing and not ({"all", "stop", "pool", "vmid"} & set(_truthy(job))):
        raise _locked_param_error({"vmid": "property is missing"})


def _truthy(job: Mapping[str, str]) -> list[str]:
    return [k for k, v in job.items() if v not in ("", "0")]


def _notes_template_problem(template: str) -> str | None:
    if "\n" in template:
        return "contains a line feed"
    problems = [
        f"escape sequence '\\{m.group(1)}' at char {m.start()}"
        for m in re.finditer(r"\\(.)", template)
        if m.group(1) not in ("n", "\\")
    ]
    problems += [
        f"variable '{m.group(1)}' at char {m.start(1)}"
        for m in re.finditer(r"\{\{([^\s{}]+)\}\}", template)
        if m.group(1) not in ("cluster", "guestname", "node", "vmid")
    ]
    return "found unknown: " + ", ".join(problems) if problems else None


def _schedule(job: dict[str, str], required: bool) -> None:
    """`$schedule_param_check`: `starttime` + `dow` become `schedule` (before the lock)."""
    if job.get("schedule") is not None:
        if job.get("starttime") is not None:
            raise param_error({"starttime": "'starttime' and 'schedule' cannot both be set"})
    elif job.get("starttime") is None:
        if required:
            raise param_error({"schedule": "neither 'starttime' nor 'schedule' were set"})
    else:
        days = ",".join(split_list(job.get("dow")))
        start = job["starttime"]
        job["schedule"] = start if not days or days == ",".join(_DAYS) else f"{days} {start}"
    job.pop("starttime", None)
    job.pop("dow", None)


def _pool_checks(store: ClusterStore, who: Principal, pool: str | None) -> None:
    if not pool:
        return
    if pool not in store.pools():
        raise PveError(403, f"Permission check failed (pool '{pool}' does not exist)")
    require_any(who, f"/pool/{pool}", ("VM.Backup",))


def _storage_checks(who: Principal, storage: str | None) -> None:
    """`assert_param_permission_*`: everyone but root@pam needs Allocate on the storage."""
    if storage and not who.is_root:
        require_any(who, f"/storage/{storage}", ("Datastore.Allocate",))


def _strings(checked: Mapping[str, Value]) -> dict[str, str]:
    return {k: v for k, v in checked.items() if isinstance(v, str)}


def create_job(store: ClusterStore, params: Params, who: Principal) -> None:
    """POST /cluster/backup."""
    require_any(who, "/", _SYS_MODIFY)
    job = _strings(_validate(params, JOB_CREATE_SCHEMA))
    _storage_checks(who, job.get("storage"))
    _pool_checks(store, who, job.get("pool"))
    _schedule(job, required=True)
    job.setdefault("enabled", "1")
    job_id = job.pop("id", None) or str(uuid.uuid4())

    def change(jobs: list[Job]) -> tuple[list[Job], None]:
        if any(j.id == job_id for j in jobs):
            raise PveError(500, f"Job '{job_id}' already exists")
        _verify(job, check_missing=True)
        return [*jobs, Job(job_id, tuple(job.items()))], None

    store.write_jobs(change)


def update_job(store: ClusterStore, params: Params, who: Principal) -> None:
    """PUT /cluster/backup/{id}."""
    require_any(who, "/", _SYS_MODIFY)
    update = _strings(_validate(params, JOB_UPDATE_SCHEMA))
    job_id = update.pop("id")
    deletes = split_list(update.pop("delete", None))
    _storage_checks(who, update.get("storage"))
    _pool_checks(store, who, update.get("pool"))
    _schedule(update, required=False)

    def change(jobs: list[Job]) -> tuple[list[Job], None]:
        if not update and not deletes:
            raise PveError(500, "no options specified")
        _verify(dict(update), check_missing=False)
        index = next((i for i, j in enumerate(jobs) if j.id == job_id), None)
        if index is None:
            raise PveError(500, "no such vzdump job")
        job = jobs[index].as_dict()
        _storage_checks(who, job.get("storage"))
        for key in deletes:
            if key not in _CONFDESC and key not in _DELETABLE:
                raise _locked_param_error({"delete": f"unknown option '{key}'"})
            job.pop(key, None)
        job.update(update)
        if job.get("exclude") is not None and job.get("pool") is None:
            job["all"] = "1"
        if update.get("vmid") is not None:
            for key in ("all", "exclude", "pool"):
                job.pop(key, None)
        elif update.get("all") not in (None, "0"):
            job.pop("vmid", None)
            job.pop("pool", None)
        elif job.get("pool"):
            for key in ("vmid", "all", "exclude"):
                job.pop(key, None)
        _verify(job, check_missing=True)
        jobs[index] = Job(job_id, tuple(job.items()))
        return jobs, None

    store.write_jobs(change)


def delete_job(store: ClusterStore, params: Params, who: Principal) -> None:
    """DELETE /cluster/backup/{id}."""
    require_any(who, "/", _SYS_MODIFY)
    job_id = str(_validate(params, JOB_ID_SCHEMA)["id"])

    def change(jobs: list[Job]) -> tuple[list[Job], None]:
        if not any(j.id == job_id for j in jobs):
            raise _locked_param_error({"id": f"No such job '{job_id}'"})
        return [j for j in jobs if j.id != job_id], None

    store.write_jobs(change)


def _view(job: Job) -> dict[str, Any]:
    """A job as the API returns it: numbers for booleans and integers, objects for property
    strings, `id` and `type` added, `enabled` 1 when absent."""
    out: dict[str, Any] = {}
    for key, value in job.options:
        if key in _NUMBERS and re.match(r"^-?\d+$", value):
            out[key] = int(value)
        elif key in _OBJECTS:
            pairs = [p.split("=", 1) for p in value.split(",") if "=" in p]
            out[key] = {k: v for k, v in pairs}
        else:
            out[key] = value
    out.setdefault("enabled", 1)
    out["id"] = job.id
    out["type"] = "vzdump"
    return out


def list_jobs(store: ClusterStore, params: Params, who: Principal) -> list[dict[str, Any]]:
    """GET /cluster/backup: jobs.cfg order, with `next-run` from the schedule."""
    require_any(who, "/", _SYS_AUDIT)
    validate(params, {})
    out = []
    now = time.time()
    for job in store.jobs():
        item = _view(job)
        schedule = job.get("schedule")
        if schedule:
            try:
                next_run = CalendarEvent.parse(schedule).next_after(now)
            except CalendarEventError:
                next_run = None
            if next_run is not None:
                item["next-run"] = next_run
        out.append(item)
    return out


def _find(store: ClusterStore, job_id: str) -> Job:
    job = next((j for j in store.jobs() if j.id == job_id), None)
    if job is None:
        raise param_error({"id": f"No such job '{job_id}'"})
    return job


def read_job(store: ClusterStore, params: Params, who: Principal) -> dict[str, Any]:
    """GET /cluster/backup/{id} (no `next-run` here)."""
    require_any(who, "/", _SYS_AUDIT)
    return _view(_find(store, str(_validate(params, JOB_ID_SCHEMA)["id"])))


def included_guests(job: Mapping[str, str], guests: Mapping[int, Guest],
                    pools: Mapping[str, str | None]) -> dict[str, list[int]]:  # fmt: skip
    """`PVE::VZDump::get_included_guests`: vmids per node ('' for unknown vmids)."""
    if job.get("pool"):
        vmids = [g.vmid for g in guests.values() if g.pool == job["pool"]]
    elif job.get("vmid"):
        vmids = [int(v) for v in split_list(job["vmid"]) if v.isdigit()]
    elif job.get("all") not in (None, "", "0"):
        excluded = {int(v) for v in split_list(job.get("exclude")) if v.isdigit()}
        vmids = [v for v in guests if v not in excluded]
    else:
        return {}
    per_node: dict[str, list[int]] = {}
    for vmid in sorted(v for v in set(vmids) if v):
        guest = guests.get(vmid)
        if guest is None:
            per_node.setdefault("", []).append(vmid)
        elif job.get("node") in (None, guest.node):
            per_node.setdefault(guest.node, []).append(vmid)
    return per_node


def _may_audit(who: Principal, vmid: int) -> bool:
    return who.has("VM.Audit", f"/vms/{vmid}")


def included_volumes(store: ClusterStore, params: Params, who: Principal) -> dict[str, Any]:
    """GET /cluster/backup/{id}/included_volumes: the guests (and disks) a job covers."""
    require_any(who, "/", _SYS_AUDIT)
    job = _find(store, str(_validate(params, JOB_ID_SCHEMA)["id"]))
    guests = store.guests()
    per_node = included_guests(job.as_dict(), guests, store.pools())
    children: list[dict[str, Any]] = []
    for vmid in sorted(v for vmids in per_node.values() for v in vmids):
        if not _may_audit(who, vmid):
            continue
        guest = guests.get(vmid)
        if guest is None:
            children.append({"id": vmid, "type": "unknown", "leaf": 1})
            continue
        disks = [
            {"id": f"{vmid}:{v['key']}", "name": v["file"], "included": v["included"],
             "reason": v["reason"], "leaf": 1}
            for v in guest.volumes()
        ]  # fmt: skip
        children.append({"id": vmid, "type": guest.type, "name": guest.name or "",
                         "children": disks, "leaf": 0 if disks else 1})  # fmt: skip
    return {"children": children}


def not_backed_up(store: ClusterStore, params: Params, who: Principal) -> list[dict[str, Any]]:
    """GET /cluster/backup-info/not-backed-up: no job (enabled or not) includes them."""
    require_any(who, "/", _SYS_AUDIT)
    validate(params, {})
    guests = store.guests()
    pools = store.pools()
    covered = {
        vmid
        for job in store.jobs()
        for vmids in included_guests(job.as_dict(), guests, pools).values()
        for vmid in vmids
    }
    out = []
    for vmid, guest in sorted(guests.items()):
        if vmid in covered or not _may_audit(who, vmid):
            continue
        entry: dict[str, Any] = {"vmid": vmid, "type": guest.type}
        if guest.name is not None:
            entry["name"] = guest.name
        out.append(entry)
    return out
