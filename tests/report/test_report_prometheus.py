"""The Prometheus textfile: parsed with prometheus_client's own parser - every series, bounded
labels, no sample timestamps - and written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pbs_compliance.report import prometheus
from pbs_compliance.report.cases import Case
from pbs_compliance.report.prometheus import Figures, render, write_textfile

CASES = [
    Case("t.py::test_dns[archive]", "dns", "archive", "", "pbs1", "passed"),
    Case("t.py::test_drift[offsite]", "drift", "offsite", "", "pbs2", "failed", "drifted"),
    Case("t.py::test_nodes[offsite:pve2]", "nodes", "offsite", "pve2", "pbs2", "skipped"),
    Case("t.py::test_drift[media]", "drift", "media", "", "pbs3", "remediated"),
    Case("t.py::test_tls[media]", "tls", "media", "", "pbs3", "waived", "ticket 7"),
    Case("t.py::test_unmanaged", "unmanaged", "(all)", "", "", "passed"),
]
FIGURES = Figures(
    cluster='lab "1"',
    finished=1_700_000_000.5,
    duration=4.25,
    certificates={"pbs1.lab.example:8007": 1_800_000_000.0},
    newest_backup={"archive": 1_699_990_000.0},
    used_ratio={"archive": 0.25},
)


def parsed(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    families = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge", family.name
        families[family.name] = [(s.labels, s.value) for s in family.samples]
        assert all(s.timestamp is None for s in family.samples), family.name
    return families


def test_every_case_is_one_series_with_its_result_and_passed_only_when_compliant() -> None:
    series = parsed(render(CASES, FIGURES))

    passed = {
        (labels["storage"], labels["check"], labels["node"]): (labels["result"], value)
        for labels, value in series["pbs_compliance_check_passed"]
    }
    assert passed == {
        ("archive", "dns", ""): ("passed", 1.0),
        ("offsite", "drift", ""): ("failed", 0.0),
        ("offsite", "nodes", "pve2"): ("skipped", 0.0),
        ("media", "drift", ""): ("remediated", 1.0),
        ("media", "tls", ""): ("waived", 0.0),
        ("(all)", "unmanaged", ""): ("passed", 1.0),
    }
    assert {labels["cluster"] for labels, _ in series["pbs_compliance_check_passed"]} == {'lab "1"'}


def test_the_totals_the_run_and_the_gathered_figures() -> None:
    series = parsed(render(CASES, FIGURES))

    totals = {labels["result"]: value for labels, value in series["pbs_compliance_checks"]}
    assert totals == {
        "passed": 2,
        "failed": 1,
        "error": 0,
        "skipped": 1,
        "remediated": 1,
        "waived": 1,
    }
    assert series["pbs_compliance_last_run_timestamp_seconds"] == [
        ({"cluster": 'lab "1"'}, 1_700_000_000.5)
    ]
    assert series["pbs_compliance_run_duration_seconds"] == [({"cluster": 'lab "1"'}, 4.25)]
    assert series["pbs_compliance_certificate_expiry_timestamp_seconds"] == [
        ({"cluster": 'lab "1"', "server": "pbs1.lab.example:8007"}, 1_800_000_000.0)
    ]
    assert series["pbs_compliance_backup_newest_timestamp_seconds"] == [
        ({"cluster": 'lab "1"', "storage": "archive"}, 1_699_990_000.0)
    ]
    assert series["pbs_compliance_datastore_used_ratio"] == [
        ({"cluster": 'lab "1"', "storage": "archive"}, 0.25)
    ]


def test_figures_not_gathered_are_left_out_not_zero() -> None:
    series = parsed(render(CASES[:1], Figures("lab", 1.0, 1.0)))

    assert set(series) == {
        "pbs_compliance_check_passed",
        "pbs_compliance_checks",
        "pbs_compliance_last_run_timestamp_seconds",
        "pbs_compliance_run_duration_seconds",
    }


def test_the_file_is_replaced_atomically_and_no_temporary_file_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "textfile" / "pbs.prom"
    write_textfile(path, "old 1\n")
    inode = path.stat().st_ino
    renames: list[tuple[str, str]] = []
    real = os.replace

    def spy(src: str, dst: str) -> None:
        assert Path(src).parent == path.parent  # the temporary file is in the same directory
        assert not Path(src).name.endswith(".prom")  # the collector never reads it
        assert Path(dst).read_text(encoding="utf-8") == "old 1\n"  # untouched until the rename
        renames.append((src, dst))
        real(src, dst)

    monkeypatch.setattr(prometheus.os, "replace", spy)
    write_textfile(path, render(CASES, FIGURES))

    assert len(renames) == 1
    assert path.stat().st_ino != inode
    assert os.listdir(path.parent) == ["pbs.prom"]
    assert "pbs_compliance_checks" in parsed(path.read_text(encoding="utf-8"))
