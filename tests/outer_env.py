"""The environment of the outer test run, kept out of the runs a test starts."""

from __future__ import annotations

import os

import pytest

# The compliance tool's and the lab's settings (PBS_COMPLIANCE_*, PBS_LAB_*).
ENV_PREFIXES = ("PBS_COMPLIANCE_", "PBS_LAB_")


def clear_outer_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Unset every compliance or lab setting, and NO_COLOR, for the rest of the test."""
    for key in list(os.environ):
        if key.startswith(ENV_PREFIXES) or key == "NO_COLOR":
            monkeypatch.delenv(key)
    return monkeypatch
