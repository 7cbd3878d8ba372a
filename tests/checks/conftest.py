"""Run the compliance checks (`checks/*.py` + the plugin) against a lab, inside pytester.

`run_checks(lab, ...)` copies the project's `checks/` into pytester's directory, exports the
lab's secrets, runs pytest there with JUnit and HTML reports, and parses the JUnit file into
one `Case` per test id (`dns[archive]`, `nodes[offsite:pve2]`, `unmanaged`), so a test can assert
the exact set of failed cases and their messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from checks_harness import (
    ChecksRun,
    RunChecks,
    WriteConfig,
    copy_checks,
    export_lab_env,
    parse_junit,
)

from pbs_compliance.lab.runner import Lab


@pytest.fixture
def write_config(pytester: pytest.Pytester) -> WriteConfig:
    """Write a declaration (data or text) into pytester's directory; returns its path."""

    def write(content: dict[str, Any] | str, name: str = "pbs-storage.yaml") -> Path:
        path = pytester.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def run_checks(pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch) -> RunChecks:
    """`run_checks(lab, *args, config=path, subprocess=False, extra_env={})`: one compliance run.

    The lab's secrets are exported first (unless `env=False`), then `extra_env` on top. JUnit
    and HTML are written (and the cases read from the JUnit) unless `files=False`.
    """
    copy_checks(pytester.path)
    runs = 0

    def run(
        lab: Lab | None,
        *args: str,
        config: Path | None = None,
        subprocess: bool = False,
        env: bool = True,
        extra_env: dict[str, str] | None = None,
        files: bool = True,
    ) -> ChecksRun:
        nonlocal runs
        runs += 1
        if lab is not None and env:
            export_lab_env(clean_env, lab)
        for key, value in (extra_env or {}).items():
            clean_env.setenv(key, value)
        junit = pytester.path / f"junit-{runs}.xml"
        html = pytester.path / f"report-{runs}.html"
        path = config or (lab.config_path if lab is not None else None)
        argv = [
            "-p",
            "no:cacheprovider",
            "-rA",
            *([f"--junitxml={junit}", f"--html={html}"] if files else []),
            *([f"--pbs-config={path}"] if path is not None else []),
            *args,
        ]
        if not any(a == "checks" or a.startswith("checks/") for a in args):
            argv.append("checks")
        if subprocess:
            result = pytester.runpytest_subprocess(*argv, timeout=120)
        else:
            result = pytester.runpytest(*argv)
        cases = parse_junit(junit) if junit.exists() else {}
        return ChecksRun(result, junit, html, cases)

    return run


@pytest.fixture
def checkout(pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch, shared_lab: Lab) -> None:
    """pytester's directory as a checkout's root: the development settings (pyproject.toml,
    filterwarnings = error) at the root, the suite in checks/, the shared lab's secrets exported."""
    copy_checks(pytester.path, checkout=True)
    export_lab_env(clean_env, shared_lab)
