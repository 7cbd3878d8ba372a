"""The compliance suite's conftest: the plugins for a bare checkout, and a plain error when off.

An installed package registers `pbs_compliance.plugin` (and the remediation plugin) through its
`pytest11` entry points; this only matters for a checkout used without `pip install -e .`, since
`pytest checks/` roots the run here (checks/pytest.ini) and the repository's conftest is not read.
"""

from __future__ import annotations

import importlib.metadata
from typing import NoReturn

import pytest

from pbs_compliance import plugin as core
from pbs_compliance.plugin import OFF

PLUGINS = ["pbs_compliance.plugin", "remediate.pytest_plugin"]


def _installed() -> set[str]:
    return {ep.value for ep in importlib.metadata.entry_points(group="pytest11")}


pytest_plugins = [p for p in PLUGINS if p not in _installed()]


class _Off:
    """The checks' fixtures when the plugin is not loaded at all (`-p no:pbs_compliance`)."""

    @pytest.fixture
    def pbs_storage(self) -> NoReturn:
        pytest.fail(OFF, pytrace=False)

    @pytest.fixture
    def pbs_node_target(self) -> NoReturn:
        pytest.fail(OFF, pytrace=False)

    @pytest.fixture
    def pbs(self) -> NoReturn:
        pytest.fail(OFF, pytrace=False)


def pytest_configure(config: pytest.Config) -> None:
    # Loaded, the plugin has these fixtures (documented in `pytest --fixtures`) and says OFF
    # itself when it is switched off.
    if not config.pluginmanager.is_registered(core):
        config.pluginmanager.register(_Off(), "pbs-compliance-off")
