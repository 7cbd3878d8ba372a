"""Waived results in `pbs validate` and `pbs status`: the rows of `tables`, with the failures a
waiver in force covers marked waived (the rule of `pbs_compliance.waivers`, as in `pytest
checks/`). A row whose every failure is waived counts as compliant, so the exit status follows
the same rule as a pytest run."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import TypeVar

from pbs_compliance import registry, waivers
from pbs_compliance.config import ComplianceConfig
from pbs_compliance.tables import StatusRow, ValidationRow

__all__ = ["status_rows", "validation_rows"]

_Row = TypeVar("_Row", ValidationRow, StatusRow)
# Of one row: its name, the storage its waivers name, and its failing (check, node) pairs.
_Failures = tuple[str, str, Iterable[tuple[str, str | None]]]


def validation_rows(
    config: ComplianceConfig, rows: list[ValidationRow]
) -> tuple[list[ValidationRow], list[str]]:
    """The rows with their waived checks, and one line per waived failure."""

    def failures(row: ValidationRow) -> _Failures:
        failing = [(v.check, None) for v in row.verdicts if v.status == "fail"]
        return row.spec.name, row.spec.name, failing

    return _marked(config, rows, failures)


def status_rows(
    config: ComplianceConfig, rows: list[StatusRow]
) -> tuple[list[StatusRow], list[str]]:
    """The rows with their waived failures (`drift`, `nodes:NODE`, `unmanaged`), and lines."""

    def failures(row: StatusRow) -> _Failures:
        return row.name, (row.name if row.declared else registry.CLUSTER), row.failing

    return _marked(config, rows, failures)


def _marked(
    config: ComplianceConfig, rows: list[_Row], failures: Callable[[_Row], _Failures]
) -> tuple[list[_Row], list[str]]:
    """Each row with `waived` set to its waived failures (`check`, or `check:node`), and one
    line per waived failure."""
    if not config.waivers:
        return rows, []
    day = waivers.today()
    marked, lines = [], []
    for row in rows:
        name, storage, failing = failures(row)
        found = waivers.waived_of(config, storage, failing, day)
        lines += [f"{name}: {waivers.describe(c, n, w)}" for c, n, w in found]
        keys = tuple(f"{c}:{n}" if n else c for c, n, _ in found)
        marked.append(dataclasses.replace(row, waived=keys))
    return marked, lines
