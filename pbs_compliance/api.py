"""The public API of a compliance run, for checks and for other plugins.

Checks (modules under `checks/`) use `check` (the registry's decorator), the `pbs` fixture's
`Compliance`, `Verdict` and `StorageSpec`. Plugins (the remediation plugin, a site's own) reach
the run through the functions below and the hooks in `pbs_compliance.hookspecs`, never through
the plugin's private state; everything here works on the controller and on xdist workers alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from pbs_compliance.config import ComplianceConfig, StorageSpec
from pbs_compliance.evidence import Evidence
from pbs_compliance.registry import Check, CheckError, check, checks
from pbs_compliance.session import (
    REMEDIATED,
    STATE,
    VERDICT,
    Compliance,
    RunState,
    ensure,
    extra_of,
)
from pbs_compliance.settings import RunSettings
from pbs_compliance.verdicts import Verdict

__all__ = [
    "REMEDIATED",
    "Check",
    "CheckError",
    "Compliance",
    "ComplianceConfig",
    "Evidence",
    "RunSettings",
    "StorageSpec",
    "Verdict",
    "active",
    "add_html",
    "check",
    "checks",
    "evidence",
    "gathered",
    "mark_remediated",
    "outcome",
    "set_remediation",
    "settings",
    "verdict",
]

_OUTCOME_ATTR = "pbs_outcome"  # survives xdist's report serialisation (a plain attribute)


def _state(config: pytest.Config) -> RunState | None:
    return config.stash.get(STATE, None)


def active(config: pytest.Config) -> bool:
    """Whether this pytest run is a compliance run (the plugin is loaded and switched on)."""
    state = _state(config)
    return state is not None and state.active


def settings(config: pytest.Config) -> RunSettings:
    """The run's settings (config, PVE, DNS, timeouts); a UsageError when it is no compliance
    run or the configuration is not loaded yet (it is from `pytest_sessionstart` on)."""
    state = _state(config)
    if state is None or not state.active or state.settings is None:
        raise pytest.UsageError(
            "pbs-compliance: no compliance run is in progress (or its config is not loaded yet)"
        )
    return state.settings


def evidence(config: pytest.Config) -> Evidence:
    """The run's evidence (gathered once, on the controller; waits for it if still under way)."""
    settings(config)
    return ensure(config).require()[1]


def gathered(config: pytest.Config, plugin_name: str) -> Mapping[str, Any]:
    """What the `pytest_pbs_gather` of the plugin registered as `plugin_name` returned, as soon
    as that alone is there (on an xdist worker: from the shipped evidence). For parametrising
    from a plugin's own data at collection without waiting for every probe."""
    settings(config)
    return extra_of(config, plugin_name)


def verdict(item: pytest.Item) -> Verdict | None:
    """The verdict the case recorded with `pbs.check()` (None before, or for other tests)."""
    return item.stash.get(VERDICT, None)


def outcome(report: pytest.TestReport) -> str:
    """The case's compliance outcome: `remediated`, else pytest's (passed, failed, skipped)."""
    return str(getattr(report, _OUTCOME_ATTR, None) or report.outcome)


def mark_remediated(item: pytest.Item, report: pytest.TestReport, note: str) -> None:
    """Turn a failed call report into a remediated one: it passes with outcome `remediated`
    (letter R, word REMEDIATED, cyan), a `remediated=true` property in JUnit, `note` as a
    report section, and a FIXED cell in the matrix. Call it from a `pytest_runtest_makereport`
    wrapper."""
    report.outcome = "passed"
    report.longrepr = None
    setattr(report, _OUTCOME_ATTR, REMEDIATED)
    item.user_properties.append(("remediated", "true"))
    report.sections.append(("pbs-compliance remediation", note))


def add_html(report: pytest.TestReport, block: str) -> None:
    """Show the HTML `block` under the case in the pytest-html report. Call it from a
    `pytest_runtest_makereport` wrapper."""
    try:
        from pytest_html import extras
    except ImportError:  # pragma: no cover - pytest-html is a dependency
        return
    report.extras = [*getattr(report, "extras", []), extras.html(block)]  # type: ignore[attr-defined]


def set_remediation(config: pytest.Config, mode: str) -> None:
    """What the report header says about remediation ("off" unless a plugin says otherwise)."""
    state = _state(config)
    if state is not None:
        state.remediation = mode
