"""Config errors written for the person who has to fix the file.

Every problem carries where it is (file, line, column), which field (`pbs_storages[2].fingerprint`),
what is wrong and how to fix it. All problems of a file are collected and raised together as one
`ConfigError`, so a user fixes the whole file in one pass instead of one error per run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in one place of a config file."""

    file: Path
    line: int | None  # 1-based; None when the problem is about the whole file
    column: int | None  # 1-based
    field: str  # "pbs_storages[2].fingerprint", or "" for the document itself
    message: str
    fix: str = ""

    def __str__(self) -> str:
        where = str(self.file)
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        text = (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )
        if self.fix:
            text += f"\n    fix: {self.fix}"
        return text


class ConfigError(Exception):
    """The config cannot be used. `str()` lists every problem, one per paragraph."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        # A bad value under `defaults:` is found once per storage; report it once.
        unique = list(dict.fromkeys(issues))
        self.issues = sorted(unique, key=lambda i: (str(i.file), i.line or 0, i.column or 0))
        super().__init__(self.render())

    def render(self) -> str:
        count = len(self.issues)
        noun = "problem" if count == 1 else "problems"
        head = f"invalid configuration ({count} {noun}):"
        return "\n".join([head, *(f"  {issue}" for issue in self.issues)])
