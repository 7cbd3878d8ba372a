"""PVE tasks: UPIDs in PVE's format and `GET /nodes/{node}/tasks` (pve-manager
`PVE/API2/Tasks.pm`, pve-common `PVE::Tools::upid_encode`/`upid_normalize_status_type`).

A UPID is `UPID:<node>:<pid 8 hex>:<pstart 8 hex>:<starttime 8 hex>:<type>:<id>:<user>:`. The list
is newest first; `status` is `OK`, `WARNINGS: <n>` or an error text, and the filters sort them
into ok / warning / error. Without `Sys.Audit` on `/nodes/<node>` a caller sees only its own
tasks (a token only its own, a user also its tokens'); a token's task shows `user` and
`tokenid` apart.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import Any

from pbs_compliance.lab.pve_auth import Principal
from pbs_compliance.lab.pve_cluster import Task
from pbs_compliance.lab.pve_schema import Params, Prop, split_list, validate

__all__ = ["TASKS_SCHEMA", "list_tasks", "make_task", "status_type", "upid"]

TASKS_SCHEMA: Mapping[str, Prop] = {
    "node": Prop("string", optional=False, format="pve-node"),
    "start": Prop("integer", minimum=0),
    "limit": Prop("integer", minimum=0),
    "userfilter": Prop("string"),
    "typefilter": Prop("string"),
    "vmid": Prop("integer", minimum=100, maximum=999999999),
    "errors": Prop("boolean"),
    "source": Prop("string", enum=("archive", "active", "all")),
    "since": Prop("integer"),
    "until": Prop("integer"),
    "statusfilter": Prop("string"),
}
_STATUS_TYPES = ("ok", "warning", "error", "unknown")


def upid(node: str, pid: int, pstart: int, starttime: int, kind: str, ident: str, user: str) -> str:
    return f"UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{kind}:{ident}:{user}:"


def make_task(
    node: str,
    kind: str,
    ident: str,
    user: str,
    starttime: int,
    endtime: int | None,
    status: str | None,
    rng: random.Random | None = None,
) -> Task:
    """A task as a node records it; pid and pstart look like a real worker's."""
    pick = rng or random.Random()
    pid, pstart = pick.randint(1000, 4_000_000), pick.randint(10_000, 90_000_000)
    return Task(
        upid=upid(node, pid, pstart, starttime, kind, ident, user),
        node=node,
        pid=pid,
        pstart=pstart,
        starttime=starttime,
        type=kind,
        id=ident,
        user=user,
        endtime=endtime,
        status=status,
    )


def status_type(status: str | None) -> str:
    """`upid_normalize_status_type`."""
    if not status:
        return "unknown"
    if status == "OK":
        return "ok"
    if re.match(r"^WARNINGS: \d+$", status):
        return "warning"
    if status == "unexpected status":
        return "unknown"
    return "error"


def _own(task: Task, who: Principal) -> bool:
    """`$check_task_user`: a token sees its own tasks, a user its own and its tokens'."""
    return task.user == who.userid or task.user.split("!", 1)[0] == who.userid


def _item(task: Task, running: bool) -> dict[str, Any]:
    item: dict[str, Any] = {
        "upid": task.upid,
        "node": task.node,
        "pid": task.pid,
        "pstart": task.pstart,
        "starttime": task.starttime,
        "type": task.type,
        "id": task.id,
        "user": task.user,
    }
    if "!" in task.user:
        item["user"], item["tokenid"] = task.user.split("!", 1)
    if task.endtime is not None:
        item["endtime"] = task.endtime
    if task.status is not None:
        item["status"] = task.status
    elif running:
        item["status"] = "RUNNING"
    return item


def list_tasks(tasks: list[Task], params: Params, who: Principal) -> list[dict[str, Any]]:
    """GET /nodes/{node}/tasks over one node's tasks."""
    checked = validate(params, TASKS_SCHEMA)
    node = str(checked["node"])
    start = int(str(checked.get("start") or 0))
    limit = int(str(checked.get("limit") if checked.get("limit") is not None else 50))
    errors = checked.get("errors") == "1"
    source = str(checked.get("source") or "archive")
    wanted = dict.fromkeys(_STATUS_TYPES, True)
    if checked.get("statusfilter") is not None and not errors:
        wanted = dict.fromkeys(_STATUS_TYPES, False)
        for name in split_list(str(checked["statusfilter"])):
            wanted[name.lower()] = True
    elif errors:
        wanted["ok"] = False
    auditor = who.has("Sys.Audit", f"/nodes/{node}")
    userfilter = checked.get("userfilter")
    typefilter = checked.get("typefilter")
    vmid = checked.get("vmid")
    since, until = checked.get("since"), checked.get("until")
    active = [t for t in tasks if t.endtime is None]
    archived = sorted((t for t in tasks if t.endtime is not None), key=lambda t: -t.starttime)
    candidates = []
    if source in ("active", "all"):
        candidates += [(t, True) for t in active]
    if source != "active":
        candidates += [(t, False) for t in archived]
    out: list[dict[str, Any]] = []
    count = 0
    for task, running in candidates:
        if userfilter and str(userfilter).lower() not in task.user.lower():
            continue
        if not (auditor or _own(task, who)):
            continue
        if typefilter and task.type != typefilter:
            continue
        if vmid is not None and task.id != str(vmid):
            continue
        if since is not None and task.starttime < int(str(since)):
            continue
        if until is not None and task.starttime > int(str(until)):
            continue
        if not wanted.get(status_type(task.status), False) and not running:
            continue
        count += 1
        if count <= start or len(out) >= limit:
            continue
        out.append(_item(task, running))
    return out
