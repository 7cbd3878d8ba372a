"""The compliance run's own settings: switched on explicitly, never inheriting the dev suite's.

`pytest checks/` reads `checks/pytest.ini` (the `pbs_compliance` switch, warnings reported but
never errors), not the repository's pyproject.toml with `filterwarnings = error`; and an
unrelated project's `checks/` folder runs untouched with pbs-compliance installed.
"""

from __future__ import annotations

import configparser
import shutil
import tomllib

import pytest
from checks_harness import (
    BUILTIN_IDS,
    CHECKS_DIR,
    WriteConfig,
    lab_config,
    parse_junit,
)

from pbs_compliance import registry
from pbs_compliance.lab.runner import Lab
from pbs_compliance.plugin import OFF

REPO = CHECKS_DIR.parent

THIRD_PARTY_WARNING = """\
import warnings


def test_a_library_warns_during_the_run() -> None:
    warnings.warn("a third-party library deprecates something", DeprecationWarning)
"""


def test_an_unrelated_project_with_a_checks_folder_runs_untouched(
    pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        **{
            "checks/test_their_site": """
                import pytest

                @pytest.fixture
                def pbs_storage():
                    return "their own fixture"

                def test_their_own_check(pbs_storage):
                    assert pbs_storage == "their own fixture"
            """
        }
    )

    result = pytester.runpytest("checks", "-p", "no:cacheprovider")

    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["plugins: *pbs-compliance-*"])  # installed, yet dormant
    assert "pbs-compliance:" not in result.stdout.str() + result.stderr.str()


@pytest.mark.usefixtures("checkout")
def test_the_readme_command_from_the_repository_root_uses_the_compliance_settings(
    shared_lab: Lab, pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    # In a checkout: one more module in checks/ whose library warns, the declaration at its
    # default path.
    (pytester.path / "checks" / "test_library_warning.py").write_text(THIRD_PARTY_WARNING)
    write_config(lab_config(shared_lab), name="config/pbs-storage.yaml")

    result = pytester.runpytest_subprocess(
        "checks/", "--html=reports/report.html", "--junitxml=reports/junit.xml", timeout=120
    )

    output = result.stdout.str()
    assert result.ret == pytest.ExitCode.OK, output
    result.stdout.fnmatch_lines([f"rootdir: {pytester.path / 'checks'}", "configfile: pytest.ini"])
    result.stdout.fnmatch_lines(["*DeprecationWarning: a third-party library deprecates*"])
    # The reports land where the README says, relative to where pytest was run.
    assert (pytester.path / "reports" / "report.html").is_file()
    cases = parse_junit(pytester.path / "reports" / "junit.xml")
    assert {c for c, case in cases.items() if case.outcome == "passed"} == {
        *BUILTIN_IDS,
        "a_library_warns_during_the_run",
    }


def test_the_development_settings_stay_strict_and_the_compliance_ones_never_error() -> None:
    dev = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert dev["tool"]["pytest"]["ini_options"]["filterwarnings"] == ["error"]
    ini = configparser.ConfigParser()
    ini.read(CHECKS_DIR / "pytest.ini", encoding="utf-8")
    assert ini.getboolean("pytest", "pbs_compliance")
    filters = [f for f in ini.get("pytest", "filterwarnings").splitlines() if f.strip()]
    assert filters == ["ignore::urllib3.exceptions.InsecureRequestWarning"]
    assert "addopts" not in ini["pytest"]


def test_the_checks_say_plainly_when_the_plugin_is_switched_off(
    pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch
) -> None:
    shutil.copytree(CHECKS_DIR, pytester.path / "checks", ignore=shutil.ignore_patterns("__py*"))

    result = pytester.runpytest("checks", "-p", "no:cacheprovider", "-o", "pbs_compliance=false")

    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    checks = len(registry.BUILTIN)  # every check (one case each when off), at setup
    result.assert_outcomes(errors=checks)  # nothing was judged
    assert result.stdout.str().count(f"\n{OFF}\n") == checks
    assert OFF == (
        "pbs-compliance is off for this run: run `pytest checks/` (checks/pytest.ini switches it "
        "on), or pass --pbs-config PATH"
    )
    assert "configuration is invalid" not in result.stdout.str()
