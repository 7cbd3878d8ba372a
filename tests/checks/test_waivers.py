"""Waivers against the lab (issue #14): a waived failure is WAIVED (xfail with reason and expiry,
JUnit properties, HTML, matrix) and does not fail the run; a passing waived case passes and the
summary says the waiver is no longer needed; on and after its expiry the waiver is ignored and
the case fails with a line naming it. "Today" is pinned with PBS_COMPLIANCE_TODAY."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from checks_harness import (
    ChecksRun,
    RunChecks,
    WriteConfig,
    html_report_text,
    lab_config,
    pve_client,
)

from pbs_compliance.lab.runner import Lab

TODAY = "2030-06-10"
WAIVERS = [
    # port[media] fails (pbs3 down): waived, expires within 14 days.
    {"storage": "media", "check": "port", "reason": "pbs3 moves racks (OPS-812)",
     "expires": "2030-06-20"},
    # drift[homelab-backup] fails (retention edited): expires the day after TODAY.
    {"storage": "homelab-backup", "check": "drift", "reason": "retention trial (OPS-9)",
     "expires": "2030-06-11"},
    # dns[archive] passes: this waiver is no longer needed.
    {"storage": "archive", "check": "dns", "reason": "old resolver issue", "expires": "2031-01-01"},
    # media is on every node, so any node name loads; PVE has no pve9: stale at run time.
    {"storage": "media", "check": "nodes", "node": "pve9", "reason": "gone",
     "expires": "2031-01-01"},
]  # fmt: skip


@pytest.fixture
def faulty_lab(make_lab: Any) -> Lab:
    lab: Lab = make_lab()
    lab.pbs["pbs3.lab.example"].set_mode("down")
    pve_client(lab).update("homelab-backup", {"prune-backups": "keep-daily=30"})
    return lab


@pytest.fixture
def waived_config(faulty_lab: Lab, write_config: WriteConfig) -> Path:
    config = lab_config(faulty_lab)
    config["waivers"] = WAIVERS
    return write_config(config)


def run(run_checks: RunChecks, lab: Lab, config: Path, today: str, *args: str) -> ChecksRun:
    return run_checks(lab, *args, config=config, extra_env={"PBS_COMPLIANCE_TODAY": today})


def test_waived_failures_do_not_fail_the_run_and_are_shown_as_waived(
    run_checks: RunChecks, faulty_lab: Lab, waived_config: Path
) -> None:
    result = run(run_checks, faulty_lab, waived_config, TODAY)
    assert result.result.ret == 0, result.output
    assert result.failed == set()
    port = result.cases["port[media]"]
    assert port.outcome == "waived"
    assert port.message == (
        f"waived until 2030-06-20 ({waived_config}:{_line(waived_config, 'media')}): "
        "pbs3 moves racks (OPS-812)"
    )
    assert port.properties["waived"] == "true"
    assert port.properties["waiver_expires"] == "2030-06-20"
    drift = result.cases["drift[homelab-backup]"]
    assert (drift.outcome, drift.properties["waiver_expires"]) == ("waived", "2030-06-11")
    # The passing case passes; its properties say the waiver did not waive anything.
    dns = result.cases["dns[archive]"]
    assert (dns.outcome, dns.properties["waived"]) == ("passed", "false")
    # Cases the waivers do not name are untouched.
    assert "waived" not in result.cases["port[archive]"].properties
    out = result.output
    assert "WAIVED" in out  # the terminal matrix (and the -rA line)
    assert "waivers: 2 waived failure(s); 2 waiver(s) expire within 14 days" in out
    assert "port on media on 2030-06-20" in out
    assert "drift on homelab-backup on 2030-06-11" in out
    assert f"waiver no longer needed: dns on archive ({waived_config}:" in out
    assert f"stale waiver: nodes on media (node pve9) ({waived_config}:" in out
    assert "names node pve9, which PVE does not have" in out
    html = html_report_text(result.html)
    assert "waived until 2030-06-20" in html


def test_a_run_of_connectivity_cases_alone_still_names_a_stale_node_waiver(
    run_checks: RunChecks, faulty_lab: Lab, waived_config: Path
) -> None:
    # The connectivity cases never wait for PVE's views; PVE's node list is read first anyway.
    result = run_checks(
        faulty_lab,
        "-m",
        "dns or port",
        config=waived_config,
        files=False,
        extra_env={"PBS_COMPLIANCE_TODAY": TODAY},
    )
    assert result.result.ret == 0, result.output  # port[media] is waived
    assert f"stale waiver: nodes on media (node pve9) ({waived_config}:" in result.output


def test_on_its_expiry_date_a_waiver_is_ignored_and_the_failure_names_it(
    run_checks: RunChecks, faulty_lab: Lab, waived_config: Path
) -> None:
    result = run(run_checks, faulty_lab, waived_config, "2030-06-11")
    assert result.result.ret == 1, result.output
    assert result.failed == {"drift[homelab-backup]"}
    message = result.message("drift[homelab-backup]")
    line = _line(waived_config, "homelab-backup", after="waivers:")
    assert (
        f"waiver of drift on homelab-backup ({waived_config}:{line}) expired on 2030-06-11"
    ) in message
    assert "retention trial (OPS-9)" in message
    assert result.cases["drift[homelab-backup]"].properties["waived"] == "expired"
    assert result.cases["port[media]"].outcome == "waived"  # still in force
    assert "waiver expired: drift on homelab-backup" in result.output
    assert "1 waived failure(s); 1 waiver(s) expire within 14 days" in result.output


def test_waivers_under_xdist_are_identical_to_serial(
    run_checks: RunChecks, faulty_lab: Lab, waived_config: Path
) -> None:
    serial = run(run_checks, faulty_lab, waived_config, TODAY)
    parallel = run(run_checks, faulty_lab, waived_config, TODAY, "-n", "2")
    assert parallel.result.ret == serial.result.ret == 0
    assert parallel.outcomes() == serial.outcomes()
    props = {k: c.properties.get("waived") for k, c in serial.cases.items()}
    assert {k: c.properties.get("waived") for k, c in parallel.cases.items()} == props
    assert "waivers: 2 waived failure(s); 2 waiver(s) expire within 14 days" in parallel.output
    assert "waiver no longer needed: dns on archive" in parallel.output


def test_a_waiver_naming_an_unknown_check_stops_the_run_at_its_line(
    run_checks: RunChecks, faulty_lab: Lab, write_config: WriteConfig
) -> None:
    config = lab_config(faulty_lab)
    config["waivers"] = [
        {"storage": "*", "check": "fingerprnt", "reason": "typo", "expires": "2030-07-01"}
    ]
    path = write_config(config)
    result = run(run_checks, faulty_lab, path, TODAY)
    assert result.result.ret == 2, result.output
    line = _line(path, "fingerprnt", key="check")
    assert f"{path}:{line}: waivers.check: no check `fingerprnt` is declared" in result.output
    assert "did you mean `fingerprint`?" in result.output


def _line(path: Path, value: str, key: str = "storage", after: str = "") -> int:
    """The line of the waiver entry whose `key` is `value` (1-based, its `- ` line)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = lines.index(after) if after else lines.index("waivers:")
    for number, text in enumerate(lines[start:], start + 1):
        if text.strip().lstrip("- ").startswith(f"{key}: {value}"):
            # the entry starts at its `- ` line
            while not lines[number - 1].lstrip().startswith("- "):
                number -= 1
            return number
    raise AssertionError(f"no waiver with {key}: {value} in {path}")
