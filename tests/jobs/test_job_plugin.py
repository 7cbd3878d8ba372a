"""How a case finds the run's job evidence in `evidence.extra` (parsed once per process)."""

from __future__ import annotations

import json

from jobs_data import evidence as job_evidence_of
from jobs_data import run

import pbs_compliance.job_plugin as job_plugin
from pbs_compliance.backup_jobs import BackupJob
from pbs_compliance.evidence import Evidence
from pbs_compliance.job_reads import JobEvidence


def test_the_gathered_data_is_parsed_once_and_shared() -> None:
    gathered = job_evidence_of([BackupJob("j", storage="homelab", all=True)], {"n": [run("n")]})
    data = json.loads(json.dumps(gathered.to_data()))  # as xdist's workers receive it
    evidence = Evidence(extra={job_plugin.KEY: data})

    first = job_plugin.job_evidence(evidence)

    assert first == gathered
    assert job_plugin.job_evidence(evidence) is first


def test_a_gather_that_failed_is_the_jobs_reads_failure() -> None:
    evidence = Evidence(extra={job_plugin.NAME: {"error": "unexpected error: KeyError: 'x'"}})

    assert job_plugin.job_evidence(evidence) == JobEvidence(
        errors={"jobs": "unexpected error: KeyError: 'x'"}
    )


def test_no_data_at_all_skips() -> None:
    assert job_plugin.job_evidence(Evidence()) == JobEvidence(
        skipped="the backup jobs were not read in this run"
    )
