"""`pytest checks/ --remediate`: a failed drift case reconciles its storage, re-reads, re-checks.

Registered through its own `pytest11` entry point (the core plugin never imports the reconciler).
A case whose drift is gone after remediation gets its own outcome - letter `R`, word
`REMEDIATED`, counted in the summary line, marked in the HTML, a `remediated` property in JUnit -
so a report shows both that there was drift and that it is fixed. A case that could not be fixed
stays failed with the reason. `--dry-run` only attaches the plan; nothing is written.
"""

from __future__ import annotations

import fcntl
import hashlib
import html
import tempfile
import threading
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from pbs_compliance import plugin as core
from pbs_compliance import verdicts
from pbs_compliance.evidence import LiveState, client_for
from pbs_compliance.pve import PveClient, PveError, PveNotFound
from pbs_compliance.verdicts import Verdict
from remediate.apply import apply
from remediate.plan import Plan, PlanOptions, Reachability, plan
from remediate.reach import reach_for

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


def _one(client: PveClient, name: str) -> list[dict[str, Any]]:
    """The current entry of one storage as a one-item list (empty when it does not exist)."""
    try:
        return [client.storage(name)]
    except PveNotFound:
        return []


@contextmanager
def _cluster_lock(endpoint: object) -> Iterator[None]:
    """Serialise our own writers (xdist workers, parallel jobs on this host) per cluster.

    storage.cfg has one digest for the whole file, so two of our workers writing at once only
    make each other retry; taking turns costs nothing and leaves conflicts to real other writers.
    """
    digest = hashlib.sha1(str(endpoint).encode(), usedforsecurity=False).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"pbs-compliance-{digest}.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
        self._reach: dict[str, Reachability] | None = None  # computed once per process

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
        if evidence.live.error or evidence.live.skipped:
            self._note(report, "cannot remediate: PVE could not be read in this run")
            return
        if self._reach is None:  # probes the servers the checks skipped (disabled storages)
            self._reach = reach_for(
                settings.config.storages,
                evidence.live.storages,
                self.options,
                evidence,
                settings.nameservers,
                settings.probe_timeout,
            )
        if self.dry_run:
            text = self._plan(verdict, evidence.live.storages).describe()
            self._note(report, f"dry run, nothing written:\n{text}")
            self._html(report, "dry run: planned", text)
            return
        try:
            client = self._pve()
            with _cluster_lock(client.endpoint):
                done, recheck = self._fix(client, verdict)
        except PveError as exc:
            self._note(report, f"remediation failed: {exc}")
            return
        if recheck is None:  # what apply did (or could not do) must not be lost
            self._note(report, f"remediation not confirmed (PVE could not be re-read):\n{done}")
            self._html(report, "remediation not confirmed", done)
            return
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

    def _plan(self, verdict: Verdict, live: list[dict[str, Any]]) -> Plan:
        """The plan of this case's storage (drift), or of the undeclared entries (unmanaged)."""
        settings, _ = self.config.stash[core.STATE].require()
        assert self._reach is not None
        if verdict.check == "drift":
            spec = settings.config.storage(verdict.storage)
            entry = [e for e in live if e.get("storage") == spec.name]
            return plan([spec], entry, self.options, {spec.name: self._reach[spec.name]})
        declared = {s.name for s in settings.config.storages}
        full = plan(settings.config.storages, live, self.options, self._reach)
        return Plan(tuple(a for a in full.actions if a.storage not in declared))

    def _fix(self, client: PveClient, verdict: Verdict) -> tuple[str, Verdict | None]:
        """Read, plan, apply and re-read under the cluster lock; (what was done, the re-check).

        A drift case reads and re-reads only its own entry (`GET /storage/{id}` carries the
        file-wide digest), so remediating N storages costs O(N), not N full list reads.
        """
        settings, evidence = self.config.stash[core.STATE].require()
        assert self._reach is not None
        if verdict.check == "drift":
            spec = settings.config.storage(verdict.storage)
            mine = self._plan(verdict, _one(client, spec.name))
            results = apply(mine, client, [spec], self.options, self._reach)
        else:
            mine = self._plan(verdict, client.storages())
            results = apply(mine, client, settings.config.storages, self.options, self._reach)
        names = {a.storage for a in mine.actions}
        done = "\n".join(r.line() for r in results.results if r.storage in names)
        try:
            if verdict.check == "drift":
                fresh = LiveState(storages=_one(client, verdict.storage), nodes=evidence.live.nodes)
                spec = settings.config.storage(verdict.storage)
                return done, verdicts.drift(spec, fresh)
            fresh = LiveState(storages=client.storages(), nodes=evidence.live.nodes)
            return done, verdicts.unmanaged(settings.config, fresh)
        except PveError:
            return done, None

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
