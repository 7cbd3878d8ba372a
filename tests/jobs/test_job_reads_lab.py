"""The job reads against the lab over real sockets: one read of each list, tasks once per node
bounded by `since`, a refusal naming Sys.Audit, nothing raised, no secret shown; and the
built-in lab's own declaration passing both checks."""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
from pathlib import Path

from pve_fixtures import RO_TOKEN, RO_TOKEN_SECRET, StartPve
from pydantic import SecretStr

from pbs_compliance.backup_jobs import BackupJob, Guest
from pbs_compliance.config import load_config
from pbs_compliance.config.model import PveSettings
from pbs_compliance.job_reads import JobEvidence, JobsClient, gather_jobs, read_jobs
from pbs_compliance.job_verdicts import coverage, job_ids, jobs
from pbs_compliance.lab.pve_cluster import Job
from pbs_compliance.lab.runner import Lab
from pbs_compliance.settings import Overrides, RunSettings, resolve

UPID = re.compile(r"^UPID:(pve[123]):[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:vzdump:(\d*):root@pam:$")


def settings_of(lab: Lab) -> RunSettings:
    return resolve(load_config(lab.config_path, environ=lab.env), Overrides(), environ={})


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def reads(lab: Lab) -> list[tuple[str, str, dict[str, object]]]:
    """The job reads made so far, from the lab's request log (method, path, parameters)."""
    out = []
    for entry in lab.requests():
        path = str(entry["path"]).removeprefix("/api2/json")
        if path.startswith(("/cluster/backup", "/cluster/resources", "/pools")) or (
            path.endswith("/tasks")
        ):
            out.append((str(entry["method"]), path, dict(entry["params"])))
    return out


def test_the_builtin_lab_reads_once_each_and_passes_both_checks(lab: Lab) -> None:
    settings = settings_of(lab)
    moment = now()

    ev = gather_jobs(settings, moment)

    assert ev.errors == {}
    assert ev.skipped is None
    assert [j.id for j in ev.jobs] == [
        "backup-homelab", "backup-archive", "backup-offsite", "backup-media"]  # fmt: skip
    assert ev.jobs[1] == BackupJob(
        "backup-archive", True, "03:00", "archive", None, False, (), (), "prod", ""
    )
    assert [g.vmid for g in ev.guests] == [100, 101, 200, 201, 300, 9000]
    assert ev.guests[0] == Guest(100, "pve1", "qemu", "web", False, ("web",), "prod")
    assert ev.guests[-1].template is True
    assert ev.pools == {"prod": [100, 200, 300]}
    assert sorted(ev.tasks) == ["pve1", "pve2", "pve3"]
    for node, tasks in ev.tasks.items():
        assert tasks, node
        for task in tasks:
            match = UPID.match(task.upid)
            assert match is not None
            assert match.group(1) == node
            assert (task.status, task.node) == ("OK", node)
            assert task.endtime is not None
            assert task.starttime <= task.endtime
    # twice the longest allowance: backup-offsite (mon..sat) may be 48h + 2h old
    assert ev.since == int((moment - dt.timedelta(hours=100)).timestamp())

    log = reads(lab)
    assert sorted((m, p) for m, p, _ in log) == sorted(
        [
            ("GET", "/cluster/backup"),
            ("GET", "/cluster/resources"),
            ("GET", "/pools"),
            ("GET", "/nodes/pve1/tasks"),
            ("GET", "/nodes/pve2/tasks"),
            ("GET", "/nodes/pve3/tasks"),
        ]
    )
    for _method, path, query in log:
        if path.endswith("/tasks"):
            assert query == {"typefilter": "vzdump", "since": str(ev.since), "limit": "5000"}
        if path == "/pools":
            assert query == {"poolid": "prod"}
        if path == "/cluster/resources":
            assert query == {"type": "vm"}

    config = settings.config
    assert coverage(config, ev).status == "pass"
    assert job_ids(config, ev) == [j.id for j in ev.jobs]
    verdicts = [jobs(config, ev, job_id, moment) for job_id in job_ids(config, ev)]
    assert [(v.storage, v.status, v.message, v.facts[1]) for v in verdicts] == [
        ("job:backup-homelab", "pass", "", ("storage", "homelab-backup")),
        ("job:backup-archive", "pass", "", ("storage", "archive")),
        ("job:backup-offsite", "pass", "", ("storage", "offsite")),
        ("job:backup-media", "pass", "", ("storage", "media")),
    ]


def test_evidence_round_trips_as_plain_json(shared_lab: Lab) -> None:
    ev = gather_jobs(settings_of(shared_lab), now())

    text = json.dumps(ev.to_data())

    assert JobEvidence.from_data(json.loads(text)) == ev
    assert shared_lab.env["PBS_LAB_PVE_TOKEN_SECRET"] not in text


def test_changes_through_pve_and_the_lab_verbs_are_seen(lab: Lab) -> None:
    assert lab.admin is not None
    lab.admin.add_guest({"node": "pve2", "vmid": 400, "name": "new", "type": "lxc"})
    lab.admin.add_job({"id": "weekly", "storage": "media", "vmid": "400", "disabled": True,
                       "schedule": "sat 03:00"})  # fmt: skip
    lab.admin.run_job({"id": "backup-media", "status": "job errors", "age": 1800})

    ev = gather_jobs(settings_of(lab), now())

    assert ev.guests[-2] == Guest(400, "pve2", "lxc", "new")
    assert ev.jobs[-1] == BackupJob("weekly", False, "sat 03:00", "media", vmids=(400,))
    newest = {node: tasks[0] for node, tasks in ev.tasks.items()}
    assert newest["pve1"].status == "job errors"
    assert newest["pve1"].id == "101"  # backup-media has one guest on pve1
    verdict = jobs(settings_of(lab).config, ev, "backup-media", now())
    assert verdict.status == "fail"
    assert "pve1: the last run ended 'job errors'" in verdict.message
    assert "pve2: the last run ended 'job errors'" in verdict.message


def test_a_token_without_sys_audit_is_told_what_it_lacks(
    start_pve: StartPve, tmp_path: Path
) -> None:
    pve = start_pve()
    settings = PveSettings(
        url=f"https://127.0.0.1:{pve.server.port}",
        token_id=RO_TOKEN,
        token_secret=RO_TOKEN_SECRET,
        ca_file=pve.pki.ca_file,
        timeout=5,
    )
    config = load_config(write_config(tmp_path))

    ev = read_jobs(JobsClient(settings, [RO_TOKEN_SECRET]), config, now())

    assert set(ev.errors) == {"jobs"}
    assert ev.errors["jobs"].endswith(
        " - the PVE token or user needs Sys.Audit on / (e.g. the role PVEAuditor on /)"
    )
    assert "403" in ev.errors["jobs"]
    assert RO_TOKEN_SECRET not in json.dumps(ev.to_data())
    assert ev.tasks == {}
    verdict = coverage(config, ev)
    assert verdict.status == "fail"
    assert "Sys.Audit on /" in verdict.message


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "pbs.yaml"
    path.write_text("pbs_storages: []\n", encoding="utf-8")
    return path


def test_an_unreachable_pve_is_a_recorded_failure_not_an_exception(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    secret = "canary-jobs-token-secret-77"
    settings = PveSettings(
        url=f"https://127.0.0.1:{port}", token_id="ci@pve!jobs", token_secret=secret, timeout=2
    )
    config = load_config(write_config(tmp_path))

    ev = read_jobs(JobsClient(settings, [secret]), config, now())

    assert set(ev.errors) == {"jobs", "guests"}
    assert ev.errors["jobs"].startswith(f"cannot reach PVE at https://127.0.0.1:{port}")
    assert secret not in json.dumps(ev.to_data())


def test_without_credentials_the_checks_skip(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))
    settings = resolve(config, Overrides(), environ={})

    ev = gather_jobs(settings, now())

    assert ev.skipped is not None
    assert ev.skipped.startswith("no PVE credentials configured")
    assert coverage(config, ev).status == "skip"


def test_a_refused_token_is_named_without_its_secret(lab: Lab) -> None:
    settings = settings_of(lab)
    wrong = "00000000-1111-2222-3333-444444444444"
    pve = settings.pve.model_copy(update={"token_secret": SecretStr(wrong)})

    ev = read_jobs(JobsClient(pve, [wrong]), settings.config, now())

    assert ev.errors["jobs"].startswith("HTTP 401: ")
    assert (
        f"PVE at {lab.url} refused the API token root@pam!compliance: check" in (ev.errors["jobs"])
    )
    assert wrong not in json.dumps(ev.to_data())


def test_a_job_whose_pool_was_deleted_selects_no_one(lab: Lab) -> None:
    assert lab.admin is not None
    job = Job("gone", (("pool", "gone"), ("schedule", "02:00"), ("storage", "media")))
    lab.admin.cluster.write_jobs(lambda jobs: ([*jobs, job], None))  # jobs.cfg edited by hand

    ev = gather_jobs(settings_of(lab), now())

    assert ev.errors == {}
    assert ev.pools == {"prod": [100, 200, 300], "gone": []}
    assert jobs(settings_of(lab).config, ev, "gone", now()).message == (
        "note: job gone selects no guest on any node (see the coverage case)"
    )


class Broken(JobsClient):
    """PVE answering what no PVE answers, or a library failing in a way nobody foresaw."""

    secret = "canary-broken-secret-99"

    def vm_resources(self) -> list[dict[str, object]]:
        raise RuntimeError(f"boom with {self.secret}")

    def backup_jobs(self) -> list[dict[str, object]]:
        return [1]  # type: ignore[list-item]


def test_nothing_unforeseen_leaves_the_reads_and_secrets_stay_out(shared_lab: Lab) -> None:
    settings = settings_of(shared_lab)

    ev = read_jobs(Broken(settings.pve, [Broken.secret]), settings.config, now())

    assert ev.errors == {
        "guests": "unexpected error: RuntimeError: boom with ***",
        "jobs": "unexpected error: AttributeError: 'int' object has no attribute 'get'",
    }
    assert ev.guests == []


def test_an_unforeseen_error_of_one_read_is_that_reads_failure(shared_lab: Lab) -> None:
    class GuestsBroken(Broken):
        def backup_jobs(self) -> list[dict[str, object]]:
            return JobsClient.backup_jobs(self)

    settings = settings_of(shared_lab)

    ev = read_jobs(GuestsBroken(settings.pve, [Broken.secret]), settings.config, now())

    assert ev.errors == {"guests": "unexpected error: RuntimeError: boom with ***"}
    assert ev.jobs[0].id == "backup-homelab"
    assert ev.tasks == {}  # no node is known without the guests
