"""`pbs demo`: the whole tour on a laptop, in well under a minute, leaving nothing running.

The built-in lab is started and then broken the way real clusters break - retention edited in
the GUI, an entry disabled, a PBS certificate renewed, a name one node's resolver does not know,
a declared storage nobody created, a guest whose newest backup is two days old, a backup that
failed verification - and the real tools are run against it exactly as a user or CI would run
them: `pytest checks/` (HTML + JUnit), `pbs fingerprint --update` for the renewed
certificate, `pytest checks/ --remediate`, and a final `pytest checks/`. The suite runs as a
subprocess so the demo shows the product, not an in-process shortcut.

Over 400 lines on purpose: it is one story told in order (break, check, pin, remediate, check
again, narrate), and the reader follows it top to bottom; the JUnit reading it needs is the
report package's.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

import pbs_compliance
from pbs_compliance.config import ConfigError, load_config
from pbs_compliance.essence import MANAGED, essence_from_api
from pbs_compliance.evidence import client_for
from pbs_compliance.lab.runner import Lab, LabError, env_name
from pbs_compliance.lab.scenario import Scenario, builtin
from pbs_compliance.pinning import Target, Updated, fetch, update_fingerprint
from pbs_compliance.pve import PveClient, PveError
from pbs_compliance.report import junit
from pbs_compliance.settings import Overrides, resolve
from pbs_compliance.tables import first_line

DRIFTED = "homelab-backup"  # prune-backups edited in the GUI
DISABLED = "archive"  # disabled by hand
RENEWED = "offsite"  # its PBS got a new certificate
RENEWED_SERVER = "pbs2.lab.example"
HIDDEN_SERVER = "pbs3.lab.example"  # media's PBS: one node's resolver does not know it
HIDDEN_NODE = "pve3"
MISSING = "archive-prod"  # declared in the demo's YAML, never created in PVE
STALE = ("media", "pbs3.lab.example", "media", "vm/300", "vm 300 (mail)")  # backed up 50h ago
FAILED = ("homelab-backup", "pbs1.lab.example", "homelab", "ct/201", "ct 201 (proxy)")
SUITE_TIMEOUT = 45.0


class DemoError(Exception):
    """A step of the demo could not run; the message says which and why."""


@dataclass(frozen=True)
class Case:
    """One test case of a suite run, read back from its JUnit file."""

    storage: str
    check: str
    node: str
    outcome: str  # passed, failed, skipped, remediated
    message: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class SuiteRun:
    """One `pytest checks/` subprocess: its exit status, reports, cases and printed matrix."""

    name: str
    exit_code: int
    html: Path
    junit: Path
    cases: tuple[Case, ...]
    matrix: str
    seconds: float

    def count(self, outcome: str) -> int:
        return sum(1 for case in self.cases if case.outcome == outcome)

    @property
    def failures(self) -> list[Case]:
        return [case for case in self.cases if case.outcome == "failed"]

    def summary(self) -> str:
        parts = [f"{self.count(o)} {o}" for o in ("passed", "failed", "remediated", "skipped")]
        return ", ".join(p for p in parts if not p.startswith("0 ")) + f" ({self.seconds:.1f} s)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "exit_code": self.exit_code,
            "html": str(self.html),
            "junit": str(self.junit),
            "counts": {o: self.count(o) for o in ("passed", "failed", "skipped", "remediated")},
            "failures": [case.to_dict() for case in self.failures],
            "remediated": [c.to_dict() for c in self.cases if c.outcome == "remediated"],
            "seconds": round(self.seconds, 2),
        }


@dataclass(frozen=True)
class Change:
    """What remediation changed in PVE for one storage (read back, not taken on trust)."""

    storage: str
    kind: str  # created, updated, deleted
    properties: tuple[tuple[str, str | None, str | None], ...] = ()

    def line(self) -> str:
        if self.kind != "updated":
            return f"{self.storage}: {self.kind}"
        shown = "; ".join(f"{k}: {_show(b)} -> {_show(a)}" for k, b, a in self.properties)
        return f"{self.storage}: updated  {shown}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "storage": self.storage,
            "change": self.kind,
            "properties": [{"property": k, "before": b, "after": a} for k, b, a in self.properties],
        }


@dataclass
class DemoResult:
    reports: Path
    ports: str
    state_dir: Path
    runs: list[SuiteRun] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    pinned: Updated | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "reports": {
                "html": str(self.reports / "report.html"),
                "junit": str(self.reports / "junit.xml"),
            },
            "lab_ports": self.ports,
            "lab_state_dir": str(self.state_dir),  # removed when the demo ends
            "runs": [run.to_dict() for run in self.runs],
            "changes": [change.to_dict() for change in self.changes],
            "pinned": None
            if self.pinned is None
            else {
                "storage": self.pinned.storage,
                "previous": self.pinned.previous,
                "fingerprint": self.pinned.fingerprint,
            },
            "remaining": [c.to_dict() for c in self.runs[-1].failures] if self.runs else [],
            "seconds": round(self.seconds, 2),
        }


def find_checks() -> Path:
    """`checks/` next to the package (a checkout), else in the current directory."""
    for candidate in (
        Path(pbs_compliance.__file__).resolve().parents[1] / "checks",
        Path("checks"),
    ):
        if (candidate / "test_connectivity.py").is_file():
            return candidate.resolve()
    raise DemoError(
        "cannot find the compliance suite (checks/): run the demo from the project's checkout"
    )


def demo_scenario() -> Scenario:
    """The built-in lab, with one node whose resolver does not know one PBS name."""
    return builtin().model_copy(update={"dns_hidden": {HIDDEN_NODE: [HIDDEN_SERVER]}})


def run_demo(reports: Path, say: Console | None = None, ephemeral: bool = False) -> DemoResult:
    """Run the whole tour; `say` narrates (None = silent, for --output json)."""
    started = time.monotonic()
    checks = find_checks()
    reports = reports.resolve()
    reports.mkdir(parents=True, exist_ok=True)
    narrate = _Narrator(say)
    with tempfile.TemporaryDirectory(prefix="pbs-demo-") as temp:
        lab, ports = _start(Path(temp) / "lab", ephemeral, narrate)
        try:
            result = DemoResult(reports, ports, lab.state_dir)
            _tour(lab, checks, reports, narrate, result)
        finally:
            lab.stop()
    result.seconds = time.monotonic() - started
    narrate.epilogue(result)
    return result


def _tour(lab: Lab, checks: Path, reports: Path, narrate: _Narrator, result: DemoResult) -> None:
    env = _environment(lab)
    config = lab.state_dir / "demo-storage.yaml"
    _declare_missing(lab, config, env)
    client = _client(config, env)
    narrate.step("1/5", "break the lab the way real clusters break")
    for line in _break(lab, client):
        narrate.line(f"  {line}")
    narrate.line(f"  {MISSING}: declared in {config.name}, never created in PVE")
    narrate.line(f"  {HIDDEN_NODE}: its resolver does not know {HIDDEN_SERVER} (used by 'media')")

    narrate.step("2/5", "check: pytest checks/ (HTML + JUnit)")
    first = _suite("check", checks, config, env, reports, "report.html", "junit.xml")
    result.runs.append(first)
    narrate.run(first)

    narrate.step("3/5", f"the renewed certificate: pbs fingerprint --update {RENEWED}")
    result.pinned = _pin(lab, config, env)
    narrate.line(
        f"  {RENEWED}: fingerprint {result.pinned.previous} -> {result.pinned.fingerprint}"
    )
    narrate.line(
        "  (on a real cluster: first confirm on the PBS that the new certificate is genuine)"
    )

    narrate.step("4/5", "remediate: pytest checks/ --remediate")
    before = client.storages()
    fixing = _suite(
        "remediate",
        checks,
        config,
        env,
        reports,
        "remediation.html",
        "remediation.xml",
        remediate=True,
    )
    result.runs.append(fixing)
    result.changes = changes(before, client.storages())
    narrate.run(fixing, matrix=False)
    narrate.line(
        "  (its node cases judged the state from before the fix; the final check re-reads)"
    )
    narrate.line("what changed in PVE (read back):")
    for change in result.changes:
        narrate.line(f"  {change.line()}")

    narrate.step("5/5", "check again: the final matrix")
    final = _suite("final", checks, config, env, reports, "final.html", "final.xml")
    result.runs.append(final)
    narrate.run(final)


# -- the lab ---------------------------------------------------------------------------------


def _start(state_dir: Path, ephemeral: bool, narrate: _Narrator) -> tuple[Lab, str]:
    """The built-in lab on PBS's real port 8007; on ephemeral ports when those are taken."""
    scenario = demo_scenario()
    if not ephemeral:
        lab = Lab(scenario, state_dir)
        try:
            lab.start()
        except LabError as exc:
            narrate.line(f"port 8007 is taken ({exc}); using ephemeral ports instead")
        else:
            narrate.line(f"lab started: PVE {lab.url}, 3 nodes, 3 PBS servers on port 8007")
            return lab, "8007"
    lab = Lab(scenario.with_ephemeral_ports(), state_dir)
    try:
        lab.start()
    except LabError as exc:
        raise DemoError(f"the lab cannot start: {exc}") from None
    narrate.line(f"lab started: PVE {lab.url}, 3 nodes, 3 PBS servers on ephemeral ports")
    return lab, "ephemeral"


def _environment(lab: Lab) -> dict[str, str]:
    """The user's environment without its PBS_COMPLIANCE_* settings (they would point the
    demo elsewhere), plus the lab's secrets and the password of the storage the demo adds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBS_COMPLIANCE_")}
    env.update(lab.env)
    env[env_name(MISSING)] = lab.pbs_password("pbs1.lab.example", "root@pam")
    return env


def _declare_missing(lab: Lab, config: Path, env: Mapping[str, str]) -> None:
    """The lab's declaration plus one storage PVE does not have (ruamel: comments kept)."""
    yaml = YAML()
    document: Any = yaml.load(lab.config_path.read_text(encoding="utf-8"))
    server = lab.pbs["pbs1.lab.example"]
    entry = CommentedMap(
        name=MISSING,
        server="pbs1.lab.example",
        datastore="archive",
        namespace="prod",
        username="root@pam",
        fingerprint=server.fingerprint,
        password=f"${{{env_name(MISSING)}}}",
        description="added by the demo: declared, not yet in PVE",
        backups=CommentedMap(skip=["backups", "verified"]),
    )
    entry.yaml_add_eol_comment("new: no backups there yet", "backups")
    if server.port != 8007:
        entry["port"] = server.port
    document["pbs_storages"].append(entry)
    with config.open("w", encoding="utf-8") as stream:
        yaml.dump(document, stream)


def _client(config: Path, env: Mapping[str, str]) -> PveClient:
    try:
        settings = resolve(load_config(config, env), Overrides(), env)
    except ConfigError as exc:  # pragma: no cover - the lab writes what the loader reads
        raise DemoError(f"the demo's own config is invalid:\n{exc}") from None
    client = client_for(settings)
    if client is None:  # pragma: no cover - the lab's config always has a token
        raise DemoError("the lab's config has no PVE credentials")
    return client


def _break(lab: Lab, client: PveClient) -> list[str]:
    """Change the live state behind the declaration's back, through the PVE API."""
    try:
        client.update(DRIFTED, {"prune-backups": "keep-daily=14,keep-weekly=4"})
        client.update(DISABLED, {"disable": "1"})
    except PveError as exc:  # pragma: no cover - the lab accepts both
        raise DemoError(f"could not change the lab through its PVE API: {exc}") from None
    lab.pbs[RENEWED_SERVER].renew_certificate()
    # What no PVE entry shows: backups that stopped arriving, and one that cannot be restored.
    if lab.admin is None:  # pragma: no cover - a started lab has its admin verbs
        raise DemoError("the lab has no admin verbs: it is not running")
    stale, server, datastore, guest, stale_guest = STALE
    lab.admin.add_backup(
        {"server": server, "datastore": datastore, "backup": guest, "age": 50 * 3600}
    )
    failed, server, datastore, guest, failed_guest = FAILED
    lab.admin.add_backup(
        {"server": server, "datastore": datastore, "backup": guest, "age": 3600, "verify": "failed"}
    )
    return [
        f"{DRIFTED}: prune-backups edited in the GUI (keep-daily=14,keep-weekly=4)",
        f"{DISABLED}: disabled by hand",
        f"{RENEWED}: {RENEWED_SERVER} renewed its certificate (PVE still pins the old one)",
        f"{stale}: the newest backup of {stale_guest} there is 50 hours old (max_age 26h)",
        f"{failed}: the newest backup of {failed_guest} failed verification",
    ]


def _pin(lab: Lab, config: Path, env: Mapping[str, str]) -> Updated:
    """What `pbs fingerprint pbs2.lab.example --update offsite` does, through the same code."""
    settings = resolve(load_config(config, env), Overrides(), env)
    spec = settings.config.storage(RENEWED)
    result, _ = fetch(Target(spec.server, spec.port), settings.nameservers, 5.0)
    if result.certificate is None:
        raise DemoError(f"no certificate from {spec.server}: {result.error}")
    return update_fingerprint(config, RENEWED, result.certificate.fingerprint)


# -- the suite -------------------------------------------------------------------------------


def suite_command(
    checks: Path, config: Path, html: Path, junit: Path, remediate: bool = False
) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(checks),
        "--pbs-config",
        str(config),
        "--html",
        str(html),
        "--junitxml",
        str(junit),
        "-p",
        "no:cacheprovider",
        "-q",
        "--tb=no",
        "-rN",
        "--no-header",
    ]
    return [*command, "--remediate"] if remediate else command


def _suite(
    name: str,
    checks: Path,
    config: Path,
    env: Mapping[str, str],
    reports: Path,
    html_name: str,
    junit_name: str,
    remediate: bool = False,
) -> SuiteRun:
    html, junit = reports / html_name, reports / junit_name
    command = suite_command(checks, config, html, junit, remediate)
    started = time.monotonic()
    try:
        done = subprocess.run(  # noqa: S603 - our own interpreter and arguments
            command,
            env=dict(env),
            cwd=config.parent,
            capture_output=True,
            text=True,
            timeout=SUITE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise DemoError(f"pytest ({name}) did not finish within {SUITE_TIMEOUT:g} s") from None
    seconds = time.monotonic() - started
    if done.returncode not in (0, 1) or not junit.is_file():
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise DemoError(f"pytest ({name}) ended with exit status {done.returncode}:\n{tail}")
    return SuiteRun(
        name, done.returncode, html, junit, read_junit(junit), _matrix(done.stdout), seconds
    )


def read_junit(path: Path) -> tuple[Case, ...]:
    """The cases of a JUnit file the plugin wrote (through the report's one reader)."""
    cases = []
    for read in junit.read_junit(path):
        outcome = "failed" if read.outcome == "error" else read.outcome
        if outcome == "failed":
            message = (read.message or read.text).removeprefix("Failed: ")
        else:
            message = read.message if outcome == "skipped" else ""
        cases.append(Case(read.storage, read.check, read.node, outcome, message.strip()))
    return tuple(cases)


def _matrix(stdout: str) -> str:
    """The plugin's matrix from the suite's output (without pytest's own summary line)."""
    lines = stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if "pbs-compliance matrix" in line), None)
    if start is None:
        return ""
    body = []
    for line in lines[start + 1 :]:
        if line.startswith(("---", "===")) or re.search(r"\d+ (passed|failed) ", line):
            break  # pytest-html's "Generated html report", pytest's summary line
        body.append(line)
    return "\n".join(body).rstrip()


def changes(
    before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]]
) -> list[Change]:
    """PBS entries created, deleted or changed between two `GET /storage` lists."""
    old = {str(e["storage"]): e for e in before if e.get("type") == "pbs"}
    new = {str(e["storage"]): e for e in after if e.get("type") == "pbs"}
    found: list[Change] = []
    for name in sorted(old.keys() | new.keys()):
        if name not in old:
            found.append(Change(name, "created"))
        elif name not in new:
            found.append(Change(name, "deleted"))
        else:
            was, now = essence_from_api(old[name]), essence_from_api(new[name])
            diffs = tuple(
                (key, was.value(key), now.value(key))
                for key in MANAGED
                if was.value(key) != now.value(key)
            )
            if diffs:
                found.append(Change(name, "updated", diffs))
    return found


# -- narration -------------------------------------------------------------------------------


class _Narrator:
    def __init__(self, console: Console | None) -> None:
        self.console = console

    def line(self, text: str, style: str | None = None) -> None:
        if self.console is not None:
            self.console.print(text, style=style, soft_wrap=True)

    def step(self, number: str, title: str) -> None:
        self.line("")
        self.line(f"[{number}] {title}", style="bold cyan")

    def run(self, run: SuiteRun, matrix: bool = True) -> None:
        if matrix and run.matrix:
            self.line(run.matrix)
        self.line(f"{run.name}: {run.summary()}", style="bold")
        for case in run.cases:
            if case.outcome == "remediated":
                self.line(f"  REMEDIATED  {case.check:<11} {case.storage}", style="cyan")
        if not matrix:
            return
        for case in run.failures:
            where = f"{case.storage}:{case.node}" if case.node else case.storage
            first = first_line(case.message)
            self.line(f"  FAIL  {case.check:<11} {where:<16} {first}", style="red")

    def epilogue(self, result: DemoResult) -> None:
        reports = result.reports
        self.line("")
        self.line(f"demo finished in {result.seconds:.1f} s; the lab is stopped", style="bold")
        self.line(f"reports in {reports}:")
        self.line(f"  {reports / 'report.html'}, {reports / 'junit.xml'}   the first check")
        self.line(f"  {reports / 'remediation.html'}, {reports / 'remediation.xml'}   remediation")
        self.line(f"  {reports / 'final.html'}, {reports / 'final.xml'}   the final check")
        remaining = result.runs[-1].failures if result.runs else []
        if remaining:
            self.line(
                "still failing, on purpose: remediation fixes PVE entries, not a node's DNS "
                f"({HIDDEN_NODE} cannot resolve {HIDDEN_SERVER}) nor backups ({STALE[4]} needs a "
                f"new backup to {STALE[0]}, {FAILED[4]} a new one that verifies); the report "
                "says what to do"
            )
        self.line("next:", style="bold")
        self.line("  point config/pbs-storage.yaml at your cluster (see README.md), then:")
        self.line("    pbs validate                         # syntax + DNS, port, TLS, fingerprint")
        self.line("    pytest checks/ --html=reports/report.html --junitxml=reports/junit.xml")
        self.line("    pbs apply --dry-run                  # what remediation would change")
        self.line("  or keep a lab running to experiment:  pbs lab serve")


def _show(value: str | None) -> str:
    return "(unset)" if value is None else value
