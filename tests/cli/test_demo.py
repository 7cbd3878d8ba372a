"""`pbs demo` end to end, and its pieces: the JUnit reader, the change list, the narration."""

from __future__ import annotations

import io
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cli_helpers import Invoke, as_json, assert_shows, port_8007_taken
from rich.console import Console

from pbs_compliance import demo
from pbs_compliance.demo import Case, Change, DemoError, DemoResult, SuiteRun


def failures(run: dict[str, object]) -> set[tuple[str, str, str]]:
    cases = run["failures"]
    assert isinstance(cases, list)
    return {(c["check"], c["storage"], c["node"]) for c in cases}


def test_the_demo_runs_end_to_end_leaves_its_reports_and_nothing_running(
    invoke: Invoke, tmp_path: Path
) -> None:
    threads_before = {t.ident for t in threading.enumerate()}
    # Random ports: another test (or a developer's `pbs lab serve`) may hold 8007 meanwhile.
    # Its wall time is measured by `make demo` and the benchmark, never asserted here.
    result = invoke(
        "demo", "--reports", tmp_path / "reports", "--ephemeral-ports", "--output", "json"
    )
    assert result.exit_code == 0, result.output
    data = as_json(result)

    first, fixing, final = data["runs"]
    assert failures(first) == {
        ("fingerprint", "offsite", ""),
        ("drift", "archive", ""),
        ("drift", "archive-prod", ""),
        ("drift", "homelab-backup", ""),
        ("nodes", "media", "pve3"),
        ("backups", "media", ""),
        ("verified", "homelab-backup", ""),
    }  # offsite's nodes skip, pointing at its fingerprint case (one fault, one red case)
    found = {(c["check"], c["storage"]): c["message"] for c in first["failures"]}
    assert "vm 300 (mail) on pve3: newest " in found[("backups", "media")]
    assert ", 50h ago, ok" in found[("backups", "media")]
    assert "ct 201 (proxy) on pve2: newest backup " in found[("verified", "homelab-backup")]
    assert ": verification failed" in found[("verified", "homelab-backup")]
    remediated = {(c["check"], c["storage"]) for c in fixing["remediated"]}
    assert remediated == {
        ("drift", "archive"),
        ("drift", "archive-prod"),
        ("drift", "homelab-backup"),
        ("drift", "offsite"),
    }, fixing["failures"]
    # Remediation fixes PVE entries, not a node's DNS nor backups.
    assert failures(final) == {
        ("nodes", "media", "pve3"),
        ("backups", "media", ""),
        ("verified", "homelab-backup", ""),
    }
    # 39 cases of the PVE entries (as before the backup checks), 16 of the 20 backup health
    # cases (2 fail above; archive-prod is new, so its YAML turns backups and verified off:
    # they skip), coverage and the 4 jobs.
    assert final["counts"]["passed"] == 39 + 16 + 5
    assert final["counts"]["skipped"] == 2
    assert {c["storage"]: c["change"] for c in data["changes"]} == {
        "archive": "updated",
        "archive-prod": "created",
        "homelab-backup": "updated",
        "offsite": "updated",
    }
    assert data["pinned"]["storage"] == "offsite"

    reports = tmp_path / "reports"
    for name in ("report.html", "junit.xml", "remediation.html", "remediation.xml", "final.xml"):
        assert (reports / name).stat().st_size > 0
    suite = ET.parse(reports / "junit.xml").getroot()
    assert int(suite.find("testsuite").get("failures")) == 7  # type: ignore[union-attr, arg-type]
    html = (reports / "report.html").read_text(encoding="utf-8")
    assert "another fingerprint" in html
    assert "remediated" in (reports / "remediation.xml").read_text(encoding="utf-8")

    assert not Path(data["lab_state_dir"]).exists()
    time.sleep(0.5)  # servers' threads end right after their sockets close
    leftover = [t for t in threading.enumerate() if t.ident not in threads_before]
    assert leftover == []


def run(name: str, cases: list[Case], matrix: str = "") -> SuiteRun:
    return SuiteRun(name, 1, Path(f"{name}.html"), Path(f"{name}.xml"), tuple(cases), matrix, 2.5)


SAMPLE = DemoResult(
    Path("/r"),
    "ephemeral",
    Path("/gone"),
    runs=[
        run(
            "check",
            [
                Case("offsite", "fingerprint", "", "failed", "renewed?\ndetail"),
                Case("media", "nodes", "pve3", "failed", "not active"),
                Case("archive", "dns", "", "passed"),
            ],
            matrix="│ matrix │",
        ),
        run("remediate", [Case("archive", "drift", "", "remediated")]),
        run("final", [Case("media", "nodes", "pve3", "failed", "not active")]),
    ],
    changes=[
        Change("archive-prod", "created"),
        Change("archive", "updated", (("disable", "1", None),)),
    ],
)


def test_the_narration_shows_matrix_failures_changes_and_what_to_do_next() -> None:
    buffer = io.StringIO()
    narrator = demo._Narrator(Console(file=buffer, width=200, no_color=True))
    narrator.step("2/5", "check")
    for suite_run in SAMPLE.runs:
        narrator.run(suite_run, matrix=suite_run.name != "remediate")
    narrator.epilogue(SAMPLE)
    text = buffer.getvalue()
    assert_shows(
        text,
        "[2/5] check",
        "│ matrix │",
        "check: 1 passed, 2 failed (2.5 s)",
        "FAIL  fingerprint offsite          renewed?",
        "FAIL  nodes       media:pve3       not active",
        "REMEDIATED  drift       archive",
        "/r/report.html, /r/junit.xml",
        "still failing, on purpose",
        "point config/pbs-storage.yaml at your cluster",
    )
    assert SAMPLE.changes[1].line() == "archive: updated  disable: 1 -> (unset)"


def test_the_demo_command_prints_json_or_fails_with_exit_1(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo, "run_demo", lambda reports, say=None, ephemeral=False: SAMPLE)
    data = as_json(invoke("demo", "--output", "json"))
    assert data["ok"] is True
    assert data["remaining"] == [
        {
            "storage": "media",
            "check": "nodes",
            "node": "pve3",
            "outcome": "failed",
            "message": "not active",
        }
    ]
    assert data["changes"][1]["properties"] == [
        {"property": "disable", "before": "1", "after": None}
    ]

    def broken(reports: Path, say: object = None, ephemeral: bool = False) -> DemoResult:
        raise DemoError("pytest (check) ended with exit status 4")

    monkeypatch.setattr(demo, "run_demo", broken)
    result = invoke("demo")
    assert result.exit_code == 1
    assert "pytest (check) ended with exit status 4" in result.stderr


def test_changes_compare_two_storage_lists() -> None:
    before = [
        {"storage": "a1", "type": "pbs", "server": "s", "datastore": "ds1", "disable": 1},
        {"storage": "gone", "type": "pbs", "server": "s", "datastore": "ds1"},
        {"storage": "same", "type": "pbs", "server": "s", "datastore": "ds1"},
        {"storage": "local", "type": "dir"},
    ]
    after = [
        {"storage": "a1", "type": "pbs", "server": "s", "datastore": "ds1"},
        {"storage": "new", "type": "pbs", "server": "s", "datastore": "ds1"},
        {"storage": "same", "type": "pbs", "server": "s", "datastore": "ds1", "digest": "x"},
    ]
    assert demo.changes(before, after) == [
        Change("a1", "updated", (("disable", "1", None),)),
        Change("gone", "deleted"),
        Change("new", "created"),
    ]


@pytest.mark.parametrize(
    ("outcome", "message"),
    [
        (subprocess.CompletedProcess([], 4, "", "ERROR: file or directory not found"), "status 4"),
        (subprocess.TimeoutExpired([], 45), "did not finish within 45 s"),
    ],
)
def test_a_suite_that_cannot_run_is_a_demo_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outcome: object, message: str
) -> None:
    def fake_run(*args: object, **kwargs: object) -> object:
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    monkeypatch.setattr(demo.subprocess, "run", fake_run)
    config = tmp_path / "pbs-storage.yaml"
    with pytest.raises(DemoError, match=message):
        demo._suite("check", tmp_path, config, {}, tmp_path, "r.html", "r.xml")


def test_the_demo_lab_moves_to_ephemeral_ports_when_8007_is_taken(tmp_path: Path) -> None:
    buffer = io.StringIO()
    narrator = demo._Narrator(Console(file=buffer, width=200, no_color=True))
    with port_8007_taken():
        lab, ports = demo._start(tmp_path / "lab", False, narrator)
    try:
        assert ports == "ephemeral"
        assert lab.pbs["pbs1.lab.example"].port != 8007
        assert lab.scenario.dns_hidden == {"pve3": ["pbs3.lab.example"]}
    finally:
        lab.stop()
    assert "port 8007 is taken" in buffer.getvalue()


def test_the_checks_are_found_next_to_the_package() -> None:
    assert (demo.find_checks() / "test_pve.py").is_file()


def test_without_a_checkout_the_demo_says_where_to_run_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(demo.pbs_compliance, "__file__", str(tmp_path / "pkg" / "__init__.py"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DemoError, match="cannot find the compliance suite"):
        demo.find_checks()
