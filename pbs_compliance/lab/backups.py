"""What the lab's PBS datastores hold: snapshots, fill level, maintenance mode.

One `BackupStore` per lab keeps every server's datastores in `<state_dir>/pbs-backups.json`
(written atomically after each change), so a restarted lab serves the same snapshots with the
same absolute times: they age like real backups do. The PBS servers read it to answer the
snapshot, group, status and datastore-usage calls (`pbs_datastore.py`); the lab's admin verbs
(`pbs lab backup ...`, `pbs lab job run`, `pbs lab fault pbs --maintenance`) change it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

__all__ = [
    "BackupStore",
    "DatastoreState",
    "Snapshot",
    "base_usage",
    "parse_backup_target",
]

BackupType = Literal["vm", "ct", "host"]
Verification = Literal["ok", "failed"]
Maintenance = Literal["read-only", "offline"]  # the modes the lab sets (PBS has more)
MAINTENANCE_TYPES: tuple[Maintenance, ...] = get_args(Maintenance)
DEFAULT_SIZE = {"vm": 12 * 1024**3, "ct": 2 * 1024**3, "host": 1024**3}


@dataclass(frozen=True)
class Snapshot:
    """One backup snapshot (`<type>/<id>/<time>` in a namespace of a datastore)."""

    btype: BackupType
    bid: str
    time: int  # backup-time, epoch seconds
    ns: str = ""
    size: int | None = None  # None: the lab's default for the type
    owner: str = "root@pam"
    protected: bool = False
    comment: str | None = None
    verification: Verification | None = None
    verify_upid: str | None = None
    in_progress: bool = False  # listed without size, verification and comment

    @property
    def group(self) -> tuple[str, BackupType, str]:
        return (self.ns, self.btype, self.bid)

    def files(self) -> list[dict[str, object]]:
        """The files a real snapshot of this type holds (sizes add up to `total_size`)."""
        main = "drive-scsi0.img.fidx" if self.btype == "vm" else "root.pxar.didx"
        conf = {"vm": "qemu-server.conf.blob", "ct": "pct.conf.blob"}.get(self.btype)
        small = [n for n in (conf, "index.json.blob") if n is not None]
        if self.in_progress:  # no manifest yet: only the names on disk
            return [{"filename": n} for n in [*([conf] if conf else []), main]]
        total = self.total_size
        sizes = {name: 512 for name in small}
        sizes["client.log.blob"] = 1024
        sizes[main] = total - sum(sizes.values())
        return [{"filename": n, "crypt-mode": "none", "size": s} for n, s in sorted(sizes.items())]

    @property
    def total_size(self) -> int:
        return self.size if self.size is not None else DEFAULT_SIZE[self.btype]

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v not in (None, False, "")}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Snapshot:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class DatastoreState:
    snapshots: list[Snapshot] = field(default_factory=list)
    used_percent: float | None = None  # None: the lab's stable default
    full_at: int | None = None  # epoch the usage trend reaches 100 %; None: flat trend
    maintenance: str | None = None  # PBS property string, e.g. "type=offline"

    def to_json(self) -> dict[str, Any]:
        return {
            "snapshots": [s.to_json() for s in self.snapshots],
            "used_percent": self.used_percent,
            "full_at": self.full_at,
            "maintenance": self.maintenance,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DatastoreState:
        return cls(
            snapshots=[Snapshot.from_json(s) for s in data.get("snapshots", [])],
            used_percent=data.get("used_percent"),
            full_at=data.get("full_at"),
            maintenance=data.get("maintenance"),
        )


def parse_backup_target(text: str) -> tuple[BackupType, str]:
    """`vm/100`, `ct/101` or `host/NAME` -> (type, id); ValueError says the accepted shapes."""
    btype, sep, bid = text.partition("/")
    if not sep or btype not in ("vm", "ct", "host") or not bid or "/" in bid:
        raise ValueError(f"'{text}' is not a backup group: give vm/ID, ct/ID or host/NAME")
    if btype in ("vm", "ct") and not bid.isdigit():
        raise ValueError(f"'{text}': a {btype} backup ID is the guest's numeric VMID")
    return btype, bid  # type: ignore[return-value]


def base_usage(server: str, store: str) -> tuple[int, int]:
    """(total, used) bytes: stable and plausible, the same for the same store on a server."""
    seed = int.from_bytes(hashlib.sha256(f"{server}/{store}".encode()).digest()[:8], "big")
    total = (1 + seed % 8) * 1024**4
    return total, total * (5 + seed % 60) // 100


class BackupStore:
    """Every lab PBS server's datastore contents; thread-safe, persisted after each change."""

    FILE = "pbs-backups.json"

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._lock = threading.RLock()
        self._servers: dict[str, dict[str, DatastoreState]] = {}
        self.fresh = path is None or not path.exists()
        if path is not None and path.exists():
            raw = json.loads(path.read_text(encoding="utf-8"))
            for server, stores in raw.get("servers", {}).items():
                self._servers[server] = {
                    name: DatastoreState.from_json(data) for name, data in stores.items()
                }

    def add_server(self, server: str, stores: Iterable[str]) -> None:
        """Make sure the server's datastores exist (empty); kept contents stay."""
        with self._lock:
            known = self._servers.setdefault(server, {})
            for store in stores:
                known.setdefault(store, DatastoreState())

    def _state(self, server: str, store: str) -> DatastoreState:
        try:
            return self._servers[server][store]
        except KeyError:
            stores = ", ".join(sorted(self._servers.get(server, {}))) or "none"
            if server not in self._servers:
                servers = ", ".join(sorted(self._servers)) or "none"
                raise KeyError(
                    f"no PBS server named '{server}' in this lab (its PBS servers: {servers})"
                ) from None
            raise KeyError(
                f"PBS {server} has no datastore '{store}' (its datastores: {stores})"
            ) from None

    def datastore(self, server: str, store: str) -> DatastoreState:
        """A copy of one datastore's state (KeyError with the valid names when unknown)."""
        with self._lock:
            state = self._state(server, store)
            return dataclasses.replace(state, snapshots=list(state.snapshots))

    def has(self, server: str, store: str) -> bool:
        with self._lock:
            return store in self._servers.get(server, {})

    def add_snapshot(
        self, server: str, store: str, snapshot: Snapshot, bump: bool = False
    ) -> Snapshot:
        """Store a snapshot; a second one of the same group and second is refused, or with
        `bump` moved one second later (PBS keeps one snapshot per group and second)."""
        with self._lock:
            state = self._state(server, store)
            taken = {(s.group, s.time) for s in state.snapshots}
            while (snapshot.group, snapshot.time) in taken:
                if not bump:
                    raise ValueError(
                        f"snapshot {snapshot.btype}/{snapshot.bid}/{snapshot.time} already exists "
                        f"in {store}" + (f" namespace {snapshot.ns}" if snapshot.ns else "")
                    )
                snapshot = dataclasses.replace(snapshot, time=snapshot.time + 1)
            state.snapshots.append(snapshot)
            state.snapshots.sort(key=lambda s: (s.ns, s.btype, s.bid, s.time))
            self._save()
            return snapshot

    def fill(self, server: str, store: str, used_percent: float, full_at: int | None) -> None:
        with self._lock:
            state = self._state(server, store)
            state.used_percent = used_percent
            state.full_at = full_at
            self._save()

    def set_maintenance(self, server: str, store: str, maintenance: str | None) -> None:
        with self._lock:
            self._state(server, store).maintenance = maintenance
            self._save()

    def stores(self, server: str) -> list[str]:
        with self._lock:
            return sorted(self._servers.get(server, {}))

    def save(self) -> None:
        with self._lock:
            self._save()

    def _save(self) -> None:
        if self._path is None:
            return
        data = {
            "servers": {
                server: {name: state.to_json() for name, state in stores.items()}
                for server, stores in self._servers.items()
            }
        }
        tmp = self._path.with_name(f".{self._path.name}.tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, self._path)


def maintenance_string(kind: str, message: str | None = None) -> str:
    """PBS's `maintenance-mode` property string (`type=offline,message=...`)."""
    if kind not in MAINTENANCE_TYPES:
        raise ValueError(f"maintenance '{kind}' is not one of {', '.join(MAINTENANCE_TYPES)}, none")
    return f"type={kind}" + (f",message={message}" if message else "")


def now() -> int:
    return int(time.time())
