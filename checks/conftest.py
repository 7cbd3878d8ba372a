"""The compliance suite's conftest: the plugins for a bare checkout, and a plain error when off.

An installed package registers `pbs_compliance.plugin` (and the remediation plugin) through its
`pytest11` entry points; this only matters for a checkout used without `pip install -e .`, since
`pytest checks/` roots the run here (checks/pytest.ini) and the repository's conftest is not read.
"""

from __future__ import annotations

import importlib.metadata
from typing import NoReturn

import pytest

PLUGINS = ["pbs_compliance.plugin", "remediate.pytest_plugin"]
OFF = (  # the plugin's own words (pbs_compliance.plugin.OFF), also when it is not loaded at all
    "pbs-compliance is off for this run: run `pytest checks/` (checks/pytest.ini switches it "
    "on), or pass --pbs-config PATH"
)


def _installed() -> set[str]:
    return {ep.value for ep in importlib.metadata.entry_points(group="pytest11")}


pytest_plugins = [p for p in PLUGINS if p not in _installed()]


# The plugin parametrises these when it is on; these fixtures only answer when it is off.
@pytest.fixture
def pbs_storage() -> NoReturn:
    pytest.fail(OFF, pytrace=False)


@pytest.fixture
def pbs_node_target() -> NoReturn:
    pytest.fail(OFF, pytrace=False)
