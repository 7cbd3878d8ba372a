"""`waivers:` in the config (issue #14): required fields, a year ahead at most, declared storages
and nodes, each problem at its line; and the pure rules of `pbs_compliance.waivers`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from config_helpers import Load, Problem, Problems
from spec_builders import storage_yaml

from pbs_compliance import registry, waivers
from pbs_compliance.config import ComplianceConfig
from pbs_compliance.config.waiver_model import Waiver

TODAY = {"PBS_COMPLIANCE_TODAY": "2030-02-28"}


def config(*waiver_lines: str, nodes: str = "") -> str:
    # `waivers:` on line 6, or 7 with nodes
    return storage_yaml(*([f"    nodes: {nodes}"] if nodes else []), "waivers:", *waiver_lines)


def test_a_valid_waiver_is_loaded_with_where_it_is_declared(load: Load) -> None:
    loaded = load(
        config(
            "  - storage: pbs1",
            "    check: nodes",
            "    node: pve2",
            "    reason: pve2 in maintenance (OPS-4)",
            "    expires: 2030-03-10",
            '  - {storage: "*", check: unmanaged, reason: migration, expires: "2031-02-28"}',
        ),
        env=TODAY,
    )
    first, second = loaded.waivers
    assert (first.storage, first.check, first.node) == ("pbs1", "nodes", "pve2")
    assert first.expires == dt.date(2030, 3, 10)
    assert first.where == f"{loaded.source}:7"
    assert (second.storage, second.expires, second.where) == (
        "*",
        dt.date(2031, 2, 28),
        f"{loaded.source}:12",
    )


@pytest.mark.parametrize(
    ("missing", "field"), [("reason", "reason"), ("expires", "expires")], ids=str
)
def test_reason_and_expires_are_required(problem: Problem, missing: str, field: str) -> None:
    entry = {"storage": "pbs1", "check": "dns", "reason": "r", "expires": "2030-03-01"}
    del entry[missing]
    text = ", ".join(f"{k}: {v}" for k, v in entry.items())
    issue = problem(config(f"  - {{{text}}}"), env=TODAY)
    assert (issue.line, issue.field) == (7, f"waivers[0].{field}")
    assert issue.message == "required field is missing"
    assert issue.fix == f"add `{field}:`"


def test_an_empty_reason_is_refused(problem: Problem) -> None:
    issue = problem(
        config("  - {storage: pbs1, check: dns, reason: '  ', expires: 2030-03-01}"), env=TODAY
    )
    assert (issue.line, issue.field) == (7, "waivers[0].reason")
    assert "a waiver needs a reason" in issue.message


def test_an_expiry_more_than_a_year_ahead_is_an_error_at_its_line(problems: Problems) -> None:
    text = config(
        "  - {storage: pbs1, check: dns, reason: a, expires: 2031-02-28}",  # exactly a year: ok
        "  - {storage: pbs1, check: tls, reason: b, expires: 2031-03-01}",
    )
    (issue,) = problems(text, env=TODAY)
    assert (issue.line, issue.field) == (8, "waivers[1].expires")
    assert issue.message == "2031-03-01 is more than a year ahead (today is 2030-02-28, UTC)"
    assert "until 2031-02-28 at the latest" in issue.fix


def test_a_year_from_29_february_ends_on_28_february(load: Load, problems: Problems) -> None:
    leap = {"PBS_COMPLIANCE_TODAY": "2028-02-29"}
    ok = config("  - {storage: pbs1, check: dns, reason: a, expires: 2029-02-28}")
    assert load(ok, env=leap).waivers[0].expires == dt.date(2029, 2, 28)
    bad = config("  - {storage: pbs1, check: dns, reason: a, expires: 2029-03-01}")
    assert problems(bad, env=leap)[0].field == "waivers[0].expires"


def test_an_undeclared_storage_is_an_error_with_the_close_name(problem: Problem) -> None:
    issue = problem(
        config("  - {storage: pbs2, check: dns, reason: a, expires: 2030-03-01}"), env=TODAY
    )
    assert (issue.line, issue.field) == (7, "waivers[0].storage")
    assert issue.message == "no storage `pbs2` is declared under pbs_storages"
    assert issue.fix == 'did you mean `pbs1`? name a declared storage, or "*" for every storage'


def test_a_node_no_storage_names_is_an_error_when_storages_name_nodes(
    load: Load, problem: Problem
) -> None:
    bad = config(
        "  - {storage: pbs1, check: nodes, node: pve9, reason: a, expires: 2030-03-01}",
        nodes="[pve1, pve2]",
    )
    issue = problem(bad, env=TODAY)
    assert (issue.line, issue.field) == (8, "waivers[0].node")
    assert (
        issue.message == "node `pve9` is not one the storage applies to (its `nodes:`: pve1, pve2)"
    )
    # "*" with every storage naming its nodes: one of those.
    every = bad.replace("storage: pbs1, check: nodes", "storage: '*', check: nodes")
    assert problem(every, env=TODAY).field == "waivers[0].node"
    # A storage on every node (no `nodes:`): PVE's list is not known here, so any valid name is
    # accepted (one PVE lacks is reported as stale at run time); "*" too when one storage is so.
    free = config("  - {storage: pbs1, check: nodes, node: pve9, reason: a, expires: 2030-03-01}")
    assert load(free, env=TODAY).waivers[0].node == "pve9"
    invalid = config(
        "  - {storage: pbs1, check: nodes, node: 'pve_9', reason: a, expires: 2030-03-01}"
    )
    assert problem(invalid, env=TODAY).message == "'pve_9' is not a valid PVE node name"


def test_dates_with_a_time_and_non_dates_are_refused(problems: Problems) -> None:
    text = config(
        "  - {storage: pbs1, check: dns, reason: a, expires: 2030-03-01T12:00:00}",
        "  - {storage: pbs1, check: dns, reason: a, expires: soon}",
        "  - {storage: pbs1, check: Dns, reason: a, expires: 2030-03-01, owner: me}",
    )
    found = {(i.line, i.field): i.message for i in problems(text, env=TODAY)}
    assert "has a time of day" in found[(7, "waivers[0].expires")]
    assert (
        found[(8, "waivers[1].expires")]
        == "'soon' is not a date; write YYYY-MM-DD, e.g. 2026-03-31"
    )
    assert found[(9, "waivers[2].check")].startswith("'Dns' is not a check name")
    assert found[(9, "waivers[2].owner")] == "unknown key `owner`"


def test_waivers_must_be_a_list_and_a_bad_pinned_today_is_named(problems: Problems) -> None:
    (issue,) = problems(config().replace("waivers:\n", "waivers: {storage: pbs1}\n"), env=TODAY)
    assert (issue.field, issue.message) == ("waivers", "must be a list of waivers")
    text = config("  - {storage: pbs1, check: dns, reason: a, expires: 2030-03-01}")
    (issue,) = problems(text, env={"PBS_COMPLIANCE_TODAY": "tomorrow"})
    assert "PBS_COMPLIANCE_TODAY='tomorrow' is not a date" in issue.message


# -- the pure rules -------------------------------------------------------------------------------


def waiver(
    storage: str = "pbs1", check: str = "nodes", node: str | None = None, **kw: str
) -> Waiver:
    return Waiver(
        storage=storage,
        check=check,
        node=node,
        reason=kw.get("reason", "why"),
        expires=dt.date.fromisoformat(kw.get("expires", "2030-03-10")),
        where=kw.get("where", "c.yaml:7"),
    )


DAY = dt.date(2030, 3, 1)


def test_which_cases_a_waiver_covers() -> None:
    one_node = waiver(node="pve2")
    assert one_node.covers("pbs1", "nodes", "pve2")
    assert not one_node.covers("pbs1", "nodes", "pve1")
    assert not one_node.covers("pbs2", "nodes", "pve2")
    assert not one_node.covers("pbs1", "drift", "pve2")
    every = waiver(storage="*", check="unmanaged")
    assert every.covers(registry.CLUSTER, "unmanaged", None)
    assert waiver().covers("pbs1", "nodes", "pve3")  # no node: every node


def test_decide_waived_unneeded_expired_and_skips() -> None:
    w = waiver(expires="2030-03-02")
    assert waivers.decide([w], "pbs1", "nodes", "pve1", "fail", DAY).state == "waived"
    assert waivers.decide([w], "pbs1", "nodes", "pve1", "pass", DAY).state == "unneeded"
    assert waivers.decide([w], "pbs1", "nodes", "pve1", "skip", DAY).state == "none"
    # On the expiry date the waiver is ignored.
    on_expiry = waivers.decide([w], "pbs1", "nodes", "pve1", "fail", dt.date(2030, 3, 2))
    assert on_expiry.state == "expired"
    assert on_expiry.expired_line.startswith(
        "waiver of nodes on pbs1 (c.yaml:7) expired on 2030-03-02, so this failure counts again"
    )
    assert waivers.decide([w], "pbs1", "nodes", "pve1", "pass", dt.date(2030, 3, 2)).state == "none"
    # An expired waiver beside one in force: the one in force wins.
    newer = waiver(expires="2030-04-01", where="c.yaml:12")
    decided = waivers.decide([w, newer], "pbs1", "nodes", "pve1", "fail", dt.date(2030, 3, 5))
    assert (decided.state, decided.waiver) == ("waived", newer)
    assert decided.reason == "waived until 2030-04-01 (c.yaml:12): why"
    assert decided.properties == [("waived", "true"), ("waiver_expires", "2030-04-01")]


def test_expiring_within_14_days_boundaries() -> None:
    inside = waiver(expires="2030-03-15")  # 14 days ahead
    outside = waiver(expires="2030-03-16", where="c.yaml:9")
    gone = waiver(expires="2030-03-01", where="c.yaml:11")  # expires today: not in force
    assert waivers.expiring([outside, inside, gone], DAY) == [inside]


def test_unknown_checks_and_stale_nodes() -> None:
    cfg = _cfg([waiver(check="nodez", where="/etc/c.yaml:9"), waiver(node="pve7")])
    (issue,) = waivers.unknown_checks(cfg, registry.names())
    assert (str(issue.file), issue.line, issue.field) == ("/etc/c.yaml", 9, "waivers.check")
    assert issue.fix.startswith("did you mean `nodes`?")
    assert waivers.stale_nodes(cfg.waivers, ["pve1", "pve2"]) == [cfg.waivers[1]]
    assert waivers.stale_nodes(cfg.waivers, []) == []  # PVE's nodes unknown: nothing judged


def _cfg(found: list[Waiver]) -> ComplianceConfig:
    return ComplianceConfig(source=Path("/etc/c.yaml"), waivers=tuple(found))
