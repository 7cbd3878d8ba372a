"""The matrix: rows are storages, columns are the checks that ran (in the registry's order, then
checks a plugin or a worker added), node cases folded into one cell ("2/3 PASS"), cluster-wide
checks (`unmanaged`) as lines under it. Rendered for the terminal (rich, or plain ASCII off a
terminal) and as an HTML table for pytest-html's summary."""

from __future__ import annotations

import html
import io
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from rich import box
from rich.console import Console
from rich.table import Table

from pbs_compliance import registry

Outcomes = Mapping[tuple[str, str, str], str]  # (storage, check, node) -> outcome
SYMBOLS = {
    "passed": "PASS",
    "failed": "FAIL",
    "skipped": "skip",
    "remediated": "FIXED",
    "waived": "WAIVED",
    "error": "ERROR",
}
STYLES = {
    "PASS": "green",
    "FAIL": "bold red",
    "ERROR": "bold red",
    "skip": "yellow",
    "FIXED": "cyan",
    "WAIVED": "magenta",
}
HTML_COLOURS = {
    "PASS": "#2a2",
    "FAIL": "#c22",
    "ERROR": "#c22",
    "skip": "#b80",
    "FIXED": "#0aa",
    "WAIVED": "#85c",
}
WORST_FIRST = ("FAIL", "ERROR", "WAIVED", "FIXED", "PASS", "skip")


@dataclass(frozen=True)
class Matrix:
    """The cells of a matrix, before it is drawn: symbols only, no styling."""

    columns: tuple[str, ...]  # check names
    rows: tuple[tuple[str, tuple[str, ...]], ...]  # storage, one cell per column
    footer: tuple[tuple[str, str], ...]  # (heading, cell) of each cluster-wide check

    @property
    def header(self) -> list[str]:
        return ["storage", *(_heading(c) for c in self.columns)]


def build(outcomes: Outcomes) -> Matrix:
    cells: dict[tuple[str, str], list[str]] = {}
    for (storage, check, _), outcome in outcomes.items():
        cells.setdefault((storage, check), []).append(outcome)
    ran = {check for _, check, _ in outcomes}
    cluster = {c for s, c, _ in outcomes if s == registry.CLUSTER}
    known = [c for c in registry.names() if c in ran]
    ordered = known + sorted(ran - set(known))
    columns = tuple(c for c in ordered if c not in cluster and not _is_cluster(c))
    scopes: dict[str, set[str]] = {}
    for storage, check, _ in outcomes:
        entry = registry.get(check)
        scopes.setdefault(storage, set()).add(entry.scope if entry is not None else "storage")
    # Storages first, then the rows of the cases about a backup job (`job:<id>`).
    storages = sorted(
        (s for s in scopes if s != registry.CLUSTER), key=lambda s: (scopes[s] == {"job"}, s)
    )
    rows = tuple(
        (storage, tuple(cell(cells.get((storage, c), [])) for c in columns)) for storage in storages
    )
    footer = tuple(
        (_heading(c), cell(cells[(registry.CLUSTER, c)]))
        for c in ordered
        if (registry.CLUSTER, c) in cells
    )
    return Matrix(columns, rows, footer)


def _is_cluster(check: str) -> bool:
    entry = registry.get(check)
    return entry is not None and entry.scope == "cluster"


def _heading(check: str) -> str:
    entry = registry.get(check)
    return entry.heading if entry is not None else check


def cell(outcomes: list[str]) -> str:
    """One cell: the worst outcome, with how many node cases passed when there are several."""
    if not outcomes:
        return "-"
    symbols = [SYMBOLS.get(o, o) for o in outcomes]
    worst = next((s for s in WORST_FIRST if s in symbols), symbols[0])
    return worst if len(symbols) == 1 else f"{symbols.count('PASS')}/{len(symbols)} {worst}"


def _worst(text: str) -> str:
    return text.rsplit(" ", 1)[-1]


def render(outcomes: Outcomes, colour: bool) -> str:
    """The terminal matrix (rich with colour on a terminal, plain ASCII otherwise)."""
    matrix = build(outcomes)
    header = matrix.header
    rows = [[storage, *cells] for storage, cells in matrix.rows]
    footer = [f"{heading}: {text}" for heading, text in matrix.footer]
    if not colour or os.environ.get("NO_COLOR"):
        return "\n".join([_ascii_table(header, rows), *footer])
    table = Table(pad_edge=False, box=box.HEAVY_HEAD)
    for column in header:
        table.add_column(column)
    for row in rows:
        table.add_row(row[0], *(_styled(c) for c in row[1:]))
    buffer = io.StringIO()
    console = Console(file=buffer, width=120, force_terminal=True, color_system="standard")
    console.print(table)
    for heading, text in matrix.footer:
        console.print(f"{heading}: {_styled(text)}")
    return buffer.getvalue().rstrip("\n")


def _styled(text: str) -> str:
    style = STYLES.get(_worst(text))
    return f"[{style}]{text}[/]" if style else text


def _ascii_table(header: list[str], rows: list[list[str]]) -> str:
    """Plain ASCII off a terminal: CI logs and e-mails mangle box-drawing characters, and
    formatting a thousand rows by hand is a hundred times cheaper than laying them out with rich."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(cells: list[str]) -> str:
        return "|" + "|".join(f" {c.ljust(w)} " for c, w in zip(cells, widths, strict=True)) + "|"

    return "\n".join([rule, line(header), rule, *(line(r) for r in rows), rule])


def plain(text: str) -> str:
    """Rich markup removed."""
    return re.sub(r"\[/?[a-z ]*\]", "", text)


def to_html(outcomes: Outcomes) -> str:
    """The matrix as an HTML table (pytest-html's summary), coloured like the terminal's."""
    matrix = build(outcomes)

    def span(text: str) -> str:
        colour = HTML_COLOURS.get(_worst(text))
        style = f" style='color:{colour};font-weight:bold'" if colour else ""
        return f"<span{style}>{html.escape(text)}</span>"

    head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in matrix.header)
    body = "".join(
        f"<tr><td>{html.escape(storage)}</td>{''.join(f'<td>{span(c)}</td>' for c in cells)}</tr>"
        for storage, cells in matrix.rows
    )
    footer = "".join(
        f"<p>{html.escape(heading)}: {span(text)}</p>" for heading, text in matrix.footer
    )
    return (
        "<div class='pbs-compliance-matrix'><h2>pbs-compliance matrix</h2>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{footer}</div>"
    )
