"""Fixtures for the `pbs` command tests: run the real typer app against labs.

The lab fixtures (`make_lab`, `lab`, `shared_lab`) come from `tests/conftest.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_helpers import Invoke
from typer.testing import CliRunner, Result

from pbs_compliance.cli import app
from pbs_compliance.lab.runner import Lab


@pytest.fixture(autouse=True)
def clean_env(clean_env: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """tests/conftest.py's clean_env, for every `pbs` command test."""
    return clean_env


@pytest.fixture
def invoke() -> Invoke:
    """`invoke("validate", "--config", path)`: the `pbs` app in-process; stdout and stderr apart."""
    runner = CliRunner()

    def run(*args: str | Path) -> Result:
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return run


@pytest.fixture
def use_lab(monkeypatch: pytest.MonkeyPatch) -> Callable[[Lab], Path]:
    """Export a lab's secrets (what `. lab.env` does) and return its pbs-storage.yaml."""

    def use(lab: Lab) -> Path:
        for key, value in lab.env.items():
            monkeypatch.setenv(key, value)
        return lab.config_path

    return use


@pytest.fixture
def lab_config(tmp_path: Path, use_lab: Callable[[Lab], Path]) -> Callable[..., Path]:
    """`lab_config(lab, edit)`: the lab's declaration, changed by `edit(data)`, in tmp_path."""

    def write(lab: Lab, edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
        use_lab(lab)
        data = yaml.safe_load(lab.config_path.read_text(encoding="utf-8"))
        data["pve"]["ca_file"] = str(lab.ca_file)
        if edit is not None:
            edit(data)
        path = tmp_path / f"pbs-storage-{len(list(tmp_path.glob('pbs-storage*')))}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path

    return write
