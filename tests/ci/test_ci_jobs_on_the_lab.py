"""The GitLab template's job scripts, run as the runner runs them (bash -e -o pipefail), on a lab.

One cluster config with drift: the check job fails with the drift case red and keeps its
reports, the plan job succeeds with the pending change in reports/plan.txt, the apply job refuses
to run without the write token and writes with that token (not the config's credentials). The
install step (before_script) is left out: this checkout is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import yaml

from pbs_compliance.lab.runner import Lab

REPO = Path(__file__).resolve().parents[2]
GITLAB = REPO / "ci" / "pbs-compliance.gitlab-ci.yml"
WRITE_TOKEN_ID = "root@pam!compliance"


def job_script(job: str) -> str:
    """The job's `script`, as its `extends` leave it (these jobs define their own)."""
    doc: dict[str, Any] = yaml.safe_load(GITLAB.read_text(encoding="utf-8"))
    lines: list[str] = doc[job]["script"]
    return "\n".join(lines)


def run_job(job: str, project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", job_script(job)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def failed_cases(junit: Path) -> list[str]:
    root = ET.parse(junit).getroot()
    return sorted(
        case.get("name", "")
        for case in root.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    )


def writes(lab: Lab) -> list[tuple[str, str, str]]:
    """Changes to PVE's storage config, with who made them (a login is a POST, not a change)."""
    return [
        (r["method"], r["path"], r["principal"])
        for r in lab.requests()
        if r["method"] in {"POST", "PUT", "DELETE"} and r["path"] != "/api2/json/access/ticket"
    ]


def test_check_plan_apply_as_the_runner_runs_them(lab: Lab, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "config").mkdir(parents=True)
    (project / "reports").mkdir()  # what before_script does after the install
    config: dict[str, Any] = yaml.safe_load(lab.config_path.read_text(encoding="utf-8"))
    # The checks log in as a user; the apply job must write with the token, not with this.
    config["pve"] = {
        "url": config["pve"]["url"],
        "user": "root@pam",
        "password": "${PBS_LAB_PVE_PASSWORD}",
        "ca_file": "ca.pem",
    }
    homelab = next(s for s in config["pbs_storages"] if s["name"] == "homelab-backup")
    homelab["prune_backups"]["keep_daily"] += 1  # the declaration moved on; PVE did not
    (project / "config" / "site-a.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    shutil.copy(lab.ca_file, project / "config" / "ca.pem")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PBS_"))},
        **lab.env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PBS_CONFIG": "config/site-a.yaml",
        "PBS_COMPLIANCE_SOURCE": str(REPO),
    }

    check = run_job("pbs-compliance-check", project, env)
    assert check.returncode == 1, check.stdout + check.stderr
    assert failed_cases(project / "reports" / "junit.xml") == ["test_drift[homelab-backup]"]
    assert (project / "reports" / "report.html").stat().st_size > 0

    plan = run_job("pbs-compliance-plan", project, env)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    planned = (project / "reports" / "plan.txt").read_text(encoding="utf-8")
    assert "~ homelab-backup  update  prune-backups: keep-daily=7," in planned
    assert "dry run, nothing written: 1 planned, 0 refused, 3 unchanged" in planned
    assert "every enabled storage is reachable as declared" in plan.stdout  # pbs validate
    assert writes(lab) == []

    refused = run_job("pbs-compliance-apply", project, env)
    assert refused.returncode == 2
    assert "PBS_WRITE_TOKEN_ID and PBS_WRITE_TOKEN_SECRET are not both set" in refused.stderr
    assert writes(lab) == []

    token = {"PBS_WRITE_TOKEN_ID": WRITE_TOKEN_ID, "PBS_WRITE_TOKEN_SECRET": lab.token_secret}
    applied = run_job("pbs-compliance-apply", project, {**env, **token})
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "homelab-backup: updated" in applied.stdout
    assert lab.token_secret not in applied.stdout + applied.stderr
    assert writes(lab) == [("PUT", "/api2/json/storage/homelab-backup", WRITE_TOKEN_ID)]
