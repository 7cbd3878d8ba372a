"""The lab's admin verbs on backups, guests and jobs (`pbs lab backup|guest|job ...`, also used
to fill a new lab from its spec): what a person or a test does to a running lab that PVE's
or PBS's API would not let them do directly - backups of any age and outcome, a full disk,
a job that ran (or failed) yesterday.

Every verb changes the same persisted state the APIs serve (`pbs-backups.json`, `guests.json`,
`jobs.cfg`, `tasks.json`), so the change survives a restart. A mistake is a `PveError(400)`
that names what is valid.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pbs_compliance.lab.backups import (
    BackupStore,
    Snapshot,
    maintenance_string,
    parse_backup_target,
)
from pbs_compliance.lab.pve_auth import Principal
from pbs_compliance.lab.pve_cluster import ClusterStore, Guest
from pbs_compliance.lab.pve_errors import PveError
from pbs_compliance.lab.pve_jobs import create_job, included_guests
from pbs_compliance.lab.pve_state import StorageStore
from pbs_compliance.lab.pve_tasks import make_task, status_type
from pbs_compliance.lab.storage import storage_view

__all__ = ["LabAdmin"]

ROOT = Principal("root@pam", "", frozenset())
_NOTES_VARS = ("cluster", "guestname", "node", "vmid")


def _bad(message: str) -> PveError:
    return PveError(400, message)


def _text(body: Mapping[str, object], key: str, default: str | None = None) -> str | None:
    value = body.get(key, default)
    return None if value is None else str(value)


@dataclass
class LabAdmin:
    """The verbs, over the stores of one running lab."""

    cluster: ClusterStore
    storage: StorageStore
    backups: BackupStore
    nodes: tuple[str, ...]
    namespaces: Mapping[str, Mapping[str, frozenset[str]]]  # server -> store -> namespaces
    cluster_name: str = "lab"

    # -- PBS side ----------------------------------------------------------------------------

    def _store(self, server: str, datastore: str) -> None:
        try:
            self.backups.datastore(server, datastore)
        except KeyError as exc:
            raise _bad(str(exc.args[0])) from None

    def add_backup(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """`pbs lab backup add SERVER DATASTORE vm/ID [--ns] [--age] [--verify] ...`."""
        server, datastore = str(body.get("server")), str(body.get("datastore"))
        self._store(server, datastore)
        try:
            btype, bid = parse_backup_target(str(body.get("backup")))
        except ValueError as exc:
            raise _bad(str(exc)) from None
        ns = str(body.get("ns") or "").strip("/")
        known = self.namespaces.get(server, {}).get(datastore, frozenset({""}))
        if ns not in known:
            shown = ", ".join(sorted(n for n in known if n)) or "none"
            raise _bad(f"datastore '{datastore}' on {server} has no namespace '{ns}' "
                       f"(its namespaces: {shown})")  # fmt: skip
        verify = str(body.get("verify", "ok"))
        if verify not in ("ok", "failed", "none"):
            raise _bad(f"verify '{verify}' is not one of ok, failed, none")
        when = int(time.time()) - int(body.get("age", 0))
        size = body.get("size")
        snapshot = Snapshot(
            btype=btype,
            bid=bid,
            time=when,
            ns=ns,
            size=int(size) if size is not None else None,
            owner=str(body.get("owner") or "root@pam"),
            protected=bool(body.get("protected", False)),
            comment=_text(body, "comment"),
            verification=None if verify == "none" else verify,  # type: ignore[arg-type]
            verify_upid=None if verify == "none" else _verify_upid(server, datastore, when),
            in_progress=bool(body.get("in_progress", False)),
        )
        try:
            stored = self.backups.add_snapshot(server, datastore, snapshot)
        except ValueError as exc:
            raise _bad(str(exc)) from None
        return {"server": server, "datastore": datastore, **_described(stored)}

    def fill(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """`pbs lab backup fill SERVER DATASTORE --used-percent N [--full-in 10d]`."""
        server, datastore = str(body.get("server")), str(body.get("datastore"))
        self._store(server, datastore)
        try:
            used = float(body["used_percent"])
        except (KeyError, TypeError, ValueError):
            raise _bad("used_percent must be a number from 0 to 100") from None
        if not 0 <= used <= 100:
            raise _bad(f"used_percent {used} is not from 0 to 100")
        full_in = body.get("full_in")
        full_at = int(time.time()) + int(full_in) if full_in is not None else None
        self.backups.fill(server, datastore, used, full_at)
        return {"server": server, "datastore": datastore, "used_percent": used,
                "estimated_full_date": full_at or 0}  # fmt: skip

    def maintenance(self, server: str, stores: list[str], body: Mapping[str, Any]) -> str | None:
        """`pbs lab fault pbs SERVER --maintenance offline|read-only|none [--datastore DS]`."""
        kind = str(body.get("maintenance"))
        wanted = body.get("datastore")
        if wanted is not None and wanted not in stores:
            raise _bad(f"PBS {server} has no datastore '{wanted}' "
                       f"(its datastores: {', '.join(stores)})")  # fmt: skip
        try:
            value = None if kind == "none" else maintenance_string(kind, _text(body, "message"))
        except ValueError as exc:
            raise _bad(str(exc)) from None
        for store in [str(wanted)] if wanted is not None else stores:
            self.backups.set_maintenance(server, store, value)
        return value

    # -- PVE side ----------------------------------------------------------------------------

    def add_guest(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """`pbs lab guest add NODE VMID [--type qemu|lxc] [--name] [--template] [--pool]`."""
        node = str(body.get("node"))
        if node not in self.nodes:
            raise _bad(f"no node named '{node}' in this lab (its nodes: {', '.join(self.nodes)})")
        try:
            vmid = int(str(body.get("vmid")))
        except ValueError:
            raise _bad(f"VMID '{body.get('vmid')}' is not a number from 100 to 999999999") from None
        if not 100 <= vmid <= 999_999_999:
            raise _bad(f"VMID {vmid} is not from 100 to 999999999 (PVE's range)")
        kind = str(body.get("type", "qemu"))
        if kind not in ("qemu", "lxc"):
            raise _bad(f"guest type '{kind}' is not one of qemu, lxc")
        tags = body.get("tags") or []
        guest = Guest(
            vmid=vmid,
            node=node,
            type="qemu" if kind == "qemu" else "lxc",
            name=_text(body, "name"),
            template=bool(body.get("template", False)),
            tags=tuple(str(t) for t in tags),
            pool=_text(body, "pool"),
        )
        try:
            self.cluster.add_guest(guest)
        except ValueError as exc:
            raise _bad(str(exc)) from None
        return {"vmid": vmid, "node": node, "type": kind}

    def add_job(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """`pbs lab job add ID --storage NAME [--all | --vmid 100,101] [--disabled] ...`:
        through `POST /cluster/backup`'s own rules, as root@pam."""
        params: dict[str, str | list[str] | None] = {
            k: str(v) for k, v in body.items() if v is not None and v is not False
        }
        for flag in ("all",):
            if body.get(flag) is True:
                params[flag] = "1"
        if body.get("disabled"):
            params.pop("disabled", None)
            params["enabled"] = "0"
        params.setdefault("schedule", "21:00")
        try:
            create_job(self.cluster, params, ROOT)
        except PveError as exc:  # one line that says it all: the CLI shows the first line
            details = [f"{k}: {v.strip()}" for k, v in (exc.errors or {}).items()]
            lines = [line for line in exc.message.splitlines() if line.strip()]
            raise PveError(exc.status, " - ".join([*lines, *details])) from None
        return {"id": body.get("id")}

    def run_job(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """`pbs lab job run ID [--status ...] [--age 30h]`: a finished vzdump task on every
        node with included guests; for OK (and WARNINGS, whose archives were written) a
        snapshot per guest on the job's PBS storage."""
        job_id = str(body.get("id"))
        jobs = {j.id: j for j in self.cluster.jobs()}
        if job_id not in jobs:
            raise _bad(f"no backup job '{job_id}' in this lab "
                       f"(its jobs: {', '.join(jobs) or 'none'})")  # fmt: skip
        status = str(body.get("status") or "OK")
        verify = str(body.get("verify", "ok"))
        if verify not in ("ok", "failed", "none"):
            raise _bad(f"verify '{verify}' is not one of ok, failed, none")
        options = jobs[job_id].as_dict()
        guests = self.cluster.guests()
        per_node = included_guests(options, guests, self.cluster.pools())
        end = int(time.time()) - int(body.get("age", 0))
        target = self._pbs_target(options.get("storage") or "local")
        rng = random.Random()
        tasks, written = [], []
        for node, vmids in sorted(per_node.items()):
            if not node:
                continue  # configured VMIDs that no longer exist
            start = end - 60 * len(vmids) - 15
            ident = str(vmids[0]) if len(vmids) == 1 else ""
            tasks.append(make_task(node, "vzdump", ident, "root@pam", start, end, status, rng))
            if status_type(status) not in ("ok", "warning") or target is None:
                continue
            server, datastore, ns, owner = target
            for index, vmid in enumerate(vmids):
                when = start + 60 * index + 5
                snapshot = Snapshot(
                    btype=guests[vmid].backup_type,
                    bid=str(vmid),
                    time=when,
                    ns=ns,
                    owner=owner,
                    comment=self._notes(options.get("notes-template"), guests[vmid]),
                    verification=None if verify == "none" else verify,  # type: ignore[arg-type]
                    verify_upid=None if verify == "none" else _verify_upid(server, datastore, when),
                    protected=options.get("protected") == "1",
                )
                stored = self.backups.add_snapshot(server, datastore, snapshot, bump=True)
                written.append({"server": server, "datastore": datastore, **_described(stored)})
        self.cluster.add_tasks(tasks)
        return {"id": job_id, "status": status, "tasks": [t.upid for t in tasks],
                "snapshots": written}  # fmt: skip

    def _pbs_target(self, storage_id: str) -> tuple[str, str, str, str] | None:
        """(server, datastore, namespace, owner) of a PBS storage the lab serves."""
        try:
            view = storage_view(self.storage.state, storage_id)
        except PveError:
            return None
        server, datastore = str(view.get("server", "")), str(view.get("datastore", ""))
        if view.get("type") != "pbs" or not self.backups.has(server, datastore):
            return None
        ns = str(view.get("namespace") or "").strip("/")
        if ns not in self.namespaces.get(server, {}).get(datastore, frozenset({""})):
            return None  # PBS refuses a backup into a missing namespace
        return server, datastore, ns, str(view.get("username") or "root@pam")

    def _notes(self, template: str | None, guest: Guest) -> str | None:
        if not template:
            return None
        values = {"cluster": self.cluster_name, "guestname": guest.name or f"VM {guest.vmid}",
                  "node": guest.node, "vmid": str(guest.vmid)}  # fmt: skip
        for key in _NOTES_VARS:
            template = template.replace("{{" + key + "}}", values[key])
        return template.replace("\\n", "\n").replace("\\\\", "\\")


def _verify_upid(server: str, datastore: str, when: int) -> str:
    """A PBS verification job's UPID (the worker ID escapes its ':' as `\\x3a`)."""
    host = server.split(".", 1)[0]
    worker = f"{datastore}\\x3av-lab"
    return f"UPID:{host}:00001F2A:0003C4B1:00000001:{when + 600:08X}:verificationjob:{worker}" + (
        ":root@pam:"
    )


def _described(snapshot: Snapshot) -> dict[str, Any]:
    return {"ns": snapshot.ns, "backup": f"{snapshot.btype}/{snapshot.bid}",
            "time": snapshot.time}  # fmt: skip
