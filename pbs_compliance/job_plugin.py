"""The backup job checks (`coverage`, `jobs`) in a compliance run: their evidence, their cases.

A pytest plugin the core plugin registers. It gathers the jobs, guests, pools and vzdump tasks
once per run on the controller through `pytest_pbs_gather` (so they travel to xdist workers with
the rest of the evidence, under `evidence.extra["jobs"]`), parametrises `pbs_job` with the
enabled jobs to declared storages (case ids `job:<id>`), and judges a case with
`job_verdicts`. The checks themselves are `checks/test_backup_jobs.py`.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping
from typing import Any

import pytest

import pbs_compliance.api as api  # not `from pbs_compliance import api`: see below
from pbs_compliance.api import Compliance
from pbs_compliance.evidence import Evidence
from pbs_compliance.job_reads import JobEvidence, gather_jobs
from pbs_compliance.job_verdicts import coverage, job_ids, jobs
from pbs_compliance.settings import RunSettings

__all__ = ["KEY", "NAME", "check_coverage", "check_job", "job_evidence"]

KEY = "jobs"  # evidence.extra[KEY]
NAME = "pbs-compliance-jobs"  # the plugin's name, and where a failed gather files its error
NO_JOB = "(all)"  # the case id of a run without a job to judge (or whose jobs were not read)
OFF = (
    "pbs-compliance is off for this run: run `pytest checks/` (checks/pytest.ini switches it "
    "on), or pass --pbs-config PATH"
)

# Modules are imported as `import pbs_compliance.x as x`, never `from pbs_compliance import x`:
# the latter takes the package's attribute, which after pytester restored sys.modules is the
# previous run's module (with the previous run's stash keys), so this run would look "off".

_lock = threading.Lock()
_parsed: dict[int, tuple[object, JobEvidence]] = {}  # id(extra data) -> (data, parsed)


@pytest.hookimpl
def pytest_pbs_gather(settings: RunSettings) -> dict[str, Any]:
    """Jobs, guests, pools and tasks, read once per run (never raises: `job_reads`)."""
    return {KEY: gather_jobs(settings, dt.datetime.now(dt.UTC)).to_data()}


def job_evidence(evidence: Evidence) -> JobEvidence:
    """The run's job evidence (parsed once per process, then shared by every case)."""
    return _job_evidence(evidence.extra)


def _job_evidence(extra: Mapping[str, Any]) -> JobEvidence:
    data = extra.get(KEY)
    if not isinstance(data, dict):
        failed = extra.get(NAME)
        if isinstance(failed, dict) and failed.get("error"):
            return JobEvidence(errors={"jobs": str(failed["error"])})
        return JobEvidence(skipped="the backup jobs were not read in this run")
    with _lock:
        known = _parsed.get(id(data))
        if known is not None and known[0] is data:
            return known[1]
    parsed = JobEvidence.from_data(data)
    with _lock:
        _parsed[id(data)] = (data, parsed)
    return parsed


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "pbs_job" not in metafunc.fixturenames or not api.active(metafunc.config):
        return
    # Like the node cases, the job cases need PVE's answer at collection: this plugin's own
    # reads alone, so the probes (a dead PBS's timeout) go on while pytest collects.
    ev = _job_evidence(api.gathered(metafunc.config, NAME))
    found: list[str | None] = list(job_ids(api.settings(metafunc.config).config, ev))
    cases = found or [None]
    metafunc.parametrize("pbs_job", cases, ids=[f"job:{c}" if c else NO_JOB for c in cases])


@pytest.fixture
def pbs_job() -> str | None:
    """One enabled backup job to a declared storage, by its PVE job ID: a check that takes it
    runs once per such job (`job:<id>` case ids); None in the one case (`(all)`) of a run that
    has no such job or could not read PVE's jobs."""
    pytest.fail(OFF, pytrace=False)  # parametrised by this plugin when the run is on


def check_coverage(pbs: Compliance) -> None:
    """Judge the `coverage` case and pass, skip or fail it."""
    __tracebackhide__ = True
    pbs.check(coverage(pbs.config, job_evidence(pbs.evidence)))


def check_job(pbs: Compliance, job_id: str | None) -> None:
    """Judge one `jobs` case (JUnit property `job` besides `check` and `node`)."""
    __tracebackhide__ = True
    if job_id is not None:
        pbs.node.user_properties.append(("job", job_id))
    pbs.check(jobs(pbs.config, job_evidence(pbs.evidence), job_id, pbs.now))
