"""Root conftest: nothing but making the plugin available when the package is not installed.

An installed package registers `pbs_compliance.plugin` through its `pytest11` entry point; this
guard only matters for a bare checkout used without `pip install -e .`.
"""

from __future__ import annotations

import importlib.metadata

PLUGINS = ["pbs_compliance.plugin", "remediate.pytest_plugin"]


def _installed() -> set[str]:
    return {ep.value for ep in importlib.metadata.entry_points(group="pytest11")}


pytest_plugins = [p for p in PLUGINS if p not in _installed()]
