"""Does PVE hold each storage exactly as declared, and can every node use it?"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pbs_compliance import verdicts
from pbs_compliance.config import ComplianceConfig, StorageSpec
from pbs_compliance.evidence import Evidence

Check = Callable[[verdicts.Verdict], None]


@pytest.mark.drift
def test_drift(pbs_storage: StorageSpec, pbs_evidence: Evidence, pbs_check: Check) -> None:
    """The PVE entry exists and every managed property equals the declaration."""
    pbs_check(verdicts.drift(pbs_storage, pbs_evidence.live))


@pytest.mark.nodes
def test_node(
    pbs_node_target: tuple[StorageSpec, str | None], pbs_evidence: Evidence, pbs_check: Check
) -> None:
    """This node reports the storage enabled and active, and can log in with its password."""
    spec, node = pbs_node_target
    if node is None:
        pbs_check(verdicts.node(spec, "(unknown)", pbs_evidence.live))
    else:
        pbs_check(verdicts.node(spec, node, pbs_evidence.live))


@pytest.mark.unmanaged
def test_unmanaged(pbs_config: ComplianceConfig, pbs_evidence: Evidence, pbs_check: Check) -> None:
    """No PBS entry exists in PVE that the config does not declare."""
    pbs_check(verdicts.unmanaged(pbs_config, pbs_evidence.live))
