"""A running lab changed the way an operator changes it: through the lab's own admin routes (what
`pbs lab guest|job` post) and through PVE's API with the lab's token."""

from __future__ import annotations

import json
from typing import Any

import requests

from pbs_compliance.lab import admin_client
from pbs_compliance.lab.runner import Lab
from pbs_compliance.lab.scenario import builtin


def lab_admin(lab: Lab, route: str, body: dict[str, Any]) -> Any:
    """What `pbs lab guest add` / `pbs lab job add|run` post: the lab's own admin client."""
    return admin_client.post(lab.state_dir, route, body, refused="the change")


def pve_put(lab: Lab, path: str, **params: str) -> None:
    """`PUT /api2/json/{path}`, as another tool or a person in the GUI changes PVE."""
    pve = json.loads((lab.state_dir / "lab.json").read_text(encoding="utf-8"))["pve"]
    answer = requests.put(
        f"{pve['url']}/api2/json/{path}",
        data=params,
        headers={"Authorization": f"PVEAPIToken={pve['token_id']}={pve['token_secret']}"},
        verify=pve["ca_file"],
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


def token_without_audit() -> dict[str, Any]:
    """The builtin lab's spec with PVE's PBS token (backup@pbs!pve) holding DatastoreBackup on
    pbs1's archive only, not Audit: it sees only the backup groups it owns, and the archive's
    one backup is owned by the user backup@pbs (the token's own job is left out)."""
    spec = builtin().model_dump()
    pbs1 = spec["pbs_servers"][0]
    pbs1["acl"] = {"backup@pbs!pve": ["archive:DatastoreBackup"], "backup@pbs": ["/:Admin"]}
    spec["jobs"] = [j for j in spec["jobs"] if j["id"] != "backup-archive"]
    spec["snapshots"] = [
        {"server": "pbs1.lab.example", "datastore": "archive", "backup": "vm/100",
         "ns": "prod/vms", "owner": "backup@pbs", "age": "2h"}
    ]  # fmt: skip
    return spec
