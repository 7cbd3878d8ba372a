"""Drift: per-property differences between the declared and the live essence of one storage."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from spec_builders import FP as OTHER_FINGERPRINT
from spec_builders import SEED_FP as FINGERPRINT
from spec_builders import entry_builder

from pbs_compliance.drift import Drift, PropertyDiff, diff
from pbs_compliance.essence import MANAGED, Essence, essence_from_api

DECLARED = Essence(
    name="pbs1",
    server="pbs.example",
    datastore="store1",
    fingerprint=FINGERPRINT,
    prune_backups=(("keep-daily", 7), ("keep-weekly", 4)),
)


# A GET /storage entry matching DECLARED; a value of None removes the key.
live_entry = entry_builder(
    storage="pbs1",
    server="pbs.example",
    datastore="store1",
    fingerprint=FINGERPRINT,
    **{"prune-backups": "keep-daily=7,keep-weekly=4"},
)


def drift_of(**changes: Any) -> Drift:
    return diff(DECLARED, essence_from_api(live_entry(**changes)))


# -- no drift -----------------------------------------------------------------------------------


def test_a_live_entry_equal_in_meaning_is_compliant() -> None:
    drift = drift_of(username="root@pam", port=8007, fingerprint=FINGERPRINT.lower())

    assert drift == Drift("pbs1", missing=False, diffs=())
    assert drift.compliant
    assert not drift.needs_recreate
    assert drift.describe() == "storage 'pbs1' matches its declaration"


@pytest.mark.parametrize(
    "prune",
    [
        "keep-weekly=4,keep-daily=7",
        "keep-weekly=4,keep-daily=7,keep-hourly=0",
        "keep-daily=7,keep-weekly=4,keep-all=0",
    ],
)
def test_prune_backups_is_compared_as_a_map_not_as_text(prune: str) -> None:
    assert drift_of(**{"prune-backups": prune}).compliant


def test_content_and_nodes_are_compared_as_sets() -> None:
    declared = replace(DECLARED, nodes=frozenset({"pve1", "pve2", "pve3"}))

    live = essence_from_api(live_entry(nodes="pve3,pve1,pve2"))

    assert diff(declared, live).compliant


def test_the_description_is_local_and_never_drift() -> None:
    assert drift_of(description="edited in the GUI").compliant


# -- each property ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "key", "declared", "live"),
    [
        ({"server": "10.0.0.5"}, "server", "pbs.example", "10.0.0.5"),
        ({"datastore": "store2"}, "datastore", "store1", "store2"),
        ({"disable": 1}, "disable", None, "1"),
        ({"content": "none"}, "content", "backup", "none"),
        ({"username": "sync@pbs!ci"}, "username", "root@pam", "sync@pbs!ci"),
        ({"fingerprint": OTHER_FINGERPRINT}, "fingerprint", FINGERPRINT, OTHER_FINGERPRINT),
        ({"fingerprint": None}, "fingerprint", FINGERPRINT, None),
        ({"port": 8207}, "port", "8007", "8207"),
        ({"namespace": "prod"}, "namespace", None, "prod"),
        ({"nodes": "pve1"}, "nodes", None, "pve1"),
        ({"max-protected-backups": 5}, "max-protected-backups", None, "5"),
        (
            {"prune-backups": "keep-daily=3"},
            "prune-backups",
            "keep-daily=7,keep-weekly=4",
            "keep-daily=3",
        ),
        (
            {"prune-backups": None},
            "prune-backups",
            "keep-daily=7,keep-weekly=4",
            "keep-all=1",
        ),
    ],
)
def test_each_managed_property_that_differs_is_one_diff_in_pve_spelling(
    changes: dict[str, Any], key: str, declared: str | None, live: str | None
) -> None:
    drift = drift_of(**changes)

    assert drift.diffs == (PropertyDiff(key, declared, live),)
    assert not drift.compliant
    assert not drift.missing


def test_every_managed_property_is_compared() -> None:
    live = Essence(
        name="pbs1",
        server="other",
        datastore="other",
        enabled=False,
        content=frozenset({"none"}),
        username="a@pbs",
        fingerprint=None,
        port=1,
        namespace="ns",
        nodes=frozenset({"pve9"}),
        max_protected_backups=1,
        prune_backups=(("keep-last", 1),),
    )

    assert [d.key for d in diff(DECLARED, live).diffs] == list(MANAGED)


def test_a_declared_node_list_against_all_nodes_live_is_drift() -> None:
    declared = replace(DECLARED, nodes=frozenset({"pve2", "pve1"}))

    assert diff(declared, essence_from_api(live_entry())).diffs == (
        PropertyDiff("nodes", "pve1,pve2", None),
    )


# -- fixed properties ---------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["server", "datastore"])
def test_a_property_pve_cannot_change_in_place_needs_recreation(key: str) -> None:
    drift = drift_of(**{key: "elsewhere"})

    assert drift.diffs[0].fixed
    assert drift.needs_recreate


def test_properties_pve_can_change_in_place_do_not_need_recreation() -> None:
    drift = drift_of(port=8207, disable=1, username="a@pbs")

    assert not any(d.fixed for d in drift.diffs)
    assert not drift.needs_recreate


# -- missing ------------------------------------------------------------------------------------


def test_a_storage_absent_from_pve_is_missing_and_says_how_to_create_it() -> None:
    drift = diff(DECLARED, None)

    assert drift == Drift("pbs1", missing=True)
    assert not drift.compliant
    assert not drift.needs_recreate
    assert drift.describe() == (
        "storage 'pbs1' is declared but does not exist in PVE\n"
        "fix: `pytest checks/ --remediate` or `pbs apply` creates it"
    )


# -- describe -----------------------------------------------------------------------------------


def test_describe_lists_each_drift_as_declared_then_live_with_the_in_place_fix() -> None:
    drift = drift_of(port=8207, nodes="pve1", **{"prune-backups": None})

    assert drift.describe() == (
        "storage 'pbs1' drifted (declared -> live):\n"
        "  port: 8007 -> 8207\n"
        "  nodes: (unset) -> pve1\n"
        "  prune-backups: keep-daily=7,keep-weekly=4 -> keep-all=1\n"
        "can be fixed in place: `pytest checks/ --remediate` or `pbs apply`"
    )


def test_describe_names_the_fixed_properties_and_the_recreate_option() -> None:
    drift = drift_of(server="10.0.0.5", datastore="store2", port=8207)

    text = drift.describe()

    assert text.splitlines()[:4] == [
        "storage 'pbs1' drifted (declared -> live):",
        "  server: pbs.example -> 10.0.0.5",
        "  datastore: store1 -> store2",
        "  port: 8007 -> 8207",
    ]
    assert "needs re-creation: PVE cannot change server, datastore in place" in text
    assert "`--remediate --allow-recreate`" in text
    assert "backups on the PBS are untouched" in text


def test_a_property_diff_reads_declared_arrow_live_with_unset_spelled_out() -> None:
    assert str(PropertyDiff("namespace", None, "prod")) == "namespace: (unset) -> prod"
    assert str(PropertyDiff("disable", "1", None)) == "disable: 1 -> (unset)"
