"""Node-side storage views: what one PVE node reports when it tries to reach each store.

PVE's `storage_info` activates every enabled store one after the other; a dead PBS then
costs one connect timeout per entry. The lab computes each distinct activation (same server,
port, fingerprint, user, secret, datastore) once per request, the activations of one login on
one connection (`NodeAgent.pooled`), and runs the logins in a thread pool, so a dead PBS costs
one timeout per request. Results are the same.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from pbs_compliance.lab.pve_errors import PveError, param_error
from pbs_compliance.lab.pve_schema import Params, Prop, split_list, validate
from pbs_compliance.lab.storage import StorageState, enabled_on_node, storage_view

__all__ = [
    "CONTENT_SCHEMA",
    "NODE_STORAGE_SCHEMA",
    "NODE_STORAGE_STATUS_SCHEMA",
    "SCAN_PBS_SCHEMA",
    "NodeAgent",
    "node_storage_content",
    "node_storage_list",
    "node_storage_status",
    "scan_pbs",
]

_NODE = Prop("string", optional=False, format="pve-node")
_FP = "([A-Fa-f0-9]{2}:){31}[A-Fa-f0-9]{2}"
NODE_STORAGE_SCHEMA: Mapping[str, Prop] = {
    "node": _NODE,
    "content": Prop("string", format="pve-storage-content-list"),
    "enabled": Prop("boolean"),
    "format": Prop("boolean"),
    "storage": Prop("string", format="pve-storage-id"),
    "target": Prop("string", format="pve-node"),
}
NODE_STORAGE_STATUS_SCHEMA: Mapping[str, Prop] = {
    "node": _NODE,
    "storage": Prop("string", optional=False, format="pve-storage-id"),
}
SCAN_PBS_SCHEMA: Mapping[str, Prop] = {
    "node": _NODE,
    "server": Prop("string", optional=False, format="pve-storage-server"),
    "username": Prop("string", optional=False),
    "password": Prop("string", optional=False),
    "fingerprint": Prop("string", pattern=_FP),
    "port": Prop("integer", minimum=1, maximum=65535),
}
CONTENT_SCHEMA: Mapping[str, Prop] = {
    "node": _NODE,
    "storage": Prop("string", optional=False, format="pve-storage-id"),
    "content": Prop("string", format="pve-storage-content"),
    "vmid": Prop("integer", minimum=100, maximum=999999999),
}
_MAX_WORKERS = 32


class NodeAgent(Protocol):
    """How the lab acts as one PVE node when it must reach a PBS (activation, scan)."""

    name: str

    def activate(self, storage: Mapping[str, object], password: str | None) -> str | None:
        """Log in to the PBS of this storage entry as PVE would and list its datastores;
        None when active, else the error text PVE would log."""
        ...

    def scan(
        self, server: str, username: str, password: str, fingerprint: str | None, port: int
    ) -> list[dict[str, object]]:
        """The datastore list as PBS returns it; raise with the client error on failure."""
        ...

    def status(self, storage: Mapping[str, object], password: str | None) -> tuple[int, int, int]:
        """(total, used, avail) bytes of an active store (called after activate succeeded)."""
        ...

    def snapshots(
        self, storage: Mapping[str, object], password: str | None, vmid: int | None
    ) -> list[dict[str, object]]:
        """The PBS snapshot list of the entry's datastore and namespace (PBSPlugin.pm
        `list_volumes`); raise with the client error on failure."""
        ...

    def pooled(self) -> AbstractContextManager[None]:
        """A block whose calls of one login share a connection (see `LabNodeAgent.pooled`)."""
        ...


@dataclass(frozen=True)
class _Probe:
    """What decides an activation's outcome; equal probes are run once."""

    server: str
    port: int
    fingerprint: str
    username: str
    password: str | None
    datastore: str


def _probe_key(view: Mapping[str, object], password: str | None) -> _Probe:
    return _Probe(
        server=str(view.get("server", "")),
        port=int(str(view.get("port", 8007))),
        fingerprint=str(view.get("fingerprint", "")).upper(),
        username=str(view.get("username", "root@pam")),
        password=password,
        datastore=str(view.get("datastore", "")),
    )


def _content_types(view: Mapping[str, object]) -> list[str]:
    return split_list(str(view.get("content", "")))


def _info(view: Mapping[str, object], node: str) -> dict[str, object]:
    """The inactive starting point of `storage_info` for one store."""
    return {
        "storage": view["storage"],
        "type": view["type"],
        "content": view.get("content", ""),
        "shared": 1 if str(view.get("shared", "0")) not in ("", "0") else 0,
        "enabled": 1 if enabled_on_node(view, node) else 0,
        "active": 0,
        "total": 0,
        "used": 0,
        "avail": 0,
    }


def _probe_all(
    state: StorageState, agent: NodeAgent, views: Sequence[dict[str, object]], disk: Path
) -> list[dict[str, object]]:
    """Fill in activity and sizes for the enabled stores among `views` (in place)."""
    infos = [_info(v, agent.name) for v in views]
    pbs: dict[_Probe, tuple[Mapping[str, object], str | None]] = {}
    wanted: list[tuple[dict[str, object], _Probe]] = []
    for view, info in zip(views, infos, strict=True):
        if not info["enabled"]:
            continue
        if view["type"] == "pbs":
            password = state.password(str(view["storage"]))
            key = _probe_key(view, password)
            pbs.setdefault(key, (view, password))
            wanted.append((info, key))
        elif view["type"] == "dir":
            # A dir store is active when its path exists; the lab reports its own disk.
            usage = shutil.disk_usage(disk)
            info.update(active=1, total=usage.total, used=usage.used, avail=usage.free)
    # One task per login (the stores of one server, user and pin), each on one connection.
    logins: dict[_Probe, list[tuple[_Probe, Mapping[str, object], str | None]]] = {}
    for key, (entry, password) in pbs.items():
        logins.setdefault(replace(key, datastore=""), []).append((key, entry, password))
    results: dict[_Probe, tuple[int, int, int] | None] = {}
    if logins:
        with ThreadPoolExecutor(max_workers=min(_MAX_WORKERS, len(logins))) as pool:
            futures = [pool.submit(_measure_login, agent, stores) for stores in logins.values()]
            for future in futures:
                results.update(future.result())
    for info, key in wanted:
        sizes = results.get(key)
        if sizes is not None:
            total, used, avail = sizes
            info.update(active=1, total=int(total), used=int(used), avail=int(avail))
    return infos


def _measure_login(
    agent: NodeAgent, stores: Sequence[tuple[_Probe, Mapping[str, object], str | None]]
) -> dict[_Probe, tuple[int, int, int] | None]:
    """Activate and measure the stores of one login, one after the other on one connection."""
    with agent.pooled():
        return {key: _activate_and_measure(agent, view, password) for key, view, password in stores}


def _activate_and_measure(
    agent: NodeAgent, view: Mapping[str, object], password: str | None
) -> tuple[int, int, int] | None:
    """None when the store is not active: PVE only logs the reason and reports zeros."""
    try:
        if agent.activate(view, password) is not None:
            return None
        return agent.status(view, password)
    except Exception:  # PVE warns and reports the store inactive
        return None


def node_storage_list(
    state: StorageState,
    agent: NodeAgent,
    params: Params,
    visible: Mapping[str, bool],
    disk: Path,
) -> list[dict[str, object]]:
    """GET /nodes/{node}/storage as `agent`'s node sees it.

    `visible` says per storage ID whether the caller may see it (Audit or AllocateSpace).
    """
    checked = validate(params, NODE_STORAGE_SCHEMA)
    wanted_id = checked.get("storage")
    content = checked.get("content")
    views = [storage_view(state, sid) for sid in state.config.ids() if _exists(state, sid)]
    if content is not None:
        types = split_list(str(content))
        views = [
            v
            for v in views
            if enabled_on_node(v, agent.name) and set(types) & set(_content_types(v))
        ]
    if wanted_id is not None and not any(v["storage"] == wanted_id for v in views):
        raise param_error({"storage": "No such storage."})
    selected = [
        v
        for v in views
        if visible.get(str(v["storage"]), False)
        and (wanted_id is None or v["storage"] == wanted_id)
        and _usable_for_target(v, checked.get("target"))
    ]
    infos = _probe_all(state, agent, selected, disk)
    if checked.get("enabled") == "1":
        infos = [i for i in infos if i["enabled"]]
    for info in infos:
        total = int(str(info["total"]))
        if total > 0:
            info["used_fraction"] = int(str(info["used"])) / total
    return infos


def _exists(state: StorageState, storage_id: str) -> bool:
    try:
        storage_view(state, storage_id)
    except PveError:
        return False
    return True


def _usable_for_target(view: Mapping[str, object], target: object) -> bool:
    if target is None:
        return True
    if str(view.get("shared", "0")) in ("", "0"):
        return False
    nodes = view.get("nodes")
    return nodes is None or str(target) in split_list(str(nodes))


def node_storage_status(
    state: StorageState, agent: NodeAgent, params: Params, disk: Path
) -> dict[str, object]:
    """GET /nodes/{node}/storage/{storage}/status."""
    checked = validate(params, NODE_STORAGE_STATUS_SCHEMA)
    storage_id = str(checked["storage"])
    if not _exists(state, storage_id):
        raise param_error({"storage": "No such storage."})
    info = _probe_all(state, agent, [storage_view(state, storage_id)], disk)[0]
    info.pop("storage")
    return info


def scan_pbs(agent: NodeAgent, params: Params) -> list[dict[str, object]]:
    """GET /nodes/{node}/scan/pbs: the PBS datastore list as the node sees it."""
    checked = validate(params, SCAN_PBS_SCHEMA)
    fingerprint = checked.get("fingerprint")
    port = checked.get("port")
    try:
        return agent.scan(
            str(checked["server"]),
            str(checked["username"]),
            str(checked["password"]),
            str(fingerprint) if fingerprint is not None else None,
            int(str(port)) if port is not None else 8007,
        )
    except Exception as exc:  # PVE reports any client failure this way
        raise PveError(500, f"error fetching datastores - {exc}") from exc


def _volume(storage_id: str, item: Mapping[str, object]) -> dict[str, object] | None:
    """One PBS snapshot as a PVE backup volume (PBSPlugin.pm `list_volumes`)."""
    btype, bid = str(item.get("backup-type")), str(item.get("backup-id"))
    if btype not in ("vm", "ct") or not bid.isdigit():
        return None
    epoch = int(str(item.get("backup-time")))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    info: dict[str, object] = {
        "volid": f"{storage_id}:backup/{btype}/{bid}/{stamp}",
        "format": f"pbs-{btype}",
        "size": int(str(item.get("size") or 1)),
        "content": "backup",
        "vmid": int(bid),
        "ctime": epoch,
        "subtype": "qemu" if btype == "vm" else "lxc",
    }
    if item.get("verification") is not None:
        info["verification"] = item["verification"]
    if item.get("comment") is not None:
        info["notes"] = item["comment"]
    if item.get("protected"):
        info["protected"] = 1
    files = item.get("files")
    if item.get("fingerprint") is not None:
        info["encrypted"] = item["fingerprint"]
    elif isinstance(files, list) and any(
        isinstance(f, dict) and f.get("crypt-mode") == "encrypt" for f in files
    ):
        info["encrypted"] = "1"
    return info


def node_storage_content(
    state: StorageState, agent: NodeAgent, params: Params, may_see: Callable[[int], bool]
) -> list[dict[str, object]]:
    """GET /nodes/{node}/storage/{storage}/content for a PBS entry, as `agent`'s node sees it.

    `may_see(vmid)` is `check_volume_access` for a backup volume of that guest (volumes the
    caller may not access are dropped silently). Non-PBS stores list nothing in the lab.
    """
    checked = validate(params, CONTENT_SCHEMA)
    storage_id = str(checked["storage"])
    view = storage_view(state, storage_id)  # dies "storage 'x' does not exist"
    if view.get("disable") is not None:
        raise PveError(500, f"storage '{storage_id}' is disabled")
    if not enabled_on_node(view, agent.name):
        raise PveError(500, f"storage '{storage_id}' is not available on node '{agent.name}'")
    wanted = checked.get("content")
    if view["type"] != "pbs" or (wanted is not None and wanted not in _content_types(view)):
        return []
    if wanted is not None and wanted != "backup":
        return []
    password = state.password(storage_id)
    vmid = checked.get("vmid")
    with agent.pooled():  # activation and listing on one connection
        problem = agent.activate(view, password)
        if problem is not None:
            raise PveError(500, f"{storage_id}: {problem}")
        try:
            items = agent.snapshots(view, password, int(str(vmid)) if vmid is not None else None)
        except Exception as exc:  # PBSPlugin.pm: die "error listing snapshots - $@"
            raise PveError(500, f"error listing snapshots - {exc}") from exc
    volumes = [v for v in (_volume(storage_id, i) for i in items) if v is not None]
    volumes.sort(key=lambda v: str(v["volid"]).lower())
    return [v for v in volumes if may_see(int(str(v["vmid"])))]
