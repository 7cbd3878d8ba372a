"""A lab PBS's datastore contents over real TLS: snapshots, groups, status, usage, maintenance,
and who sees what (PBS's ACL rules; a token inherits nothing from its user)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from pbs_compliance.lab.backups import BackupStore, Snapshot, maintenance_string
from pbs_compliance.lab.pbs_datastore import HISTORY_DELTA, HISTORY_POINTS
from pbs_compliance.lab.pbs_server import PbsServer

ROOT_PW = "root-pw"
BACKUP_PW = "backup-pw"
TOKENS = {
    "backup@pbs!pve": "3f1c5e0a-7d2b-4c1e-9a55-0b6a1e3c7f7d",
    "backup@pbs!other": "4f1c5e0a-7d2b-4c1e-9a55-0b6a1e3c7f7d",
    "audit@pbs!wide": "5f1c5e0a-7d2b-4c1e-9a55-0b6a1e3c7f7d",
    "ns@pbs!below": "6f1c5e0a-7d2b-4c1e-9a55-0b6a1e3c7f7d",
}
NOW = int(time.time())


@pytest.fixture
def contents(tmp_path: Path) -> BackupStore:
    store = BackupStore(tmp_path / BackupStore.FILE)
    store.add_server("pbs1.lab.example", ["homelab", "offsite"])
    add = store.add_snapshot
    add("pbs1.lab.example", "homelab", Snapshot("vm", "100", NOW - 7200, verification="ok",
        verify_upid="UPID:pbs1:x:", comment="nightly\nsecond line", protected=True))  # fmt: skip
    add("pbs1.lab.example", "homelab", Snapshot("vm", "100", NOW - 90000, size=5000))
    add("pbs1.lab.example", "homelab", Snapshot("ct", "101", NOW - 60, in_progress=True))
    add("pbs1.lab.example", "homelab", Snapshot("vm", "200", NOW - 3600, owner="backup@pbs!pve",
        verification="failed"))  # fmt: skip
    add("pbs1.lab.example", "homelab", Snapshot("vm", "300", NOW - 3600, ns="prod"))
    return store


@pytest.fixture
def server(start_pbs: Callable[..., PbsServer], contents: BackupStore) -> PbsServer:
    return start_pbs(
        datastores={"homelab": ["prod"], "offsite": []},
        users={"root@pam": ROOT_PW, "backup@pbs": BACKUP_PW, "audit@pbs": "a", "ns@pbs": "n"},
        tokens=TOKENS,
        acl={
            "backup@pbs": ["homelab:DatastoreAdmin"],
            "backup@pbs!pve": ["homelab:DatastoreBackup"],
            "backup@pbs!other": ["homelab:DatastoreAdmin", "offsite:DatastoreBackup"],
            "audit@pbs": ["homelab:DatastoreAudit"],
            "audit@pbs!wide": ["/:Admin"],  # intersected with its user's Audit on homelab
            "ns@pbs!below": ["homelab/prod:DatastoreBackup"],
        },
        contents=contents,
    )


@pytest.fixture
def http(server: PbsServer, tmp_path: Path) -> Iterator[Callable[..., requests.Response]]:
    ca = tmp_path / "pbs.pem"
    ca.write_bytes(server.cert_pem)
    with requests.Session() as session:
        session.trust_env = False
        session.verify = str(ca)

        def get(path: str, auth: str = "root@pam", **params: Any) -> requests.Response:
            headers = {}
            if "!" in auth:
                headers["Authorization"] = f"PBSAPIToken={auth}:{TOKENS[auth]}"
            else:
                form = {"username": auth, "password": server.spec.users[auth]}
                base = f"https://{server.address}:{server.port}/api2/json"
                ticket = session.post(f"{base}/access/ticket", data=form, timeout=5)
                session.cookies.set("PBSAuthCookie", ticket.json()["data"]["ticket"])
            url = f"https://{server.address}:{server.port}/api2/json{path}"
            response = session.get(url, params=params, headers=headers, timeout=5)
            session.cookies.clear()
            return response

        yield get


def data(response: requests.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()["data"]


def test_snapshots_carry_verification_size_protected_and_the_first_line_of_the_notes(
    http: Callable[..., requests.Response],
) -> None:
    items = data(http("/admin/datastore/homelab/snapshots"))
    assert [(i["backup-type"], i["backup-id"], i["backup-time"]) for i in items] == [
        ("ct", "101", NOW - 60),
        ("vm", "100", NOW - 90000),
        ("vm", "100", NOW - 7200),
        ("vm", "200", NOW - 3600),
    ]  # the root namespace only: vm/300 in 'prod' is not listed
    newest = items[2]
    assert newest["verification"] == {"state": "ok", "upid": "UPID:pbs1:x:"}
    assert newest["comment"] == "nightly"
    assert newest["protected"] is True
    assert newest["owner"] == "root@pam"
    assert newest["size"] == sum(f["size"] for f in newest["files"])
    assert "drive-scsi0.img.fidx" in [f["filename"] for f in newest["files"]]
    older = items[1]
    assert (older["size"], older["protected"]) == (5000, False)
    assert not {"verification", "comment"} & set(older)
    assert items[3]["verification"]["state"] == "failed"


def test_a_snapshot_being_written_has_no_size_verification_or_comment(
    http: Callable[..., requests.Response],
) -> None:
    (running,) = data(http("/admin/datastore/homelab/snapshots", **{"backup-type": "ct"}))
    assert running["backup-id"] == "101"
    assert not {"size", "verification", "comment"} & set(running)
    assert [f["filename"] for f in running["files"]] == ["pct.conf.blob", "root.pxar.didx"]


def test_snapshots_by_namespace_type_and_id(http: Callable[..., requests.Response]) -> None:
    assert [
        i["backup-id"] for i in data(http("/admin/datastore/homelab/snapshots", ns="prod"))
    ] == ["300"]
    only = data(http("/admin/datastore/homelab/snapshots", **{"backup-id": "100"}))
    assert {i["backup-id"] for i in only} == {"100"}
    unknown = http("/admin/datastore/homelab/snapshots", ns="nope")
    assert (unknown.status_code, unknown.text) == (400, "namespace 'nope' does not exist")
    wrong = http("/admin/datastore/homelab/snapshots", **{"backup-type": "qemu"})
    assert wrong.status_code == 400
    assert wrong.text == (
        "parameter verification failed - 'backup-type': value 'qemu' is not defined in the "
        "enumeration."
    )


def test_groups_summarise_each_group_with_snapshots(http: Callable[..., requests.Response]) -> None:
    groups = data(http("/admin/datastore/homelab/groups"))
    vm100 = next(g for g in groups if g["backup-id"] == "100")
    assert vm100 == {
        "backup-type": "vm",
        "backup-id": "100",
        "last-backup": NOW - 7200,
        "backup-count": 2,
        "files": ["client.log.blob", "drive-scsi0.img.fidx", "index.json.blob",
                  "qemu-server.conf.blob"],
        "owner": "root@pam",
    }  # fmt: skip
    assert [g["backup-id"] for g in data(http("/admin/datastore/offsite/groups"))] == []


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ("root@pam", ["101", "100", "100", "200"]),
        ("audit@pbs", ["101", "100", "100", "200"]),  # Datastore.Audit: every group
        ("backup@pbs!pve", ["200"]),  # Datastore.Backup only: what this token wrote
        ("backup@pbs!other", ["101", "100", "100", "200"]),
    ],
)
def test_who_sees_which_snapshots(
    http: Callable[..., requests.Response], auth: str, expected: list[str]
) -> None:
    items = data(http("/admin/datastore/homelab/snapshots", auth=auth))
    assert [i["backup-id"] for i in items] == expected


def test_a_backup_only_token_sees_an_empty_list_not_a_403_for_its_users_groups(
    http: Callable[..., requests.Response], contents: BackupStore
) -> None:
    contents.add_snapshot(
        "pbs1.lab.example", "homelab", Snapshot("vm", "400", NOW, owner="backup@pbs")
    )
    mine = http("/admin/datastore/homelab/snapshots", auth="backup@pbs!pve", **{"backup-id": "400"})
    assert data(mine) == []
    theirs = http("/admin/datastore/homelab/snapshots", auth="backup@pbs", **{"backup-id": "400"})
    assert [i["owner"] for i in data(theirs)] == ["backup@pbs"]
    # The user also sees what its tokens wrote.
    assert "200" in [
        i["backup-id"] for i in data(http("/admin/datastore/homelab/snapshots", auth="backup@pbs"))
    ]
    # backup@pbs!other has Backup on offsite, its user nothing there: a token inherits none.
    refused = http("/admin/datastore/offsite/snapshots", auth="backup@pbs!other")
    assert (refused.status_code, refused.text) == (
        403,
        "permission check failed - missing Datastore.Audit|Datastore.Backup on /datastore/offsite",
    )


def test_a_token_gets_no_more_than_its_user_has(http: Callable[..., requests.Response]) -> None:
    # audit@pbs!wide has Admin on "/", its user only DatastoreAudit on homelab.
    assert [d["store"] for d in data(http("/admin/datastore", auth="audit@pbs!wide"))] == [
        "homelab"
    ]
    refused = http("/admin/datastore/offsite/snapshots", auth="audit@pbs!wide")
    assert refused.status_code == 403


def test_a_privilege_below_the_store_lists_it_and_its_namespace_but_no_sizes(
    http: Callable[..., requests.Response],
) -> None:
    auth = "ns@pbs!below"
    assert data(http("/admin/datastore", auth=auth)) == [{"store": "homelab"}]
    assert data(http("/admin/datastore/homelab/status", auth=auth)) == {
        "total": 0,
        "used": 0,
        "avail": 0,
    }
    assert data(http("/admin/datastore/homelab/namespace", auth=auth, parent="prod")) == [
        {"ns": "prod"}
    ]
    root = http("/admin/datastore/homelab/namespace", auth=auth)
    assert (root.status_code, root.text) == (403, "permission check failed")
    assert data(http("/admin/datastore/homelab/snapshots", auth=auth, ns="prod")) == []
    assert data(http("/status/datastore-usage", auth=auth)) == [{"store": "homelab"}]
    hidden = http("/admin/datastore/offsite/status", auth=auth)
    assert (hidden.status_code, hidden.text) == (403, "permission check failed")


def test_status_sizes_follow_the_fill_level_and_verbose_counts_groups(
    http: Callable[..., requests.Response], contents: BackupStore
) -> None:
    contents.fill("pbs1.lab.example", "homelab", 97.0, None)
    status = data(http("/admin/datastore/homelab/status", verbose="1"))
    assert status["used"] == int(status["total"] * 0.97)
    assert status["avail"] == status["total"] - status["used"]
    assert status["counts"] == {
        "ct": {"groups": 1, "snapshots": 1},
        "vm": {"groups": 3, "snapshots": 4},
    }
    assert status["gc-status"]["removed-bytes"] == 0


def test_datastore_usage_estimates_the_full_date_from_a_month_of_history(
    http: Callable[..., requests.Response], contents: BackupStore
) -> None:
    full_at = NOW + 10 * 86400
    contents.fill("pbs1.lab.example", "homelab", 90.0, full_at)
    homelab, offsite = data(http("/status/datastore-usage"))
    assert homelab["store"] == "homelab"
    assert abs(homelab["estimated-full-date"] - full_at) <= 2
    assert (homelab["history-delta"], len(homelab["history"])) == (HISTORY_DELTA, HISTORY_POINTS)
    assert homelab["history"][-1] == pytest.approx(0.9, abs=0.01)
    assert homelab["history"][0] < homelab["history"][-1]  # growing
    assert homelab["used"] / homelab["total"] == pytest.approx(0.9)
    assert offsite["estimated-full-date"] == 0  # a flat trend: never full


def test_offline_maintenance_fails_reads_read_only_does_not(
    http: Callable[..., requests.Response], contents: BackupStore
) -> None:
    contents.set_maintenance(
        "pbs1.lab.example", "homelab", maintenance_string("offline", "disk swap")
    )
    contents.set_maintenance("pbs1.lab.example", "offsite", maintenance_string("read-only"))
    assert data(http("/admin/datastore")) == [
        {"store": "homelab", "maintenance": "type=offline,message=disk swap"},
        {"store": "offsite", "maintenance": "type=read-only"},
    ]
    for call in ("snapshots", "groups", "status", "namespace"):
        refused = http(f"/admin/datastore/homelab/{call}")
        assert (refused.status_code, refused.text) == (400, "offline maintenance mode: disk swap")
    usage = data(http("/status/datastore-usage"))
    assert usage[0] == {"store": "homelab", "error": "offline maintenance mode: disk swap"}
    assert data(http("/admin/datastore/offsite/snapshots")) == []


def test_contents_survive_a_reload_from_the_state_file(
    contents: BackupStore, tmp_path: Path
) -> None:
    contents.fill("pbs1.lab.example", "offsite", 42.5, NOW + 3600)
    again = BackupStore(tmp_path / BackupStore.FILE)
    assert not again.fresh
    assert again.datastore("pbs1.lab.example", "homelab") == contents.datastore(
        "pbs1.lab.example", "homelab"
    )
    offsite = again.datastore("pbs1.lab.example", "offsite")
    assert (offsite.used_percent, offsite.full_at) == (42.5, NOW + 3600)


def test_the_same_group_and_second_is_refused_or_moved_on(contents: BackupStore) -> None:
    twin = Snapshot("vm", "100", NOW - 7200)
    with pytest.raises(ValueError, match=r"snapshot vm/100/\d+ already exists in homelab"):
        contents.add_snapshot("pbs1.lab.example", "homelab", twin)
    moved = contents.add_snapshot("pbs1.lab.example", "homelab", twin, bump=True)
    assert moved.time == NOW - 7199
    with pytest.raises(KeyError, match="has no datastore 'nope' \\(its datastores: homelab"):
        contents.add_snapshot("pbs1.lab.example", "nope", twin)
