"""What the pytest-html report adds: a title, the matrix in its summary, and under each case
the evidence it was judged on (check, storage, server, datastore, node and the verdict's facts,
plus what plugins add through `pytest_pbs_report_facts`)."""

from __future__ import annotations

import html
from collections.abc import Sequence

from pbs_compliance.config import StorageSpec
from pbs_compliance.report import matrix
from pbs_compliance.verdicts import Verdict

TITLE = "PBS storage compliance"


def details(
    verdict: Verdict, spec: StorageSpec | None, facts: Sequence[tuple[str, str]] | None = None
) -> str:
    """The case's evidence table (its message is the failure or skip text, shown anyway)."""
    rows = [("check", verdict.check), ("storage", verdict.storage)]
    if spec is not None:
        rows += [("server", f"{spec.server}:{spec.port}"), ("datastore", spec.datastore)]
        if spec.description:
            rows.append(("description", spec.description))
    if verdict.node:
        rows.append(("node", verdict.node))
    rows += list(verdict.facts) if facts is None else list(facts)
    cells = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
        f"<td><code>{html.escape(v)}</code></td></tr>"
        for k, v in rows
    )
    return f"<div class='pbs-compliance'><table>{cells}</table></div>"


def summary(outcomes: matrix.Outcomes) -> str:
    """The matrix for the summary at the top of the report."""
    return matrix.to_html(outcomes)
