"""Which process keeps the cases for the report files, and only when a file wants them."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from pbs_compliance.report.run import RunReports


class Config:
    """The little of pytest's config that `RunReports` reads when it is made."""

    def __init__(self, *, worker: object = False, **options: object) -> None:
        self.options = options
        self.pluginmanager = SimpleNamespace(hasplugin=lambda name: False)
        if worker:
            self.workerinput = {"workerid": "gw0"}

    def getoption(self, name: str, default: object = None) -> object:
        return self.options.get(name, default)


def reports(config: Config) -> RunReports:
    cfg: Any = config
    return RunReports(cfg, lambda: None, lambda: None)


def call_report() -> pytest.TestReport:
    return pytest.TestReport(
        nodeid="test_connectivity.py::test_dns[archive]",
        location=("test_connectivity.py", 9, "test_dns[archive]"),
        keywords={},
        outcome="passed",
        longrepr=None,
        when="call",
        user_properties=[("storage", "archive"), ("check", "dns")],
    )


@pytest.mark.parametrize(
    "option", ["xmlpath", "htmlpath", "prometheus_textfile"], ids=["junit", "html", "prometheus"]
)
def test_the_controller_keeps_the_cases_a_report_file_needs(option: str) -> None:
    kept = reports(Config(**{option: "reports/out"}))
    kept.pytest_runtest_logreport(call_report())

    assert kept.keeps_cases
    assert list(kept.cases) == ["test_connectivity.py::test_dns[archive]"]
    assert kept.cases["test_connectivity.py::test_dns[archive]"].check == "dns"


def test_a_run_that_writes_no_report_file_keeps_no_cases() -> None:
    kept = reports(Config())
    kept.pytest_runtest_logreport(call_report())

    assert not kept.keeps_cases
    assert kept.cases == {}


def test_an_xdist_worker_keeps_no_cases_the_controller_writes_the_files() -> None:
    kept = reports(Config(worker=True, xmlpath="reports/junit.xml"))
    kept.pytest_runtest_logreport(call_report())

    assert not kept.keeps_cases
    assert kept.cases == {}
