"""The `coverage` and `jobs` checks end to end: `pytest checks/` against the lab, each failure
kind made the way an operator makes it (the lab's admin routes that `pbs lab guest|job` post
to, and PVE's own job API), read back from JUnit, the HTML report and the terminal."""

from __future__ import annotations

import re

import pytest
from checks_harness import ChecksRun, RunChecks, WriteConfig, html_report_text, lab_config
from lab_edits import lab_admin, pve_put

from pbs_compliance.lab.runner import Lab

JOBS = ("backup-homelab", "backup-archive", "backup-offsite", "backup-media")
JOB_CASES = {f"jobs[job:{j}]" for j in JOBS}
SELECT = ("-m", "coverage or jobs")
UPID = r"UPID:pve[123]:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:vzdump:\d*:root@pam:"
WHEN = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"


def assert_no_secret(lab: Lab, run: ChecksRun) -> None:
    texts = [run.output, run.junit.read_text(encoding="utf-8"), html_report_text(run.html)]
    for secret in lab.env.values():
        assert all(secret not in text for text in texts)


def test_the_builtin_lab_passes_coverage_and_every_job(
    shared_lab: Lab, run_checks: RunChecks
) -> None:
    run = run_checks(shared_lab, *SELECT)

    assert run.result.ret == 0, run.output
    assert run.ids("passed") == set(run.cases) == {"coverage", *JOB_CASES}
    assert run.cases["jobs[job:backup-homelab]"].properties == {
        "check": "jobs", "job": "backup-homelab", "storage": "job:backup-homelab"}  # fmt: skip
    assert run.cases["coverage"].properties == {"check": "coverage", "storage": "(all)"}
    run.result.stdout.fnmatch_lines(
        [
            "*pbs-compliance matrix*",
            "*job:backup-archive*PASS*",
            "*job:backup-homelab*PASS*",
            "*job:backup-media*PASS*",
            "*job:backup-offsite*PASS*",
            "backup coverage: PASS",
        ]
    )
    report = html_report_text(run.html)
    assert "guests judged" in report
    for node in ("pve1", "pve2", "pve3"):
        assert re.search(rf"{node}.*OK, started {WHEN}, ended {WHEN}, {UPID}", report), node


def test_each_guest_without_a_job_that_counts_is_named_with_why(
    lab: Lab, run_checks: RunChecks, write_config: WriteConfig
) -> None:
    guests = [
        {"node": "pve2", "vmid": 400, "name": "orphan"},
        {"node": "pve1", "vmid": 401, "name": "legacy", "type": "lxc"},
        {"node": "pve3", "vmid": 402, "name": "scratch"},
        {"node": "pve2", "vmid": 403, "name": "shop", "pool": "prod"},  # the archive job's pool
        {"node": "pve1", "vmid": 9001, "name": "tmpl", "template": True},
        {"node": "pve1", "vmid": 404, "name": "lab-only"},
        {"node": "pve3", "vmid": 405, "name": "cache", "tags": ["no-backup"]},
    ]
    for guest in guests:
        lab_admin(lab, "guest/add", guest)
    pve_put(lab, "cluster/backup/backup-homelab", exclude="400,401,402,403,404,405,9001")
    lab_admin(lab, "job/add", {"id": "old-nightly", "storage": "homelab-backup", "vmid": "401",
                               "disabled": True})  # fmt: skip
    lab_admin(lab, "job/add", {"id": "to-local", "storage": "local-images", "vmid": "402"})
    config = lab_config(lab)
    config["coverage"] = {"exclude": [404, 999], "exclude_tags": ["no-backup"]}

    run = run_checks(lab, *SELECT, config=write_config(config))

    assert run.failed == {"coverage"}
    assert set(run.cases) == {"coverage", *JOB_CASES}  # no case for a disabled or undeclared job
    assert run.message("coverage") == "\n".join(
        [
            "3 of 9 guest(s) have no enabled backup job to a declared, enabled PBS storage:",
            "  vmid 400 'orphan' (qemu) on pve2: no backup job selects it",
            "  vmid 401 'legacy' (lxc) on pve1: only disabled jobs select it: old-nightly",
            "  vmid 402 'scratch' (qemu) on pve3: only jobs to storages that are not declared, "
            "enabled PBS storages: to-local (storage local-images is not declared in "
            "pbs-storage.yaml)",
            "fix: add each guest to an enabled job to a declared storage (Datacenter > Backup), "
            "or exempt it in pbs-storage.yaml with `coverage: {exclude: [VMID]}` (or a tag in "
            "`exclude_tags`)",
            "note: coverage.exclude names vmid 999, which no guest has (stale: remove it)",
        ]
    )
    assert run.cases["coverage"].properties == {"check": "coverage", "storage": "(all)"}
    run.result.stdout.fnmatch_lines(["backup coverage: FAIL"])
    report = html_report_text(run.html)
    assert "vmid 400 'orphan' (qemu) on pve2" in report  # the facts table lists each guest
    assert "guests judged" in report
    assert_no_secret(lab, run)


def test_job_failures_quote_the_run_and_warnings_pass_only_when_allowed(
    lab: Lab, run_checks: RunChecks, write_config: WriteConfig
) -> None:
    lab_admin(lab, "job/run", {"id": "backup-media", "status": "job errors"})
    lab_admin(lab, "job/run", {"id": "backup-homelab", "status": "WARNINGS: 1"})
    lab_admin(lab, "guest/add", {"node": "pve3", "vmid": 500, "name": "report"})
    lab_admin(lab, "job/add", {"id": "stale", "storage": "media", "vmid": "500",
                               "schedule": "02:00"})  # fmt: skip
    lab_admin(lab, "job/run", {"id": "stale", "age": 30 * 3600})
    lab_admin(lab, "guest/add", {"node": "pve1", "vmid": 501, "name": "new"})
    lab_admin(lab, "job/add", {"id": "brand-new", "storage": "archive", "vmid": "501"})
    strict = write_config(lab_config(lab), name="strict.yaml")
    lenient_config = lab_config(lab)
    lenient_config["jobs"] = {"allow_warnings": True}
    lenient = write_config(lenient_config, name="lenient.yaml")

    run = run_checks(lab, *SELECT, config=strict)
    allowed = run_checks(lab, *SELECT, config=lenient)
    parallel = run_checks(lab, *SELECT, "-n", "2", config=strict)

    cases = {"coverage", *JOB_CASES, "jobs[job:stale]", "jobs[job:brand-new]"}
    assert set(run.cases) == cases
    assert run.failed == {"jobs[job:backup-media]", "jobs[job:backup-homelab]", "jobs[job:stale]"}
    media = run.message("jobs[job:backup-media]")
    assert media.splitlines()[0] == (
        "job backup-media (storage media, schedule 05:00): 2 of 2 node(s) failed:"
    )
    for node in ("pve1", "pve2"):
        assert re.search(
            rf"^  {node}: the last run ended 'job errors' - started {WHEN}, ended {WHEN}, "
            rf"UPID:{node}:[0-9A-F]{{8}}:[0-9A-F]{{8}}:[0-9A-F]{{8}}:vzdump:\d+:root@pam:$",
            media,
            re.MULTILINE,
        ), media
    assert run.cases["jobs[job:backup-media]"].properties == {
        "check": "jobs", "job": "backup-media", "storage": "job:backup-media"}  # fmt: skip
    homelab = run.message("jobs[job:backup-homelab]")
    assert "3 of 3 node(s) failed" in homelab
    assert "pve2: the last run ended 'WARNINGS: 1' (set `jobs: {allow_warnings: true}` to " in (
        homelab
    )
    stale = run.message("jobs[job:stale]")
    assert re.search(
        r"^  pve3: the last run ended 30h( \dm)? ago, more than the 26h allowed \(period 24h \+ "
        rf"slack 2h\) - 'OK', started {WHEN}, ended {WHEN}, {UPID}$",
        stale,
        re.MULTILINE,
    ), stale
    assert run.cases["jobs[job:stale]"].properties == {
        "check": "jobs", "job": "stale", "node": "pve3", "storage": "job:stale"}  # fmt: skip
    assert "jobs[job:brand-new]" in run.ids("passed")
    run.result.stdout.fnmatch_lines(["*job:backup-media*FAIL*", "*job:brand-new*PASS*"])

    assert allowed.failed == {"jobs[job:backup-media]", "jobs[job:stale]"}

    assert parallel.outcomes() == run.outcomes()
    assert {k: c.message for k, c in parallel.cases.items()} == {
        k: c.message for k, c in run.cases.items()
    }
    assert {k: c.properties for k, c in parallel.cases.items()} == {
        k: c.properties for k, c in run.cases.items()
    }
    for each in (run, allowed, parallel):
        assert_no_secret(lab, each)


@pytest.mark.parametrize("selection", ["coverage", "jobs"])
def test_each_check_runs_alone_by_its_marker(
    shared_lab: Lab, run_checks: RunChecks, selection: str
) -> None:
    run = run_checks(shared_lab, "-m", selection)

    expected = {"coverage"} if selection == "coverage" else JOB_CASES
    assert set(run.cases) == expected
    assert run.ids("passed") == expected
