"""`pytest checks/ --remediate`: a failed drift case reconciles its storage, re-reads, re-checks.

Registered through its own `pytest11` entry point (the core plugin never imports the reconciler).
A case whose drift is gone after remediation gets its own outcome - letter `R`, word
`REMEDIATED`, counted in the summary line, marked in the HTML, a `remediated` property in JUnit -
so a report shows both that there was drift and that it is fixed. A case that could not be fixed
stays failed with the reason. `--dry-run` only attaches the plan; nothing is written.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Generator
from typing import Any

import pytest

from pbs_compliance import plugin as core
from pbs_compliance import verdicts
from pbs_compliance.evidence import LiveState, client_for
from pbs_compliance.pve import PveClient, PveError
from pbs_compliance.verdicts import Verdict
from remediate.apply import apply
from remediate.plan import Plan, PlanOptions, plan
from remediate.reach import reachability

HELP_REMEDIATE = "fix failed drift through the PVE API (create, update, enable, disable)"
HELP_DRY_RUN = "with --remediate: attach and print the plan, write nothing"
HELP_PRUNE = "with --remediate: delete PBS entries the config does not declare"
HELP_RECREATE = "with --remediate: delete + re-create entries whose server/datastore changed"
HELP_ROTATE = "with --remediate: also send the declared password on updates"
REMEDIATED = "remediated"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pbs-compliance", "PBS storage compliance")
    group.addoption("--remediate", action="store_true", default=False, help=HELP_REMEDIATE)
    group.addoption("--dry-run", action="store_true", default=False, help=HELP_DRY_RUN)
    group.addoption("--prune-unmanaged", action="store_true", default=False, help=HELP_PRUNE)
    group.addoption("--allow-recreate", action="store_true", default=False, help=HELP_RECREATE)
    group.addoption("--rotate-secrets", action="store_true", default=False, help=HELP_ROTATE)


def pytest_configure(config: pytest.Config) -> None:
    state = config.stash.get(core.STATE, None)
    flags = ("dry_run", "prune_unmanaged", "allow_recreate", "rotate_secrets")
    if not config.getoption("remediate"):
        given = [f"--{f.replace('_', '-')}" for f in flags if config.getoption(f)]
        if given and state is not None and state.active:
            raise pytest.UsageError(f"{', '.join(given)} only make sense with --remediate")
        return
    options = PlanOptions(
        allow_recreate=config.getoption("allow_recreate"),
        prune_unmanaged=config.getoption("prune_unmanaged"),
        rotate_secrets=config.getoption("rotate_secrets"),
    )
    dry_run = bool(config.getoption("dry_run"))
    if state is not None:
        extras = [f.replace("_", "-") for f in flags[1:] if config.getoption(f)]
        state.remediation = ("dry run" if dry_run else "on") + (
            f" ({', '.join(extras)})" if extras else ""
        )
    config.pluginmanager.register(_Remediator(config, options, dry_run), "pbs-remediator")


def pytest_report_teststatus(report: pytest.TestReport) -> tuple[str, str, Any] | None:
    if report.when == "call" and getattr(report, "pbs_outcome", None) == REMEDIATED:
        return REMEDIATED, "R", ("REMEDIATED", {"cyan": True})
    return None


class _Remediator:
    """Per process (controller or xdist worker): one PVE client, storages fixed one at a time."""

    def __init__(self, config: pytest.Config, options: PlanOptions, dry_run: bool) -> None:
        self.config = config
        self.options = options
        self.dry_run = dry_run
        self._client: PveClient | None = None
        self._lock = threading.Lock()
        # The newest storage list this process has seen: after our own write the session's
        # snapshot carries a stale digest, and planning from it would provoke a conflict.
        self._live: list[dict[str, Any]] | None = None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        verdict = item.stash.get(core.VERDICT, None)
        if (
            report.when != "call"
            or not report.failed
            or verdict is None
            or verdict.check not in ("drift", "unmanaged")
            or (verdict.check == "unmanaged" and not self.options.prune_unmanaged)
        ):
            return report
        with self._lock:
            self._remediate(item, report, verdict)
        return report

    # -- the work -------------------------------------------------------------------------------

    def _remediate(self, item: pytest.Item, report: pytest.TestReport, verdict: Verdict) -> None:
        settings, evidence = self.config.stash[core.STATE].require()
        storages = settings.config.storages
        reach = reachability(evidence, storages)
        if evidence.live.error or evidence.live.skipped:
            self._note(report, "cannot remediate: PVE could not be read in this run")
            return
        live = self._live if self._live is not None else evidence.live.storages
        full = plan(storages, live, self.options, reach)
        names = (
            [verdict.storage]
            if verdict.check == "drift"
            else [a.storage for a in full.actions if a.storage not in {s.name for s in storages}]
        )
        mine = Plan(tuple(a for a in full.actions if a.storage in names))
        if self.dry_run:
            text = mine.describe()
            self._note(report, f"dry run, nothing written:\n{text}")
            self._html(report, "dry run: planned", text)
            return
        try:
            client = self._pve()
            results = apply(mine, client, storages, self.options, reach)
        except PveError as exc:
            self._note(report, f"remediation failed: {exc}")
            return
        done = "\n".join(r.line() for r in results.results if r.storage in names)
        try:
            self._live = client.storages()
        except PveError as exc:  # what apply did (or could not do) must not be lost
            self._note(report, f"remediation not confirmed ({exc}):\n{done}")
            self._html(report, "remediation not confirmed", done)
            return
        fresh = LiveState(storages=self._live, nodes=evidence.live.nodes)
        if verdict.check == "drift":
            spec = settings.config.storage(verdict.storage)
            recheck = verdicts.drift(spec, fresh)
        else:
            recheck = verdicts.unmanaged(settings.config, fresh)
        if not recheck.passed:
            self._note(report, f"remediation did not fix it:\n{done}\nnow: {recheck.message}")
            self._html(report, "remediation incomplete", done)
            return
        report.outcome = "passed"
        report.longrepr = None
        report.pbs_outcome = REMEDIATED  # type: ignore[attr-defined]
        item.user_properties.append(("remediated", "true"))
        report.sections.append(("pbs-compliance remediation", f"{verdict.message}\n\n{done}"))
        self._html(report, "REMEDIATED", f"{verdict.message}\n\nfixed:\n{done}")

    def _pve(self) -> PveClient:
        if self._client is None:
            settings, _ = self.config.stash[core.STATE].require()
            client = client_for(settings)
            if client is None:
                raise PveError("no PVE credentials configured")
            self._client = client
        return self._client

    @staticmethod
    def _note(report: pytest.TestReport, text: str) -> None:
        report.longrepr = f"{report.longrepr}\n{text}" if report.longrepr else text

    @staticmethod
    def _html(report: pytest.TestReport, title: str, text: str) -> None:
        try:
            from pytest_html import extras
        except ImportError:  # pragma: no cover - pytest-html is a dependency
            return
        block = (
            "<div class='pbs-remediation' style='border-left:4px solid #0aa;padding-left:.5em'>"
            f"<strong>{html.escape(title)}</strong>"
            f"<pre style='white-space:pre-wrap'>{html.escape(text)}</pre></div>"
        )
        report.extras = [*getattr(report, "extras", []), extras.html(block)]  # type: ignore[attr-defined]
