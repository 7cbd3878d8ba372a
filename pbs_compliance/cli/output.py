"""The one output helper of every `pbs` command: text or JSON, colour, exit statuses.

- `--output json` prints exactly one JSON document on stdout (stable keys) and nothing else;
- colour only on a terminal, never with NO_COLOR; lines stay whole (grep-able);
- exit status 0 = compliant / applied, 1 = not compliant / failed, 2 = usage or config error
  (a broken config lists every problem, without a traceback), 130 = interrupted (Ctrl-C).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from pbs_compliance.config import ConfigError

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "ConfigOption",
    "ConfigsOption",
    "Out",
    "Output",
    "OutputOption",
    "StatusOutput",
    "StatusOutputOption",
    "config_issues",
    "console_for",
    "examples",
]

EXIT_OK = 0
EXIT_FAILED = 1  # not compliant, refused, failed
EXIT_USAGE = 2  # a usage, config or setting error
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


class Output(StrEnum):
    text = "text"
    json = "json"


class StatusOutput(StrEnum):
    """`pbs status` also speaks Prometheus' text format (the node_exporter textfile)."""

    text = "text"
    json = "json"
    prometheus = "prometheus"


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        metavar="PATH",
        help="the declaration (default: config/pbs-storage.yaml; env PBS_COMPLIANCE_CONFIG)",
    ),
]
ConfigsOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--config",
        "-c",
        metavar="PATH",
        help="the declaration; repeat it to show several clusters together, one config each "
        "(default: config/pbs-storage.yaml; env PBS_COMPLIANCE_CONFIG)",
    ),
]
OutputOption = Annotated[
    Output,
    typer.Option("--output", "-o", help="text for people, json for machines (stdout only)"),
]

StatusOutputOption = Annotated[
    StatusOutput,
    typer.Option(
        "--output",
        "-o",
        help="text for people, json for machines, prometheus for node_exporter's textfile "
        "collector (stdout only)",
    ),
]


def examples(*lines: str, note: str = "") -> str:
    """An epilog click prints as written (\\b keeps its lines from being re-wrapped)."""
    text = "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)
    return f"{text}\n\n{note}" if note else text


@dataclass
class Out:
    """Where a command writes: rich for text (colour only on a TTY without NO_COLOR), or one
    JSON document on stdout."""

    json: bool
    console: Console
    errors: Console
    silent: bool = False  # stdout carries another format (Prometheus): no text there

    @classmethod
    def create(cls, output: Output | StatusOutput) -> Out:
        return cls(
            output == Output.json,
            console_for(sys.stdout),
            console_for(sys.stderr),
            silent=output == StatusOutput.prometheus,
        )

    def print(self, *items: Any, style: str | None = None) -> None:
        if (
            not self.json and not self.silent
        ):  # lines stay whole (grep-able); tables size themselves
            self.console.print(*items, style=style, soft_wrap=True)

    def data(self, payload: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
        sys.stdout.flush()

    def fail(self, code: int, message: str, kind: str, **extra: Any) -> NoReturn:
        """End the command: the message on stderr (text) or as the JSON document (json)."""
        if self.json:
            self.data({"ok": False, "error": kind, "message": message, **extra})
        else:
            self.errors.print(f"pbs: {message}", style="bold red", soft_wrap=True)
        raise typer.Exit(code)

    def config_error(self, exc: ConfigError) -> NoReturn:
        self.fail(2, exc.render(), "config", issues=config_issues(exc))


def config_issues(exc: ConfigError) -> list[dict[str, Any]]:
    """A broken config's problems as JSON: where (file, line, column, field), what, the fix."""
    return [
        {
            "file": str(i.file),
            "line": i.line,
            "column": i.column,
            "field": i.field,
            "message": i.message,
            "fix": i.fix,
        }
        for i in exc.issues
    ]


def console_for(stream: Any) -> Console:
    colour = stream.isatty() and not os.environ.get("NO_COLOR")
    return Console(
        file=stream,
        force_terminal=colour,
        no_color=not colour,
        color_system="auto" if colour else None,
        markup=False,
        highlight=False,
        emoji=False,
        width=None if colour else 200,
    )
