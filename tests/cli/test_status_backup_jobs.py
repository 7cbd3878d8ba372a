"""`pbs status` sums up backup coverage and job runs below its table (shown, not its verdict)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from cli_helpers import Invoke, as_json, assert_shows
from lab_edits import lab_admin, pve_put

from pbs_compliance.lab.runner import Lab


def test_status_says_every_guest_is_covered_and_every_job_ran(
    invoke: Invoke, shared_lab: Lab, use_lab: Callable[[Lab], Path]
) -> None:
    result = invoke("status", "--config", use_lab(shared_lab))

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "backup coverage: all 5 guest(s) covered" in lines
    assert "backup jobs: 4 of 4 ran as scheduled" in lines


def test_status_names_an_uncovered_guest_and_a_failed_job_without_changing_its_exit(
    invoke: Invoke, lab: Lab, use_lab: Callable[[Lab], Path]
) -> None:
    lab_admin(lab, "guest/add", {"node": "pve2", "vmid": 400, "name": "orphan"})
    lab_admin(lab, "guest/add", {"node": "pve1", "vmid": 401, "name": "new"})
    pve_put(lab, "cluster/backup/backup-homelab", exclude="400")
    lab_admin(lab, "job/add", {"id": "only", "storage": "media", "vmid": "401"})
    lab_admin(lab, "job/run", {"id": "backup-media", "status": "job errors"})
    config = use_lab(lab)

    text = invoke("status", "--config", config)
    data = as_json(invoke("status", "--config", config, "--output", "json"))

    assert text.exit_code == 0, text.output  # the storages are as declared
    lines = text.stdout.splitlines()
    assert_shows(
        lines,
        "backup coverage: 1 of 7 guest(s) not covered",
        "  vmid 400 'orphan' (qemu) on pve2: no backup job selects it",
        "backup jobs: 4 of 5 ran as scheduled",
        "  job backup-media (storage media, schedule 05:00): 2 of 2 node(s) failed:",
    )
    assert data["ok"] is True
    jobs = data["backup_jobs"]
    assert jobs["ok"] is False
    assert jobs["coverage"]["status"] == "fail"
    assert jobs["jobs"]["backup-media"]["status"] == "fail"
    assert "the last run ended 'job errors'" in jobs["jobs"]["backup-media"]["message"]
    assert jobs["jobs"]["only"]["status"] == "pass"  # a new job that never ran: a note
    assert jobs["jobs"]["only"]["message"].startswith("note: job only has no run on any")
    for secret in lab.env.values():
        assert secret not in text.output
        assert secret not in json.dumps(data)
