"""PVE's values read one way everywhere: flags, lists, the nodes an entry applies to."""

from __future__ import annotations

import pytest

from pbs_compliance.pvevalues import (
    active,
    applies_to,
    enabled,
    entry_nodes,
    flag,
    flag_param,
    join_list,
    split_list,
    text,
)


@pytest.mark.parametrize("value", [1, "1", True, "true", "True", "yes", "on", 2, " 1 "])
def test_flag_true_as_pve_sends_it(value: object) -> None:
    assert flag(value) is True


@pytest.mark.parametrize("value", [None, 0, "0", False, "", "false", "False", "no", "OFF", " 0"])
def test_flag_false_as_pve_sends_it(value: object) -> None:
    assert flag(value) is False


def test_flag_param_is_what_pve_accepts() -> None:
    # PVE's type check refuses `True`: a form body must say 1 or 0
    assert (flag_param(True), flag_param(False)) == ("1", "0")


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({}, True),  # GET /storage omits `disable` on an enabled entry
        ({"disable": 1}, False),  # JSON number from GET
        ({"disable": "1"}, False),  # form text, as in POST parameters
        ({"disable": "0"}, True),
        ({"disable": ""}, True),
        ({"disable": None}, True),
        ({"disable": False}, True),
        ({"disable": True}, False),
    ],
)
def test_enabled_reads_the_disable_flag(entry: dict[str, object], expected: bool) -> None:
    assert enabled(entry) is expected


@pytest.mark.parametrize(
    ("view", "expected"),
    [
        ({"active": 1}, True),
        ({"active": "1"}, True),
        ({"active": True}, True),
        ({"active": 0}, False),
        ({"active": "0"}, False),  # a string "0" is not active (Python would call it truthy)
        ({}, False),
        (None, False),  # the node does not list the entry
    ],
)
def test_active_reads_a_node_view(view: dict[str, object] | None, expected: bool) -> None:
    assert active(view) is expected


def test_split_list_takes_pves_separators_and_keeps_order() -> None:
    assert split_list("pve3,pve1;pve2 pve4\tpve5") == ["pve3", "pve1", "pve2", "pve4", "pve5"]
    assert split_list(",,backup,") == ["backup"]
    assert split_list(None) == []
    assert split_list("") == []


def test_join_list_is_one_stable_spelling() -> None:
    assert join_list(["pve2", "pve1", "pve2"]) == "pve1,pve2"
    assert join_list(frozenset({"none"})) == "none"


def test_text_treats_empty_as_unset() -> None:
    assert text(None) is None
    assert text("") is None
    assert text(8007) == "8007"
    assert text("prod") == "prod"


def test_entry_nodes_is_none_without_a_restriction() -> None:
    assert entry_nodes({"storage": "a"}) is None
    assert entry_nodes({"nodes": ""}) is None
    assert entry_nodes({"nodes": "pve2, pve1"}) == frozenset({"pve1", "pve2"})


def test_applies_to_filters_and_sorts_the_clusters_nodes() -> None:
    cluster = ["pve3", "pve1", "pve2"]
    assert applies_to(None, cluster) == ["pve1", "pve2", "pve3"]
    assert applies_to(frozenset(), cluster) == ["pve1", "pve2", "pve3"]
    assert applies_to(("pve2", "pve9"), cluster) == ["pve2"]  # a node PVE lacks is not invented
    assert applies_to(entry_nodes({"nodes": "pve3;pve1"}), cluster) == ["pve1", "pve3"]
