"""Extending the suite: a check added as README's "Writing your own check" says, and the hooks.

The README's example module (`examples/checks/test_site_prefix.py`) is copied into a copy of
`checks/` beside the shipped modules - no other file touched - and must show up everywhere the
built-in checks do: the terminal matrix, the HTML report, JUnit and `-m`, also under xdist.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from checks_harness import BUILTIN_IDS, CHECKS_DIR, RunChecks, html_report_text

from pbs_compliance.lab.runner import Lab

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "checks" / "test_site_prefix.py"
STORAGES = ("archive", "homelab-backup", "media", "offsite")
PREFIX = {"PBS_SITE_PREFIX": "homelab"}  # only homelab-backup's datastore (homelab) has it


def add_example(pytester: pytest.Pytester) -> None:
    checks = pytester.path / "checks"
    shipped = {p.name for p in CHECKS_DIR.iterdir() if not p.name.startswith("__")}
    assert {p.name for p in checks.iterdir()} == shipped
    shutil.copy(EXAMPLE, checks / EXAMPLE.name)


def test_a_check_added_as_the_readme_says_is_in_the_matrix_html_junit_and_m(
    shared_lab: Lab, run_checks: RunChecks, pytester: pytest.Pytester
) -> None:
    add_example(pytester)

    run = run_checks(shared_lab, "--strict-markers", extra_env=PREFIX)

    ids = {f"site_prefix[{s}]" for s in STORAGES}
    assert set(run.cases) == BUILTIN_IDS | ids, run.output
    assert run.failed == ids - {"site_prefix[homelab-backup]"}
    assert run.cases["site_prefix[homelab-backup]"].outcome == "passed"
    archive = run.cases["site_prefix[archive]"]
    assert archive.properties == {
        "storage": "archive",
        "server": "pbs1.lab.example",
        "check": "site_prefix",
    }
    assert (
        "the datastore 'archive' of 'archive' does not start with the site prefix 'homelab'"
        in archive.message
    )
    assert "fix: rename the datastore on pbs1.lab.example" in archive.message
    run.result.stdout.fnmatch_lines(
        [
            "*pbs-compliance matrix*",
            "*storage*dns*port*tls*fingerprint*drift*nodes*site_prefix*",
            "*archive*PASS*PASS*PASS*PASS*PASS*3/3 PASS*FAIL*",
            "*homelab-backup*PASS*PASS*PASS*PASS*PASS*3/3 PASS*PASS*",
            "unmanaged PBS entries: PASS",
        ]
    )
    shown = html_report_text(run.html)
    assert re.search(r"<th[^>]*>site prefix</th><td><code>homelab</code></td>", shown)
    assert re.search(r"<th[^>]*>check</th><td><code>site_prefix</code></td>", shown)
    raw = run.html.read_text(encoding="utf-8")  # the summary's matrix has its column
    assert re.search(r"<th[^>]*>site_prefix</th>", raw), raw[:2000]

    # -m selects it alone, and xdist's controller (which never imports the module) still
    # gives it its column: the matrix shows every check that ran.
    only = run_checks(
        shared_lab, "--strict-markers", "-m", "site_prefix", "-n", "2", extra_env=PREFIX
    )

    assert set(only.cases) == ids, only.output
    assert only.failed == ids - {"site_prefix[homelab-backup]"}
    only.result.stdout.fnmatch_lines(
        ["*pbs-compliance matrix*", "*storage*site_prefix*", "*homelab-backup*PASS*"]
    )
    assert "unmanaged PBS entries" not in only.output  # no cluster case ran


def test_the_readme_shows_the_example_module_whole() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "\n## Writing your own check\n" in readme
    section = readme.split("## Writing your own check", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert EXAMPLE.read_text(encoding="utf-8") in blocks


def test_the_checks_fixtures_are_documented_in_pytest_fixtures(
    shared_lab: Lab, run_checks: RunChecks
) -> None:
    run = run_checks(shared_lab, "--fixtures")

    text = run.result.stdout.str()
    for name, words in (
        ("pbs_storage", "once per storage in the config"),
        ("pbs_node_target", "once per storage and node it applies to"),
        ("pbs", "pbs.check(verdict)"),
    ):
        match = re.search(rf"^{name}(?: \[session scope\])? -- .*\n((?:    .*\n)+)", text, re.M)
        assert match is not None, text
        assert words in " ".join(match.group(1).split()), match.group(1)


GATHERING_CONFTEST = """
import os
from pathlib import Path


class Site:
    def pytest_pbs_gather(self, settings):
        with Path(os.environ["GATHER_LOG"]).open("a") as log:
            log.write(f"{os.getpid()} {len(settings.config.storages)}\\n")
        return {"site": {"prefix": "homelab", "storages": len(settings.config.storages)}}


class Broken:
    def pytest_pbs_gather(self, settings):
        raise RuntimeError("the site database is down")


class Facts:
    def pytest_pbs_report_facts(self, item, verdict):
        return [("site rule", f"{verdict.check} checked by the site plugin")]


def pytest_configure(config):
    config.pluginmanager.register(Site(), "site")
    config.pluginmanager.register(Broken(), "broken-site")
    config.pluginmanager.register(Facts(), "site-facts")
"""

SITE_CHECK = """
import json

from pbs_compliance.api import Compliance, StorageSpec, Verdict, check


@check("site_data", "the site's own evidence reached this case")
def test_site_data(pbs_storage: StorageSpec, pbs: Compliance) -> None:
    site = pbs.evidence.extra["site"]
    broken = pbs.evidence.extra["broken-site"]
    ok = site == {"prefix": "homelab", "storages": 4}
    ok = ok and "the site database is down" in broken["error"]
    shown = json.dumps(pbs.evidence.extra)
    pbs.check(Verdict("site_data", pbs_storage.name, "pass" if ok else "fail", shown))
"""


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_plugins_gather_evidence_once_on_the_controller_and_add_report_facts(
    shared_lab: Lab,
    run_checks: RunChecks,
    pytester: pytest.Pytester,
    tmp_path: Path,
    workers: tuple[str, ...],
) -> None:
    (pytester.path / "site").mkdir()
    (pytester.path / "site" / "conftest.py").write_text(GATHERING_CONFTEST, encoding="utf-8")
    (pytester.path / "site" / "test_site.py").write_text(SITE_CHECK, encoding="utf-8")
    log = tmp_path / "gathered.log"

    run = run_checks(
        shared_lab,
        "site",
        "checks",
        "--strict-markers",
        *workers,
        extra_env={"GATHER_LOG": str(log)},
    )

    ids = {f"site_data[{s}]" for s in STORAGES}
    assert set(run.cases) == BUILTIN_IDS | ids, run.output
    assert run.ids("passed") == BUILTIN_IDS | ids, run.output
    assert len(log.read_text(encoding="utf-8").splitlines()) == 1  # once, on the controller
    shown = html_report_text(run.html)
    assert re.search(
        r"<th[^>]*>site rule</th><td><code>drift checked by the site plugin</code></td>", shown
    )
