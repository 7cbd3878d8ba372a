"""The PBS datastore calls that describe backups: snapshots, groups, status, usage, namespaces.

Request in (already authenticated), answer out; no sockets. What each call shows follows
proxmox-backup 3.2 (`src/api2/admin/datastore.rs`, `namespace.rs`, `src/api2/status.rs`):

- snapshots and groups: `Datastore.Audit` on the namespace lists every group, `Datastore.Backup`
  only the caller's own (a token owns what it wrote; a user also what its tokens wrote),
  neither is a 403; one namespace only (not recursive); a snapshot still being written has no
  `size`, `verification` or `comment`;
- status: Audit or Backup gives the sizes, Read or a privilege below the store gives zeros,
  nothing is a 403;
- datastore-usage: a month of history (30-minute steps) and `estimated-full-date` by least
  squares over it, as PBS computes it (0 when the trend is flat);
- maintenance: `offline` fails every read with `offline maintenance mode: <message>`,
  `read-only` only blocks writes (the lab has no write calls).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pbs_compliance.lab.backups import DatastoreState, Snapshot, base_usage
from pbs_compliance.lab.pbs_acl import AUDIT, BACKUP, NS_PRIVS_OK, READ, PbsAcl

__all__ = [
    "HISTORY_DELTA",
    "HISTORY_POINTS",
    "PbsApiError",
    "StoreRead",
    "datastore_status",
    "datastore_usage",
    "linear_regression",
    "list_groups",
    "list_namespaces",
    "list_snapshots",
]

HISTORY_DELTA = 1800  # PBS's month RRD: one point per 30 minutes ...
HISTORY_POINTS = 1440  # ... for 30 days
_NS_RE = re.compile(r"^(?:[A-Za-z0-9_][A-Za-z0-9._\-]*/){0,7}[A-Za-z0-9_][A-Za-z0-9._\-]*$")


class PbsApiError(Exception):
    """A PBS API failure: its HTTP status and the bare message PBS puts in the body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class StoreRead:
    """One read of a datastore: who asks (`auth_id`, judged by `acl`), of which store on which
    server, the store's state (None: no such datastore), its namespaces, and the query."""

    acl: PbsAcl
    auth_id: str
    server: str
    store: str
    state: DatastoreState | None
    namespaces: frozenset[str]
    query: Mapping[str, str]


def _param_error(name: str, text: str) -> PbsApiError:
    return PbsApiError(400, f"parameter verification failed - '{name}': {text}")


def _ns_param(query: Mapping[str, str], name: str = "ns") -> str:
    ns = query.get(name, "").strip("/")
    if ns and (not _NS_RE.match(ns) or len(ns) > 256):
        raise _param_error(name, f"value does not match the regex pattern '{ns}'")
    return ns


def check_maintenance(state: DatastoreState) -> None:
    """`MaintenanceMode::check` for a read: offline (and delete/unmount) refuse it."""
    if not state.maintenance:
        return
    fields = dict(p.split("=", 1) for p in state.maintenance.split(",") if "=" in p)
    kind, message = fields.get("type"), fields.get("message", "")
    if kind == "offline":
        raise PbsApiError(400, f"offline maintenance mode: {message}")
    if kind == "delete":
        raise PbsApiError(400, "datastore is being deleted")
    if kind == "unmount":
        raise PbsApiError(400, "datastore is being unmounted")


def _owner_ok(owner: str, auth_id: str) -> bool:
    """PBS `check_backup_owner`: the owner itself, or the user whose token owns it."""
    return owner == auth_id or ("!" in owner and owner.split("!", 1)[0] == auth_id)


def _list_privileges(acl: PbsAcl, auth_id: str, store: str, ns: str) -> frozenset[str]:
    """`check_ns_privs_full(Audit, Backup)`: the caller's privileges, or the 403."""
    privileges = acl.privileges(auth_id, store, ns)
    if not privileges & {AUDIT, BACKUP}:
        path = f"/datastore/{store}" + (f"/{ns}" if ns else "")
        raise PbsApiError(403, f"permission check failed - missing {AUDIT}|{BACKUP} on {path}")
    return privileges


def _filtered(read: StoreRead) -> list[Snapshot]:
    query = read.query
    ns = _ns_param(query)
    btype = query.get("backup-type")
    if btype is not None and btype not in ("vm", "ct", "host"):
        raise _param_error("backup-type", f"value '{btype}' is not defined in the enumeration.")
    bid = query.get("backup-id")
    privileges = _list_privileges(read.acl, read.auth_id, read.store, ns)
    state = _existing(read)
    if ns not in read.namespaces:
        raise PbsApiError(400, f"namespace '{ns}' does not exist")
    everything = AUDIT in privileges
    return [
        s
        for s in state.snapshots
        if s.ns == ns
        and (everything or _owner_ok(s.owner, read.auth_id))
        and (btype is None or s.btype == btype)
        and (bid is None or s.bid == bid)
    ]


def _existing(read: StoreRead) -> DatastoreState:
    """The store's state, once it exists and no maintenance mode refuses reads."""
    if read.state is None:
        raise PbsApiError(400, f"datastore '{read.store}' does not exist")
    check_maintenance(read.state)
    return read.state


def list_snapshots(read: StoreRead) -> list[dict[str, Any]]:
    """GET /admin/datastore/{store}/snapshots."""
    return [_snapshot_item(s) for s in _filtered(read)]


def _snapshot_item(snapshot: Snapshot) -> dict[str, Any]:
    item: dict[str, Any] = {
        "backup-type": snapshot.btype,
        "backup-id": snapshot.bid,
        "backup-time": snapshot.time,
        "files": snapshot.files(),
        "owner": snapshot.owner,
        "protected": snapshot.protected,
    }
    if snapshot.in_progress:
        return item
    item["size"] = snapshot.total_size
    if snapshot.comment is not None:
        item["comment"] = snapshot.comment.split("\n", 1)[0]
    if snapshot.verification is not None:
        item["verification"] = {"state": snapshot.verification, "upid": snapshot.verify_upid}
    return item


def list_groups(read: StoreRead) -> list[dict[str, Any]]:
    """GET /admin/datastore/{store}/groups: one item per group that has snapshots."""
    groups: dict[tuple[str, str, str], list[Snapshot]] = {}
    every_group = dataclasses.replace(read, query={"ns": read.query.get("ns", "")})
    for snapshot in _filtered(every_group):
        groups.setdefault(snapshot.group, []).append(snapshot)
    out = []
    for (_ns, btype, bid), members in sorted(groups.items()):
        finished = [s for s in members if not s.in_progress] or members
        last = max(finished, key=lambda s: s.time)
        out.append(
            {
                "backup-type": btype,
                "backup-id": bid,
                "last-backup": last.time,
                "backup-count": len(members),
                "files": [str(f["filename"]) for f in last.files()],
                "owner": last.owner,
            }
        )
    return out


def _sizes(server: str, store: str, state: DatastoreState) -> tuple[int, int, int]:
    total, used = base_usage(server, store)
    if state.used_percent is not None:
        used = int(total * state.used_percent / 100)
    return total, used, total - used


def _gc_status() -> dict[str, int]:
    keys = (
        "index-file-count", "index-data-bytes", "disk-bytes", "disk-chunks", "removed-bytes",
        "removed-chunks", "pending-bytes", "pending-chunks", "removed-bad", "still-bad",
    )  # fmt: skip
    return dict.fromkeys(keys, 0)


def datastore_status(read: StoreRead) -> dict[str, Any]:
    """GET /admin/datastore/{store}/status[?verbose=1]."""
    acl, auth_id, store = read.acl, read.auth_id, read.store
    privileges = acl.privileges(auth_id, store)
    stats = bool(privileges & {AUDIT, BACKUP})
    if not stats and READ not in privileges and not acl.any_below(auth_id, store):
        raise PbsApiError(403, "permission check failed")
    state = _existing(read)
    total, used, avail = _sizes(read.server, store, state) if stats else (0, 0, 0)
    out: dict[str, Any] = {"total": total, "used": used, "avail": avail}
    if read.query.get("verbose") in ("1", "true"):
        counts: dict[str, dict[str, int]] = {}
        seen = (
            state.snapshots
            if AUDIT in privileges
            else [s for s in state.snapshots if _owner_ok(s.owner, auth_id)]
        )
        for btype in ("ct", "host", "vm"):
            of_type = [s for s in seen if s.btype == btype]
            if of_type:
                counts[btype] = {
                    "groups": len({s.group for s in of_type}),
                    "snapshots": len(of_type),
                }
        out["counts"] = counts
        out["gc-status"] = _gc_status()
    return out


def linear_regression(x: list[int], y: list[float]) -> tuple[float, float] | None:
    """PBS `linear_regression`: (intercept, slope) by least squares, None without a spread."""
    n = len(x)
    if n == 0 or n != len(y):
        return None
    xmean = sum(x) / n
    ymean = sum(y) / n
    if max(y) == min(y):
        return ymean, 0.0
    numerator = sum((xi - xmean) * (yi - ymean) for xi, yi in zip(x, y, strict=True))
    denominator = sum((xi - xmean) ** 2 for xi in x)
    if denominator == 0:
        return None
    slope = numerator / denominator
    return ymean - slope * xmean, slope


def _usage_item(server: str, store: str, state: DatastoreState, now: float) -> dict[str, Any]:
    total, used, avail = _sizes(server, store, state)
    fraction = used / total
    slope = 0.0
    if state.full_at is not None and state.full_at != int(now):
        slope = (1.0 - fraction) / (state.full_at - now)
    end = int(now) // HISTORY_DELTA * HISTORY_DELTA
    start = end - (HISTORY_POINTS - 1) * HISTORY_DELTA
    times = [start + i * HISTORY_DELTA for i in range(HISTORY_POINTS)]
    history = [min(1.0, max(0.0, fraction + slope * (t - now))) for t in times]
    item: dict[str, Any] = {
        "store": store,
        "total": total,
        "used": used,
        "avail": avail,
        "history": history,
        "history-start": start,
        "history-delta": HISTORY_DELTA,
        "gc-status": _gc_status(),
    }
    fit = linear_regression(times, history) if len(history) >= 7 else None
    if fit is not None:
        intercept, b = fit
        item["estimated-full-date"] = int((1.0 - intercept) // b) if b != 0.0 else 0
    return item


def datastore_usage(
    acl: PbsAcl,
    auth_id: str,
    server: str,
    states: Mapping[str, DatastoreState],
    now: float | None = None,
) -> list[dict[str, Any]]:
    """GET /status/datastore-usage: every store the caller may see, in name order."""
    moment = time.time() if now is None else now
    out: list[dict[str, Any]] = []
    for store in sorted(states):
        privileges = acl.privileges(auth_id, store)
        if not privileges & {AUDIT, BACKUP}:
            if acl.any_below(auth_id, store):
                out.append({"store": store})
            continue
        try:
            check_maintenance(states[store])
        except PbsApiError as exc:
            out.append({"store": store, "error": exc.message})
            continue
        out.append(_usage_item(server, store, states[store], moment))
    return out


def list_namespaces(read: StoreRead) -> list[dict[str, str]]:
    """GET /admin/datastore/{store}/namespace: the parent first, then below up to max-depth;
    only namespaces the caller has a privilege on; a missing or hidden parent is a 403."""
    acl, auth_id, store = read.acl, read.auth_id, read.store
    parent = _ns_param(read.query, "parent")
    raw_depth = read.query.get("max-depth")
    max_depth = 7
    if raw_depth is not None:
        if not raw_depth.isdigit() or int(raw_depth) > 7:
            raise _param_error(
                "max-depth", f"value must be an integer between 0 and 7, got '{raw_depth}'"
            )
        max_depth = int(raw_depth)
    if not acl.privileges(auth_id, store, parent) & NS_PRIVS_OK:
        raise PbsApiError(403, "permission check failed")
    _existing(read)
    if parent not in read.namespaces:
        raise PbsApiError(403, "permission check failed")
    base = _depth(parent)
    below = [
        ns
        for ns in sorted(read.namespaces)
        if ns != parent
        and (parent == "" or ns.startswith(parent + "/"))
        and _depth(ns) - base <= max_depth
        and acl.privileges(auth_id, store, ns) & NS_PRIVS_OK
    ]
    return [{"ns": ns} for ns in [parent, *below]]


def _depth(namespace: str) -> int:
    return 0 if namespace == "" else namespace.count("/") + 1
