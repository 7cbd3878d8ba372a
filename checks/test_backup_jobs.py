"""Is every guest in a backup job that counts, and did each job run as often as it should?"""

from __future__ import annotations

import pbs_compliance.job_plugin as job_plugin
from pbs_compliance.api import Compliance, check


@check("coverage")
def test_coverage(pbs: Compliance) -> None:
    """Every guest but templates and exempted ones is selected by an enabled backup job whose
    storage is declared and enabled (PVE's own `not-backed-up` also counts disabled jobs)."""
    job_plugin.check_coverage(pbs)


@check("jobs")
def test_jobs(pbs_job: str | None, pbs: Compliance) -> None:
    """The job's storage is declared and enabled, its schedule valid, and its newest run on each
    node with its guests ended OK within its period plus slack."""
    job_plugin.check_job(pbs, pbs_job)
