"""Shared builders for the job and coverage tests: a declaration, guests, jobs and runs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from pbs_compliance.backup_jobs import BackupJob, Guest, TaskRun
from pbs_compliance.config import ComplianceConfig, StorageSpec
from pbs_compliance.config.model import CoverageSettings, JobSettings
from pbs_compliance.job_reads import JobEvidence

FP = ":".join(["AB"] * 32)
NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
T0 = int(NOW.timestamp())
HOUR = 3600


def config(coverage: CoverageSettings | None = None, jobs: JobSettings | None = None) -> Any:
    specs = (
        StorageSpec(name="homelab", server="pbs1.example", datastore="homelab", fingerprint=FP),
        StorageSpec(
            name="offsite", server="pbs2.example", datastore="offsite", fingerprint=FP,
            enabled=False,
        ),
    )  # fmt: skip
    return ComplianceConfig(
        source=Path("/etc/pbs/pbs-storage.yaml"),
        storages=specs,
        coverage=coverage or CoverageSettings(),
        jobs=jobs or JobSettings(),
    )


GUESTS = [
    Guest(100, "pve1", "qemu", "web", tags=("web",), pool="prod"),
    Guest(101, "pve1", "lxc", "dns"),
    Guest(200, "pve2", "qemu", "db", pool="prod"),
    Guest(9000, "pve2", "qemu", "tmpl", template=True),
]


def run(
    node: str, status: str = "OK", ended_ago: int = 6 * HOUR, ident: str = "", length: int = 600
) -> TaskRun:
    end = T0 - ended_ago
    start = end - length
    upid = f"UPID:{node}:0000ABCD:00012345:{start:08X}:vzdump:{ident}:root@pam:"
    return TaskRun(upid, node, start, end, status, ident, "root@pam")


def evidence(
    jobs: list[BackupJob],
    tasks: dict[str, list[TaskRun]] | None = None,
    guests: list[Guest] | None = None,
    **kw: Any,
) -> JobEvidence:
    return JobEvidence(
        jobs=jobs,
        guests=GUESTS if guests is None else guests,
        pools=kw.pop("pools", {"prod": [100, 200]}),
        tasks=tasks or {},
        since=kw.pop("since", T0 - 52 * HOUR),
        **kw,
    )
