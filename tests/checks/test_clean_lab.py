"""A lab declared exactly as it is: every case passes, serially and under xdist, with reports."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import xmlschema
from checks_harness import BUILTIN_IDS, RunChecks, html_report_text, pve_client

from pbs_compliance.lab.runner import Lab

JUNIT_XSD = str(Path(__file__).resolve().parents[1] / "data" / "junit-10.xsd")


def test_every_case_of_a_faithful_declaration_passes(
    shared_lab: Lab, run_checks: RunChecks
) -> None:
    run = run_checks(shared_lab)

    assert run.result.ret == 0, run.output
    assert set(run.cases) == BUILTIN_IDS
    assert run.ids("passed") == BUILTIN_IDS
    run.result.assert_outcomes(passed=len(BUILTIN_IDS))


def test_two_xdist_workers_report_the_same_outcomes_as_a_serial_run(
    lab: Lab, run_checks: RunChecks
) -> None:
    lab.pbs["pbs3.lab.example"].renew_certificate()  # fingerprint fails, media's nodes skip
    pve_client(lab).update("offsite", {"nodes": "pve1"})  # drift fails, a node case skips
    serial = run_checks(lab)
    # In-process works: the controller runs here, xdist starts its workers as subprocesses.
    parallel = run_checks(lab, "-n", "2")

    assert "2 workers" in parallel.output
    assert serial.failed == {"fingerprint[media]", "drift[offsite]"}
    assert serial.skipped == {
        "nodes[media:pve1]",
        "nodes[media:pve2]",
        "nodes[media:pve3]",
        "nodes[offsite:pve2]",
        "datastore[media]",  # nothing is sent to a server with another certificate
        "capacity[media]",
        "backups[media]",
        "verified[media]",
    }
    assert parallel.outcomes() == serial.outcomes()
    assert {k: c.message for k, c in parallel.cases.items()} == {
        k: c.message for k, c in serial.cases.items()
    }
    assert {k: c.properties for k, c in parallel.cases.items()} == {
        k: c.properties for k, c in serial.cases.items()
    }
    # The failed cases' evidence (system-out) is the same, from the workers' reports.
    assert {k: c.system_out for k, c in parallel.cases.items()} == {
        k: c.system_out for k, c in serial.cases.items()
    }
    assert "served fingerprint: " in parallel.cases["fingerprint[media]"].system_out
    parallel.result.stdout.fnmatch_lines(
        [
            "*pbs-compliance matrix*",
            "*media*PASS*PASS*PASS*FAIL*PASS*0/3 skip*",
            "*offsite*PASS*PASS*PASS*PASS*FAIL*1/2 PASS*",
        ]
    )


def test_the_header_names_the_config_the_pve_endpoint_and_remediation(
    shared_lab: Lab, run_checks: RunChecks
) -> None:
    run = run_checks(shared_lab, "--collect-only")

    run.result.stdout.fnmatch_lines(
        [
            f"pbs-compliance: config {shared_lab.config_path} (4 storages)",
            f"pbs-compliance: PVE {shared_lab.url}; DNS 127.0.0.1:*",
            "pbs-compliance: remediation off",
        ]
    )


def test_dash_k_with_a_storage_name_selects_only_that_storage(
    shared_lab: Lab, run_checks: RunChecks
) -> None:
    run = run_checks(shared_lab, "-k", "homelab-backup")

    assert run.result.ret == 0, run.output
    assert set(run.cases) == {c for c in BUILTIN_IDS if "homelab-backup" in c}
    assert len(run.cases) == 5 + 4 + 3  # connectivity and drift, backup health, nodes


def test_dash_m_selects_the_connectivity_checks_by_marker(
    shared_lab: Lab, run_checks: RunChecks
) -> None:
    run = run_checks(shared_lab, "-m", "dns or port or tls or fingerprint")

    assert run.result.ret == 0, run.output
    assert {c.split("[")[0] for c in run.cases} == {"dns", "port", "tls", "fingerprint"}
    assert len(run.cases) == 4 * 4


@pytest.mark.parametrize(
    ("marker", "cases"), [("drift", 4), ("nodes", 11), ("unmanaged", 1), ("tls", 4)]
)
def test_each_marker_selects_its_own_cases(
    shared_lab: Lab, run_checks: RunChecks, marker: str, cases: int
) -> None:
    run = run_checks(shared_lab, "-m", marker)

    assert run.result.ret == 0, run.output
    assert len(run.cases) == cases
    assert {c.properties["check"] for c in run.cases.values()} == {marker}


def test_dash_dash_markers_lists_the_seven_checks_with_their_docs(
    pytester: pytest.Pytester,
) -> None:
    result = pytester.runpytest("--markers")

    result.stdout.fnmatch_lines_random(
        [
            "@pytest.mark.dns: *resolves*",
            "@pytest.mark.port: *TCP*",
            "@pytest.mark.tls: *certificate*",
            "@pytest.mark.fingerprint: *SHA-256*",
            "@pytest.mark.drift: *PVE storage entry*",
            "@pytest.mark.nodes: *PVE node*",
            "@pytest.mark.unmanaged: *does not declare*",
        ]
    )


def test_the_junit_file_keeps_the_properties_inside_each_case_and_strict_mode_validates(
    shared_lab: Lab, run_checks: RunChecks
) -> None:
    run = run_checks(shared_lab)
    strict = run_checks(shared_lab, "--junit-strict-xunit")

    text = run.junit.read_text(encoding="utf-8")
    assert text.count("<properties>") == len(run.cases)  # one per testcase, as pytest writes
    assert "[[PROPERTY" not in text
    xmlschema.XMLSchema(JUNIT_XSD).validate(str(strict.junit))
    assert {k: c.properties for k, c in strict.cases.items()} == {
        k: c.properties for k, c in run.cases.items()
    }
    assert run.cases["dns[archive]"].properties == {
        "storage": "archive",
        "server": "pbs1.lab.example",
        "check": "dns",
    }
    assert run.cases["nodes[offsite:pve2]"].properties == {
        "storage": "offsite",
        "server": "pbs2.lab.example",
        "check": "nodes",
        "node": "pve2",
    }
    assert run.cases["unmanaged"].properties == {"storage": "(all)", "check": "unmanaged"}
    assert all(c.properties.get("check") for c in run.cases.values())


def test_the_html_report_is_self_contained_and_shows_the_evidence(
    shared_lab: Lab, run_checks: RunChecks
) -> None:
    run = run_checks(shared_lab)

    raw = run.html.read_text(encoding="utf-8")
    assert not (run.html.parent / "assets").exists()
    assert '<link rel="stylesheet" href="assets' not in raw
    shown = html_report_text(run.html)
    fingerprint = shared_lab.pbs["pbs1.lab.example"].fingerprint

    def row(key: str, value: str) -> str:
        return rf"<th[^>]*>{key}</th><td><code>{value}</code></td>"

    for pattern in (
        row("storage", "homelab-backup"),
        row("server", r"pbs1\.lab\.example:\d+"),
        row("description", "lab: homelab on pbs1\\.lab\\.example"),
        row("resolved", r"127\.0\.0\.11"),
        row("subject", r"[^<]*CN=pbs1\.lab\.example[^<]*"),
        row("issuer", r"[^<]*CN=pbs1\.lab\.example[^<]*"),
        row("valid", r"\d{4}-\d\d-\d\d \.\. \d{4}-\d\d-\d\d"),
        row("declared fingerprint", fingerprint),
        row("served fingerprint", fingerprint),
        row("password", "works from this node"),  # the declared password, via scan/pbs
    ):
        assert re.search(pattern, shown), pattern


def test_the_matrix_is_plain_text_when_the_output_is_not_a_terminal(
    shared_lab: Lab, run_checks: RunChecks
) -> None:
    run = run_checks(shared_lab)

    assert "\x1b[" not in run.output
    run.result.stdout.fnmatch_lines(
        [
            "*pbs-compliance matrix*",
            "*storage*dns*port*tls*fingerprint*drift*nodes*",
            "*archive*PASS*PASS*PASS*PASS*PASS*3/3 PASS*",
            "*homelab-backup*PASS*PASS*PASS*PASS*PASS*3/3 PASS*",
            "*media*PASS*PASS*PASS*PASS*PASS*3/3 PASS*",
            "*offsite*PASS*PASS*PASS*PASS*PASS*2/2 PASS*",
            "unmanaged PBS entries: PASS",
        ]
    )
