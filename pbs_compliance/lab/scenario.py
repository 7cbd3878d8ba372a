"""What a lab looks like: nodes, PBS servers, DNS views, initial storage entries, faults.

A scenario is data (YAML, JSON or a dict inline in a test), validated by pydantic so a typo in a
test's spec fails loudly instead of silently starting a different lab. `builtin()` is the lab
`pbs lab serve` and the demo start from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _one_store() -> dict[str, list[str]]:
    return {"store1": []}


def _root_user() -> dict[str, str | None]:
    return {"root@pam": None}


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

    @classmethod
    def load(cls, path: Path) -> Scenario:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return cls.model_validate(data)

    def with_ephemeral_ports(self) -> Scenario:
        """Every PBS on port 0: several labs (xdist workers, tests) can run side by side."""
        servers = [s.model_copy(update={"port": 0}) for s in self.pbs_servers]
        return self.model_copy(update={"pbs_servers": servers})


def builtin() -> Scenario:
    """3 nodes, 3 PBS servers with DNS names, several datastores, 4 PBS entries and a dir entry."""
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
        }
    )
