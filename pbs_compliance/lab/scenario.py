"""What a lab looks like: nodes, PBS servers, DNS views, initial storage entries, faults.

A scenario is data (YAML, JSON or a dict inline in a test), validated by pydantic so a typo in a
test's spec fails loudly instead of silently starting a different lab. `builtin()` is the lab
`pbs lab serve` and the demo start from.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> int:
    """`50h`, `7d`, `90m`, `30s`, `2w` or plain seconds -> seconds (ValueError otherwise)."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", str(text))
    if found is None:
        raise ValueError(f"'{text}' is not an age: give a number with s, m, h, d or w (e.g. 50h)")
    return int(float(found.group(1)) * _AGE_UNITS[found.group(2) or "s"])


def _age(text: str) -> str:
    parse_age(text)
    return text


Age = Annotated[str, AfterValidator(_age)]


def _one_store() -> dict[str, list[str]]:
    return {"store1": []}


def _root_user() -> dict[str, str | None]:
    return {"root@pam": None}


class UsageScenario(_Spec):
    used_percent: float = Field(ge=0, le=100)
    full_in: Age | None = None  # the usage trend reaches 100 % then; None: flat (never)


class PbsServerScenario(_Spec):
    """One PBS server. Credentials left empty are generated at start."""

    name: str  # the DNS name storages use as `server`
    address: str = "127.0.0.11"
    port: int = Field(default=8007, ge=0, le=65535)  # 0 = ephemeral
    datastores: dict[str, list[str]] = Field(default_factory=_one_store)
    users: dict[str, str | None] = Field(default_factory=_root_user)
    tokens: dict[str, str | None] = Field(default_factory=dict)
    acl: dict[str, list[str]] = Field(default_factory=dict)
    expired: bool = False
    mode: Literal["up", "down", "blackhole"] = "up"
    in_dns: bool = True  # False: the name is in no DNS view at all
    # datastore -> maintenance mode from the start (first start only, like snapshots)
    maintenance: dict[str, Literal["offline", "read-only"]] = Field(default_factory=dict)
    # datastore -> fill level from the start: {used_percent: 97, full_in: 10d}
    usage: dict[str, UsageScenario] = Field(default_factory=dict)


class StorageScenario(_Spec):
    """An entry present in PVE's storage.cfg when the lab starts.

    For `type: pbs`, `fingerprint` and `password` default to the server's current certificate and
    the credential of `username` on that server, so the entry is active unless told otherwise.
    """

    name: str
    type: str = "pbs"
    server: str | None = None
    datastore: str | None = None
    username: str = "root@pam"
    password: str | None = None
    fingerprint: str | None = None  # None (default) = the served certificate's
    options: dict[str, str] = Field(default_factory=dict)  # any other storage.cfg option, verbatim
    declare: bool = True  # written into the generated pbs-storage.yaml


class GuestScenario(_Spec):
    """A VM (`qemu`) or container (`lxc`) on one node."""

    vmid: int = Field(ge=100, le=999999999)
    node: str
    type: Literal["qemu", "lxc"] = "qemu"
    name: str | None = None
    template: bool = False
    tags: list[str] = Field(default_factory=list)
    pool: str | None = None  # created when no `pools` entry names it


class JobScenario(_Spec):
    """A vzdump job in jobs.cfg, created through PVE's own job rules at the first start."""

    id: str
    storage: str | None = None
    schedule: str = "21:00"
    enabled: bool = True
    all: bool = False
    vmid: str | None = None  # "100,101"
    exclude: str | None = None
    pool: str | None = None
    node: str | None = None
    options: dict[str, str] = Field(default_factory=dict)  # any other job option, verbatim
    last_run: str | None = None  # the status of a finished run: OK, WARNINGS: 1, job errors
    last_run_age: Age = "6h"  # how long ago that run ended


class SnapshotScenario(_Spec):
    """One snapshot on a lab PBS (beside those a job's `last_run` writes)."""

    server: str
    datastore: str
    backup: str  # vm/ID, ct/ID or host/NAME
    ns: str = ""
    age: Age = "0s"
    verify: Literal["ok", "failed", "none"] = "ok"
    in_progress: bool = False
    protected: bool = False
    comment: str | None = None
    owner: str = "root@pam"
    size: int | None = Field(default=None, ge=1)


class Scenario(_Spec):
    nodes: list[str] = Field(default_factory=lambda: ["pve1", "pve2", "pve3"], min_length=1)
    pbs_servers: list[PbsServerScenario] = Field(default_factory=list)
    storages: list[StorageScenario] = Field(default_factory=list)
    # Names each node's resolver does NOT know: {"pve3": ["pbs2.lab.example"]}.
    dns_hidden: dict[str, list[str]] = Field(default_factory=dict)
    dns_records: dict[str, list[str]] = Field(default_factory=dict)  # extra names
    dns_cnames: dict[str, str] = Field(default_factory=dict)
    # DNS faults from the start: {"admin": "servfail", "pve2": "silence"} ("admin" = the view
    # `lab.json`'s "dns" serves, i.e. what this tool's DNS check asks).
    dns_faults: dict[str, Literal["servfail", "silence"]] = Field(default_factory=dict)
    pve_faults: dict[str, Any] = Field(default_factory=dict)
    node_timeout: float = Field(default=2.0, gt=0)
    auth_failure_delay: float = Field(default=3.0, ge=0)  # PVE holds back every 401 ~3 s
    guests: list[GuestScenario] = Field(default_factory=list)
    pools: dict[str, str | None] = Field(default_factory=dict)  # pool -> comment
    jobs: list[JobScenario] = Field(default_factory=list)
    snapshots: list[SnapshotScenario] = Field(default_factory=list)

    @model_validator(mode="after")
    def _guests_on_known_nodes(self) -> Scenario:
        seen: set[int] = set()
        for guest in self.guests:
            if guest.node not in self.nodes:
                raise ValueError(
                    f"guest {guest.vmid} is on node '{guest.node}', which is not one of the "
                    f"nodes {', '.join(self.nodes)}"
                )
            if guest.vmid in seen:
                raise ValueError(f"guest {guest.vmid} is listed twice (a VMID is unique)")
            seen.add(guest.vmid)
        return self

    @classmethod
    def load(cls, path: Path) -> Scenario:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return cls.model_validate(data)

    def with_ephemeral_ports(self) -> Scenario:
        """Every PBS on port 0: several labs (xdist workers, tests) can run side by side."""
        servers = [s.model_copy(update={"port": 0}) for s in self.pbs_servers]
        return self.model_copy(update={"pbs_servers": servers})


def builtin() -> Scenario:
    """3 nodes, 3 PBS servers with DNS names, several datastores, 4 PBS entries and a dir entry;
    6 guests (VMs, containers, a template) in two pools; a backup job per PBS entry that covers
    its guests and last ran OK a few hours ago, so every guest has a fresh, verified backup."""
    return Scenario.model_validate(
        {
            "nodes": ["pve1", "pve2", "pve3"],
            "pbs_servers": [
                {
                    "name": "pbs1.lab.example",
                    "address": "127.0.0.11",
                    "datastores": {"homelab": [], "archive": ["prod", "prod/vms"]},
                    "users": {"root@pam": None},
                    "tokens": {"backup@pbs!pve": None},
                },
                {
                    "name": "pbs2.lab.example",
                    "address": "127.0.0.12",
                    "datastores": {"offsite": ["prod"]},
                    "users": {"root@pam": None, "sync@pbs": None},
                },
                {
                    "name": "pbs3.lab.example",
                    "address": "127.0.0.13",
                    "datastores": {"media": []},
                    "users": {"root@pam": None},
                },
            ],
            "storages": [
                {
                    "name": "local-images",
                    "type": "dir",
                    "options": {"path": "/srv/images", "content": "images,rootdir"},
                    "declare": False,
                },
                {
                    "name": "homelab-backup",
                    "server": "pbs1.lab.example",
                    "datastore": "homelab",
                    "options": {"prune-backups": "keep-daily=7,keep-weekly=4,keep-monthly=3"},
                },
                {
                    "name": "archive",
                    "server": "pbs1.lab.example",
                    "datastore": "archive",
                    "username": "backup@pbs!pve",
                    "options": {"namespace": "prod/vms", "max-protected-backups": "10"},
                },
                {
                    "name": "offsite",
                    "server": "pbs2.lab.example",
                    "datastore": "offsite",
                    "username": "sync@pbs",
                    "options": {"prune-backups": "keep-last=3,keep-weekly=8", "nodes": "pve1,pve2"},
                },
                {
                    "name": "media",
                    "server": "pbs3.lab.example",
                    "datastore": "media",
                    "options": {"content": "backup"},
                },
            ],
            "pools": {"prod": "production services", "infra": "infrastructure"},
            "guests": [
                {"vmid": 100, "node": "pve1", "name": "web", "pool": "prod", "tags": ["web"]},
                {"vmid": 101, "node": "pve1", "type": "lxc", "name": "dns", "pool": "infra"},
                {"vmid": 200, "node": "pve2", "name": "db", "pool": "prod", "tags": ["db"]},
                {"vmid": 201, "node": "pve2", "type": "lxc", "name": "proxy", "pool": "infra"},
                {"vmid": 300, "node": "pve3", "name": "mail", "pool": "prod"},
                {"vmid": 9000, "node": "pve3", "name": "debian-12", "template": True},
            ],
            "jobs": [
                {"id": "backup-homelab", "storage": "homelab-backup", "schedule": "02:00",
                 "all": True, "options": {"mode": "snapshot", "notes-template": "{{guestname}}"},
                 "last_run": "OK", "last_run_age": "6h"},
                {"id": "backup-archive", "storage": "archive", "schedule": "03:00",
                 "pool": "prod", "last_run": "OK", "last_run_age": "5h"},
                {"id": "backup-offsite", "storage": "offsite", "schedule": "mon..sat 04:00",
                 "vmid": "100,200", "last_run": "OK", "last_run_age": "4h"},
                {"id": "backup-media", "storage": "media", "schedule": "05:00",
                 "vmid": "101,201", "last_run": "OK", "last_run_age": "3h"},
            ],
        }
    )  # fmt: skip
