"""Root conftest: nothing but making the plugin available when the package is not installed.

An installed package registers `pbs_compliance.plugin` through its `pytest11` entry point; this
guard only matters for a bare checkout used without `pip install -e .`.
"""

from __future__ import annotations

import importlib.metadata


def _installed() -> bool:
    eps = importlib.metadata.entry_points(group="pytest11")
    return any(ep.value == "pbs_compliance.plugin" for ep in eps)


pytest_plugins = [] if _installed() else ["pbs_compliance.plugin"]
