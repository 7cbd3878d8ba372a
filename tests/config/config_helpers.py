"""What the config tests share beside conftest.py's fixtures: the fixtures' types (conftest is not
importable) and one assertion of a config issue whole."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from spec_builders import FP, SEED_FP

from pbs_compliance.config import ComplianceConfig, ConfigIssue

StorageText = Callable[..., str]
Load = Callable[..., ComplianceConfig]
Problems = Callable[..., list[ConfigIssue]]
Problem = Callable[..., ConfigIssue]
SecretFile = Callable[..., Path]

SEED_FINGERPRINT = SEED_FP


def storage_document(index: int, **more: Any) -> dict[str, Any]:
    """A valid storage entry `pbs{index}` as a parsed YAML document holds it, with `more`."""
    return {
        "name": f"pbs{index}",
        "server": "pbs.example",
        "datastore": "store1",
        "fingerprint": FP,
        "content": ["backup"],
        "nodes": ["pve1", "pve2"],
        "prune_backups": {"keep_daily": 7, "keep_weekly": 4},
    } | more


def secret_of(config: ComplianceConfig) -> str:
    """The password of the config's first storage, which must have one."""
    password = config.storages[0].password
    assert password is not None
    return password.get_secret_value()


def assert_issue(
    issue: ConfigIssue,
    field: str,
    *says: str,
    message: str | None = None,
    fix: str | None = None,
    fix_says: str | None = None,
    at: tuple[int, int] | None = None,
    line: int | None = None,
) -> None:
    """`issue` is at `field` and its message holds each of `says`; where given, its message and
    fix are exactly `message` and `fix`, its fix holds `fix_says`, it stands at `at` (line,
    column) or on `line`."""
    __tracebackhide__ = True
    got: dict[str, Any] = {"field": issue.field}
    want: dict[str, Any] = {"field": field}
    if message is not None:
        got["message"], want["message"] = issue.message, message
    if fix is not None:
        got["fix"], want["fix"] = issue.fix, fix
    if at is not None:
        got["at"], want["at"] = (issue.line, issue.column), at
    if line is not None:
        got["line"], want["line"] = issue.line, line
    missing = [words for words in says if words not in issue.message]
    if fix_says is not None and fix_says not in issue.fix:
        missing.append(f"(in the fix) {fix_says}")
    assert (got, missing) == (want, []), f"{issue}: got {got}, missing {missing}"
