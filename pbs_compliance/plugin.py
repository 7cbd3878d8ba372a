"""The pytest plugin: every declared storage becomes test cases, judged on gathered evidence.

Registered through the `pytest11` entry point. It stays dormant unless the run explicitly asks
for it: `--pbs-config`, `PBS_COMPLIANCE_CONFIG`, or the ini option `pbs_compliance = true`, which
this repository's `checks/pytest.ini` sets. A folder name proves nothing (another project's
`checks/` is just tests), so installing the package never changes an unrelated test suite.

Flow: the controller loads the config (a broken one stops the run with exit status 2), gathers
the evidence once (probes per server, PVE reads per cluster, plus `pytest_pbs_gather`), and hands
it to xdist workers through `workerinput`; the cases in `checks/` only judge it with
`pbs_compliance.verdicts`. This module holds the hooks and fixtures only: the checks are in
`registry`, the run's state in `session`, the reports in `report`, the plugin API in `api`.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import types
from collections.abc import Generator
from typing import Any

import pytest

import pbs_compliance.backup_plugin as backup_plugin  # a fresh import (see job_plugin)
import pbs_compliance.job_plugin as job_plugin  # a fresh import (see job_plugin)
from pbs_compliance import api, heap, hookspecs, registry
from pbs_compliance.config import ConfigError, StorageSpec
from pbs_compliance.evidence import Evidence, LiveState
from pbs_compliance.report import html as html_report
from pbs_compliance.report import matrix
from pbs_compliance.report import outcomes as report_outcomes
from pbs_compliance.report.cases import FACTS, evidence_rows
from pbs_compliance.report.junit import fix_junit
from pbs_compliance.report.run import RunReports, add_options, writes_files
from pbs_compliance.session import (
    REMEDIATED,
    STATE,
    VERDICT,
    Compliance,
    RunState,
    ensure,
    ensure_settings,
    load_settings,
    spec_named,
    start_gathering,
)
from pbs_compliance.session import nodes as session_nodes
from pbs_compliance.settings import ENV_CONFIG, SettingError
from pbs_compliance.verdicts import node_targets
from pbs_compliance.waiver_plugin import NAME as WAIVERS
from pbs_compliance.waiver_plugin import WaiverPlugin

# STATE and VERDICT stay importable here until every plugin uses `pbs_compliance.api`.
__all__ = ["OFF", "STATE", "VERDICT", "Compliance", "fix_junit"]

HELP_CONFIG = "the declaration file (default: config/pbs-storage.yaml; env PBS_COMPLIANCE_CONFIG)"
HELP_PVE_URL = "PVE API address, e.g. https://pve1:8006 (env PBS_COMPLIANCE_PVE_URL; pve.url)"
HELP_DNS = (
    "a nameserver host[:port] the DNS check asks; repeatable (env PBS_COMPLIANCE_DNS_SERVERS)"
)
HELP_TIMEOUT = "timeout in seconds of every DNS, TCP and TLS probe (default 3)"
HELP_EXPIRY = "fail the tls check when the certificate expires within N days (default 30)"
HELP_INI_SWITCH = (
    "switch the pbs-compliance plugin on for runs rooted here (checks/pytest.ini sets it)"
)
INI_SWITCH = "pbs_compliance"
OFF = (
    "pbs-compliance is off for this run: run `pytest checks/` (checks/pytest.ini switches it "
    "on), or pass --pbs-config PATH"
)
WORKERINPUT_KEY = "pbs_compliance_evidence"
REPORTS = "pbs-compliance-reports"
UNVERIFIED = "certificate not verified: pve.verify_ssl is false"


# -- options and configuration ----------------------------------------------------------------


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pbs-compliance", "PBS storage compliance")
    group.addoption("--pbs-config", metavar="PATH", default=None, help=HELP_CONFIG)
    group.addoption("--pve-url", metavar="URL", default=None, help=HELP_PVE_URL)
    group.addoption(
        "--dns-server", metavar="HOST[:PORT]", action="append", default=[], help=HELP_DNS
    )
    group.addoption(
        "--probe-timeout", metavar="SECONDS", type=float, default=None, help=HELP_TIMEOUT
    )
    group.addoption("--cert-expiry-days", metavar="N", type=int, default=None, help=HELP_EXPIRY)
    parser.addini(INI_SWITCH, HELP_INI_SWITCH, type="bool", default=False)
    add_options(parser, group)  # the reports': --prometheus-textfile, --junit-strict-xunit


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    registry.bind(config)  # every check's marker, and those of checks declared while collecting
    state = RunState(active=_is_compliance_run(config), files=writes_files(config))
    config.stash[STATE] = state
    config.pluginmanager.register(_fixtures(config), "pbs-compliance-fixtures")
    if not config.pluginmanager.has_plugin(job_plugin.NAME):  # the backup job checks' part
        config.pluginmanager.register(job_plugin, job_plugin.NAME)
    if not config.pluginmanager.has_plugin(backup_plugin.NAME):  # the backup health checks'
        config.pluginmanager.register(backup_plugin, backup_plugin.NAME)
    if not state.active:
        return
    # Released last: after pytest's own end-of-run collections (and whatever else cleans up).
    config.add_cleanup(heap.release)
    if config.getoption("htmlpath", None):
        config.option.self_contained_html = True  # one file to archive as a CI artifact
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None and WORKERINPUT_KEY in workerinput:
        # The controller validated the config and gathered the evidence; judge the same data.
        state.settings = load_settings(config)
        state.evidence = Evidence.from_json(workerinput[WORKERINPUT_KEY])
        state.now = dt.datetime.fromisoformat(workerinput["pbs_compliance_now"])
    config.pluginmanager.register(_Outcomes(state), "pbs-compliance-outcomes")
    if state.files:  # the facts of each case go to the report files only (`_Facts`)
        config.pluginmanager.register(_Facts(), "pbs-compliance-facts")
    waivers = WaiverPlugin(config, lambda: state.settings, state.known_nodes)
    config.pluginmanager.register(waivers, WAIVERS)
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(state), "pbs-compliance-xdist")
    # JUnit, HTML (with pytest-html's hooks) and Prometheus, finished on the controller.
    reports = RunReports(config, lambda: state.settings, lambda: _evidence(state))
    config.pluginmanager.register(reports, REPORTS)


def _evidence(state: RunState) -> Evidence | None:
    state.wait()
    return state.evidence


def pytest_unconfigure(config: pytest.Config) -> None:
    registry.unbind(config)


def _is_compliance_run(config: pytest.Config) -> bool:
    """Only an explicit signal switches the plugin on, never a path or a folder name."""
    if config.getoption("pbs_config") or os.environ.get(ENV_CONFIG):
        return True
    return bool(config.getini(INI_SWITCH))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    state = config.stash[STATE]
    if not state.active or state.settings is not None:
        return
    try:
        state.settings = load_settings(config)
    except (ConfigError, SettingError) as exc:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"pbs-compliance: {exc}", red=True, bold=True)
        else:  # pragma: no cover - terminal reporting disabled (-p no:terminal)
            sys.stderr.write(f"pbs-compliance: {exc}\n")
        pytest.exit("pbs-compliance: the configuration is invalid, nothing was checked", 2)
    if config.option.collectonly:
        state.evidence = Evidence()
        return
    start_gathering(config, state)
    heap.hold()  # the modules and the settings (see `pbs_compliance.heap`)


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Generator[None, object, object]:
    """The cases and the settings held while the cases run (`heap`); the evidence once the
    first case that judges all of it has waited for it (`pytest_runtest_setup`)."""
    state = session.config.stash[STATE]
    if not state.active or session.config.option.collectonly:
        return (yield)
    heap.hold()
    heap.skip_final_collections()  # xdist's workers too
    return (yield)


class _XdistHooks:
    """Hooks that exist only with xdist: the controller ships its evidence to every worker."""

    def __init__(self, state: RunState) -> None:
        self.state = state

    def pytest_configure_node(self, node: Any) -> None:
        self.state.wait()
        if self.state.evidence is not None:
            node.workerinput[WORKERINPUT_KEY] = self.state.evidence.to_json()
            node.workerinput["pbs_compliance_now"] = self.state.now.isoformat()


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash.get(STATE, None)
    if state is None or state.settings is None:
        return []
    settings = state.settings
    pve = settings.pve.url or "not configured (drift, nodes and unmanaged skip)"
    if settings.pve.url and not settings.pve.verify_ssl:
        pve += f" ({UNVERIFIED})"
    dns = ", ".join(f"{h}:{p}" for h, p in settings.nameservers) or "system resolver"
    return [
        f"pbs-compliance: config {settings.config.source} "
        f"({len(settings.config.storages)} storages)",
        f"pbs-compliance: PVE {pve}; DNS {dns}; probe timeout {settings.probe_timeout:g} s",
        f"pbs-compliance: remediation {state.remediation}",
    ]


# -- test generation and fixtures --------------------------------------------------------------


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    names = metafunc.fixturenames
    if "pbs_storage" not in names and "pbs_node_target" not in names:
        return
    if not metafunc.config.stash[STATE].active:
        return  # another suite's own `pbs_storage` is none of our business
    # Collection needs the settings and PVE's node list only; probes and scans go on meanwhile
    # and the first case waits for them (`pbs`).
    settings = ensure_settings(metafunc.config)
    storages = sorted(settings.config.storages, key=lambda s: s.name)
    if "pbs_storage" in names:
        metafunc.parametrize("pbs_storage", storages, ids=[s.name for s in storages])
    if "pbs_node_target" in names:
        live = LiveState(nodes=session_nodes(metafunc.config))
        targets: list[tuple[StorageSpec, str | None]] = list(node_targets(settings.config, live))
        if not live.nodes:  # PVE not read: one case per storage carries the reason
            targets = [(spec, None) for spec in storages]
        targets.sort(key=lambda t: (t[0].name, t[1] or ""))
        ids = [spec.name if n is None else f"{spec.name}:{n}" for spec, n in targets]
        metafunc.parametrize("pbs_node_target", targets, ids=ids)


@pytest.fixture
def pbs_storage() -> StorageSpec:
    """One declared storage (a `StorageSpec`: name, server, port, datastore, ...): a check that
    takes it runs once per storage in the config, with the storage's name as the case id."""
    pytest.fail(OFF, pytrace=False)  # parametrised by the plugin when it is on


@pytest.fixture
def pbs_node_target() -> tuple[StorageSpec, str | None]:
    """(storage, PVE node): a check that takes it runs once per storage and node it applies to
    (`storage:node` ids); the node is None when PVE could not be read (one case per storage)."""
    pytest.fail(OFF, pytrace=False)  # parametrised by the plugin when it is on


def _fixtures(config: pytest.Config) -> types.ModuleType:
    """The `pbs` fixture bound to this run's config, in a module object of its own (pytest
    reads the fixtures of every registered plugin; a module binds no `self` to them)."""
    holder = types.ModuleType(f"{__name__}.fixtures")

    @pytest.fixture(scope="session")
    def pbs() -> Compliance:
        """The compliance run: `pbs.settings`, `pbs.config`, `pbs.evidence` (probes in
        `pbs.server(spec)`, PVE in `.live`, plugins' in `.extra`), `pbs.now`, `pbs.node` (the
        case being run), and `pbs.check(verdict)` to record the verdict and pass, skip or fail
        that case.

        One object for the whole run, taking no other fixture: pytest only looks it up per
        case. As a function-scoped fixture taking `request` it cost pytest three fixture
        definitions per case (~20 us each, built anew whenever `request` is asked for, even
        through a session-scoped fixture), a tenth of a 1,000-storage run's per-case time."""
        state = config.stash[STATE]
        if not state.active:
            pytest.fail(OFF, pytrace=False)
        settings = ensure_settings(config)
        if state.pending is None:
            ensure(config)  # nothing gathers in the background: gather here
        return Compliance(settings, state.now, state)

    setattr(holder, "pbs", pbs)  # noqa: B010 - a module object's attribute, made here
    return holder


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> None:
    """The case being run, for `pbs.node` and `pbs.check`."""
    item.config.stash[STATE].current = item


PROBES_ONLY = ("probes",)  # a check that judges nothing else (`registry.Check.needs`)


def _probes_only(item: pytest.Item) -> bool:
    entry = registry.of_item(item)
    return entry is not None and entry.needs == PROBES_ONLY


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The connectivity cases first: they judge the probes alone, which end well before PVE and
    the PBS servers have answered everything else at a thousand storages (`RunState.servers`).
    Otherwise the files' order; a plugin that reorders after this one (`--ff`) only waits more."""
    if config.stash[STATE].active:
        items.sort(key=lambda item: not _probes_only(item))  # stable: False (probes only) first


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Wait, in the case's setup, for the evidence it judges: the probes for a connectivity
    case, everything for any other case that takes `pbs`. A gathering that broke is then the
    case's error, as in the `pbs` fixture."""
    state = item.config.stash[STATE]
    if not state.active or "pbs" not in getattr(item, "fixturenames", ()):
        return
    if _probes_only(item):
        state.servers()
    elif state.evidence is None and state.pending is not None:
        state.wait()
        heap.hold()  # the evidence lives until the run ends, like the cases (`heap`)


# -- reporting ----------------------------------------------------------------------------------


def pytest_report_teststatus(report: pytest.TestReport) -> tuple[str, str, Any] | None:
    if report.when == "call" and getattr(report, "pbs_outcome", None) == REMEDIATED:
        return REMEDIATED, "R", ("REMEDIATED", {"cyan": True})
    return None


class _Facts:
    """Each case's facts on its call report, for the report files (JUnit, HTML, Prometheus).

    Registered only in a run that writes one (`writes_files`): a hook that has nothing to do
    still costs every phase of every case a call, 36,000 of them at a thousand storages."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        verdict = item.stash.get(VERDICT, None)
        if verdict is None or report.when != "call":
            return report
        settings = item.config.stash[STATE].settings
        spec = spec_named(settings.config if settings else None, verdict.storage)
        facts = list(verdict.facts)
        entry = registry.get(verdict.check)
        pve_check = entry is not None and "pve" in entry.needs
        if settings is not None and pve_check and not settings.pve.verify_ssl:
            facts.append(("PVE", UNVERIFIED))  # known, and chosen: a fact, not a warning
        for added in item.config.hook.pytest_pbs_report_facts(item=item, verdict=verdict):
            facts += list(added or ())
        rows = evidence_rows(verdict, spec, facts)
        # On the report as plain data: the controller's JUnit and HTML read it, from workers.
        setattr(report, FACTS, [list(row) for row in rows])
        if item.config.getoption("htmlpath", None):
            api.add_html(report, html_report.rows_html(rows))
        return report


class _Outcomes:
    """Collects each case's outcome for the matrix (on the controller, from worker reports too)."""

    def __init__(self, state: RunState) -> None:
        self.state = state

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties)
        if "check" not in props or "storage" not in props:
            return
        if report.when == "call" or (report.when == "setup" and report.skipped):
            outcome = report_outcomes.of_report(report)  # remediated, waived, error too
            key = (str(props["storage"]), str(props["check"]), str(props.get("node", "")))
            self.state.outcomes[key] = outcome


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None or not state.outcomes or hasattr(config, "workerinput"):
        return
    reports = config.pluginmanager.get_plugin(REPORTS)
    cluster = f": cluster {reports.cluster()}" if reports is not None else ""
    terminalreporter.write_sep("=", f"pbs-compliance matrix{cluster}")
    for line in matrix.render(state.outcomes, terminalreporter.isatty).splitlines():
        terminalreporter.write_line(line)
