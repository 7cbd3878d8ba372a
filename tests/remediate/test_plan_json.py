"""The plan's JSON form (`pbs apply --output json`, the reconcile result): every key, exactly.

A script reads these; a key that changes name or meaning breaks it silently."""

from __future__ import annotations

from remediate_strategies import ok, spec
from spec_builders import listed

from pbs_compliance.drift import Drift
from remediate import Action, Kind, Plan, plan
from remediate.plan import PlanOptions

NAME = "homelab-backup"


def test_an_update_back_to_the_defaults_deletes_and_names_each_drift_in_json() -> None:
    declared = spec()
    entry = listed(declared, port=8008, **{"prune-backups": "keep-last=1"})
    result = plan([declared], [entry], PlanOptions(), {NAME: ok()})
    assert result.to_dict() == {
        "empty": False,
        "actions": [
            {
                "storage": NAME,
                "kind": "update",
                "params": {},
                "delete": ["port", "prune-backups"],
                "reason": "",
                "password_needed": False,
                "enable_after": False,
                "missing": False,
                "drift": [
                    {"property": "port", "declared": "8007", "live": "8008"},
                    {"property": "prune-backups", "declared": "keep-all=1", "live": "keep-last=1"},
                ],
            }
        ],
    }


def test_a_missing_entry_noted_and_an_empty_plan_in_json() -> None:
    note = Action(NAME, Kind.NOTE, reason="not in PVE", password_needed=True, enable_after=True)
    assert note.to_dict() == {
        "storage": NAME,
        "kind": "note",
        "params": {},
        "delete": [],
        "reason": "not in PVE",
        "password_needed": True,
        "enable_after": True,
        "missing": False,
        "drift": [],
    }
    missing = Action(NAME, Kind.NOTE, drift=Drift(NAME, missing=True))
    assert (missing.to_dict()["missing"], missing.to_dict()["drift"]) == (True, [])
    assert Plan([]).to_dict() == {"empty": True, "actions": []}
    declared = spec()
    same = plan([declared], [listed(declared)], PlanOptions(), {NAME: ok()})
    assert same.to_dict() == {"empty": True, "actions": []}
