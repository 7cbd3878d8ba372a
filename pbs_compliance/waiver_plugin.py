"""Waivers in a pytest compliance run (the pure rules are `pbs_compliance.waivers`).

- `settle`, called by `pbs.check()` on the process that runs the case: a failure a waiver in
  force covers becomes `pytest.xfail("waived until DATE (FILE:LINE): REASON")`; a failure whose
  waiver expired gets a line naming it; JUnit properties `waived` and `waiver_expires`.
- `WaiverPlugin`, registered by the core in a compliance run: a waiver naming a check no module
  declares stops the run (exit 2, at its line) once collection has declared every check; the
  summary counts waived failures and waivers expiring within 14 days, and names waivers no
  longer needed, expired or naming a node PVE lacks.
- `_WaiverCases`, registered by `WaiverPlugin` only in a run that declares a waiver: each case's
  decision on its report, shown as WAIVED in the terminal and counted for the summary.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from pbs_compliance import registry, waivers
from pbs_compliance.config import ComplianceConfig, ConfigError
from pbs_compliance.settings import RunSettings
from pbs_compliance.verdicts import Verdict

NAME = "pbs-compliance-waivers"
DECISION = pytest.StashKey[waivers.Decision]()
ATTRIBUTE = "pbs_waiver"  # on a call report: {"state", "where"}; survives xdist (plain data)


def settle(
    item: pytest.Item, verdict: Verdict, config: ComplianceConfig, now: dt.datetime
) -> Verdict:
    """The verdict as the waivers leave it; raises `pytest.xfail` for a waived failure."""
    __tracebackhide__ = True
    if not config.waivers:
        return verdict
    day = waivers.today(now=now)
    decision = waivers.decide(
        config.waivers, verdict.storage, verdict.check, verdict.node, verdict.status, day
    )
    if decision.state == "none":
        return verdict
    item.stash[DECISION] = decision
    item.user_properties.extend(decision.properties)
    if decision.state == "waived":
        pytest.xfail(decision.reason)
    if decision.state == "expired":
        return dataclasses.replace(verdict, message=f"{verdict.message}\n{decision.expired_line}")
    return verdict


class _WaiverCases:
    """Each case's waiver decision on its report, shown (WAIVED) and counted for the summary."""

    def __init__(self, seen: dict[str, list[tuple[str, str]]]) -> None:
        self.seen = seen

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        decision = item.stash.get(DECISION, None)
        if decision is not None and report.when == "call" and decision.waiver is not None:
            setattr(report, ATTRIBUTE, {"state": decision.state, "where": decision.waiver.where})
        return report

    def pytest_report_teststatus(self, report: pytest.TestReport) -> Any:
        if report.when == "call" and getattr(report, ATTRIBUTE, {}).get("state") == "waived":
            return "xfailed", "x", ("WAIVED", {"purple": True})
        return None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        found = getattr(report, ATTRIBUTE, None)
        if report.when == "call" and isinstance(found, dict):
            entry = (str(found.get("where", "")), report.nodeid)
            self.seen.setdefault(str(found.get("state", "")), []).append(entry)


class WaiverPlugin:
    """See the module doc; one per compliance run."""

    def __init__(
        self,
        config: pytest.Config,
        settings: Callable[[], RunSettings | None],
        nodes: Callable[[], list[str]],
    ) -> None:
        self.config = config
        self._settings = settings
        self._nodes = nodes  # PVE's node list once gathered (for stale node names)
        self.seen: dict[str, list[tuple[str, str]]] = {}  # state -> [(where, nodeid)]

    def _compliance(self) -> ComplianceConfig | None:
        settings = self._settings()
        return None if settings is None else settings.config

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        config = self._compliance()
        if config is None or not config.waivers:
            return
        issues = waivers.unknown_checks(config, registry.names())
        if not issues:
            return
        text = str(ConfigError(issues))
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"pbs-compliance: {text}", red=True, bold=True)
        pytest.exit(f"pbs-compliance: the configuration is invalid, nothing was checked\n{text}", 2)

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        # The settings are loaded by now (the core's tryfirst sessionstart, or a worker's
        # configure). Without a waiver the per-case hooks would only cost every phase of
        # every case a call.
        config = self._compliance()
        if config is not None and config.waivers:
            self.config.pluginmanager.register(_WaiverCases(self.seen), f"{NAME}-cases")

    def lines(self, nodes: list[str]) -> list[str]:
        """The summary lines (see `waivers.summary_lines`)."""
        config = self._compliance()
        if config is None or not config.waivers:
            return []
        by_where = {w.where: w for w in config.waivers}

        def named(state: str) -> list[waivers.Waiver]:
            return [by_where[w] for w, _ in self.seen.get(state, []) if w in by_where]

        waived = named("waived")
        unneeded = [w for w in named("unneeded") if w not in waived]
        day = waivers.today()
        return waivers.summary_lines(
            len(self.seen.get("waived", [])),
            unneeded,
            named("expired"),
            waivers.expiring(config.waivers, day),
            waivers.stale_nodes(config.waivers, nodes),
        )

    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        if hasattr(config, "workerinput"):
            return
        lines = self.lines(self._nodes())
        if not lines:
            return
        terminalreporter.write_sep("-", "pbs-compliance waivers")
        for line in lines:
            terminalreporter.write_line(line)
