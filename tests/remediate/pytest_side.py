"""`pytest checks/ --remediate` driven through pytester against a lab: runs, reports, writes.

`ChecksRunner.run(*args)` copies the project's `checks/` into pytester's directory, exports the
lab's secrets, runs pytest there (JUnit + HTML) and returns a `RemediateRun`: the outcome of
each case (`drift[alpha]` -> passed / failed / skipped / remediated, from the JUnit file), the
write requests PVE received during the run (from the lab's request log) and the reports.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from outer_env import clear_outer_env

from pbs_compliance.config import load_config
from pbs_compliance.drift import diff
from pbs_compliance.essence import essence_from_api, essence_of
from pbs_compliance.lab.runner import Lab
from pbs_compliance.pve import PveClient
from pbs_compliance.report.junit import read_junit

CHECKS_DIR = Path(__file__).resolve().parents[2] / "checks"
PBS1 = "pbs1.lab.example"
PBS2 = "pbs2.lab.example"

# Two nodes, two PBS servers, four declared PBS entries and an undeclared dir storage: small,
# so a run takes about a second, yet every action kind has an entry to act on.
SCENARIO: dict[str, Any] = {
    "nodes": ["pve1", "pve2"],
    "pbs_servers": [
        {"name": PBS1, "address": "127.0.0.11", "datastores": {"homelab": [], "archive": []}},
        {"name": PBS2, "address": "127.0.0.12", "datastores": {"offsite": [], "media": []}},
    ],
    "storages": [
        {
            "name": "local-images",
            "type": "dir",
            "options": {"path": "/srv/images", "content": "images,rootdir"},
            "declare": False,
        },
        {
            "name": "alpha",
            "server": PBS1,
            "datastore": "homelab",
            "options": {"prune-backups": "keep-daily=7,keep-weekly=4"},
        },
        {"name": "beta", "server": PBS1, "datastore": "archive"},
        {"name": "gamma", "server": PBS2, "datastore": "offsite"},
        {"name": "delta", "server": PBS2, "datastore": "media"},
    ],
}
STORAGES = ("alpha", "beta", "delta", "gamma")


@dataclass(frozen=True)
class Case:
    """One case of a run as its JUnit file tells it; `remediated` is a passed case carrying the
    `remediated=true` property."""

    id: str  # "drift[alpha]", "node[gamma:pve2]", "unmanaged"
    outcome: str
    message: str
    properties: dict[str, str]


@dataclass
class RemediateRun:
    result: pytest.RunResult
    junit: Path
    html: Path
    cases: dict[str, Case]
    writes: list[dict[str, Any]]
    requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def output(self) -> str:
        return self.result.stdout.str() + "\n" + self.result.stderr.str()

    def outcome(self, case_id: str) -> str:
        return self.cases[case_id].outcome

    def ids(self, outcome: str) -> set[str]:
        return {c.id for c in self.cases.values() if c.outcome == outcome}

    def message(self, case_id: str) -> str:
        return self.cases[case_id].message

    def write_lines(self) -> list[str]:
        """`PUT /storage/alpha` ... one per write, in order."""
        return [f"{w['method']} {w['path'].removeprefix('/api2/json')}" for w in self.writes]


def parse_junit(path: Path) -> dict[str, Case]:
    """Every case of the run's JUnit file, read by the report package's one JUnit reader (which
    knows every form the plugin writes: properties in the testcase or in system-out)."""
    return {
        case.id: Case(case.id, case.outcome, f"{case.text}\n{case.message}", case.properties)
        for case in read_junit(path)
    }


def is_write(record: dict[str, Any]) -> bool:
    """A request that changes PVE (the lab's admin endpoint and logins do not count)."""
    path = str(record["path"])
    return record["method"] != "GET" and "/_lab" not in path and "/access/" not in path


class ChecksRunner:
    """Runs the compliance checks against one lab from pytester's directory."""

    def __init__(self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, lab: Lab):
        self.pytester = pytester
        self.lab = lab
        self.runs = 0
        self.config_path = pytester.path / "pbs-storage.yaml"
        clear_outer_env(monkeypatch)
        for key, value in lab.env.items():
            monkeypatch.setenv(key, value)
        # The storage entries' checks only: remediation fixes entries, and this lab writes no
        # backups and runs no jobs, so the backup health and job checks would only fail here.
        shutil.copytree(
            CHECKS_DIR,
            pytester.path / "checks",
            ignore=shutil.ignore_patterns("__py*", "test_backup_*.py"),
        )
        self.write_config(self.lab_config())

    # -- the declaration ----------------------------------------------------------------

    def lab_config(self) -> dict[str, Any]:
        """The lab's generated declaration as data, with the CA path made absolute."""
        data: dict[str, Any] = yaml.safe_load(self.lab.config_path.read_text(encoding="utf-8"))
        data["pve"]["ca_file"] = str(self.lab.ca_file)
        return data

    def declaration(self) -> dict[str, Any]:
        data: dict[str, Any] = yaml.safe_load(self.config_path.read_text(encoding="utf-8"))
        return data

    def write_config(self, data: dict[str, Any]) -> None:
        self.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

    def change(self, storage: str, **changes: Any) -> None:
        """Change one declared storage (a value of None removes the key)."""
        data = self.declaration()
        entry = next(s for s in data["pbs_storages"] if s["name"] == storage)
        for key, value in changes.items():
            if value is None:
                entry.pop(key, None)
            else:
                entry[key] = value
        self.write_config(data)

    def set_pve(self, **changes: Any) -> None:
        data = self.declaration()
        data["pve"].update(changes)
        self.write_config(data)

    # -- PVE ----------------------------------------------------------------------------

    @contextmanager
    def pve(self) -> Iterator[PveClient]:
        """A `PveClient` with the lab's admin token (to make drift, and to look)."""
        config = load_config(self.lab.config_path, environ=self.lab.env)
        client = PveClient(config.pve)
        try:
            yield client
        finally:
            if client._api is not None:
                client._api._store["session"].close()

    def drifted(self) -> dict[str, str]:
        """Declared storage -> its drift as the checks describe it (empty: all compliant)."""
        config = load_config(self.config_path, environ=dict(os.environ))
        with self.pve() as client:
            live = {str(e["storage"]): e for e in client.storages() if e.get("type") == "pbs"}
        found = {}
        for spec in config.storages:
            entry = live.get(spec.name)
            result = diff(essence_of(spec), None if entry is None else essence_from_api(entry))
            if not result.compliant:
                found[spec.name] = result.describe()
        return found

    # -- runs ---------------------------------------------------------------------------

    def run(self, *args: str, plugins: Iterable[object] = ()) -> RemediateRun:
        self.runs += 1
        junit = self.pytester.path / f"junit-{self.runs}.xml"
        html = self.pytester.path / f"report-{self.runs}.html"
        before = len(self.lab.requests())
        result = self.pytester.runpytest(
            "-p",
            "no:cacheprovider",
            "-p",
            "no:hypothesispytest",  # its header imports hypothesis: seconds, in every run
            "--assert=plain",  # the checks judge with verdicts; rewriting only costs time
            "-v",
            f"--junitxml={junit}",
            f"--html={html}",
            f"--pbs-config={self.config_path}",
            *args,
            "checks",
            plugins=list(plugins),
        )
        requests = self.lab.requests()[before:]
        cases = parse_junit(junit) if junit.exists() else {}
        writes = [r for r in requests if is_write(r)]
        return RemediateRun(result, junit, html, cases, writes, requests)
