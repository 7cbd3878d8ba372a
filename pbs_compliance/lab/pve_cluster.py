"""The emulated cluster's guests, pools, backup jobs and task lists, kept in the state directory.

Files (each rewritten atomically after a change, read back on restart):
- `guests.json`: the guests (vmid, node, type, name, template, tags, pool) and the pools;
- `jobs.cfg`: the backup jobs in PVE's own format (`/etc/pve/jobs.cfg`: a section config
  with `vzdump: <id>` headers and TAB-indented options);
- `tasks.json`: every node's finished tasks (what `/var/log/pve/tasks/index` holds).
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

__all__ = ["ClusterStore", "Guest", "Job", "Task", "parse_jobs_cfg", "render_jobs_cfg"]

T = TypeVar("T")
GuestType = Literal["qemu", "lxc"]


@dataclass(frozen=True)
class Guest:
    vmid: int
    node: str
    type: GuestType = "qemu"
    name: str | None = None
    template: bool = False
    tags: tuple[str, ...] = ()
    pool: str | None = None

    @property
    def backup_type(self) -> Literal["vm", "ct"]:
        return "vm" if self.type == "qemu" else "ct"

    def volumes(self) -> list[dict[str, object]]:
        """What `get_backup_volumes` reports: the one disk a lab guest has."""
        if self.type == "qemu":
            return [{"key": "scsi0", "file": f"local-lvm:vm-{self.vmid}-disk-0",
                     "included": 1, "reason": "enabled"}]  # fmt: skip
        return [{"key": "rootfs", "file": f"local-lvm:subvol-{self.vmid}-disk-0",
                 "included": 1, "reason": "rootfs"}]  # fmt: skip


@dataclass(frozen=True)
class Job:
    """One `vzdump` section of jobs.cfg: its ID and option values as the file holds them."""

    id: str
    options: tuple[tuple[str, str], ...]

    def get(self, key: str) -> str | None:
        return dict(self.options).get(key)

    def as_dict(self) -> dict[str, str]:
        return dict(self.options)


@dataclass(frozen=True)
class Task:
    """A finished (or, without `endtime`, running) task in a node's task list."""

    upid: str
    node: str
    pid: int
    pstart: int
    starttime: int
    type: str
    id: str
    user: str
    endtime: int | None = None
    status: str | None = None


_HEADER = re.compile(r"^(\S+):\s*(\S+)\s*$")
_OPTION = re.compile(r"^\s+(\S+)(?:\s+(.*\S))?\s*$")


def parse_jobs_cfg(text: str) -> list[Job]:
    """jobs.cfg sections of type `vzdump` (other job types are kept out of the lab)."""
    jobs: list[Job] = []
    current: tuple[str, list[tuple[str, str]]] | None = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            if current is not None and not line.strip():
                jobs.append(Job(current[0], tuple(current[1])))
                current = None
            continue
        header = _HEADER.match(line)
        if header and not line[0].isspace():
            if current is not None:
                jobs.append(Job(current[0], tuple(current[1])))
            current = (header.group(2), []) if header.group(1) == "vzdump" else None
            continue
        option = _OPTION.match(line)
        if option and current is not None:
            current[1].append((option.group(1), option.group(2) or ""))
    if current is not None:
        jobs.append(Job(current[0], tuple(current[1])))
    return jobs


def render_jobs_cfg(jobs: Iterable[Job]) -> str:
    return "".join(
        f"vzdump: {job.id}\n" + "".join(f"\t{k} {v}\n" for k, v in job.options) + "\n"
        for job in jobs
    )


@dataclass
class _State:
    guests: dict[int, Guest] = field(default_factory=dict)
    pools: dict[str, str | None] = field(default_factory=dict)  # pool -> comment
    jobs: list[Job] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)


class ClusterStore:
    """Thread-safe holder of the cluster state; `fresh` until anything was written."""

    def __init__(self, state_dir: Path) -> None:
        self._dir = state_dir
        self._lock = threading.RLock()
        self._state = _State()
        guests_file = state_dir / "guests.json"
        self.fresh = not guests_file.exists()
        if guests_file.exists():
            raw = json.loads(guests_file.read_text(encoding="utf-8"))
            for item in raw.get("guests", []):
                guest = Guest(**{**item, "tags": tuple(item.get("tags", ()))})
                self._state.guests[guest.vmid] = guest
            self._state.pools = dict(raw.get("pools", {}))
        if (state_dir / "jobs.cfg").exists():
            self._state.jobs = parse_jobs_cfg((state_dir / "jobs.cfg").read_text("utf-8"))
        if (state_dir / "tasks.json").exists():
            raw_tasks = json.loads((state_dir / "tasks.json").read_text(encoding="utf-8"))
            self._state.tasks = [Task(**t) for t in raw_tasks]

    # -- reads (copies) --------------------------------------------------------------------

    def guests(self) -> dict[int, Guest]:
        with self._lock:
            return dict(self._state.guests)

    def pools(self) -> dict[str, str | None]:
        with self._lock:
            return dict(self._state.pools)

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._state.jobs)

    def tasks(self, node: str | None = None) -> list[Task]:
        with self._lock:
            return [t for t in self._state.tasks if node is None or t.node == node]

    # -- writes ----------------------------------------------------------------------------

    def write_jobs(self, change: Callable[[list[Job]], tuple[list[Job], T]]) -> T:
        """Run `change` under the lock (like PVE's cfs lock on jobs.cfg) and save its result."""
        with self._lock:
            jobs, result = change(list(self._state.jobs))
            if jobs != self._state.jobs:
                self._state.jobs = jobs
                _atomic(self._dir / "jobs.cfg", render_jobs_cfg(jobs))
            return result

    def add_guest(self, guest: Guest) -> None:
        with self._lock:
            if guest.vmid in self._state.guests:
                other = self._state.guests[guest.vmid]
                raise ValueError(
                    f"VM {guest.vmid} already exists on node '{other.node}' (a VMID is unique "
                    "in the cluster)"
                )
            self._state.guests[guest.vmid] = guest
            if guest.pool is not None:
                self._state.pools.setdefault(guest.pool, None)
            self._save_guests()

    def add_pool(self, pool: str, comment: str | None = None) -> None:
        with self._lock:
            self._state.pools[pool] = comment
            self._save_guests()

    def add_tasks(self, tasks: Iterable[Task]) -> None:
        with self._lock:
            self._state.tasks.extend(tasks)
            self._state.tasks.sort(key=lambda t: t.starttime)
            _atomic(
                self._dir / "tasks.json",
                json.dumps([asdict(t) for t in self._state.tasks], indent=1) + "\n",
            )

    def save(self) -> None:
        """Write every file (the first start writes them all, even empty)."""
        with self._lock:
            self._save_guests()
            _atomic(self._dir / "jobs.cfg", render_jobs_cfg(self._state.jobs))
            _atomic(
                self._dir / "tasks.json",
                json.dumps([asdict(t) for t in self._state.tasks], indent=1) + "\n",
            )

    def _save_guests(self) -> None:
        data: Mapping[str, Any] = {
            "guests": [
                {**asdict(g), "tags": list(g.tags)}
                for g in sorted(self._state.guests.values(), key=lambda g: g.vmid)
            ],
            "pools": self._state.pools,
        }
        _atomic(self._dir / "guests.json", json.dumps(data, indent=1) + "\n")
        self.fresh = False


def _atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
