"""The `coverage` and `jobs` checks end to end: `pytest checks/` against the lab, each failure
kind made the way an operator (or PVE's API) makes it, read back from JUnit, HTML and output."""

from __future__ import annotations

from collections.abc import Callable

from checks_harness import ChecksRun

from pbs_compliance.lab.runner import Lab

RunChecks = Callable[..., ChecksRun]
JOBS = ("backup-homelab", "backup-archive", "backup-offsite", "backup-media")
JOB_CASES = {f"jobs[job:{j}]" for j in JOBS}


def test_the_builtin_lab_passes_coverage_and_every_job(
    shared_lab: Lab, run_checks: RunChecks
) -> None:
    run = run_checks(shared_lab, "-m", "coverage or jobs")

    assert run.result.ret == 0, run.output
    assert set(run.cases) == {"coverage", *JOB_CASES}
    assert run.ids("passed") == {"coverage", *JOB_CASES}
    assert run.cases["jobs[job:backup-homelab]"].properties == {
        "check": "jobs", "job": "backup-homelab", "storage": "job:backup-homelab"}  # fmt: skip
    assert run.cases["coverage"].properties == {"check": "coverage", "storage": "(all)"}
