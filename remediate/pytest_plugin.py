"""`pytest checks/ --remediate`: a failed drift case reconciles its storage, re-reads, re-checks.

Registered through its own `pytest11` entry point (the core plugin never imports the reconciler).
A case whose drift is gone after remediation gets its own outcome - letter `R`, word
`REMEDIATED`, counted in the summary line, marked in the HTML, a `remediated` property in JUnit -
so a report shows both that there was drift and that it is fixed. A case that could not be fixed
stays failed with the reason. `--dry-run` only attaches the plan; nothing is written.

The fix itself is `remediate.reconcile` - the same path `pbs apply` takes (read, plan, apply
under the per-cluster lock, re-read, verify). This plugin talks to the core only through
`pbs_compliance.api`: the run's settings and evidence, the case's verdict, marking it remediated.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Generator

import pytest

# `import ... as`, not `from pbs_compliance import api`: the latter takes whatever module object
# the package attribute holds, which pytester's in-process runs can leave stale (a previous run's
# api, bound to that run's state key), while the core plugin is imported afresh.
import pbs_compliance.api as api
from pbs_compliance.pve import PveError
from pbs_compliance.verdicts import Verdict
from remediate.plan import PlanOptions
from remediate.reconcile import Reconciler, Scope

HELP_REMEDIATE = "fix failed drift through the PVE API (create, update, enable, disable)"
HELP_DRY_RUN = "with --remediate: attach and print the plan, write nothing"
HELP_PRUNE = "with --remediate: delete PBS entries the config does not declare"
HELP_RECREATE = "with --remediate: delete + re-create entries whose server/datastore changed"
HELP_ROTATE = "with --remediate: also send the declared password on updates"
REMEDIATED = api.REMEDIATED


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pbs-compliance", "PBS storage compliance")
    group.addoption("--remediate", action="store_true", default=False, help=HELP_REMEDIATE)
    group.addoption("--dry-run", action="store_true", default=False, help=HELP_DRY_RUN)
    group.addoption("--prune-unmanaged", action="store_true", default=False, help=HELP_PRUNE)
    group.addoption("--allow-recreate", action="store_true", default=False, help=HELP_RECREATE)
    group.addoption("--rotate-secrets", action="store_true", default=False, help=HELP_ROTATE)


def pytest_configure(config: pytest.Config) -> None:
    flags = ("dry_run", "prune_unmanaged", "allow_recreate", "rotate_secrets")
    if not config.getoption("remediate"):
        given = [f"--{f.replace('_', '-')}" for f in flags if config.getoption(f)]
        if given and api.active(config):
            raise pytest.UsageError(f"{', '.join(given)} only make sense with --remediate")
        return
    options = PlanOptions(
        allow_recreate=config.getoption("allow_recreate"),
        prune_unmanaged=config.getoption("prune_unmanaged"),
        rotate_secrets=config.getoption("rotate_secrets"),
    )
    dry_run = bool(config.getoption("dry_run"))
    extras = [f.replace("_", "-") for f in flags[1:] if config.getoption(f)]
    mode = ("dry run" if dry_run else "on") + (f" ({', '.join(extras)})" if extras else "")
    api.set_remediation(config, mode)
    config.pluginmanager.register(_Remediator(config, options, dry_run), "pbs-remediator")


class _Remediator:
    """Per process (controller or xdist worker): one reconciler, storages fixed one at a time."""

    def __init__(self, config: pytest.Config, options: PlanOptions, dry_run: bool) -> None:
        self.config = config
        self.options = options
        self.dry_run = dry_run
        self._lock = threading.Lock()
        self._reconciler: Reconciler | None = None  # made once per process, on the first fix

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        verdict = api.verdict(item)
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
        evidence = api.evidence(self.config)
        if evidence.live.error or evidence.live.skipped:
            self._note(report, "cannot remediate: PVE could not be read in this run")
            return
        if self._reconciler is None:
            self._reconciler = Reconciler(api.settings(self.config), evidence, self.options)
        scope = Scope.storage(verdict.storage) if verdict.check == "drift" else Scope.undeclared()
        if self.dry_run:
            text = self._reconciler.reconcile(scope, dry_run=True).plan.describe()
            self._note(report, f"dry run, nothing written:\n{text}")
            self._html(report, "dry run: planned", text)
            return
        try:
            outcome = self._reconciler.reconcile(scope)
        except PveError as exc:
            self._note(report, f"remediation failed: {exc}")
            return
        done = outcome.done()
        recheck = outcome.verdict(verdict.check, verdict.storage)
        if recheck is None:  # what apply did (or could not do) must not be lost
            self._note(report, f"remediation not confirmed (PVE could not be re-read):\n{done}")
            self._html(report, "remediation not confirmed", done)
            return
        if not recheck.passed:
            self._note(report, f"remediation did not fix it:\n{done}\nnow: {recheck.message}")
            self._html(report, "remediation incomplete", done)
            return
        api.mark_remediated(item, report, f"{verdict.message}\n\n{done}")
        self._html(report, "REMEDIATED", f"{verdict.message}\n\nfixed:\n{done}")

    @staticmethod
    def _note(report: pytest.TestReport, text: str) -> None:
        report.longrepr = f"{report.longrepr}\n{text}" if report.longrepr else text

    @staticmethod
    def _html(report: pytest.TestReport, title: str, text: str) -> None:
        block = (
            "<div class='pbs-remediation' style='border-left:4px solid #0aa;padding-left:.5em'>"
            f"<strong>{html.escape(title)}</strong>"
            f"<pre style='white-space:pre-wrap'>{html.escape(text)}</pre></div>"
        )
        api.add_html(report, block)
