"""Pure parts of the backup lab: PVE calendar events (schedules, next-run), PBS ACL entries,
ages, and spec validation for guests."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from pbs_compliance.calendar_event import CalendarEvent, CalendarEventError
from pbs_compliance.lab.pbs_acl import PbsAcl
from pbs_compliance.lab.scenario import Scenario, parse_age

MONDAY_NOON = dt.datetime(2026, 3, 2, 12, 0).timestamp()  # a Monday, local time


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("21:00", dt.datetime(2026, 3, 2, 21, 0)),
        ("02:30", dt.datetime(2026, 3, 3, 2, 30)),
        ("sat 03:00", dt.datetime(2026, 3, 7, 3, 0)),
        ("mon..fri 11:00", dt.datetime(2026, 3, 3, 11, 0)),
        ("sun,wed 12:00", dt.datetime(2026, 3, 4, 12, 0)),
        ("*:0/15", dt.datetime(2026, 3, 2, 12, 15)),
        ("daily", dt.datetime(2026, 3, 3, 0, 0)),
        ("monthly", dt.datetime(2026, 4, 1, 0, 0)),
        ("*-*-1..7 sat 03:00", None),  # PVE puts the weekday first: this is refused below
    ],
)
def test_next_run_of_a_schedule(schedule: str, expected: dt.datetime | None) -> None:
    if expected is None:
        with pytest.raises(CalendarEventError):
            CalendarEvent.parse(schedule)
        return
    assert CalendarEvent.parse(schedule).next_after(MONDAY_NOON) == int(expected.timestamp())


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("funday 02:00", "invalid calendar event 'funday 02:00' - invalid weekday 'funday'"),
        ("25:00", "invalid calendar event '25:00' - hour '25' out of range"),
        ("02:00 extra", "invalid calendar event '02:00 extra' - unexpected 'extra'"),
    ],
)
def test_a_bad_schedule_is_refused_naming_it(schedule: str, message: str) -> None:
    with pytest.raises(CalendarEventError) as info:
        CalendarEvent.parse(schedule)
    assert str(info.value) == message


def test_acl_entries_propagate_the_deepest_path_wins_and_tokens_are_capped() -> None:
    acl = PbsAcl(
        {
            "user@pbs": ["store1:DatastoreAdmin", "store1/secret:NoAccess"],
            "user@pbs!tok": ["/:Admin"],
            "ns@pbs": ["store1/a/b:DatastoreBackup"],
        }
    )
    assert "Datastore.Audit" in acl.privileges("user@pbs", "store1", "prod")
    assert acl.privileges("user@pbs", "store1", "secret/deeper") == frozenset()
    assert acl.privileges("user@pbs!tok", "store2") == frozenset()  # its user has nothing
    assert acl.privileges("user@pbs!tok", "store1") == acl.privileges("user@pbs", "store1")
    assert acl.privileges("ns@pbs", "store1") == frozenset()
    assert acl.any_below("ns@pbs", "store1")
    assert not acl.any_below("ns@pbs", "store2")
    assert "Datastore.Backup" in acl.privileges("anyone@pbs", "store2")  # unlisted: everything


def test_an_unknown_acl_role_names_the_roles() -> None:
    with pytest.raises(ValueError, match=r"unknown role 'Boss' \(the roles: Admin, Audit, "):
        PbsAcl({"a@pbs": ["store1:Boss"]})


@pytest.mark.parametrize(("text", "seconds"), [("50h", 180000), ("7d", 604800), ("90", 90)])
def test_ages(text: str, seconds: int) -> None:
    assert parse_age(text) == seconds


def test_a_guest_on_an_unknown_node_or_twice_is_a_spec_error() -> None:
    with pytest.raises(ValidationError, match="guest 100 is on node 'pve9', which is not one of"):
        Scenario.model_validate({"nodes": ["pve1"], "guests": [{"vmid": 100, "node": "pve9"}]})
    with pytest.raises(ValidationError, match="guest 100 is listed twice"):
        Scenario.model_validate({"nodes": ["pve1"], "guests": [{"vmid": 100, "node": "pve1"}] * 2})
    with pytest.raises(ValidationError, match="'soon' is not an age"):
        Scenario.model_validate({"jobs": [{"id": "jj", "last_run_age": "soon"}]})
