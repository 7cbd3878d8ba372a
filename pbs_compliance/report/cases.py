"""Each case of a compliance run as the reports need it, gathered on the controller.

The process that ran a case (the controller, or an xdist worker) puts the rows of its evidence
on the report (`FACTS`, a plain attribute, so it survives xdist's serialisation); the controller
turns every report into one `Case`: what was checked, where, its outcome, its message and fix,
and those rows. The HTML summary, the JUnit file's evidence and the Prometheus series are all
made from these.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pbs_compliance import registry
from pbs_compliance.config import StorageSpec
from pbs_compliance.report import outcomes
from pbs_compliance.verdicts import Verdict

FACTS = "pbs_facts"  # on a report: [[name, value], ...], the rows the HTML shows
Rows = tuple[tuple[str, str], ...]


def evidence_rows(
    verdict: Verdict, spec: StorageSpec | None, facts: Iterable[tuple[str, str]] | None = None
) -> Rows:
    """What a case was judged on, one (name, value) row each: check, storage, server, datastore,
    description, node, then the verdict's facts (or `facts`, which replace them). A fact whose
    name and value are already shown is not shown again; one whose name is already shown with
    another value is kept (both are facts)."""
    rows: list[tuple[str, str]] = [("check", verdict.check), ("storage", verdict.storage)]
    if spec is not None:
        rows += [("server", f"{spec.server}:{spec.port}"), ("datastore", spec.datastore)]
        if spec.description:
            rows.append(("description", spec.description))
    if verdict.node:
        rows.append(("node", verdict.node))
    shown = {name: value for name, value in rows}
    for name, value in verdict.facts if facts is None else facts:
        known = shown.get(name)
        if known is not None and (known == value or known.split(":", 1)[0] == value):
            continue  # "server: pbs1" beside "server: pbs1:8007" says nothing new
        rows.append((str(name), str(value)))
    return tuple(rows)


@dataclass(frozen=True)
class Case:
    """One case of the run (a pytest test with a compliance verdict)."""

    nodeid: str
    check: str
    storage: str
    node: str
    server: str
    outcome: str  # see `outcomes`
    message: str = ""  # the failure, skip or waiver text, as the check wrote it
    facts: Rows = ()
    duration: float = 0.0

    @property
    def id(self) -> str:
        """pytest's id without the path and `test_`: "dns[archive]", "nodes[offsite:pve2]"."""
        return self.nodeid.rsplit("::", 1)[-1].removeprefix("test_")

    @property
    def anchor(self) -> str:
        """An HTML id for the case (letters, digits, - and _ only)."""
        return "case-" + re.sub(r"[^A-Za-z0-9_-]+", "-", self.id).strip("-")

    @property
    def fix(self) -> str:
        """What to do about it, on one line: the message's `fix:` text (every check ends its
        failure message with one), else the registry's fix for the check, else the message."""
        return fix_of(self.check, self.message)


def fix_of(check: str, message: str) -> str:
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    for index, line in enumerate(lines):
        lowered = line.lower()
        if lowered.startswith("fix:"):
            return " ".join([line[4:].strip(), *lines[index + 1 :]]).strip()
        if lowered.startswith("can be fixed"):
            return line
    entry = registry.get(check)
    generic = str(getattr(entry, "fix", "") or "")
    return generic or (lines[0] if lines else "")


def message_of(report: Any, outcome: str) -> str:
    """The case's text: the failure's message, the skip's reason (not pytest's tuple with the
    file's absolute path), the waiver's reason."""
    if outcome == outcomes.WAIVED:
        return str(getattr(report, "wasxfail", "") or "")
    longrepr = report.longrepr
    if isinstance(longrepr, tuple | list) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    if outcome == outcomes.PASSED or longrepr is None:
        return ""
    return str(report.longreprtext).strip()


def from_report(report: Any) -> Case | None:
    """The case of one call report (or of a setup report that skipped or failed); None for
    reports of other tests and for the passed setup and teardown of a case.

    pytest-html hands collection reports (a module that failed to import) to the same hooks;
    they have no `user_properties` and are no case."""
    if report.when != "call" and not (report.when == "setup" and not report.passed):
        return None  # first: most reports are passed setups and teardowns
    props = {str(k): str(v) for k, v in getattr(report, "user_properties", ())}
    if "check" not in props or "storage" not in props:
        return None
    outcome = outcomes.of_report(report)
    facts = getattr(report, FACTS, None) or ()
    return Case(
        nodeid=report.nodeid,
        check=props["check"],
        storage=props["storage"],
        node=props.get("node", ""),
        server=props.get("server", ""),
        outcome=outcome,
        message=message_of(report, outcome),
        facts=tuple((str(k), str(v)) for k, v in facts),
        duration=float(getattr(report, "duration", 0.0) or 0.0),
    )


def failing(cases: Sequence[Case]) -> list[Case]:
    """The cases to act on, in the order they ran: failed and errors."""
    return [c for c in cases if c.outcome in (outcomes.FAILED, outcomes.ERROR)]
