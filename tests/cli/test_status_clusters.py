"""`pbs status --output prometheus` / `--prometheus-textfile`, and several clusters at once
(`--config a.yaml --config b.yaml`), against labs; the series parsed with prometheus_client."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import Invoke, as_json, assert_shows, storage
from prometheus_client.parser import text_string_to_metric_families

from pbs_compliance.lab.runner import Lab

CHECKS_DIR = Path(__file__).resolve().parents[2] / "checks"
STATUS_CHECKS = ("drift", "nodes", "unmanaged")
LabConfig = Callable[..., Path]
Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def series(text: str) -> Series:
    """Every sample as (name, sorted labels) -> value; a sample found twice fails the test."""
    found: Series = {}
    names = [f.name for f in text_string_to_metric_families(text)]
    assert len(names) == len(set(names)), f"a family is declared twice: {names}"
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge"
        for sample in family.samples:
            assert sample.timestamp is None  # node_exporter skips a file with timestamps
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in found, f"duplicate series {key}"
            found[key] = sample.value
    return found


def passed(found: Series) -> dict[tuple[str, str, str, str], tuple[str, float]]:
    """pbs_compliance_check_passed as (cluster, storage, check, node) -> (result, value)."""
    return {
        (d["cluster"], d["storage"], d["check"], d["node"]): (d["result"], value)
        for (name, labels), value in found.items()
        if name == "pbs_compliance_check_passed"
        for d in [dict(labels)]
    }


@pytest.fixture
def named(lab_config: LabConfig, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """`named(lab, "site-a", edit)`: the lab's declaration as cluster `site-a`, its secrets in
    variables of its own (`${PBS_LAB_..._SITE_A}`), as two sites' configs would keep them."""

    def write(lab: Lab, name: str, edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
        def change(data: dict[str, Any]) -> None:
            data["pve"]["name"] = name
            if edit is not None:
                edit(data)

        path = lab_config(lab, change)
        text = path.read_text(encoding="utf-8")
        suffix = "_" + name.upper().replace("-", "_")
        for key, value in lab.env.items():
            monkeypatch.setenv(key + suffix, value)
            text = text.replace("${" + key + "}", "${" + key + suffix + "}")
        path.write_text(text, encoding="utf-8")
        return path

    return write


def test_status_prometheus_has_the_pytest_runs_series_for_the_checks_it_judges(
    invoke: Invoke, shared_lab: Lab, named: Callable[..., Path], tmp_path: Path
) -> None:
    config = named(shared_lab, "homelab")
    textfile = tmp_path / "pytest.prom"
    env = {**os.environ, **shared_lab.env}
    run = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", str(CHECKS_DIR), "-q", "-p", "no:cacheprovider"),
            *(f"--pbs-config={config}", f"--prometheus-textfile={textfile}"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:]

    result = invoke("status", "--config", config, "--output", "prometheus")

    assert result.exit_code == 0, result.output
    ours = series(result.stdout)
    theirs = series(textfile.read_text(encoding="utf-8"))
    mine = passed(ours)
    pytests = {k: v for k, v in passed(theirs).items() if k[2] in STATUS_CHECKS}
    assert mine == pytests  # same labels, same results, for every drift/nodes/unmanaged case
    assert {k[2] for k in mine} == set(STATUS_CHECKS)
    assert_shows(
        mine,
        ("homelab", "(all)", "unmanaged", ""),
        ("homelab", "offsite", "nodes", "pve2"),
        ("homelab", "offsite", "drift", ""),
    )
    assert all(v == ("passed", 1.0) for v in mine.values())
    shared = {name for name, _ in ours} & {name for name, _ in theirs}
    assert shared >= {
        "pbs_compliance_check_passed",
        "pbs_compliance_checks",
        "pbs_compliance_last_run_timestamp_seconds",
        "pbs_compliance_run_duration_seconds",
    }
    for name in shared:  # the same label names where the series overlap
        keys = {tuple(k for k, _ in labels) for n, labels in ours if n == name}
        assert keys
        assert keys == {tuple(k for k, _ in labels) for n, labels in theirs if n == name}
    assert ours[("pbs_compliance_checks", (("cluster", "homelab"), ("result", "passed")))] == len(
        mine
    )
    assert result.stderr == ""
    for secret in shared_lab.env.values():
        assert secret not in result.stdout


def test_status_prometheus_textfile_is_written_whole_beside_the_table(
    invoke: Invoke, lab: Lab, named: Callable[..., Path], tmp_path: Path
) -> None:
    def drift(data: dict[str, Any]) -> None:
        storage(data, "media")["datastore"] = "elsewhere"

    config = named(lab, "site-a", drift)
    textfile = tmp_path / "collector" / "pbs.prom"

    result = invoke("status", "--config", config, "--prometheus-textfile", textfile)

    assert result.exit_code == 1, result.output
    assert "cluster site-a (config " in result.stdout  # the table is still shown
    assert "│media " in result.stdout
    assert sorted(p.name for p in textfile.parent.iterdir()) == ["pbs.prom"]  # no temp file left
    assert stat.S_IMODE(textfile.stat().st_mode) == 0o644
    found = passed(series(textfile.read_text(encoding="utf-8")))
    assert found[("site-a", "media", "drift", "")] == ("failed", 0.0)
    assert found[("site-a", "archive", "drift", "")] == ("passed", 1.0)


def test_status_prometheus_marks_a_waived_failure(
    invoke: Invoke, lab: Lab, named: Callable[..., Path]
) -> None:
    def drift_waived(data: dict[str, Any]) -> None:
        storage(data, "media")["datastore"] = "elsewhere"
        data["waivers"] = [
            {
                "storage": "media",
                "check": "drift",
                "reason": "moving the datastore this week",
                "expires": (dt.date.today() + dt.timedelta(days=30)).isoformat(),
            }
        ]

    config = named(lab, "site-a", drift_waived)

    result = invoke("status", "--config", config, "--output", "prometheus")

    assert result.exit_code == 0, result.stderr  # a waived failure does not fail the run
    found = series(result.stdout)
    assert passed(found)[("site-a", "media", "drift", "")] == ("waived", 0.0)
    assert found[("pbs_compliance_checks", (("cluster", "site-a"), ("result", "waived")))] == 1


def test_status_of_two_clusters_groups_tables_lists_json_and_merges_series(
    invoke: Invoke, make_lab: Callable[..., Lab], named: Callable[..., Path], tmp_path: Path
) -> None:
    def drift(data: dict[str, Any]) -> None:
        storage(data, "media")["datastore"] = "elsewhere"

    a = named(make_lab(), "site-a")
    b = named(make_lab(), "site-b", drift)
    textfile = tmp_path / "both.prom"

    text = invoke("status", "--config", a, "--config", b, "--prometheus-textfile", textfile)
    data = as_json(invoke("status", "-c", a, "-c", b, "--output", "json"))
    prom = invoke("status", "-c", a, "-c", b, "--output", "prometheus")

    assert text.exit_code == 1, text.output  # the worst of 0 and 1
    lines = text.stdout.splitlines()
    head_a = lines.index(f"cluster site-a (config {a})")
    head_b = lines.index(f"cluster site-b (config {b})")
    assert head_a < head_b
    section_a, section_b = lines[head_a:head_b], lines[head_b:]
    assert "every declared PBS storage is in place and active" in section_a
    assert any(line.startswith("│media ") and "datastore" in line for line in section_b)
    assert any(line.startswith("not compliant;") for line in section_b)
    assert lines[-2:] == [f"site-a: compliant ({a})", f"site-b: NOT compliant ({b})"]

    assert data["ok"] is False
    assert [c["cluster"] for c in data["clusters"]] == ["site-a", "site-b"]
    assert [c["config"] for c in data["clusters"]] == [str(a), str(b)]
    assert [c["ok"] for c in data["clusters"]] == [True, False]
    media = next(s for s in data["clusters"][1]["storages"] if s["name"] == "media")
    assert [(d["property"], d["declared"]) for d in media["drift"]] == [("datastore", "elsewhere")]

    assert prom.exit_code == 1
    found = series(prom.stdout)  # each family once, no series twice
    written = series(textfile.read_text(encoding="utf-8"))  # the same, but for the clock
    assert set(found) == set(written)
    assert passed(found) == passed(written)
    assert {dict(labels)["cluster"] for _, labels in found} == {"site-a", "site-b"}
    checks = passed(found)
    assert checks[("site-a", "media", "drift", "")] == ("passed", 1.0)
    assert checks[("site-b", "media", "drift", "")] == ("failed", 0.0)
    assert len({k[1:] for k in checks if k[0] == "site-a"}) == len(checks) // 2
    for cluster in ("site-a", "site-b"):
        assert (
            "pbs_compliance_last_run_timestamp_seconds",
            (("cluster", cluster),),
        ) in found


def test_status_of_several_reports_a_broken_config_with_its_file_and_shows_the_rest(
    invoke: Invoke, lab: Lab, named: Callable[..., Path], tmp_path: Path
) -> None:
    good = named(lab, "site-a")
    broken = tmp_path / "site-b.yaml"
    broken.write_text("pve:\n  url: https://pve.example:8006\npbs_storages: 7\n", encoding="utf-8")

    text = invoke("status", "--config", good, "--config", broken)
    data = as_json(invoke("status", "--config", good, "--config", broken, "--output", "json"))

    assert text.exit_code == 2, text.output  # a config error is the worst
    assert f"cluster site-a (config {good})" in text.stdout.splitlines()
    assert "every declared PBS storage is in place and active" in text.stdout
    assert f"{broken}:3" in text.stderr  # the problem, at its file and line
    assert "invalid configuration" in text.stderr
    assert text.stdout.splitlines()[-2:] == [
        f"site-a: compliant ({good})",
        f"(unknown): config error ({broken})",
    ]
    assert f"not shown: {broken}:3" in text.stdout
    assert [c["ok"] for c in data["clusters"]] == [True, False]
    bad = data["clusters"][1]
    assert bad["error"] == "config"
    assert bad["config"] == str(broken)
    assert bad["cluster"] is None
    assert {i["file"] for i in bad["issues"]} == {str(broken)}
    assert bad["issues"][0]["line"] == 3


def test_status_of_several_names_the_files_whose_pve_is_unusable_or_unreadable(
    invoke: Invoke, lab: Lab, named: Callable[..., Path], tmp_path: Path
) -> None:
    def no_token(data: dict[str, Any]) -> None:
        del data["pve"]["token_id"], data["pve"]["token_secret"]

    def dead(data: dict[str, Any]) -> None:
        data["pve"]["url"] = "https://127.0.0.1:9"  # discard: nothing listens

    good = named(lab, "site-a")
    bare = named(lab, "site-b", no_token)
    down = named(lab, "site-c", dead)
    textfile = tmp_path / "pbs.prom"

    text = invoke("status", "-c", good, "-c", down, "--prometheus-textfile", textfile)
    data = as_json(invoke("status", "-c", good, "-c", bare, "-c", down, "-o", "json"))

    assert text.exit_code == 1, text.output  # PVE unreadable: not compliant, not a usage error
    assert f"pbs: {down}: cannot read PVE:" in text.stderr
    assert text.stdout.splitlines()[-1] == f"site-c: cannot read PVE ({down})"
    assert [c["ok"] for c in data["clusters"]] == [True, False, False]
    assert data["clusters"][1]["error"] == "pve"
    assert data["clusters"][1]["message"].startswith(f"{bare}: this command reads the cluster")
    assert data["clusters"][2]["error"] == "pve"
    assert data["clusters"][2]["cluster"] == "site-c"
    found = passed(series(textfile.read_text(encoding="utf-8")))
    # the unreadable cluster's cases fail in the file, as they do in a pytest run
    assert found[("site-c", "(all)", "unmanaged", "")] == ("failed", 0.0)
    assert found[("site-c", "media", "drift", "")] == ("failed", 0.0)
    assert found[("site-a", "media", "drift", "")] == ("passed", 1.0)
    for secret in lab.env.values():
        assert secret not in text.output
        assert secret not in json.dumps(data)


def test_status_refuses_two_configs_naming_one_cluster(
    invoke: Invoke, make_lab: Callable[..., Lab], named: Callable[..., Path]
) -> None:
    a = named(make_lab(), "same")
    b = named(make_lab(), "same")

    result = invoke("status", "-c", a, "-c", b, "--output", "prometheus")

    assert result.exit_code == 2
    assert f"{b}: names cluster 'same' like {a}" in result.stderr
    assert "pve.name" in result.stderr
    found = series(result.stdout)  # the first is still there, once
    assert {dict(labels)["cluster"] for _, labels in found} == {"same"}


def test_status_json_of_one_config_names_its_cluster(
    invoke: Invoke, shared_lab: Lab, named: Callable[..., Path]
) -> None:
    result = invoke("status", "-c", named(shared_lab, "homelab"), "-o", "json")

    data = as_json(result)
    assert data["cluster"] == "homelab"
    assert "clusters" not in data
    assert json.dumps(data).count("homelab") >= 1


@pytest.mark.parametrize("command", ["validate", "apply"])
def test_prometheus_output_is_only_for_status(invoke: Invoke, command: str) -> None:
    result = invoke(command, "--output", "prometheus")
    assert result.exit_code == 2
    assert "prometheus" in result.stderr
