"""Collection waits for what parametrisation needs (the config and PVE's node list), never for
the probes: a PBS that hangs costs its timeout once, overlapped with collection, not after it."""

from __future__ import annotations

from pathlib import Path

import pytest
from checks_harness import BUILTIN_IDS, RunChecks

from pbs_compliance.lab.runner import Lab

WATCHER = """
from pathlib import Path

from pbs_compliance.session import STATE


def pytest_collection_finish(session):
    state = session.config.stash[STATE]
    gathered = state.evidence is not None or (state.pending is not None and state.pending.done())
    nodes = state.nodes_pending.result(timeout=0) if state.nodes_pending is not None else None
    Path("collected.txt").write_text(f"gathered={gathered} nodes={nodes}")
"""


def test_collection_ends_while_a_hung_pbs_is_still_being_probed(
    lab: Lab, run_checks: RunChecks, pytester: pytest.Pytester
) -> None:
    lab.pbs["pbs3.lab.example"].set_mode("blackhole")  # TCP accepted, TLS never answered
    (pytester.path / "watch").mkdir()
    (pytester.path / "watch" / "conftest.py").write_text(WATCHER, encoding="utf-8")

    # Every shipped check: the job cases are parametrised from the job plugin's own reads
    # (`api.gathered`), the node cases from PVE's node list; neither waits for the probes.
    run = run_checks(lab, "watch", "checks", "--probe-timeout", "4")

    collected = Path(pytester.path / "collected.txt").read_text(encoding="utf-8")
    assert collected == "gathered=False nodes=['pve1', 'pve2', 'pve3']"
    # ... and the cases are the same as ever: every node and job case made, judged on full
    # evidence.
    assert set(run.cases) == set(BUILTIN_IDS)
    assert run.failed == {"tls[media]"}
    assert "did not complete within 4 s" in run.message("tls[media]")
