"""Does PVE hold each storage exactly as declared, and can every node use it?"""

from __future__ import annotations

from pbs_compliance import verdicts
from pbs_compliance.api import Compliance, StorageSpec, check


@check("drift")
def test_drift(pbs_storage: StorageSpec, pbs: Compliance) -> None:
    """The PVE entry exists and every managed property equals the declaration."""
    pbs.check(verdicts.drift(pbs_storage, pbs.evidence.live, pbs.server(pbs_storage)))


@check("nodes")
def test_nodes(pbs_node_target: tuple[StorageSpec, str | None], pbs: Compliance) -> None:
    """This node reports the storage enabled and active, and can log in with its password."""
    spec, node = pbs_node_target
    pbs.check(verdicts.node(spec, node or "(unknown)", pbs.evidence.live, pbs.server(spec)))


@check("unmanaged")
def test_unmanaged(pbs: Compliance) -> None:
    """No PBS entry exists in PVE that the config does not declare."""
    pbs.check(verdicts.unmanaged(pbs.config, pbs.evidence.live))
