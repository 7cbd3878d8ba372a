"""Helpers for running the compliance checks against a lab and reading what they reported."""

from __future__ import annotations

import html
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from pbs_compliance import registry
from pbs_compliance.config.model import PveSettings
from pbs_compliance.lab.runner import TOKEN_ID, Lab
from pbs_compliance.pve import PveClient
from pbs_compliance.report.junit import read_junit

CHECKS_DIR = Path(__file__).resolve().parents[2] / "checks"
# The built-in checks, as the registry declares them (a check added there is expected here).
CONNECTIVITY = tuple(c.name for c in registry.BUILTIN if "probes" in c.needs)
STORAGE_CHECKS = tuple(c.name for c in registry.BUILTIN if c.scope == "storage")
NODE_CHECKS = tuple(c.name for c in registry.BUILTIN if c.scope == "node")
JOB_CHECKS = tuple(c.name for c in registry.BUILTIN if c.scope == "job")


@dataclass(frozen=True)
class Case:
    """One test case of a compliance run, as the JUnit file tells it."""

    id: str  # "dns[archive]", "nodes[offsite:pve2]", "unmanaged"
    outcome: str  # passed, failed, skipped
    message: str
    properties: dict[str, str]
    system_out: str


@dataclass
class ChecksRun:
    result: pytest.RunResult
    junit: Path
    html: Path
    cases: dict[str, Case] = field(default_factory=dict)

    @property
    def output(self) -> str:
        return self.result.stdout.str() + "\n" + self.result.stderr.str()

    def ids(self, outcome: str) -> set[str]:
        return {c.id for c in self.cases.values() if c.outcome == outcome}

    @property
    def failed(self) -> set[str]:
        return self.ids("failed")

    @property
    def skipped(self) -> set[str]:
        return self.ids("skipped")

    def message(self, case_id: str) -> str:
        return self.cases[case_id].message

    def outcomes(self) -> dict[str, str]:
        return {k: c.outcome for k, c in self.cases.items()}


# The conftest fixtures' types: `run_checks(lab, *args, ...)` and `write_config(content, name)`.
RunChecks = Callable[..., ChecksRun]
WriteConfig = Callable[..., Path]


def parse_junit(path: Path) -> dict[str, Case]:
    """The cases of a JUnit file by id, read with the product's one reader."""
    cases: dict[str, Case] = {}
    for read in read_junit(path):
        failed = read.outcome in ("failed", "error")
        message = (read.text or read.message) if failed else read.message
        outcome = "passed" if read.outcome == "remediated" else read.outcome
        cases[read.id] = Case(read.id, outcome, message, read.properties, read.system_out)
    return cases


def lab_config(lab: Lab) -> dict[str, Any]:
    """The lab's generated declaration as data, with the CA path made absolute."""
    data: dict[str, Any] = yaml.safe_load(lab.config_path.read_text(encoding="utf-8"))
    data["pve"]["ca_file"] = str(lab.ca_file)
    return data


def storage(config: dict[str, Any], name: str) -> dict[str, Any]:
    entry: dict[str, Any] = next(s for s in config["pbs_storages"] if s["name"] == name)
    return entry


def all_ids(storages: dict[str, list[str]], jobs: tuple[str, ...] = ()) -> set[str]:
    """Every case id of a run of the built-in checks: storage -> the nodes it applies to, and
    the enabled backup jobs to declared storages (none: the one `(all)` job case)."""
    ids = {c.name for c in registry.BUILTIN if c.scope == "cluster"}
    ids |= {
        f"{check}[{f'job:{j}' if j else '(all)'}]" for check in JOB_CHECKS for j in jobs or ("",)
    }
    for name, nodes in storages.items():
        ids |= {f"{check}[{name}]" for check in STORAGE_CHECKS}
        ids |= {f"{check}[{name}:{node}]" for check in NODE_CHECKS for node in nodes}
    return ids


ALL_NODES = ["pve1", "pve2", "pve3"]
BUILTIN = {
    "archive": ALL_NODES,
    "homelab-backup": ALL_NODES,
    "media": ALL_NODES,
    "offsite": ["pve1", "pve2"],
}
# The built-in lab's backup jobs, one per PBS entry (`pbs_compliance.lab.scenario.builtin`).
BUILTIN_JOBS = ("backup-homelab", "backup-archive", "backup-offsite", "backup-media")
BUILTIN_IDS = all_ids(BUILTIN, BUILTIN_JOBS)


def pve_client(lab: Lab) -> PveClient:
    """An admin client of the lab's PVE, to create drift the way an operator would."""
    settings = PveSettings(
        url=lab.url,
        token_id=TOKEN_ID,
        token_secret=SecretStr(lab.token_secret),
        ca_file=lab.ca_file,
    )
    return PveClient(settings)


def copy_checks(root: Path, *, checkout: bool = False) -> None:
    """The project's `checks/` into `root`; with `checkout`, also the development settings
    (pyproject.toml, filterwarnings = error) at the root, as in a checkout of the repository."""
    if checkout:
        shutil.copy(CHECKS_DIR.parent / "pyproject.toml", root / "pyproject.toml")
    shutil.copytree(CHECKS_DIR, root / "checks", ignore=shutil.ignore_patterns("__py*"))


def export_lab_env(env: pytest.MonkeyPatch, lab: Lab) -> None:
    """What `. lab.env` does: the lab's PVE token and passwords in the environment."""
    for key, value in lab.env.items():
        env.setenv(key, value)


def create_stray_entry(lab: Lab) -> None:
    """An undeclared pbs entry `stray-offsite` (pbs2's offsite), made through PVE's API."""
    pbs2 = lab.pbs["pbs2.lab.example"]
    pve_client(lab).create(
        {
            "storage": "stray-offsite",
            "type": "pbs",
            "server": "pbs2.lab.example",
            "datastore": "offsite",
            "port": str(pbs2.port),
            "fingerprint": pbs2.fingerprint,
            "content": "backup",
        },
        password=lab.pbs_password("pbs2.lab.example", "root@pam"),
    )


def storage_ids(storage: str, nodes: list[str] | None = None) -> dict[str, str]:
    """check -> case id of one storage (node cases as `node:<node>`)."""
    ids = {check: f"{check}[{storage}]" for check in STORAGE_CHECKS}
    ids |= {f"node:{n}": f"nodes[{storage}:{n}]" for n in nodes or ALL_NODES}
    return ids


def html_report_text(path: Path) -> str:
    """What the self-contained pytest-html report shows: every case's log and extras, unescaped.

    pytest-html keeps the cases as a JSON blob in an attribute, so the raw file escapes twice.
    """
    raw = path.read_text(encoding="utf-8")
    match = re.search(r'data-jsonblob="([^"]*)"', raw)
    assert match is not None, "no data-jsonblob in the HTML report"
    data = json.loads(html.unescape(match.group(1)))
    parts = []
    for reports in data["tests"].values():
        for report in reports:
            parts.append(str(report.get("log", "")))
            parts += [str(extra.get("content", "")) for extra in report.get("extras", [])]
    return html.unescape("\n".join(parts))
