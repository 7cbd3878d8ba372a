"""Guests and pools as PVE lists them: `/cluster/resources` and `/pools[/{poolid}]`
(pve-manager `PVE/API2/Cluster.pm` resources, `PVE/API2/Pool.pm`, `PVE/API2Tools.pm`).

A guest is listed only to callers with `VM.Audit` on `/vms/<vmid>`; a pool to callers with
`Pool.Audit` on `/pool/<pool>` (`GET /pools?poolid=X` shows it regardless, as PVE's code
does; the deprecated `GET /pools/{poolid}` checks). Lab guests never run: `status` is
`stopped`, the usage counters are zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pbs_compliance.lab.pve_auth import Principal, require_any
from pbs_compliance.lab.pve_cluster import ClusterStore, Guest
from pbs_compliance.lab.pve_errors import PveError, param_error
from pbs_compliance.lab.pve_schema import Params, Prop, validate

__all__ = ["guest_entry", "list_pools", "read_pool", "resources"]

_POOLID = Prop("string", pattern=r"[A-Za-z0-9\-_]+(?:/[A-Za-z0-9\-_]+){0,2}")
RESOURCES_SCHEMA: Mapping[str, Prop] = {
    "type": Prop("string", enum=("vm", "storage", "node", "sdn")),
}
POOLS_SCHEMA: Mapping[str, Prop] = {
    "poolid": _POOLID,
    "type": Prop("string", enum=("qemu", "lxc", "storage")),
}
POOL_SCHEMA: Mapping[str, Prop] = {**POOLS_SCHEMA, "poolid": Prop("string", optional=False)}


def guest_entry(guest: Guest) -> dict[str, Any]:
    """`extract_vm_stats` plus what resources adds (tags, pool)."""
    entry: dict[str, Any] = {
        "id": f"{guest.type}/{guest.vmid}",
        "vmid": guest.vmid,
        "node": guest.node,
        "type": guest.type,
        "status": "stopped",
        "uptime": 0,
        "template": 1 if guest.template else 0,
        "maxcpu": 2,
        "cpu": 0,
        "maxmem": 2 * 1024**3,
        "mem": 0,
        "maxdisk": 32 * 1024**3,
        "disk": 0,
        "netin": 0,
        "netout": 0,
        "diskread": 0,
        "diskwrite": 0,
    }
    if guest.name is not None:
        entry["name"] = guest.name
    if guest.tags:
        entry["tags"] = ";".join(guest.tags)
    if guest.pool is not None:
        entry["pool"] = guest.pool
    return entry


def resources(
    store: ClusterStore,
    nodes: Sequence[str],
    storages: Sequence[Mapping[str, object]],
    params: Params,
    who: Principal,
) -> list[dict[str, Any]]:
    """GET /cluster/resources[?type=vm|node|storage|sdn]."""
    kind = validate(params, RESOURCES_SCHEMA).get("type")
    out: list[dict[str, Any]] = []
    if kind in (None, "vm"):
        for vmid, guest in sorted(store.guests().items()):
            if who.has("VM.Audit", f"/vms/{vmid}"):
                out.append(guest_entry(guest))
    if kind in (None, "node"):
        for node in nodes:
            entry: dict[str, Any] = {"id": f"node/{node}", "node": node, "type": "node",
                                     "status": "online", "level": ""}  # fmt: skip
            if who.has("Sys.Audit", f"/nodes/{node}"):
                entry.update(cpu=0.01, maxcpu=4, mem=2 * 1024**3, maxmem=8 * 1024**3,
                             disk=4 * 1024**3, maxdisk=32 * 1024**3, uptime=3600)  # fmt: skip
            out.append(entry)
    if kind in (None, "storage"):
        for node in nodes:
            for view in storages:
                sid = str(view["storage"])
                allowed = view.get("nodes")
                if view.get("disable") is not None or (
                    allowed is not None and node not in str(allowed).split(",")
                ):
                    continue
                if not any(
                    who.has(p, f"/storage/{sid}")
                    for p in ("Datastore.Audit", "Datastore.AllocateSpace")
                ):
                    continue
                out.append({"id": f"storage/{node}/{sid}", "storage": sid, "node": node,
                            "type": "storage", "plugintype": view["type"],
                            "content": view.get("content", ""), "shared": view.get("shared", 0),
                            "status": "available"})  # fmt: skip
    return out


def _members(store: ClusterStore, pool: str, kind: object) -> list[dict[str, Any]]:
    return [
        guest_entry(g)
        for _vmid, g in sorted(store.guests().items())
        if g.pool == pool and kind in (None, g.type)
    ]


def list_pools(store: ClusterStore, params: Params, who: Principal) -> list[dict[str, Any]]:
    """GET /pools[?poolid=X[&type=...]]."""
    checked = validate(params, POOLS_SCHEMA)
    if checked.get("type") is not None and checked.get("poolid") is None:
        raise param_error({"poolid": "missing property - 'type' requires this property"})
    pools = store.pools()
    poolid = checked.get("poolid")
    if poolid is not None:
        if poolid not in pools:
            raise PveError(500, f"pool '{poolid}' does not exist")
        info: dict[str, Any] = {"members": _members(store, str(poolid), checked.get("type"))}
        if pools[str(poolid)] is not None:
            info["comment"] = pools[str(poolid)]
        info["poolid"] = poolid
        return [info]
    out = []
    for pool in sorted(pools):
        if who.has("Pool.Audit", f"/pool/{pool}"):
            entry: dict[str, Any] = {"poolid": pool}
            if pools[pool] is not None:
                entry["comment"] = pools[pool]
            out.append(entry)
    return out


def read_pool(store: ClusterStore, params: Params, who: Principal) -> dict[str, Any]:
    """GET /pools/{poolid} (deprecated in PVE 8, still there)."""
    require_any(who, f"/pool/{params.get('poolid')}", ("Pool.Audit",))
    checked = validate(params, POOL_SCHEMA)
    info = list_pools(store, checked, who)[0]
    info.pop("poolid", None)
    return info
