"""Every action of the plan whole: the reason a person reads, the drift and digest it carries,
the lines `pbs apply` prints, and `missing` in a note (it reaches `pbs apply --output json`).

`test_remediate_plan.py` proves the safety rules by kind; these tests pin what each rule says.
"""

from __future__ import annotations

import pytest
from remediate_strategies import OTHER_FP, ok, spec
from spec_builders import DIGEST
from spec_builders import listed as live_of

from pbs_compliance.config.model import StorageSpec
from pbs_compliance.drift import Drift, PropertyDiff, diff
from pbs_compliance.essence import essence_from_api, essence_of, to_api_params
from remediate import Action, Kind, PlanOptions, Reachability, plan

NAME = "homelab-backup"
DEFAULTS = PlanOptions()
UNTOUCHED = "backups on the PBS are untouched"
MISSING = Drift(NAME, missing=True)
NO_PASSWORD = "`password: ${ENV_VAR}` or `password_file`"


def drift_of(declared: StorageSpec, entry: dict[str, object]) -> Drift:
    return diff(essence_of(declared), essence_from_api(entry))


def one(
    declared: StorageSpec,
    entry: dict[str, object] | None,
    reach: Reachability | None = None,
    options: PlanOptions = DEFAULTS,
) -> Action:
    result = plan(
        [declared], [] if entry is None else [entry], options, {NAME: reach} if reach else None
    )
    assert len(result.actions) == 1, result.describe()
    return result.actions[0]


def refused(reason: str, drift: Drift = MISSING, digest: str | None = None) -> Action:
    return Action(NAME, Kind.REFUSE, drift=drift, reason=reason, digest=digest)


# ---- refusals: the reason is the whole message ------------------------------------------


def test_a_non_pbs_storage_under_the_declared_name_is_refused_and_printed_as_missing() -> None:
    action = one(spec(), {"storage": NAME, "type": "dir", "path": "/srv", "digest": DIGEST})
    reason = (
        f"a 'dir' storage is named '{NAME}'; this tool never touches non-PBS storages: rename "
        "the declaration or the other storage"
    )
    assert action == refused(reason)
    assert action.lines() == [f"! {NAME}  refuse  (missing in PVE)", f"    {reason}"]


def test_a_certificate_the_server_does_not_serve_refuses_with_the_served_fingerprint() -> None:
    declared = spec()
    entry = live_of(declared, port=8008)
    action = one(declared, entry, ok(OTHER_FP.lower()))
    assert action == refused(
        f"pbs1.lab serves a certificate with fingerprint {OTHER_FP}, not the declared one; "
        "nothing is written from an out-of-date declaration. If the new certificate is "
        f"expected: `pbs fingerprint --update {NAME}`",
        drift_of(declared, entry),
        DIGEST,
    )
    assert action.lines()[0] == f"! {NAME}  refuse  port: 8008 -> 8007"


@pytest.mark.parametrize(
    ("reach", "why"),
    [
        (
            None,
            "no connectivity evidence for pbs1.lab: run the probes (DNS, TCP, TLS) first; "
            "an entry is only {verb}d after they passed",
        ),
        (
            Reachability(False, None),
            "the connectivity checks of pbs1.lab:8007 failed (no detail); not {verb}d until "
            "they pass",
        ),
        (
            Reachability(False, None, "port 8007: connection refused"),
            "the connectivity checks of pbs1.lab:8007 failed (port 8007: connection refused); "
            "not {verb}d until they pass",
        ),
    ],
)
def test_a_create_or_recreate_without_passed_probes_is_refused_saying_which(
    reach: Reachability | None, why: str
) -> None:
    assert one(spec(), None, reach) == refused(why.format(verb="create"))
    declared = spec()
    moved = live_of(declared, server="pbs2.lab")
    recreate = one(declared, moved, reach, PlanOptions(allow_recreate=True))
    assert recreate == refused(why.format(verb="re-create"), drift_of(declared, moved), DIGEST)


def test_a_create_without_the_password_is_refused_naming_both_ways_to_declare_it() -> None:
    assert one(spec(password=None), None, ok()) == refused(
        "cannot create without the password: PVE could never log in to the PBS; declare "
        + NO_PASSWORD
    )


def test_a_fixed_property_change_without_permission_is_refused_naming_every_fixed_key() -> None:
    declared = spec()
    entry = live_of(declared, server="pbs2.lab", datastore="store2")
    action = one(declared, entry, ok())
    assert action == refused(
        "PVE cannot change server, datastore in place; allow re-creation (`--allow-recreate`) "
        f"to delete and re-create the PVE entry - {UNTOUCHED}",
        drift_of(declared, entry),
        DIGEST,
    )
    assert action.lines() == [
        f"! {NAME}  refuse  server: pbs2.lab -> pbs1.lab",
        f"! {NAME}  refuse  datastore: store2 -> store1",
        f"    {action.reason}",
    ]


def test_a_recreate_without_the_password_is_refused_before_anything_is_deleted() -> None:
    declared = spec(password=None)
    entry = live_of(declared, server="pbs2.lab")
    assert one(declared, entry, ok(), PlanOptions(allow_recreate=True)) == refused(
        "re-creating (for server) deletes PVE's stored password and none is declared; "
        f"declare {NO_PASSWORD} first",
        drift_of(declared, entry),
        DIGEST,
    )


@pytest.mark.parametrize(
    ("reach", "seen"),
    [
        (None, "no probe ran"),
        (Reachability(False, None), "no TLS handshake"),
        (Reachability(False, None, "TLS: timed out after 5.0 s"), "TLS: timed out after 5.0 s"),
    ],
)
def test_a_fingerprint_change_without_a_served_certificate_is_refused_saying_why(
    reach: Reachability | None, seen: str
) -> None:
    declared = spec()
    entry = live_of(declared, fingerprint=OTHER_FP)
    assert one(declared, entry, reach) == refused(
        "changing the fingerprint needs proof that pbs1.lab serves the declared certificate "
        f"({seen}); nothing written",
        drift_of(declared, entry),
        DIGEST,
    )


@pytest.mark.parametrize(
    ("problem", "shown"), [("", "no detail"), ("dns: NXDOMAIN", "dns: NXDOMAIN")]
)
def test_enabling_with_failed_probes_is_refused_with_the_problem(problem: str, shown: str) -> None:
    declared = spec()
    entry = live_of(declared, disable=1)
    assert one(declared, entry, Reachability(False, None, problem)) == refused(
        f"not enabled: the connectivity checks of pbs1.lab:8007 failed ({shown}); every node "
        "would log errors",
        drift_of(declared, entry),
        DIGEST,
    )


# ---- creates and re-creates: the reason says how the entry comes up ----------------------


def created(declared: StorageSpec, reason: str, **overrides: object) -> Action:
    params = dict(to_api_params(declared))
    params["disable"] = "1"
    values: dict[str, object] = {
        "storage": NAME,
        "kind": Kind.CREATE,
        "params": params,
        "drift": MISSING,
        "reason": reason,
        "password_needed": True,
        "enable_after": declared.enabled,
        "nodes": declared.nodes,
    }
    values.update(overrides)
    return Action(**values)  # type: ignore[arg-type]


def test_an_enabled_create_says_it_is_enabled_once_every_node_reaches_the_pbs() -> None:
    declared = spec(nodes=["pve2", "pve1"])
    reason = "created disabled, enabled once every node it applies to reaches the PBS"
    action = one(declared, None, ok())
    assert action == created(declared, reason)
    assert action.nodes == ("pve1", "pve2")
    # A passed probe without a served fingerprint adds nothing for an enabled entry.
    assert one(declared, None, Reachability(True, None)).reason == reason


@pytest.mark.parametrize(
    ("reach", "suffix"),
    [
        (None, ""),
        (ok(), ""),
        (Reachability(False, None), "; its fingerprint is unconfirmed (no TLS handshake)"),
        (
            Reachability(False, None, "dns: NXDOMAIN"),
            "; its fingerprint is unconfirmed (dns: NXDOMAIN)",
        ),
    ],
)
def test_a_disabled_create_says_as_declared_and_whether_its_fingerprint_is_confirmed(
    reach: Reachability | None, suffix: str
) -> None:
    declared = spec(enabled=False)
    assert one(declared, None, reach) == created(declared, "created disabled, as declared" + suffix)


def test_a_recreate_says_what_it_deletes_and_that_backups_stay() -> None:
    declared = spec()
    entry = live_of(declared, server="pbs2.lab")
    action = one(declared, entry, ok(), PlanOptions(allow_recreate=True))
    assert action == created(
        declared,
        "deletes the PVE entry and creates it again (created disabled, enabled once every node "
        f"it applies to reaches the PBS) - {UNTOUCHED}",
        kind=Kind.RECREATE,
        drift=drift_of(declared, entry),
        digest=DIGEST,
    )
    params = " ".join(f"{k}={v}" for k, v in action.params.items() if k not in ("storage", "type"))
    assert action.lines() == [
        f"-/+ {NAME}  recreate  server: pbs2.lab -> pbs1.lab",
        f"-/+ {NAME}  recreate  {params} password=(set)",
        f"    {action.reason}",
    ]


# ---- updates: the digest, the nodes and the password line ---------------------------------


def test_an_update_carries_the_digest_and_the_declared_nodes() -> None:
    declared = spec(nodes=["pve1"])
    entry = live_of(declared, port=8008)
    assert one(declared, entry, ok()) == Action(
        NAME,
        Kind.UPDATE,
        params={},
        delete=("port",),
        drift=drift_of(declared, entry),
        digest=DIGEST,
        nodes=("pve1",),
    )


def test_an_entry_without_a_digest_or_an_empty_one_plans_without_a_digest() -> None:
    declared = spec()
    for digest in (None, ""):
        assert one(declared, live_of(declared, port=8008, digest=digest), ok()).digest is None


def test_an_enable_with_the_password_says_every_node_logs_in_with_it_first() -> None:
    declared = spec()
    action = one(declared, live_of(declared, disable=1), ok())
    assert (action.kind, action.password_needed) == (Kind.ENABLE, True)
    assert action.lines() == [
        f"~ {NAME}  enable  disable: 1 -> (unset)",
        f"~ {NAME}  enable  password: (stored) -> (declared, every node logs in with it first)",
    ]


def test_a_rotation_says_rotated() -> None:
    declared = spec()
    action = one(declared, live_of(declared), ok(), PlanOptions(rotate_secrets=True))
    assert action.lines() == [f"~ {NAME}  update  password: (stored) -> (declared, rotated)"]


# ---- unmanaged entries: a note (or a delete) with what PVE holds --------------------------


def test_an_undeclared_entry_is_a_note_that_is_not_missing_with_its_server_and_datastore() -> None:
    stray = {"storage": "stray", "type": "pbs", "server": "pbs9.lab", "datastore": ""}
    note = plan([], [stray], DEFAULTS).actions[0]
    shown = Drift(
        "stray",
        missing=False,
        diffs=(PropertyDiff("server", None, "pbs9.lab"), PropertyDiff("datastore", None, None)),
    )
    reason = "not declared; left alone (`--prune-unmanaged` would delete the PVE entry)"
    assert note == Action("stray", Kind.NOTE, drift=shown, reason=reason)
    assert note.drift is not None
    assert note.drift.missing is False
    assert note.lines() == ["# stray  note  server=pbs9.lab datastore=(unset)", f"    {reason}"]
    pruned = plan([], [stray], PlanOptions(prune_unmanaged=True)).actions[0]
    assert pruned == Action(
        "stray",
        Kind.DELETE,
        drift=shown,
        reason=f"not declared; deletes the PVE entry only - {UNTOUCHED}",
    )


# ---- the plan's own errors and an action's lines without drift -----------------------------


def test_names_declared_twice_are_all_named_and_only_they() -> None:
    declared = [spec("s-b"), spec("s-a"), spec("s-c"), spec("s-b"), spec("s-a")]
    with pytest.raises(ValueError, match=r"^storage names declared more than once: s-a, s-b$"):
        plan(declared, [], DEFAULTS)


def test_an_action_refuses_every_empty_value_naming_them_all() -> None:
    with pytest.raises(ValueError, match=r"^s1: empty value for port, namespace$"):
        Action("s1", Kind.UPDATE, params={"port": "", "namespace": "", "content": "backup"})


def test_lines_of_actions_without_drift_show_the_head_and_the_reason() -> None:
    assert Action("s1", Kind.NOTE, reason="why").lines() == ["# s1  note", "    why"]
    assert Action("s1", Kind.UPDATE).lines() == ["~ s1  update"]
    create = Action("s1", Kind.CREATE, params={"storage": "s1", "type": "pbs", "server": "a"})
    assert create.lines() == ["+ s1  create  server=a"]
    assert Action("s1", Kind.DELETE, reason="gone").lines() == ["- s1  delete", "    gone"]
