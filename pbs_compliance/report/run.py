"""The reports of one compliance run: cases gathered as they finish, files finished at the end.

`RunReports` is a plugin object the core plugin registers in a compliance run. On the controller
(never on an xdist worker) it names the cluster in the header, keeps each case's record as its
report arrives when the run writes a file (`_Cases`, registered for that alone), and, once
pytest and pytest-html have written their files, finishes them:

- the JUnit file (`--junitxml`): suite named after the cluster, evidence in a failed case's
  system-out, strict xUnit form on request (`report.junit`);
- the HTML report (`--html`): the glance first (`report.html`);
- the Prometheus textfile (`--prometheus-textfile PATH`, `report.prometheus`).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest

from pbs_compliance.evidence import Evidence
from pbs_compliance.report import cases, junit, prometheus
from pbs_compliance.report import html as html_report
from pbs_compliance.report.cluster import cluster_name, fallback_name
from pbs_compliance.settings import RunSettings

HELP_PROMETHEUS = (
    "write the run's results as Prometheus series for node_exporter's textfile collector "
    "(atomically; name it *.prom in the collector's directory)"
)


def add_options(parser: pytest.Parser, group: Any) -> None:
    """The report options (called from the plugin's `pytest_addoption`)."""
    group.addoption("--prometheus-textfile", metavar="PATH", default=None, help=HELP_PROMETHEUS)
    group.addoption(
        "--junit-strict-xunit",
        action="store_true",
        default=None,
        help=junit.HELP_STRICT + f" (ini {junit.INI_STRICT})",
    )
    parser.addini(junit.INI_STRICT, junit.HELP_STRICT, type="bool", default=False)


def writes_files(config: pytest.Config) -> bool:
    """Whether the run writes a report file (JUnit, HTML, Prometheus): the cases' facts and
    their records are made for those files only (xdist's workers get the same options)."""
    return any(
        config.getoption(name, None) for name in ("xmlpath", "htmlpath", "prometheus_textfile")
    )


class _Cases:
    """Each case's record as its report arrives (on the controller, from workers too)."""

    def __init__(self, found: dict[str, cases.Case]) -> None:
        self.found = found

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        case = cases.from_report(report)
        if case is not None:
            self.found[report.nodeid] = case


class RunReports:
    """See the module doc. `settings` and `evidence` are read when needed (the run's state)."""

    def __init__(
        self,
        config: pytest.Config,
        settings: Callable[[], RunSettings | None],
        evidence: Callable[[], Evidence | None],
    ) -> None:
        self.config = config
        self._settings = settings
        self._evidence = evidence
        self.cases: dict[str, cases.Case] = {}
        # Only what a file needs: the controller keeps cases for JUnit, HTML and Prometheus,
        # nobody for a run that writes none (a report costs ~30 us to read, 12,000 at N = 1,000).
        self.keeps_cases = self.controller and writes_files(config)
        if self.keeps_cases:  # hooks cost every case's phases a call even when idle
            config.pluginmanager.register(_Cases(self.cases), "pbs-compliance-cases")
        self.started = time.monotonic()
        self._cluster: str | None = None
        self._lock = threading.Lock()
        self.html: html_report.HtmlHooks | None = None
        if config.pluginmanager.hasplugin("html"):
            self.html = html_report.HtmlHooks(self.title, lambda: list(self.cases.values()))
            config.pluginmanager.register(self.html, "pbs-compliance-html")

    @property
    def controller(self) -> bool:
        return not hasattr(self.config, "workerinput")

    def cluster(self) -> str:
        """The cluster's name, asked of PVE at most once per run (see `report.cluster`)."""
        with self._lock:
            if self._cluster is None:
                settings = self._settings()
                if settings is None:
                    return "pbs-compliance"
                self._cluster = cluster_name(settings)
            return self._cluster

    def title(self) -> str:
        return f"{html_report.TITLE}: {self.cluster()}"

    # -- hooks ----------------------------------------------------------------------------------

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        settings = self._settings()
        if settings is None or not self.controller:
            return []
        named = "pve.name" if settings.pve.name else "from PVE; set pve.name to fix it"
        return [f"pbs-compliance: cluster {self.cluster()} ({named})"]

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Generator[None, Any, Any]:
        result = yield  # pytest's JUnit and pytest-html's report are written by now
        if self.controller and self._settings() is not None:
            self.finish()
        return result

    # -- the files --------------------------------------------------------------------------------

    def finish(self) -> None:
        found = list(self.cases.values())
        xmlpath = self.config.getoption("xmlpath", None)
        if xmlpath and Path(xmlpath).exists():
            self.finish_junit(Path(xmlpath), found)
        htmlpath = self.config.getoption("htmlpath", None)
        if htmlpath and Path(htmlpath).exists():
            self.finish_html(Path(htmlpath), found)
        textfile = self.config.getoption("prometheus_textfile", None)
        if textfile:
            self.write_prometheus(Path(textfile), found)

    def strict(self) -> bool:
        flag = self.config.getoption("junit_strict_xunit", None)
        return bool(flag) if flag is not None else bool(self.config.getini(junit.INI_STRICT))

    def finish_junit(self, path: Path, found: list[cases.Case]) -> None:
        prefix = self.config.getoption("junitprefix", None)
        summaries = {
            junit.case_key(c.nodeid, prefix): junit.evidence_text(c.facts, c.fix)
            for c in cases.failing(found)
        }
        junit.finish_junit(
            path, self.cluster(), summaries, strict=self.strict(), prefix_classnames=not prefix
        )

    def finish_html(self, path: Path, found: list[cases.Case]) -> None:
        settings = self._settings()
        assert settings is not None
        finished = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        block = html_report.glance(
            found,
            self.cluster(),
            str(settings.config.source),
            settings.pve.url or "",
            finished,
        )
        html_report.finish_html(path, block, len(found))

    def write_prometheus(self, path: Path, found: list[cases.Case]) -> None:
        evidence = self._evidence()
        newest, used = prometheus.backup_figures(evidence)
        figures = prometheus.Figures(
            cluster=self.cluster(),
            finished=time.time(),
            duration=time.monotonic() - self.started,
            certificates=prometheus.certificates(evidence),
            newest_backup=newest,
            used_ratio=used,
        )
        prometheus.write_textfile(path, prometheus.render(found, figures))


__all__ = ["RunReports", "add_options", "fallback_name"]
