"""apply() end to end against the full lab: real PBS servers, per-node DNS, the real node agent.

The other apply tests use node doubles to steer every branch; these prove the same safety rules
hold when nodes really resolve, handshake and log in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import SecretStr

from pbs_compliance.config import load_config
from pbs_compliance.config.model import StorageSpec
from pbs_compliance.drift import diff
from pbs_compliance.essence import essence_from_api, essence_of
from pbs_compliance.lab.runner import Lab
from pbs_compliance.pve import PveClient
from remediate import PlanOptions, Reachability, Results, Status, apply, plan

SERVER = "pbs1.lab.example"
SCENARIO: dict[str, Any] = {
    "nodes": ["pve1", "pve2", "pve3"],
    "pbs_servers": [{"name": SERVER, "address": "127.0.0.11", "datastores": {"homelab": []}}],
    "storages": [
        {
            "name": "homelab-backup",
            "server": SERVER,
            "datastore": "homelab",
            "options": {"prune-backups": "keep-daily=7"},
        }
    ],
    "dns_hidden": {"pve3": [SERVER]},  # pve3's resolver does not know the PBS
}


def reconcile(lab: Lab, client: PveClient, desired: Sequence[StorageSpec]) -> Results:
    served = lab.pbs[SERVER].fingerprint
    reach = {s.name: Reachability(ok=True, served_fingerprint=served) for s in desired}
    options = PlanOptions()
    current = plan(desired, client.storages(), options, reach)
    return apply(current, client, desired, options, reach, sleep=lambda _s: None)


def declared(lab: Lab) -> list[StorageSpec]:
    config = load_config(lab.config_path, environ=lab.env)
    return list(config.storages)


def new_storage(lab: Lab, name: str, **fields: Any) -> StorageSpec:
    data: dict[str, Any] = {
        "name": name,
        "server": SERVER,
        "datastore": "homelab",
        "fingerprint": lab.pbs[SERVER].fingerprint,
        "port": lab.pbs[SERVER].port,
        "password": SecretStr(lab.pbs_password(SERVER, "root@pam")),
    }
    data.update(fields)
    return StorageSpec.model_validate(data, strict=False)


def test_against_the_full_lab_creates_only_where_every_node_reaches_the_pbs(
    make_lab: Callable[..., Lab],
) -> None:
    lab = make_lab(SCENARIO)
    config = load_config(lab.config_path, environ=lab.env)
    client = PveClient(config.pve)
    try:
        existing = declared(lab)
        # drift by hand on the existing entry; two new ones, one of them only on pve1 + pve2
        client.update("homelab-backup", {"prune-backups": "keep-daily=1"})
        desired = [
            *existing,
            new_storage(lab, "everywhere"),
            new_storage(lab, "two-nodes", nodes=["pve1", "pve2"]),
        ]
        results = reconcile(lab, client, desired)

        assert results.for_storage("homelab-backup").verb == "updated"  # type: ignore[union-attr]
        assert results.for_storage("two-nodes").verb == "created"  # type: ignore[union-attr]
        failed = results.for_storage("everywhere")
        assert failed is not None
        assert failed.status == Status.FAILED
        assert failed.unreachable_nodes == ("pve3",)
        assert "Name or service not known" in failed.reason

        live = {str(e["storage"]): e for e in client.storages()}
        assert live["everywhere"]["disable"] == 1  # left disabled, never half-enabled
        for spec in (desired[0], desired[2]):
            assert diff(essence_of(spec), essence_from_api(live[spec.name])).compliant
        for node in ("pve1", "pve2"):
            view = {v["storage"]: v for v in client.node_storages(node)}
            assert view["two-nodes"]["active"] == 1
            assert view["homelab-backup"]["active"] == 1
    finally:
        client.api._store["session"].close()
