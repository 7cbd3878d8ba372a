"""Waived results in `pbs validate` and `pbs status`: the rows of `tables`, with the failures a
waiver in force covers marked waived (the rule of `pbs_compliance.waivers`, as in `pytest
checks/`). A row whose every failure is waived counts as compliant, so the exit status follows
the same rule as a pytest run."""

from __future__ import annotations

import dataclasses

from pbs_compliance import registry, waivers
from pbs_compliance.config import ComplianceConfig
from pbs_compliance.tables import StatusRow, ValidationRow

__all__ = ["status_rows", "validation_rows"]


def validation_rows(
    config: ComplianceConfig, rows: list[ValidationRow]
) -> tuple[list[ValidationRow], list[str]]:
    """The rows with their waived checks, and one line per waived failure."""
    if not config.waivers:
        return rows, []
    day = waivers.today()
    marked, lines = [], []
    for row in rows:
        failing = [(v.check, None) for v in row.verdicts if v.status == "fail"]
        found = waivers.waived_of(config, row.spec.name, failing, day)
        lines += [f"{row.spec.name}: {waivers.describe(c, n, w)}" for c, n, w in found]
        marked.append(dataclasses.replace(row, waived=tuple(c for c, _, _ in found)))
    return marked, lines


def status_rows(
    config: ComplianceConfig, rows: list[StatusRow]
) -> tuple[list[StatusRow], list[str]]:
    """The rows with their waived failures (`drift`, `nodes:NODE`, `unmanaged`), and lines."""
    if not config.waivers:
        return rows, []
    day = waivers.today()
    marked, lines = [], []
    for row in rows:
        storage = row.name if row.declared else registry.CLUSTER
        found = waivers.waived_of(config, storage, row.failing, day)
        lines += [f"{row.name}: {waivers.describe(c, n, w)}" for c, n, w in found]
        keys = tuple(f"{c}:{n}" if n else c for c, n, _ in found)
        marked.append(dataclasses.replace(row, waived=keys))
    return marked, lines
