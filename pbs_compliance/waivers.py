"""Waivers: a known failure accepted until a date, judged the same way by pytest and the CLI.

A waived case still runs. When it fails and a waiver in force covers it, it is waived (in pytest
an `xfail` whose reason names the waiver and its expiry; the reports show it as WAIVED) and does
not fail the run; when it passes, the waiver is no longer needed and the summary says so. On and
after its expiry date a waiver is ignored: the case fails as usual, with a line naming the waiver
that expired. Pure functions only; the pytest side is `waiver_plugin`.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from pbs_compliance.config import ComplianceConfig, ConfigIssue
from pbs_compliance.config.waiver_model import ANY_STORAGE, ENV_TODAY, Waiver, today

__all__ = [
    "ANY_STORAGE",
    "ENV_TODAY",
    "EXPIRING_DAYS",
    "Decision",
    "Waiver",
    "decide",
    "describe",
    "expiring",
    "stale_nodes",
    "summary_lines",
    "today",
    "unknown_checks",
    "waived_of",
]

EXPIRING_DAYS = 14  # the summary counts the waivers that run out within this many days
State = Literal["none", "waived", "unneeded", "expired"]


@dataclass(frozen=True)
class Decision:
    """What the waivers make of one case's status (`pass`, `fail`, `skip`).

    - `waived`: it failed and `waiver` (in force) covers it;
    - `unneeded`: it passed although `waiver` (in force) covers it;
    - `expired`: it failed, and the only waiver that covered it (`waiver`) has expired;
    - `none`: no waiver is involved (a skip is never waived: it points at another case).
    """

    state: State
    waiver: Waiver | None = None

    @property
    def reason(self) -> str:
        """The xfail reason of a waived case: expiry, reason and where it is declared."""
        w = self.waiver
        if w is None:
            return ""
        return f"waived until {w.expires} ({w.where}): {w.reason}"

    @property
    def expired_line(self) -> str:
        """The line a failure gets when its waiver has expired."""
        w = self.waiver
        if w is None or self.state != "expired":
            return ""
        return (
            f"waiver of {w.label} ({w.where}) expired on {w.expires}, so this failure counts "
            f"again (it said: {w.reason}); fix: fix the failure, or extend `expires` if it "
            "still cannot be fixed"
        )

    @property
    def properties(self) -> list[tuple[str, str]]:
        """The JUnit properties of the case (`waived`, `waiver_expires`)."""
        w = self.waiver
        if w is None or self.state == "none":
            return []
        waived = {"waived": "true", "unneeded": "false", "expired": "expired"}[self.state]
        return [("waived", waived), ("waiver_expires", w.expires.isoformat())]


def decide(
    waivers: Iterable[Waiver],
    storage: str,
    check: str,
    node: str | None,
    status: str,
    day: dt.date,
) -> Decision:
    """The waivers' say on a case: the first waiver in force that covers it wins; an expired
    one only matters when none in force does."""
    covering = [w for w in waivers if w.covers(storage, check, node)]
    if not covering or status == "skip":
        return Decision("none")
    active = [w for w in covering if w.active(day)]
    if active:
        return Decision("waived" if status == "fail" else "unneeded", active[0])
    if status == "fail":
        return Decision("expired", max(covering, key=lambda w: w.expires))
    return Decision("none")


def expiring(waivers: Iterable[Waiver], day: dt.date, days: int = EXPIRING_DAYS) -> list[Waiver]:
    """The waivers in force that expire within `days` days (soonest first)."""
    horizon = day + dt.timedelta(days=days)
    found = [w for w in waivers if w.active(day) and w.expires <= horizon]
    return sorted(found, key=lambda w: (w.expires, w.where))


def unknown_checks(config: ComplianceConfig, known: Collection[str]) -> list[ConfigIssue]:
    """A config issue for every waiver naming a check the registry does not know."""
    issues = []
    for waiver in config.waivers:
        if waiver.check in known:
            continue
        close = difflib.get_close_matches(waiver.check, list(known), n=1)
        hint = f"did you mean `{close[0]}`? " if close else ""
        file, _, line = waiver.where.rpartition(":")
        issues.append(
            ConfigIssue(
                config.source if not file else type(config.source)(file),
                int(line) if line.isdigit() else None,
                None,
                "waivers.check",
                f"no check `{waiver.check}` is declared (known: {', '.join(sorted(known))})",
                f"{hint}name a check as `pytest checks/ --markers` lists it",
            )
        )
    return issues


def stale_nodes(waivers: Iterable[Waiver], nodes: Collection[str]) -> list[Waiver]:
    """Waivers naming a node PVE does not have (only judged when PVE's node list is known)."""
    if not nodes:
        return []
    return [w for w in waivers if w.node is not None and w.node not in nodes]


def summary_lines(
    waived: int,
    unneeded: Sequence[Waiver],
    expired: Sequence[Waiver],
    soon: Sequence[Waiver],
    stale: Sequence[Waiver] = (),
) -> list[str]:
    """The summary: waived failures and waivers expiring soon, then one line per waiver that
    is no longer needed, has expired on a failing case, or names a node PVE lacks."""
    lines = [
        f"waivers: {waived} waived failure(s); {len(soon)} waiver(s) expire within "
        f"{EXPIRING_DAYS} days"
        + (": " + ", ".join(f"{w.label} on {w.expires} ({w.where})" for w in soon) if soon else "")
    ]
    for w in _unique(unneeded):
        lines.append(
            f"waiver no longer needed: {w.label} ({w.where}) passed; remove it from `waivers:`"
        )
    for w in _unique(expired):
        lines.append(
            f"waiver expired: {w.label} ({w.where}) expired on {w.expires}; its case fails again"
        )
    for w in _unique(stale):
        lines.append(
            f"stale waiver: {w.label} ({w.where}) names node {w.node}, which PVE does not have; "
            "correct or remove it"
        )
    return lines


def _unique(waivers: Iterable[Waiver]) -> list[Waiver]:
    return list(dict.fromkeys(waivers))


def waived_of(
    config: ComplianceConfig, storage: str, failing: Iterable[tuple[str, str | None]], day: dt.date
) -> list[tuple[str, str | None, Waiver]]:
    """For `pbs validate` and `pbs status`: which of a storage's failing (check, node) pairs a
    waiver in force covers, with that waiver (the same rule as `decide`)."""
    found = []
    for check, node in failing:
        decision = decide(config.waivers, storage, check, node, "fail", day)
        if decision.state == "waived" and decision.waiver is not None:
            found.append((check, node, decision.waiver))
    return found


def describe(check: str, node: str | None, waiver: Waiver) -> str:
    """One line for a waived result in the CLI."""
    what = f"{check} ({node})" if node else check
    return f"{what} waived until {waiver.expires} ({waiver.where}): {waiver.reason}"
