"""The pytest-html report of a compliance run, readable at a glance.

First thing under the title (`glance`): the compliance matrix (storages x checks, coloured cells
saying PASS/FAIL/SKIP/FIXED/WAIVED, each a link to its case), the totals of every case, the
cluster and the config, and the fixes to do - one line per failed case with its fix. Then
pytest-html's table of cases, adjusted (`HtmlHooks`): a remediated or waived case says so in
the result column and the totals; a case's log is its message (a skip's reason as text, not
pytest's tuple with an absolute path) and nothing else ("No log output captured." goes);
passed, skipped, remediated and waived rows start collapsed, failed ones expanded; under each
case the evidence it was judged on (`details`), each fact once, dark on light.

pytest-html builds the table in the browser from a fixed list of result kinds; `finish_html`
adds ours to that list, puts the glance first and makes the count line count every case.
"""

from __future__ import annotations

import html
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pbs_compliance import registry
from pbs_compliance.config import StorageSpec
from pbs_compliance.report import cases, matrix, outcomes
from pbs_compliance.report.cases import Case
from pbs_compliance.verdicts import Verdict

TITLE = "PBS storage compliance"
COLLAPSED = ["passed", "skipped", "remediated", "waived", "xfailed", "xpassed"]
GLANCE_ID = "pbs-glance"
_CELL_CLASS = {
    "PASS": "pass",
    "FAIL": "fail",
    "ERROR": "fail",
    "skip": "skip",
    "FIXED": "fixed",
    "WAIVED": "waived",
}
STYLE = """
#pbs-glance{font-family:Helvetica,Arial,sans-serif;color:#111;margin:0 0 1.5em 0}
#pbs-glance h2{margin:.6em 0 .3em 0}
#pbs-glance .pbs-where{margin:.2em 0;color:#222}
#pbs-glance .pbs-totals{font-size:1.1em;font-weight:bold;margin:.4em 0}
#pbs-glance table.pbs-matrix{border-collapse:collapse;margin:.5em 0}
#pbs-glance table.pbs-matrix th,#pbs-glance table.pbs-matrix td{border:1px solid #999;
 padding:3px 8px;text-align:left}
#pbs-glance table.pbs-matrix th{background:#e8e8e8}
#pbs-glance td.pbs-cell a{color:inherit;text-decoration:none;display:block}
#pbs-glance td.pass{background:#c8ecc8;color:#0b3d0b}
#pbs-glance td.fail{background:#f6c6c6;color:#6b0000;font-weight:bold}
#pbs-glance td.skip{background:#fbeab3;color:#4d3b00}
#pbs-glance td.fixed{background:#c2ecec;color:#003d3d;font-weight:bold}
#pbs-glance td.waived{background:#e6d4f5;color:#3b0a5c;font-weight:bold}
#pbs-glance td.none{color:#666}
#pbs-glance ul.pbs-fixes li{margin:.25em 0}
#pbs-glance ul.pbs-fixes a{color:#0645ad}
#pbs-glance ul.pbs-fixes code,.pbs-compliance code{color:#111;background:#f1f1f1;
 padding:0 .2em;white-space:pre-wrap}
.pbs-compliance table{border-collapse:collapse}
.pbs-compliance th{text-align:left;padding:2px 1em 2px 0;color:#222;vertical-align:top}
.pbs-compliance td{color:#111;padding:2px 0}
.remediated .col-result{color:#007a7a}
.waived .col-result{color:#6b2d9c}
"""


def details(
    verdict: Verdict, spec: StorageSpec | None, facts: Sequence[tuple[str, str]] | None = None
) -> str:
    """The case's evidence table (its message is the case's log, not repeated here)."""
    return rows_html(cases.evidence_rows(verdict, spec, facts))


def rows_html(rows: Sequence[tuple[str, str]]) -> str:
    cells = "".join(
        f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(v)}</code></td></tr>" for k, v in rows
    )
    return f"<div class='pbs-compliance'><table>{cells}</table></div>"


def summary(outcomes_: matrix.Outcomes) -> str:
    """The matrix alone, as an HTML table (kept for callers of the first report package)."""
    return matrix.to_html(outcomes_)


def case_href(case: Case) -> str:
    """A link to the case's row in pytest-html's table (its tbody's id is the node id)."""
    return "#" + quote(case.nodeid, safe="/:._-[]")


def totals_line(found: Sequence[Case]) -> str:
    counted = outcomes.counts([c.outcome for c in found])
    parts = [f"{n} {outcomes.WORDS.get(o, o).lower()}" for o, n in counted.items() if n]
    return f"{len(found)} cases: " + (", ".join(parts) if parts else "none ran")


def glance(
    found: Sequence[Case], cluster: str, config: str, pve: str = "", finished: str = ""
) -> str:
    """The block that opens the report: see the module doc."""
    where = [f"cluster <b>{html.escape(cluster)}</b>", f"config <code>{html.escape(config)}</code>"]
    if pve:
        where.append(f"PVE <code>{html.escape(pve)}</code>")
    if finished:
        where.append(f"finished {html.escape(finished)}")
    fixes = cases.failing(found)
    fix_items = "".join(
        f"<li><a href='{html.escape(case_href(c))}'>{html.escape(c.id)}</a>: "
        f"<code>{html.escape(c.fix)}</code></li>"
        for c in fixes
    )
    fix_block = (
        f"<h2>To fix ({len(fixes)})</h2><ul class='pbs-fixes'>{fix_items}</ul>"
        if fixes
        else "<h2>To fix</h2><p>nothing: every case that ran is compliant</p>"
    )
    return (
        f"<section id='{GLANCE_ID}'><style>{STYLE}</style>"
        f"<p class='pbs-where'>{' &middot; '.join(where)}</p>"
        f"<p class='pbs-totals'>{html.escape(totals_line(found))}</p>"
        f"{matrix_html(found)}{fix_block}</section>"
    )


def matrix_html(found: Sequence[Case]) -> str:
    """The matrix with coloured cells, each a link to its worst case."""
    built = matrix.build({(c.storage, c.check, c.node): c.outcome for c in found})
    by_cell: dict[tuple[str, str], list[Case]] = {}
    for case in found:
        by_cell.setdefault((case.storage, case.check), []).append(case)

    def cell(storage: str, check: str, text: str) -> str:
        group = by_cell.get((storage, check), [])
        shown = text.replace("skip", "SKIP")
        if not group:
            return f"<td class='pbs-cell none'>{html.escape(shown)}</td>"
        worst = min(group, key=lambda c: _rank(c.outcome))
        kind = _CELL_CLASS.get(text.rsplit(" ", 1)[-1], "none")
        return (
            f"<td class='pbs-cell {kind}'><a href='{html.escape(case_href(worst))}'>"
            f"{html.escape(shown)}</a></td>"
        )

    head = "".join(f"<th>{html.escape(h)}</th>" for h in built.header)
    body = "".join(
        f"<tr><th>{html.escape(storage)}</th>"
        + "".join(
            cell(storage, check, text) for check, text in zip(built.columns, row, strict=True)
        )
        + "</tr>"
        for storage, row in built.rows
    )
    footer = "".join(
        f"<tr><th>{html.escape(heading)}</th>{cell(registry.CLUSTER, check, text)}</tr>"
        for check, (heading, text) in zip(_cluster_checks(found), built.footer, strict=False)
    )
    tail = f"<table class='pbs-matrix'><tbody>{footer}</tbody></table>" if footer else ""
    return (
        f"<h2>Compliance matrix</h2><table class='pbs-matrix'><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>{tail}"
    )


def _cluster_checks(found: Sequence[Case]) -> list[str]:
    """The cluster-wide checks in the order the matrix's footer lists them."""
    ran = {c.check for c in found if c.storage == registry.CLUSTER}
    known = [c for c in registry.names() if c in ran]
    return known + sorted(ran - set(known))


def _rank(outcome: str) -> int:
    order = outcomes.ORDER
    return order.index(outcome) if outcome in order else len(order)


# -- pytest-html's table ----------------------------------------------------------------------


def result_cell(report: Any, cells: list[str]) -> None:
    """`Remediated` / `Waived` in the result column of such a case."""
    outcome = outcomes.of_report(report)
    if outcome in (outcomes.REMEDIATED, outcomes.WAIVED) and cells:
        cells[0] = f'<td class="col-result">{outcomes.WORDS[outcome]}</td>'


def case_log(report: Any, data: list[str]) -> None:
    """A compliance case's log: its message as text, then the report sections that say
    something (a remediation note); never pytest's skip tuple or "No log output captured."."""
    case = cases.from_report(report)
    if case is None:
        if data == ["No log output captured."]:
            data.clear()
        return
    kept = data[1:] if report.longreprtext else list(data)
    kept = [entry for entry in kept if entry and entry != "No log output captured."]
    data[:] = ([html.escape(case.message) + "\n"] if case.message else []) + kept


class HtmlHooks:
    """pytest-html's hooks (registered only when pytest-html is there)."""

    def __init__(self, title: Callable[[], str], found: Callable[[], Sequence[Case]]) -> None:
        self._title = title  # the report's title (names the cluster)
        self._found = found  # the run's cases so far
        self.report: Any = None  # pytest-html's report data, kept to adjust its totals

    def pytest_html_report_title(self, report: Any) -> None:
        report.title = self._title()
        self.report = report
        if report.config.getini("render_collapsed") in ("", "passed"):  # pytest-html's default
            report.set_data("renderCollapsed", list(COLLAPSED))

    def pytest_html_results_table_row(self, report: Any, cells: list[str]) -> None:
        result_cell(report, cells)

    def pytest_html_results_table_html(self, report: Any, data: list[str]) -> None:
        case_log(report, data)

    def pytest_html_results_summary(
        self, prefix: list[str], summary: list[str], postfix: list[str], session: Any
    ) -> None:
        self.count(self._found())  # the glance itself goes first (`finish_html`)

    def count(self, found: Sequence[Case]) -> None:
        """pytest-html's totals: remediated and waived cases under their own name."""
        if self.report is None:
            return
        table: dict[str, dict[str, Any]] = self.report.outcomes
        moved = {
            outcomes.REMEDIATED: ("passed", sum(c.outcome == outcomes.REMEDIATED for c in found)),
            outcomes.WAIVED: ("xfailed", sum(c.outcome == outcomes.WAIVED for c in found)),
        }
        for outcome, (source, number) in moved.items():
            table.setdefault(outcome, {"label": outcomes.WORDS[outcome], "value": 0})
            table[outcome]["value"] = number
            if source in table:
                table[source]["value"] = max(0, table[source]["value"] - number)


_FILTERS = "const possibleFilters = ["
_RUN_COUNT = re.compile(r'(<p class="run-count">)\d+ tests? (took|done)')


def finish_html(path: Path, block: str, total: int) -> bool:
    """Put `block` first under the title, let pytest-html's filters know remediated and waived
    rows, and count every case; False (the file untouched) when the report is not the shape
    this expects (another pytest-html)."""
    raw = path.read_text(encoding="utf-8")
    title_end = raw.find("</h1>")
    if title_end < 0 or _FILTERS not in raw:
        return False
    at = title_end + len("</h1>")
    raw = raw[:at] + block + raw[at:]
    raw = raw.replace(_FILTERS, f"{_FILTERS}\n    'remediated',\n    'waived',", 1)
    raw = _RUN_COUNT.sub(lambda m: f"{m.group(1)}{total} cases {m.group(2)}", raw, count=1)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(raw)
    os.replace(temp, path)
    return True
