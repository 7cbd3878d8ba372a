"""The plan is pure: every action kind and every safety rule, from raw `GET /storage` lists."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from hypothesis import HealthCheck, event, given, settings
from remediate_strategies import FP, OTHER_FP, SECRET, check_converged, ok, scenarios, spec
from spec_builders import DIGEST
from spec_builders import listed as live_of

from pbs_compliance.config.model import StorageSpec
from pbs_compliance.essence import to_api_params
from pbs_compliance.lab.storage import (
    StorageState,
    create_storage,
    delete_storage,
    list_storages,
    update_storage,
)
from remediate import Action, Kind, Plan, PlanOptions, Reachability, plan

DEFAULTS = PlanOptions()


def only(result: Plan) -> Action:
    assert len(result.actions) == 1, result.describe()
    return result.actions[0]


# ---- nothing to do ----------------------------------------------------------------------


def test_a_compliant_entry_in_pves_own_spelling_gets_no_action() -> None:
    declared = spec(
        content=["backup"],
        nodes=["pve2", "pve1"],
        prune_backups={"keep_daily": 7, "keep_weekly": 4},
        namespace="prod/vms",
    )
    entry = live_of(
        declared,
        nodes="pve1,pve2",
        fingerprint=FP.lower(),
        **{"prune-backups": "keep-weekly=4,keep-daily=7,keep-last=0"},
    )
    entry.pop("username")  # PVE omits root@pam when it was never sent
    result = plan([declared], [entry], DEFAULTS, {declared.name: ok()})
    assert result.actions == ()
    assert result.is_empty
    assert str(result) == "plan: no changes, every declared PBS storage matches"


# ---- create -----------------------------------------------------------------------------


def test_a_missing_enabled_entry_is_created_disabled_then_enabled_by_apply() -> None:
    declared = spec(nodes=["pve1"], port=8010)
    action = only(plan([declared], [], DEFAULTS, {declared.name: ok()}))
    assert action.kind == Kind.CREATE
    assert action.params == {**to_api_params(declared), "disable": "1"}
    assert action.enable_after
    assert action.nodes == ("pve1",)
    assert action.password_needed
    assert "password" not in action.params
    assert action.enables
    assert action.drift is not None
    assert action.drift.missing


def test_a_missing_disabled_entry_is_created_disabled_and_stays_so() -> None:
    declared = spec(enabled=False)
    action = only(plan([declared], [], DEFAULTS, {declared.name: ok()}))
    assert action.kind == Kind.CREATE
    assert action.params["disable"] == "1"
    assert not action.enable_after
    assert not action.enables
    assert "as declared" in action.reason


def test_a_missing_disabled_entry_needs_no_connectivity_evidence_its_probes_were_skipped() -> None:
    declared = spec(enabled=False)
    for reach in (None, Reachability(False, None, "was not probed")):
        evidence = {} if reach is None else {declared.name: reach}
        action = only(plan([declared], [], DEFAULTS, evidence))
        assert action.kind == Kind.CREATE
        assert action.params["disable"] == "1"


@pytest.mark.parametrize(
    ("reach", "why"),
    [
        (None, "no connectivity evidence"),
        (Reachability(False, None, "DNS: NXDOMAIN"), "DNS: NXDOMAIN"),
        (Reachability(False, FP, ""), "no detail"),
    ],
)
def test_a_create_needs_passed_connectivity_checks(reach: Reachability | None, why: str) -> None:
    declared = spec()
    reachability = None if reach is None else {declared.name: reach}
    action = only(plan([declared], [], DEFAULTS, reachability))
    assert action.kind == Kind.REFUSE
    assert why in action.reason
    assert not action.writes
    assert action.lines()[0] == "! homelab-backup  refuse  (missing in PVE)"


def test_a_create_needs_the_password() -> None:
    declared = spec(password=None)
    action = only(plan([declared], [], DEFAULTS, {declared.name: ok()}))
    assert action.kind == Kind.REFUSE
    assert "without the password" in action.reason


# ---- update -----------------------------------------------------------------------------


def test_a_changed_property_is_updated_with_exactly_that_parameter_and_the_digest() -> None:
    declared = spec(prune_backups={"keep_daily": 30})
    entry = live_of(declared, **{"prune-backups": "keep-daily=7"})
    action = only(plan([declared], [entry], DEFAULTS))
    assert action.kind == Kind.UPDATE
    assert action.params == {"prune-backups": "keep-daily=30"}
    assert action.delete == ()
    assert action.digest == DIGEST
    assert not action.password_needed
    assert action.lines() == [
        "~ homelab-backup  update  prune-backups: keep-daily=7 -> keep-daily=30"
    ]


@pytest.mark.parametrize(
    ("live_changes", "deleted"),
    [
        ({"namespace": "old"}, "namespace"),
        ({"nodes": "pve1,pve3"}, "nodes"),
        ({"port": 8010}, "port"),
        ({"max-protected-backups": 5}, "max-protected-backups"),
        ({"prune-backups": "keep-last=3"}, "prune-backups"),
    ],
)
def test_an_option_declared_unset_is_deleted_never_sent_empty(
    live_changes: dict[str, object], deleted: str
) -> None:
    declared = spec()
    action = only(plan([declared], [live_of(declared, **live_changes)], DEFAULTS))
    assert action.kind == Kind.UPDATE
    assert action.params == {}
    assert action.delete == (deleted,)


def test_several_changes_go_into_one_update() -> None:
    declared = spec(username="backup@pbs!pve", nodes=["pve1"], content=["none"])
    entry = live_of(declared, username="root@pam", nodes="pve1,pve2", content="backup")
    entry["namespace"] = "stale"
    action = only(plan([declared], [entry], DEFAULTS))
    assert action.kind == Kind.UPDATE
    assert action.params == {"content": "none", "username": "backup@pbs!pve", "nodes": "pve1"}
    assert action.delete == ("namespace",)
    assert [line.split("  ")[2] for line in action.lines()] == [
        "content: backup -> none",
        "username: root@pam -> backup@pbs!pve",
        "namespace: stale -> (unset)",
        "nodes: pve1,pve2 -> pve1",
    ]


def test_no_action_ever_carries_an_empty_value() -> None:
    with pytest.raises(ValueError, match="empty value for namespace"):
        Action(storage="x1", kind=Kind.UPDATE, params={"namespace": ""})


# ---- enable / disable ---------------------------------------------------------------------


def test_enabling_alone_is_an_enable_action_with_disable_0() -> None:
    declared = spec()
    action = only(plan([declared], [live_of(declared, disable=1)], DEFAULTS))
    assert action.kind == Kind.ENABLE
    assert action.params == {"disable": "0"}
    assert action.enables
    assert action.lines()[0] == "~ homelab-backup  enable  disable: 1 -> (unset)"


def test_enabled_false_disables_and_never_deletes() -> None:
    declared = spec(enabled=False)
    entry = live_of(declared, disable=None)
    for options in (DEFAULTS, PlanOptions(prune_unmanaged=True, allow_recreate=True)):
        action = only(plan([declared], [entry], options))
        assert action.kind == Kind.DISABLE
        assert action.params == {"disable": "1"}
        assert action.delete == ()
        assert not action.enables


def test_enabling_together_with_other_changes_is_one_update() -> None:
    declared = spec(max_protected_backups=3)
    entry = live_of(declared, disable=1, **{"max-protected-backups": 1})
    action = only(plan([declared], [entry], DEFAULTS))
    assert action.kind == Kind.UPDATE
    assert action.params == {"disable": "0", "max-protected-backups": "3"}
    assert action.enables


def test_enabling_an_entry_whose_probes_failed_is_refused() -> None:
    declared = spec()
    entry = live_of(declared, disable=1)
    reach = {declared.name: Reachability(False, None, "TCP: connection refused")}
    action = only(plan([declared], [entry], DEFAULTS, reach))
    assert action.kind == Kind.REFUSE
    assert "connection refused" in action.reason
    # disabling needs no connectivity
    off = spec(enabled=False)
    assert only(plan([off], [live_of(off, disable=None)], DEFAULTS, reach)).kind == Kind.DISABLE


# ---- fixed properties: re-create ----------------------------------------------------------


@pytest.mark.parametrize("key", ["server", "datastore"])
def test_a_fixed_property_change_is_refused_unless_recreate_is_allowed(key: str) -> None:
    declared = spec()
    entry = live_of(declared, **{key: "elsewhere"})
    action = only(plan([declared], [entry], DEFAULTS, {declared.name: ok()}))
    assert action.kind == Kind.REFUSE
    assert f"cannot change {key} in place" in action.reason
    assert "--allow-recreate" in action.reason
    assert "backups on the PBS are untouched" in action.reason


def test_recreate_is_delete_and_create_of_the_entry_only() -> None:
    declared = spec(prune_backups={"keep_daily": 7})
    entry = live_of(declared, server="old-pbs.lab", namespace="x")
    action = only(
        plan([declared], [entry], PlanOptions(allow_recreate=True), {"homelab-backup": ok()})
    )
    assert action.kind == Kind.RECREATE
    assert action.params == {**to_api_params(declared), "disable": "1"}
    assert action.password_needed
    assert action.enable_after
    assert action.digest == DIGEST
    assert "backups on the PBS are untouched" in action.reason
    assert action.lines()[0] == "-/+ homelab-backup  recreate  server: old-pbs.lab -> pbs1.lab"


def test_recreate_needs_the_password_because_deleting_drops_pves_copy() -> None:
    declared = spec(password=None)
    entry = live_of(declared, datastore="store9")
    action = only(
        plan([declared], [entry], PlanOptions(allow_recreate=True), {"homelab-backup": ok()})
    )
    assert action.kind == Kind.REFUSE
    assert "deletes PVE's stored password" in action.reason


def test_recreate_needs_passed_connectivity_checks() -> None:
    declared = spec()
    entry = live_of(declared, server="old.lab")
    reach = {declared.name: Reachability(False, None, "DNS: NXDOMAIN")}
    action = only(plan([declared], [entry], PlanOptions(allow_recreate=True), reach))
    assert action.kind == Kind.REFUSE
    assert "not re-created" in action.reason


# ---- fingerprints -------------------------------------------------------------------------


def test_a_fingerprint_the_server_does_not_serve_refuses_the_whole_storage() -> None:
    declared = spec(prune_backups={"keep_daily": 30})
    entry = live_of(declared, fingerprint=OTHER_FP, **{"prune-backups": "keep-daily=7"})
    action = only(plan([declared], [entry], DEFAULTS, {declared.name: ok(OTHER_FP.lower())}))
    assert action.kind == Kind.REFUSE
    assert "pbs fingerprint --update homelab-backup" in action.reason
    assert OTHER_FP in action.reason
    assert not action.params
    assert not action.delete
    # the refusal still shows what differs
    assert any("prune-backups" in line for line in action.lines())


def test_a_renewed_certificate_is_reported_even_when_pve_matches_the_declaration() -> None:
    declared = spec()
    action = only(plan([declared], [live_of(declared)], DEFAULTS, {declared.name: ok(OTHER_FP)}))
    assert action.kind == Kind.REFUSE
    assert "pbs fingerprint --update" in action.reason


def test_a_missing_entry_with_a_mismatched_certificate_is_not_created() -> None:
    declared = spec()
    action = only(plan([declared], [], DEFAULTS, {declared.name: ok(OTHER_FP)}))
    assert action.kind == Kind.REFUSE


def test_a_fingerprint_is_pushed_when_the_server_serves_it() -> None:
    declared = spec()
    entry = live_of(declared, fingerprint=OTHER_FP)
    action = only(plan([declared], [entry], DEFAULTS, {declared.name: ok(FP.lower())}))
    assert action.kind == Kind.UPDATE
    assert action.params == {"fingerprint": FP}


@pytest.mark.parametrize(
    ("reach", "why"),
    [(None, "no probe ran"), (Reachability(False, None, "TCP: timed out"), "TCP: timed out")],
)
def test_a_fingerprint_change_without_evidence_is_refused(
    reach: Reachability | None, why: str
) -> None:
    declared = spec()
    entry = live_of(declared, fingerprint=OTHER_FP)
    reachability = None if reach is None else {declared.name: reach}
    action = only(plan([declared], [entry], DEFAULTS, reachability))
    assert action.kind == Kind.REFUSE
    assert why in action.reason


def test_other_properties_are_fixed_while_the_pbs_is_down() -> None:
    declared = spec(max_protected_backups=2)
    entry = live_of(declared, **{"max-protected-backups": 9})
    reach = {declared.name: Reachability(False, None, "TCP: connection refused")}
    assert only(plan([declared], [entry], DEFAULTS, reach)).kind == Kind.UPDATE


# ---- unmanaged and foreign entries -------------------------------------------------------


def test_an_undeclared_pbs_entry_gets_a_note_and_is_left_alone() -> None:
    stray = live_of(spec("stray"), server="pbs9.lab")
    result = plan([], [stray], DEFAULTS)
    action = only(result)
    assert action.kind == Kind.NOTE
    assert not action.writes
    assert result.is_empty  # notes alone do not make a plan non-empty
    assert action.lines() == [
        "# stray  note  server=pbs9.lab datastore=store1",
        "    not declared; left alone (`--prune-unmanaged` would delete the PVE entry)",
    ]


def test_an_undeclared_pbs_entry_is_deleted_only_with_prune_unmanaged() -> None:
    stray = live_of(spec("stray"))
    action = only(plan([], [stray], PlanOptions(prune_unmanaged=True)))
    assert action.kind == Kind.DELETE
    assert action.writes
    assert "backups on the PBS are untouched" in action.reason
    assert action.lines()[0] == "- stray  delete  server: pbs1.lab -> (unset)"


def test_non_pbs_storages_are_never_touched() -> None:
    local = {"storage": "local", "type": "dir", "path": "/var/lib/vz", "digest": DIGEST}
    nfs = {"storage": "nfs1", "type": "nfs", "server": "nas", "export": "/x", "digest": DIGEST}
    options = PlanOptions(prune_unmanaged=True, allow_recreate=True, rotate_secrets=True)
    assert plan([], [local, nfs], options).actions == ()


def test_a_declared_name_taken_by_a_non_pbs_storage_is_refused() -> None:
    declared = spec("nfs1")
    nfs = {"storage": "nfs1", "type": "nfs", "server": "nas", "export": "/x", "digest": DIGEST}
    options = PlanOptions(allow_recreate=True, prune_unmanaged=True)
    action = only(plan([declared], [nfs], options, {"nfs1": ok()}))
    assert action.kind == Kind.REFUSE
    assert "'nfs' storage is named 'nfs1'" in action.reason


# ---- passwords ----------------------------------------------------------------------------


def test_the_password_is_sent_on_update_only_with_rotate_secrets() -> None:
    declared = spec()
    entry = live_of(declared)
    assert plan([declared], [entry], DEFAULTS).actions == ()
    action = only(plan([declared], [entry], PlanOptions(rotate_secrets=True)))
    assert action.kind == Kind.UPDATE
    assert action.password_needed
    assert action.params == {}
    assert action.lines() == ["~ homelab-backup  update  password: (stored) -> (declared, rotated)"]
    # an enable with a rotation is an update, so the password travels in the same write
    action = only(
        plan([declared], [live_of(declared, disable=1)], PlanOptions(rotate_secrets=True))
    )
    assert action.kind == Kind.UPDATE
    assert action.password_needed


def test_rotation_skips_storages_without_a_declared_password() -> None:
    declared = spec(password=None)
    assert plan([declared], [live_of(declared)], PlanOptions(rotate_secrets=True)).is_empty


def test_the_password_never_appears_in_a_plan() -> None:
    declared = spec()
    options = PlanOptions(rotate_secrets=True, allow_recreate=True)
    result = plan([declared, spec("other")], [live_of(declared)], options, {"other": ok()})
    assert SECRET not in str(result)
    assert SECRET not in repr(result)


# ---- the plan as a whole --------------------------------------------------------------------


def test_the_plan_is_sorted_counted_and_searchable() -> None:
    a, b, c = spec("c-new"), spec("a-drift", namespace="ns"), spec("b-ok")
    live = [live_of(b, namespace=None), live_of(c), live_of(spec("z-stray"))]
    result = plan([a, b, c], live, DEFAULTS, {"c-new": ok()})
    assert [x.storage for x in result.actions] == ["a-drift", "c-new", "z-stray"]
    assert [x.kind for x in result.changes] == [Kind.UPDATE, Kind.CREATE]
    assert result.notes == (result.actions[2],)
    assert result.refusals == ()
    assert not result.is_empty
    assert result.for_storage("c-new") is result.actions[1]
    assert result.for_storage("b-ok") is None
    text = result.describe()
    assert text.splitlines()[0] == "plan (live -> declared): 1 create, 1 update"
    assert "~ a-drift  update  namespace: (unset) -> ns" in text
    assert text.splitlines()[2].startswith("+ c-new  create  server=pbs1.lab datastore=store1")
    assert text.splitlines()[2].endswith("disable=1 password=(set)")


def test_a_name_declared_twice_is_an_error() -> None:
    with pytest.raises(ValueError, match="more than once: twice"):
        plan([spec("twice"), spec("twice")], [], DEFAULTS)


def test_a_refused_only_plan_is_not_empty() -> None:
    result = plan([spec()], [], DEFAULTS)
    assert not result.is_empty
    assert result.describe().splitlines()[0] == "plan (live -> declared): 1 refuse"


# ---- Hypothesis: applying the plan converges, and a second plan is empty ----------------------


def simulate(
    live: Sequence[Mapping[str, object]], result: Plan, desired: Sequence[StorageSpec]
) -> list[dict[str, object]]:
    """PVE's update semantics in a few lines: set params, drop `delete`d keys, `disable=0`
    drops the flag, create/delete whole entries; `apply` enables an `enable_after` create."""
    entries = {str(e["storage"]): dict(e) for e in live}
    for action in result.changes:
        if action.kind in (Kind.DELETE, Kind.RECREATE):
            del entries[action.storage]
        if action.kind in (Kind.CREATE, Kind.RECREATE):
            assert action.storage not in entries
            entries[action.storage] = dict(action.params)
            if action.enable_after:
                entries[action.storage].pop("disable")
        if action.kind in (Kind.UPDATE, Kind.ENABLE, Kind.DISABLE):
            entry = entries[action.storage]
            assert not set(action.params) & set(action.delete), "PVE: cannot set and delete"
            assert not set(action.params) & {"server", "datastore", "type", "storage"}
            for key in action.delete:
                entry.pop(key, None)
            entry.update(action.params)
            if entry.get("disable") == "0":
                del entry["disable"]
    return list(entries.values())


def live_list(state: StorageState) -> list[dict[str, object]]:
    return list_storages(state, {})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_the_plan_applied_with_pve_update_semantics_converges(
    scenario: tuple[list[StorageSpec], str, dict[str, Reachability], PlanOptions],
) -> None:
    desired, cfg, reach, options = scenario
    live = live_list(StorageState.from_text(cfg))
    before = plan(desired, live, options, reach)
    for action in before.actions:
        event(f"{action.kind}")
    check_converged(desired, before, simulate(live, before, desired), options, reach)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_the_plan_applied_with_the_labs_storage_rules_converges(
    scenario: tuple[list[StorageSpec], str, dict[str, Reachability], PlanOptions],
) -> None:
    """The same property through the lab's model of PVE's storage-config code: every parameter
    the plan sends is one PVE accepts, with the digest of the list it was planned from."""
    desired, cfg, reach, options = scenario
    state = StorageState.from_text(cfg)
    before = plan(desired, live_list(state), options, reach)
    by_name = {s.name: s for s in desired}
    for action in before.changes:
        password = None
        if action.password_needed:
            secret = by_name[action.storage].password
            assert secret is not None
            password = secret.get_secret_value()
        if action.kind in (Kind.DELETE, Kind.RECREATE):
            state = delete_storage(state, {"storage": action.storage})
        if action.kind in (Kind.CREATE, Kind.RECREATE):
            assert password is not None
            params = {**action.params, "password": password}
            state, _ = create_storage(state, params, handling_node="pve1", activate=None)
            if action.enable_after:
                enable = {"storage": action.storage, "disable": "0", "digest": state.config.digest}
                state, _ = update_storage(state, enable)
        if action.kind in (Kind.UPDATE, Kind.ENABLE, Kind.DISABLE):
            params = {"storage": action.storage, **action.params, "digest": state.config.digest}
            if action.delete:
                params["delete"] = ",".join(action.delete)
            if password is not None:
                params["password"] = password
            state, _ = update_storage(state, params)
    check_converged(desired, before, live_list(state), options, reach)
