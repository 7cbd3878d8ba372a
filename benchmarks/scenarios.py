"""The benchmark's fleets: N storages over S = max(3, N / 50) PBS servers behind a 3-node PVE.

Server i listens on 127.0.0.(20+i) (ephemeral port), holds `DATASTORES_PER_SERVER` datastores,
and storage k goes to server k mod S, datastore (k div S) mod DATASTORES_PER_SERVER. The
second-to-last server is black-holed (accepts TCP, never answers TLS) and the last one refuses
connections; their storages are in PVE from the start (PVE's create check would refuse them).

`MISSING_PER_100` of the storages (at least one) are declared but absent from PVE so remediation
also exercises create-then-enable; they always go to a healthy server.

The cluster is a working one, so that only the faults above fail: one guest per node, one backup
job of all guests to the first storage that last ran OK, and on every datastore of every healthy
server a fresh, verified backup of each guest (the backup health cases of a storage judge what
its datastore holds). A fleet whose every backup case failed would measure pytest reporting
failures, not the compliance run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pbs_compliance.lab.scenario import Scenario

NODES = ("pve1", "pve2", "pve3")
DATASTORES_PER_SERVER = 3
FIRST_ADDRESS = 20
MISSING_PER_100 = 1
# What PVE holds when the lab starts, and the two declarations that drift every entry from it.
PRUNE_LIVE = "keep-daily=7,keep-weekly=4"
PRUNE_DRIFTED = ({"keep_daily": 14, "keep_weekly": 8}, {"keep_daily": 10, "keep_monthly": 6})
GUESTS = tuple((100 + i, node) for i, node in enumerate(NODES))  # (vmid, node)
BACKUP_AGE = "2h"


def server_count(storages: int) -> int:
    return max(3, storages // 50)


def server_name(index: int) -> str:
    return f"pbs{index:02d}.bench.example"


def storage_name(index: int) -> str:
    return f"bench-{index:04d}"


@dataclass(frozen=True)
class Fleet:
    """One benchmark size: N storages, S servers, which are dead and which are missing."""

    storages: int
    servers: int
    node_timeout: float

    @property
    def blackhole(self) -> str:
        return server_name(self.servers - 2)

    @property
    def down(self) -> str:
        return server_name(self.servers - 1)

    @property
    def dead(self) -> tuple[str, str]:
        return (self.blackhole, self.down)

    def server_of(self, index: int) -> str:
        return server_name(index % self.servers)

    def datastore_of(self, index: int) -> str:
        return f"store{(index // self.servers) % DATASTORES_PER_SERVER}"

    @property
    def missing(self) -> frozenset[int]:
        """Storages declared but absent from PVE: the last healthy-server ones."""
        wanted = max(1, self.storages * MISSING_PER_100 // 100)
        picked: list[int] = []
        for index in range(self.storages - 1, -1, -1):
            if len(picked) == wanted:
                break
            if self.server_of(index) not in self.dead:
                picked.append(index)
        return frozenset(picked)

    def storages_on_dead(self) -> int:
        return sum(1 for i in range(self.storages) if self.server_of(i) in self.dead)

    def scenario(self) -> Scenario:
        """The lab: every storage but the missing ones in PVE, with `PRUNE_LIVE`."""
        servers: list[dict[str, Any]] = []
        for i in range(self.servers):
            name = server_name(i)
            mode = "blackhole" if name == self.blackhole else "down" if name == self.down else "up"
            servers.append(
                {
                    "name": name,
                    "address": f"127.0.0.{FIRST_ADDRESS + i}",
                    "port": 0,
                    "datastores": {f"store{d}": [] for d in range(DATASTORES_PER_SERVER)},
                    "mode": mode,
                }
            )
        storages = [
            {
                "name": storage_name(i),
                "server": self.server_of(i),
                "datastore": self.datastore_of(i),
                "options": {"prune-backups": PRUNE_LIVE},
            }
            for i in range(self.storages)
            if i not in self.missing
        ]
        healthy = [s["name"] for s in servers if s["mode"] == "up"]
        snapshots = [
            {"server": server, "datastore": f"store{d}", "backup": f"vm/{vmid}", "age": BACKUP_AGE}
            for server in healthy
            for d in range(DATASTORES_PER_SERVER)
            for vmid, _ in GUESTS
        ]
        return Scenario.model_validate(
            {
                "nodes": list(NODES),
                "pbs_servers": servers,
                "storages": storages,
                "node_timeout": self.node_timeout,
                "guests": [{"vmid": vmid, "node": node} for vmid, node in GUESTS],
                "jobs": [
                    {
                        "id": "backup-bench",
                        "storage": storage_name(0),
                        "all": True,
                        "last_run": "OK",
                        "last_run_age": "6h",
                    }
                ],
                "snapshots": snapshots,
            }
        )


def fleet(storages: int, node_timeout: float) -> Fleet:
    return Fleet(storages, server_count(storages), node_timeout)


def declaration(source: Path, target: Path, fleet: Fleet, drift: int | None) -> int:
    """Write the benchmark's declaration from the lab's own (which holds exactly what PVE holds):
    the missing storages added (cloned from a sibling on the same server, whose password is the
    same), and with `drift` = 0 or 1 every entry's prune-backups changed so all of them differ
    from PVE. Returns how many storages are declared."""
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    entries: list[dict[str, Any]] = data["pbs_storages"]
    by_server: dict[str, dict[str, Any]] = {}
    for entry in entries:
        by_server.setdefault(entry["server"], entry)
    declared = {entry["name"] for entry in entries}
    for index in sorted(fleet.missing):
        name = storage_name(index)
        if name in declared:
            continue
        entry = dict(by_server[fleet.server_of(index)])
        entry.update(
            name=name,
            datastore=fleet.datastore_of(index),
            description=f"bench: {fleet.datastore_of(index)} on {fleet.server_of(index)}",
        )
        entries.append(entry)
    if drift is not None:
        for entry in entries:
            entry["prune_backups"] = dict(PRUNE_DRIFTED[drift % len(PRUNE_DRIFTED)])
    entries.sort(key=lambda e: e["name"])
    target.write_text(yaml.safe_dump(data, sort_keys=False, width=120), encoding="utf-8")
    return len(entries)
