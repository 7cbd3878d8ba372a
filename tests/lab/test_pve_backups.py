"""PVE's view of backups in the lab, over real sockets with proxmoxer: PBS storage content and
status computed by the node agents from the PBS answers, backup jobs with PVE's rules and
errors, not-backed-up, included_volumes, vzdump tasks, guests and pools, privileges, restarts.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from proxmoxer import ProxmoxAPI, ResourceException
from pve_fixtures import StartPve, fixture_pve_pki, fixture_start_pve  # noqa: F401
from typer.testing import CliRunner

from pbs_compliance.cli import app
from pbs_compliance.lab.fixtures import LabFactory
from pbs_compliance.lab.pve_auth import Principal
from pbs_compliance.lab.pve_cluster import Guest
from pbs_compliance.lab.pve_tasks import make_task
from pbs_compliance.lab.runner import Lab

UPID = re.compile(r"^UPID:(pve[123]):[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:vzdump:(\d*):root@pam:$")
VOLID = re.compile(r"^[a-z-]+:backup/(vm|ct)/\d+/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def api(lab: Lab, readonly: bool = False) -> ProxmoxAPI:
    pve = json.loads((lab.state_dir / "lab.json").read_text(encoding="utf-8"))["pve"]
    token_id = pve["readonly_token_id" if readonly else "token_id"]
    user, name = token_id.split("!")
    host, port = pve["url"].removeprefix("https://").split(":")
    secret = pve["readonly_token_secret" if readonly else "token_secret"]
    return ProxmoxAPI(
        host, port=int(port), user=user, token_name=name, token_value=secret,
        verify_ssl=pve["ca_file"],
    )  # fmt: skip


def raw(lab: Lab, method: str, path: str, **params: Any) -> requests.Response:
    """The response itself, to see the body's `message` that proxmoxer drops."""
    pve = json.loads((lab.state_dir / "lab.json").read_text(encoding="utf-8"))["pve"]
    return requests.request(
        method,
        f"{pve['url']}/api2/json{path}",
        params=params if method in ("GET", "DELETE") else None,
        data=params if method in ("POST", "PUT") else None,
        headers={"Authorization": f"PVEAPIToken={pve['token_id']}={pve['token_secret']}"},
        verify=pve["ca_file"],
        timeout=10,
    )


def failure(call: Callable[[], object]) -> ResourceException:
    with pytest.raises(ResourceException) as info:
        call()
    return info.value


# -- storage content: PBSPlugin.pm list_volumes, from the node's own PBS call -----------------


def test_pbs_backups_in_storage_content_carry_volid_format_subtype_verification_and_notes(
    shared_lab: Lab,
) -> None:
    items = api(shared_lab).nodes("pve1").storage("homelab-backup").content.get()
    assert {i["vmid"] for i in items} == {100, 101, 200, 201, 300, 9000}  # every guest
    assert [i["volid"] for i in items] == sorted(i["volid"] for i in items)
    web = next(i for i in items if i["vmid"] == 100)
    assert VOLID.match(web["volid"])
    assert web["volid"].startswith("homelab-backup:backup/vm/100/")
    assert (web["format"], web["subtype"], web["content"]) == ("pbs-vm", "qemu", "backup")
    assert web["verification"]["state"] == "ok"
    assert web["notes"] == "web"  # the job's notes-template {{guestname}}
    assert time.time() - web["ctime"] < 7 * 3600  # the built-in job ran ~6 h ago
    assert web["volid"].endswith(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(web["ctime"])))
    dns = next(i for i in items if i["vmid"] == 101)
    assert (dns["format"], dns["subtype"]) == ("pbs-ct", "lxc")


def test_content_lists_the_entrys_namespace_only_and_filters_by_vmid_and_type(
    shared_lab: Lab,
) -> None:
    storage = api(shared_lab).nodes("pve1").storage("archive")
    assert sorted(i["vmid"] for i in storage.content.get()) == [100, 200, 300]  # pool prod
    assert [i["vmid"] for i in storage.content.get(vmid=200)] == [200]
    assert storage.content.get(content="images") == []


def test_an_audit_only_token_sees_no_backups_in_content(shared_lab: Lab) -> None:
    # PVEAuditor: Datastore.Audit lists the storage, check_volume_access drops every volume.
    readonly = api(shared_lab, readonly=True)
    assert readonly.nodes("pve1").storage("homelab-backup").content.get() == []
    assert readonly.nodes("pve1").storage("homelab-backup").status.get()["active"] == 1


@pytest.mark.parametrize(
    ("node", "storage", "reason"),
    [
        ("pve3", "offsite", "storage 'offsite' is not available on node 'pve3'"),
        ("pve1", "nope", "storage 'nope' does not exist"),
    ],
)
def test_content_errors_in_pves_words(
    shared_lab: Lab, node: str, storage: str, reason: str
) -> None:
    error = failure(api(shared_lab).nodes(node).storage(storage).content.get)
    assert (error.status_code, error.content) == (500, reason)


def test_content_when_the_pbs_is_down_or_offline(lab: Lab) -> None:
    storage = api(lab).nodes("pve1").storage("homelab-backup")
    assert lab.admin is not None
    lab.admin.maintenance("pbs1.lab.example", ["homelab"], {"maintenance": "offline"})
    error = failure(storage.content.get)
    assert (error.status_code, error.content) == (500, "error listing snapshots - 400 Bad Request")
    assert storage.status.get()["active"] == 0  # the status call fails the same way
    lab.pbs["pbs1.lab.example"].set_mode("down")
    error = failure(storage.content.get)
    assert error.status_code == 500
    assert error.content.startswith("homelab-backup: error fetching datastores - 500 Can't connect")


def test_a_content_read_activates_and_lists_on_one_connection(lab: Lab) -> None:
    pbs = lab.pbs["pbs1.lab.example"]
    before = pbs.connection_counts["api"]
    assert api(lab).nodes("pve1").storage("homelab-backup").content.get(vmid=100)
    assert pbs.connection_counts["api"] - before == 1


def test_storage_status_follows_the_pbs_fill_level(lab: Lab) -> None:
    assert lab.admin is not None
    lab.admin.fill({"server": "pbs2.lab.example", "datastore": "offsite", "used_percent": 97})
    status = api(lab).nodes("pve1").storage("offsite").status.get()
    assert status["used"] / status["total"] == pytest.approx(0.97)


# -- jobs -------------------------------------------------------------------------------------


def test_the_built_in_jobs_cover_every_guest_and_show_as_pve_returns_them(
    shared_lab: Lab,
) -> None:
    pve = api(shared_lab)
    jobs = {j["id"]: j for j in pve.cluster.backup.get()}
    assert set(jobs) == {"backup-homelab", "backup-archive", "backup-offsite", "backup-media"}
    homelab = jobs["backup-homelab"]
    assert (homelab["all"], homelab["enabled"], homelab["type"]) == (1, 1, "vzdump")
    assert homelab["storage"] == "homelab-backup"
    assert homelab["next-run"] > time.time()
    assert jobs["backup-offsite"]["vmid"] == "100,200"
    single = pve.cluster.backup("backup-offsite").get()
    assert "next-run" not in single
    assert (single["id"], single["type"], single["schedule"]) == (
        "backup-offsite", "vzdump", "mon..sat 04:00"
    )  # fmt: skip
    assert pve.cluster("backup-info")("not-backed-up").get() == []


def test_create_update_delete_a_job_with_pves_rules(lab: Lab) -> None:
    backup = api(lab).cluster.backup
    assert backup.post(id="weekly", schedule="sun 01:00", storage="no-such", vmid="100, 101",
                       exclude=None, **{"prune-backups": "keep-last=3"}) is None  # fmt: skip
    job = backup("weekly").get()
    assert (job["vmid"], job["storage"], job["enabled"]) == ("100, 101", "no-such", 1)
    assert job["prune-backups"] == {"keep-last": "3"}
    backup("weekly").put(all=1, exclude="101")
    job = backup("weekly").get()
    assert (job["all"], job["exclude"]) == (1, "101")
    assert "vmid" not in job
    backup("weekly").put(delete="exclude")
    assert backup("weekly").get()["all"] == 1  # deleting exclude keeps all
    backup("weekly").put(vmid="300")
    job = backup("weekly").get()
    assert job["vmid"] == "300"
    assert "all" not in job
    backup("weekly").put(enabled=0)
    assert backup("weekly").get()["enabled"] == 0
    assert backup("weekly").delete() is None
    assert "weekly" not in [j["id"] for j in backup.get()]
    cfg = (lab.state_dir / "jobs.cfg").read_text(encoding="utf-8")
    assert "vzdump: weekly" not in cfg
    assert "vzdump: backup-homelab\n\t" in cfg


@pytest.mark.parametrize(
    ("method", "path", "params", "status", "reason", "detail"),
    [
        ("POST", "/cluster/backup", {"schedule": "1:00", "all": "1", "vmid": "100"}, 500,
         "400 Parameter verification failed.", "all: option conflicts with option 'vmid'"),
        ("POST", "/cluster/backup", {"schedule": "1:00", "storage": "media"}, 500,
         "400 Parameter verification failed.", "vmid: property is missing"),
        ("POST", "/cluster/backup", {"id": "backup-media", "schedule": "1:00", "all": "1"}, 500,
         "Job 'backup-media' already exists", None),
        ("POST", "/cluster/backup", {"all": "1"}, 400, "Parameter verification failed.",
         "neither 'starttime' nor 'schedule' were set"),
        ("POST", "/cluster/backup", {"schedule": "1:00", "pool": "ghost"}, 403,
         "Permission check failed (pool 'ghost' does not exist)", None),
        ("POST", "/cluster/backup", {"schedule": "1:00", "all": "True"}, 400,
         "Parameter verification failed.", "type check ('boolean') failed - got 'True'"),
        ("POST", "/cluster/backup", {"schedule": "1:00", "all": "1", "mode": "fast"}, 400,
         "Parameter verification failed.", "value 'fast' does not have a value in the enum"),
        ("POST", "/cluster/backup", {"schedule": "1:00", "all": "1", "notes-template": "{{x}}",
         "storage": "media"}, 500, "400 Parameter verification failed.",
         "notes-template: found unknown: variable 'x' at char 2"),
        ("GET", "/cluster/backup/ghost", {}, 400, "Parameter verification failed.",
         "No such job 'ghost'"),
        ("PUT", "/cluster/backup/ghost", {"all": "1"}, 500, "no such vzdump job", None),
        ("PUT", "/cluster/backup/backup-media", {}, 500, "no options specified", None),
        ("PUT", "/cluster/backup/backup-media", {"delete": "bogus"}, 500,
         "400 Parameter verification failed.", "delete: unknown option 'bogus'"),
        ("DELETE", "/cluster/backup/ghost", {}, 500, "400 Parameter verification failed.",
         "id: No such job 'ghost'"),
    ],
)  # fmt: skip
def test_job_errors_in_pves_status_reason_and_message(
    shared_lab: Lab,
    method: str,
    path: str,
    params: dict[str, str],
    status: int,
    reason: str,
    detail: str | None,
) -> None:
    response = raw(shared_lab, method, path, **params)
    assert (response.status_code, response.reason) == (status, reason)
    body = response.json()
    assert body["data"] is None
    if detail is not None:
        assert detail in body["message"] + json.dumps(body.get("errors"))
    if status == 500 and reason.startswith("400 "):
        assert "errors" not in body  # re-died inside the lock: the detail is in message only


def test_included_volumes_honour_the_jobs_node_and_name_unknown_guests(lab: Lab) -> None:
    backup = api(lab).cluster.backup
    backup.post(id="pve1-only", schedule="1:00", all=1, node="pve1")
    backup.post(id="gone", schedule="1:00", vmid="100,555")
    tree = backup("pve1-only").included_volumes.get()
    assert [(c["id"], c["type"]) for c in tree["children"]] == [(100, "qemu"), (101, "lxc")]
    assert tree["children"][0]["children"] == [
        {"id": "100:scsi0", "name": "local-lvm:vm-100-disk-0", "included": 1,
         "reason": "enabled", "leaf": 1}
    ]  # fmt: skip
    gone = backup("gone").included_volumes.get()["children"]
    assert gone[1] == {"id": 555, "type": "unknown", "leaf": 1}


def test_not_backed_up_ignores_enabled_like_pve_does(lab: Lab, invoke_lab: Any) -> None:
    pve = api(lab)
    assert lab.admin is not None
    lab.admin.add_guest({"node": "pve2", "vmid": 250, "name": "orphan"})
    lab.admin.add_guest({"node": "pve2", "vmid": 251, "type": "lxc"})
    pve.cluster.backup.post(id="off", schedule="1:00", vmid="251", enabled=0)
    assert pve.cluster("backup-info")("not-backed-up").get() == []  # all-jobs cover them
    pve.cluster.backup("backup-homelab").put(exclude="250,251")
    assert pve.cluster("backup-info")("not-backed-up").get() == [
        {"vmid": 250, "type": "qemu", "name": "orphan"}
    ]  # 251 is only in a disabled job: PVE does not list it


# -- tasks ------------------------------------------------------------------------------------


def test_each_node_has_the_vzdump_tasks_of_the_last_runs(shared_lab: Lab) -> None:
    pve = api(shared_lab)
    tasks = pve.nodes("pve2").tasks.get(typefilter="vzdump")
    assert len(tasks) == 4  # homelab, archive (200), offsite (200), media (201)
    for task in tasks:
        found = UPID.match(task["upid"])
        assert found is not None
        assert found.group(1) == task["node"] == "pve2"
        assert task["status"] == "OK"
        assert task["endtime"] > task["starttime"] > time.time() - 7 * 3600
        assert int(task["upid"].split(":")[4], 16) == task["starttime"]
    assert {t["id"] for t in tasks} == {"", "200", "201"}  # the vmid only for a single guest
    assert [t["starttime"] for t in tasks] == sorted((t["starttime"] for t in tasks), reverse=True)


def test_a_failed_or_warning_run_and_the_status_filters(lab: Lab) -> None:
    assert lab.admin is not None
    lab.admin.run_job({"id": "backup-offsite", "status": "job errors", "age": 3600})
    lab.admin.run_job({"id": "backup-media", "status": "WARNINGS: 1", "age": 60})
    node = api(lab).nodes("pve1")
    assert [t["status"] for t in node.tasks.get(statusfilter="error")] == ["job errors"]
    assert [t["status"] for t in node.tasks.get(statusfilter="warning")] == ["WARNINGS: 1"]
    assert len(node.tasks.get(errors=1)) == 2
    assert len(node.tasks.get(since=int(time.time()) - 1800)) == 1
    assert len(node.tasks.get(limit=2)) == 2
    offsite = lab.backups.datastore("pbs2.lab.example", "offsite") if lab.backups else None
    assert offsite is not None
    assert len(offsite.snapshots) == 2  # job errors wrote nothing
    media = lab.backups.datastore("pbs3.lab.example", "media") if lab.backups else None
    assert media is not None
    assert len(media.snapshots) == 4  # a run with warnings still wrote its archives


# -- guests and pools -------------------------------------------------------------------------


def test_resources_list_guests_with_type_template_tags_and_pool(shared_lab: Lab) -> None:
    vms = {r["vmid"]: r for r in api(shared_lab, readonly=True).cluster.resources.get(type="vm")}
    assert sorted(vms) == [100, 101, 200, 201, 300, 9000]
    assert {k: vms[100][k] for k in ("id", "name", "node", "type", "template", "tags", "pool")} == {
        "id": "qemu/100", "name": "web", "node": "pve1", "type": "qemu", "template": 0,
        "tags": "web", "pool": "prod",
    }  # fmt: skip
    assert (vms[101]["type"], vms[9000]["template"]) == ("lxc", 1)
    assert "pool" not in vms[9000]


def test_pools_and_their_members(shared_lab: Lab) -> None:
    pve = api(shared_lab)
    assert pve.pools.get() == [
        {"poolid": "infra", "comment": "infrastructure"},
        {"poolid": "prod", "comment": "production services"},
    ]
    (prod,) = pve.pools.get(poolid="prod")
    assert [m["vmid"] for m in prod["members"]] == [100, 200, 300]
    assert [m["id"] for m in pve.pools("infra").get()["members"]] == ["lxc/101", "lxc/201"]


# -- privileges -------------------------------------------------------------------------------


def test_jobs_and_tasks_need_sys_audit_and_guests_vm_audit(start_pve: StartPve) -> None:

    secret = "77777777-7777-7777-7777-777777777777"
    nobody = Principal("nobody@pve!tk", secret, frozenset({"Datastore.Audit"}),
                       acl=(("/vms/100", frozenset({"VM.Audit"})),))  # fmt: skip
    root = Principal("root@pam", "pw")
    pve_lab = start_pve(principals=[root, nobody])
    cluster = pve_lab.server.cluster
    cluster.add_guest(Guest(100, "pve1"))
    cluster.add_guest(Guest(101, "pve1"))
    cluster.add_tasks([make_task("pve1", "vzdump", "", "root@pam", 1, 2, "OK"),
                       make_task("pve1", "vzdump", "", "nobody@pve!tk", 3, 4, "OK")])  # fmt: skip
    client = pve_lab.client(user="nobody@pve", token_name="tk", token_value=secret)
    error = failure(client.cluster.backup.get)
    assert (error.status_code, error.content) == (403, "Permission check failed (/, Sys.Audit)")
    error = failure(client.cluster("backup-info")("not-backed-up").get)
    assert error.status_code == 403
    assert [t["user"] for t in client.nodes("pve1").tasks.get()] == ["nobody@pve"]
    assert client.nodes("pve1").tasks.get()[0]["tokenid"] == "tk"
    assert [r["vmid"] for r in client.cluster.resources.get(type="vm")] == [100]
    error = failure(lambda: client.cluster.backup.post(schedule="1:00", all=1))
    assert (error.status_code, error.content) == (403, "Permission check failed (/, Sys.Modify)")


# -- persistence and the admin verbs through the CLI ------------------------------------------


def test_jobs_guests_tasks_and_snapshots_survive_a_restart(make_lab: LabFactory) -> None:
    first = make_lab()
    assert first.admin is not None
    first.admin.add_guest({"node": "pve1", "vmid": 777, "name": "kept"})
    api(first).cluster.backup.post(id="kept", schedule="1:00", vmid="777", storage="media")
    first.admin.run_job({"id": "kept", "age": 7200})
    before = api(first).nodes("pve1").storage("media").content.get(vmid=777)
    tasks_before = api(first).nodes("pve1").tasks.get()
    first.stop()
    again = make_lab(state_dir=first.state_dir)
    assert api(again).cluster.backup("kept").get()["vmid"] == "777"
    assert api(again).nodes("pve1").storage("media").content.get(vmid=777) == before
    assert api(again).nodes("pve1").tasks.get() == tasks_before
    assert [j["id"] for j in api(again).cluster.backup.get()].count("backup-homelab") == 1


@pytest.fixture
def invoke_lab() -> Callable[..., Any]:
    runner = CliRunner()

    def run(*args: object) -> Any:
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return run


def test_every_admin_verb_through_the_cli(lab: Lab, invoke_lab: Callable[..., Any]) -> None:
    where = ("--state-dir", lab.state_dir)
    assert lab.backups is not None
    done = invoke_lab("lab", "guest", "add", "pve3", "310", "--type", "lxc", "--name", "new",
                      "--pool", "prod", *where)  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "pve3: lxc 310 added" in done.stdout
    done = invoke_lab("lab", "job", *where, "add", "nightly", "--storage", "media", "--vmid", "310",
                      "--schedule", "mon..fri 02:00", "--disabled")  # fmt: skip
    assert done.exit_code == 0, done.output
    assert api(lab).cluster.backup("nightly").get()["enabled"] == 0
    done = invoke_lab("lab", "job", "run", "nightly", "--age", "30h", *where, "-o", "json")
    assert done.exit_code == 0, done.output
    answer = json.loads(done.stdout)["result"]
    assert answer["status"] == "OK"
    assert answer["snapshots"][0]["backup"] == "ct/310"
    ctime = api(lab).nodes("pve3").storage("media").content.get(vmid=310)[0]["ctime"]
    assert 29 * 3600 < time.time() - ctime < 31 * 3600
    done = invoke_lab("lab", "backup", "add", "pbs1.lab.example", "archive", "vm/100", "--ns",
                      "prod/vms", "--age", "50h", "--verify", "failed", *where)  # fmt: skip
    assert done.exit_code == 0, done.output
    done = invoke_lab("lab", "backup", "add", "pbs1.lab.example", "homelab", "vm/300",
                      "--in-progress", *where)  # fmt: skip
    assert done.exit_code == 0, done.output
    running = [s for s in lab.backups.datastore("pbs1.lab.example", "homelab").snapshots
               if s.in_progress]  # fmt: skip
    assert [s.bid for s in running] == ["300"]
    done = invoke_lab("lab", "backup", "fill", "pbs1.lab.example", "homelab", "--used-percent",
                      "97", "--full-in", "10d", *where)  # fmt: skip
    assert done.exit_code == 0, done.output
    homelab = lab.backups.datastore("pbs1.lab.example", "homelab")
    assert homelab.used_percent == 97
    assert homelab.full_at is not None
    assert abs(homelab.full_at - (time.time() + 10 * 86400)) < 60
    done = invoke_lab("lab", "fault", "pbs", "pbs1.lab.example", "--maintenance", "offline",
                      "--datastore", "archive", *where)  # fmt: skip
    assert done.exit_code == 0, done.output
    assert lab.backups.datastore("pbs1.lab.example", "archive").maintenance == "type=offline"
    assert lab.backups.datastore("pbs1.lab.example", "homelab").maintenance is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("guest", "add", "pve9", "120"), "no node named 'pve9' in this lab (its nodes: pve1"),
        (("guest", "add", "pve1", "100"), "VM 100 already exists on node 'pve1'"),
        (("job", "run", "ghost"), "no backup job 'ghost' in this lab (its jobs: backup-homelab"),
        (("job", "add", "xy", "--storage", "media"),
         "400 Parameter verification failed. - vmid: property is missing"),
        (("job", "add", "x", "--storage", "media", "--all"), "Parameter verification failed. - "
         "id: invalid format - invalid configuration ID 'x'"),
        (("backup", "add", "pbs1.lab.example", "nope", "vm/1"),
         "PBS pbs1.lab.example has no datastore 'nope' (its datastores: archive, homelab)"),
        (("backup", "add", "pbs1.lab.example", "archive", "vm/100", "--ns", "dev"),
         "datastore 'archive' on pbs1.lab.example has no namespace 'dev' (its namespaces: prod"),
        (("backup", "add", "pbs1.lab.example", "archive", "vm/web"),
         "'vm/web': a vm backup ID is the guest's numeric VMID"),
        (("fault", "pbs", "pbs1.lab.example", "--maintenance", "offline", "--datastore", "x"),
         "PBS pbs1.lab.example has no datastore 'x' (its datastores: archive, homelab)"),
    ],
)  # fmt: skip
def test_an_admin_mistake_says_what_is_valid(
    shared_lab: Lab, invoke_lab: Callable[..., Any], args: tuple[str, ...], message: str
) -> None:
    done = invoke_lab("lab", *args, "--state-dir", shared_lab.state_dir)
    assert done.exit_code == 1, done.output
    assert message in done.stderr


def test_a_bad_age_is_a_usage_error(shared_lab: Lab, invoke_lab: Callable[..., Any]) -> None:
    done = invoke_lab("lab", "job", "run", "backup-media", "--age", "yesterday",
                      "--state-dir", shared_lab.state_dir)  # fmt: skip
    assert done.exit_code == 2
    assert "--age: 'yesterday' is not an age: give a number with s, m, h, d or w" in done.stderr
