"""Which process keeps the cases for the report files, and only when a file wants them."""

from __future__ import annotations

from typing import Any

import pytest

from pbs_compliance.report.run import RunReports


class PluginManager:
    """Records what `RunReports` registers; pytest-html is not there."""

    def __init__(self) -> None:
        self.plugins: dict[str, object] = {}

    def hasplugin(self, name: str) -> bool:
        return False

    def register(self, plugin: object, name: str) -> None:
        self.plugins[name] = plugin


class Config:
    """The little of pytest's config that `RunReports` reads when it is made."""

    def __init__(self, *, worker: object = False, **options: object) -> None:
        self.options = options
        self.pluginmanager = PluginManager()
        if worker:
            self.workerinput = {"workerid": "gw0"}

    def getoption(self, name: str, default: object = None) -> object:
        return self.options.get(name, default)

    def logreport(self, report: pytest.TestReport) -> None:
        """`pytest_runtest_logreport`, as pytest calls it: on every plugin that has the hook."""
        for plugin in self.pluginmanager.plugins.values():
            hook = getattr(plugin, "pytest_runtest_logreport", None)
            if hook is not None:
                hook(report)

    def hears_reports(self) -> bool:
        return any(
            hasattr(p, "pytest_runtest_logreport") for p in self.pluginmanager.plugins.values()
        )


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
    config = Config(**{option: "reports/out"})
    kept = reports(config)
    config.logreport(call_report())

    assert kept.keeps_cases
    assert list(kept.cases) == ["test_connectivity.py::test_dns[archive]"]
    assert kept.cases["test_connectivity.py::test_dns[archive]"].check == "dns"


def test_a_run_that_writes_no_report_file_keeps_no_cases() -> None:
    config = Config()
    kept = reports(config)
    config.logreport(call_report())

    assert not kept.keeps_cases
    assert kept.cases == {}
    assert not config.hears_reports()  # no hook left to cost each case's phases a call


def test_an_xdist_worker_keeps_no_cases_the_controller_writes_the_files() -> None:
    config = Config(worker=True, xmlpath="reports/junit.xml")
    kept = reports(config)
    config.logreport(call_report())

    assert not kept.keeps_cases
    assert kept.cases == {}
    assert not config.hears_reports()
