"""What other plugins may add to a compliance run (as pytest-xdist's `newhooks.py` does).

Implement these in a plugin or a `conftest.py`; the core registers the specs in
`pytest_addhooks`, so pytest checks your implementations' signatures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pbs_compliance.settings import RunSettings
    from pbs_compliance.verdicts import Verdict


@pytest.hookspec
def pytest_pbs_gather(settings: RunSettings) -> Mapping[str, Any] | None:
    """Extra evidence, gathered once per run on the controller while pytest collects.

    Return `{key: data}` with JSON-serialisable data (dicts, lists, strings, numbers, None):
    it is shipped to xdist workers with the rest of the evidence, and every case reads it as
    `pbs.evidence.extra[key]`. Raising is that key's failure, not the run's: the key then holds
    `{"error": "..."}`. Called in a background thread; keep secrets out of the data.
    """


@pytest.hookspec
def pytest_pbs_report_facts(item: pytest.Item, verdict: Verdict) -> list[tuple[str, str]] | None:
    """Extra (name, value) rows for the case's evidence table in the HTML report.

    Called on the process that ran the case, after its verdict, only when an HTML report is
    written. Return None (or nothing) to add nothing.
    """
