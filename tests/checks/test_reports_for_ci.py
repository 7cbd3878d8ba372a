"""What CI tools and dashboards read of a compliance run against a lab: the JUnit file (suite =
cluster, evidence of a failed case in its system-out, properties in each case, strict mode on
request), the Prometheus textfile, the HTML report at a glance (in headless Chromium when one
is installed), and the reports of two clusters merged."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import xmlschema
import yaml
from checks_harness import ChecksRun, RunChecks, WriteConfig, lab_config, pve_client
from prometheus_client.parser import text_string_to_metric_families

from pbs_compliance.lab.runner import Lab
from pbs_compliance.report.junit import read_junit

JUNIT_XSD = str(Path(__file__).resolve().parents[1] / "data" / "junit-10.xsd")
# Set to a path (docs/report.png for the README) to keep the browser's screenshot there.
SCREENSHOT_ENV = "PBS_COMPLIANCE_REPORT_SCREENSHOT"
# Read at import: the runs' `clean_env` fixture clears every PBS_COMPLIANCE_* variable.
SCREENSHOT_TO = os.environ.get(SCREENSHOT_ENV)


def broken(lab: Lab) -> None:
    """Two faults: media's certificate renewed (fingerprint fails), offsite's nodes drifted."""
    lab.pbs["pbs3.lab.example"].renew_certificate()
    pve_client(lab).update("offsite", {"nodes": "pve1"})


def report_data(path: Path) -> dict[str, Any]:
    """pytest-html's data blob: every case's row, log and extras."""
    raw = path.read_text(encoding="utf-8")
    match = re.search(r'data-jsonblob="([^"]*)"', raw)
    assert match is not None
    data: dict[str, Any] = json.loads(html.unescape(match.group(1)))
    return data


# -- JUnit ------------------------------------------------------------------------------------


def test_a_failed_case_carries_its_evidence_and_fix_in_system_out_named_after_the_cluster(
    lab: Lab, run_checks: RunChecks
) -> None:
    broken(lab)

    run = run_checks(lab)

    cases = {c.id: c for c in read_junit(run.junit)}
    drift = cases["drift[offsite]"]
    assert drift.outcome == "failed"
    assert drift.suite == "lab"
    assert drift.classname == "lab.test_pve"
    assert drift.properties == {
        "storage": "offsite",
        "server": "pbs2.lab.example",
        "check": "drift",
    }
    lines = drift.system_out.splitlines()
    assert lines[:2] == ["check: drift", "storage: offsite"]
    assert lines[-1] == "fix: can be fixed in place: `pytest checks/ --remediate` or `pbs apply`"
    fingerprint = cases["fingerprint[media]"].evidence
    served = lab.pbs["pbs3.lab.example"].fingerprint
    assert fingerprint["served fingerprint"] == served
    assert fingerprint["fix"].startswith("`pbs fingerprint pbs3.lab.example:")
    # passed and skipped cases carry no evidence text
    assert cases["dns[archive]"].system_out == ""
    assert all(c.system_out == "" for c in cases.values() if c.outcome == "skipped")


def test_strict_mode_from_the_ini_validates_against_the_xunit_schema(
    lab: Lab, run_checks: RunChecks
) -> None:
    broken(lab)

    run = run_checks(lab, "-o", "pbs_junit_strict_xunit=true")

    xmlschema.XMLSchema(JUNIT_XSD).validate(str(run.junit))
    drift = {c.id: c for c in read_junit(run.junit)}["drift[offsite]"]
    assert drift.properties["check"] == "drift"
    assert drift.system_out.splitlines()[:4] == [
        "[[PROPERTY|storage=offsite]]",
        "[[PROPERTY|server=pbs2.lab.example]]",
        "[[PROPERTY|check=drift]]",
        "check: drift",
    ]


# -- Prometheus ---------------------------------------------------------------------------------


def test_the_prometheus_textfile_has_every_case_the_totals_and_the_certificates(
    lab: Lab, run_checks: RunChecks, tmp_path: Path
) -> None:
    broken(lab)
    textfile = tmp_path / "collector" / "pbs.prom"

    run = run_checks(lab, f"--prometheus-textfile={textfile}")

    families = {f.name: f for f in text_string_to_metric_families(textfile.read_text())}
    passed = {
        (s.labels["storage"], s.labels["check"], s.labels["node"]): (s.labels["result"], s.value)
        for s in families["pbs_compliance_check_passed"].samples
    }
    assert len(passed) == len(run.cases)
    assert passed[("offsite", "drift", "")] == ("failed", 0)
    assert passed[("archive", "nodes", "pve2")] == ("passed", 1)
    assert passed[("media", "fingerprint", "")] == ("failed", 0)
    totals = {s.labels["result"]: s.value for s in families["pbs_compliance_checks"].samples}
    assert totals["failed"] == 2
    assert sum(totals.values()) == len(run.cases)
    expiry = {
        s.labels["server"]: s.value
        for s in families["pbs_compliance_certificate_expiry_timestamp_seconds"].samples
    }
    assert {k.split(":")[0] for k in expiry} == set(lab.pbs)
    assert all(f.samples[0].timestamp is None for f in families.values())
    assert {s.labels["cluster"] for f in families.values() for s in f.samples} == {"lab"}
    assert [p.name for p in textfile.parent.iterdir()] == ["pbs.prom"]


# -- HTML ---------------------------------------------------------------------------------------


def test_the_html_report_opens_with_the_matrix_totals_and_fixes_and_reads_cleanly(
    lab: Lab, run_checks: RunChecks
) -> None:
    broken(lab)

    run = run_checks(lab)

    raw = run.html.read_text(encoding="utf-8")
    title_end = raw.index("</h1>")
    glance = raw[title_end : raw.index("</section>") + len("</section>")]
    assert glance.startswith("</h1><section id='pbs-glance'>")
    assert f"{len(run.cases)} cases: 2 failed" in glance
    assert "cluster <b>lab</b>" in glance
    assert html.escape(str(lab.config_path)) in glance
    # the matrix: coloured cells with their word, each linking to its case's row
    data = report_data(run.html)
    rows = {test[0]["testId"]: test[0] for test in data["tests"].values()}
    links = re.findall(r"<td class='pbs-cell (\w+)'><a href='#([^']+)'>([^<]+)</a>", glance)
    assert ("fail", "test_pve.py::test_drift[offsite]", "FAIL") in links
    assert {target for _, target, _ in links} <= set(rows)
    assert {text.split()[-1] for _, _, text in links} <= {"PASS", "FAIL", "SKIP"}
    # the fixes: one line per failed case
    fixes = re.findall(r"<li><a href='#[^']+'>([^<]+)</a>", glance)
    assert fixes == ["fingerprint[media]", "drift[offsite]"]
    # the cases: a skip's reason as text, no noise, skipped rows collapsed and failed not
    skipped = rows["test_pve.py::test_nodes[offsite:pve2]"]
    assert html.unescape(skipped["log"]).strip() == (
        "'offsite' is limited to nodes pve1 in PVE, so pve2 does not use it (see the drift case)"
    )
    assert "('/" not in json.dumps(data["tests"])
    assert "No log output captured." not in raw
    assert {"passed", "skipped", "remediated", "waived"} <= set(data["renderCollapsed"])
    assert "failed" not in data["renderCollapsed"]
    # no fact twice in a case's evidence table
    dns = rows["test_connectivity.py::test_dns[archive]"]["extras"][0]["content"]
    names = re.findall(r"<th>([^<]+)</th>", dns)
    assert len(names) == len(set(names)), names


def _chromium() -> str | None:
    return next((p for n in ("chromium", "chromium-browser") if (p := shutil.which(n))), None)


def _pixels(png: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the RGB rows of an 8-bit RGB/RGBA PNG (what Chromium writes)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, header = 8, b"", b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        header = body if kind == b"IHDR" else header
        chunks += body if kind == b"IDAT" else b""
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8
    assert colour in (2, 6)
    step = 3 if colour == 2 else 4
    raw, stride, rows, previous = zlib.decompress(chunks), width * step, [], bytearray(width * step)
    for y in range(height):
        kind, line = (
            raw[y * (stride + 1)],
            bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]),
        )
        for i in range(stride):
            left = line[i - step] if i >= step else 0
            up, corner = previous[i], previous[i - step] if i >= step else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                best = min(
                    (abs(p - left), 0, left), (abs(p - up), 1, up), (abs(p - corner), 2, corner)
                )
                line[i] = (line[i] + best[2]) & 255
        rows.append(bytes(b for i, b in enumerate(line) if i % step < 3))
        previous = line
    return width, height, rows


def test_a_real_browser_shows_the_matrix_first(lab: Lab, run_checks: RunChecks) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("no headless Chromium here (`apt-get install chromium` to run this test)")
    broken(lab)
    run = run_checks(lab)
    shot = run.html.with_suffix(".png")

    common = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    dom = subprocess.run(
        [browser, *common, "--dump-dom", run.html.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    subprocess.run(
        [browser, *common, "--window-size=1280,1000", f"--screenshot={shot}", run.html.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )

    # After the page's scripts ran: the glance is still the first thing under the title, and
    # pytest-html built its table (the matrix links land on rows that exist).
    body = dom[dom.index("<body") :]
    assert re.search(r"</h1>\s*<section id=\"pbs-glance\">", body)
    assert 'id="test_pve.py::test_drift[offsite]"' in dom
    # On screen, in the first 1000 pixels: the red FAIL cell and the green PASS cells.
    width, height, rows = _pixels(shot.read_bytes())
    colours = {row[i : i + 3] for row in rows[: height // 2] for i in range(0, width * 3, 3)}
    assert bytes.fromhex("f6c6c6") in colours  # td.fail
    assert bytes.fromhex("c8ecc8") in colours  # td.pass
    if SCREENSHOT_TO:
        shutil.copyfile(shot, SCREENSHOT_TO)


# -- several clusters ----------------------------------------------------------------------------


def test_two_clusters_reports_merge_without_clashing_ids(
    make_lab: Callable[..., Lab], run_checks: RunChecks, write_config: WriteConfig, tmp_path: Path
) -> None:
    labs = {"site-a": make_lab(), "site-b": make_lab()}
    runs: dict[str, ChecksRun] = {}
    textfiles: dict[str, Path] = {}
    for name, lab in labs.items():
        config = lab_config(lab)
        config["pve"]["name"] = name
        textfiles[name] = tmp_path / f"{name}.prom"
        runs[name] = run_checks(
            lab,
            f"--prometheus-textfile={textfiles[name]}",
            config=write_config(yaml.safe_dump(config), f"{name}.yaml"),
        )

    merged = [c for name in labs for c in read_junit(runs[name].junit)]
    assert {c.suite for c in merged} == set(labs)
    keys = [(c.classname, c.name) for c in merged]
    assert len(keys) == len(set(keys)) == 2 * len(runs["site-a"].cases)
    series = [
        (s.name, tuple(sorted(s.labels.items())))
        for path in textfiles.values()
        for f in text_string_to_metric_families(path.read_text())
        for s in f.samples
    ]
    assert len(series) == len(set(series))
    assert {dict(labels)["cluster"] for _, labels in series} == set(labs)
    for name, run in runs.items():
        assert f"cluster <b>{name}</b>" in run.html.read_text(encoding="utf-8")
        run.result.stdout.fnmatch_lines([f"pbs-compliance: cluster {name} (pve.name)"])
