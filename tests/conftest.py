"""The project's own tests: lab fixtures for every test that needs a PVE, PBS or DNS to talk to."""

from __future__ import annotations

import pytest
from outer_env import clear_outer_env

pytest_plugins = ["pbs_compliance.lab.fixtures"]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No compliance or lab setting, and no NO_COLOR, leaks in from the outer environment."""
    return clear_outer_env(monkeypatch)
