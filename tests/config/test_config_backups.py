"""`backups:` - the backup health thresholds, per storage and under `defaults:` (issue #12)."""

from __future__ import annotations

import datetime as dt

import pytest
from config_helpers import Load, Problem, Problems, StorageText, assert_issue

from pbs_compliance.config.model import (
    HEALTH_CHECKS,
    BackupHealth,
    format_duration,
    parse_duration,
)

DURATION_FIX = "write a whole number and a unit (s, m, h, d or w), e.g. `26h`, `36h` or `7d`"


def test_a_storage_without_backups_gets_the_defaults(storage_text: StorageText, load: Load) -> None:
    backups = load(storage_text()).storages[0].backups

    assert backups == BackupHealth()
    assert backups.max_age == dt.timedelta(hours=26)
    assert backups.max_used_percent == 90
    assert backups.min_days_to_full == 30
    assert backups.require_verified is False
    assert backups.verify_max_age == dt.timedelta(days=8)
    assert backups.skip == ()
    assert all(backups.judges(check) for check in HEALTH_CHECKS)


def test_every_setting_is_read(storage_text: StorageText, load: Load) -> None:
    text = storage_text(
        backups="{max_age: 36h, max_used_percent: 85, min_days_to_full: 0, "
        "require_verified: true, verify_max_age: 2w, skip: [capacity, verified]}"
    )

    backups = load(text).storages[0].backups

    assert backups.max_age == dt.timedelta(hours=36)
    assert backups.max_used_percent == 85.0
    assert backups.min_days_to_full == 0
    assert backups.require_verified is True
    assert backups.verify_max_age == dt.timedelta(weeks=2)
    assert backups.skip == ("capacity", "verified")
    assert [c for c in HEALTH_CHECKS if backups.judges(c)] == ["datastore", "backups"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("26h", 26 * 3600),
        ("36h", 36 * 3600),
        ("7d", 7 * 86400),
        ("90m", 5400),
        ("45s", 45),
        ("2w", 14 * 86400),
        ("1d12h", 36 * 3600),
        (" 8d ", 8 * 86400),
        ("3650d", 3650 * 86400),
    ],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(26 * 3600, "26h"), (8 * 86400, "8d"), (14 * 86400, "2w"), (5400, "90m"), (61, "61s")],
)
def test_durations_are_shown_as_written(seconds: int, shown: str) -> None:
    assert format_duration(dt.timedelta(seconds=seconds)) == shown
    assert parse_duration(shown) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("3x", "'3x' is not a duration"),
        ("h", "'h' is not a duration"),
        ("1.5d", "'1.5d' is not a duration"),
        ("-1h", "'-1h' is not a duration"),
        ("26", "26 is not a duration (a bare number has no unit)"),
        ("0h", "'0h' is no time at all: a duration must be longer than 0"),
        ("3651d", "'3651d' is longer than 10 years (3650d)"),
    ],
)
def test_a_bad_duration_is_located_with_its_fix(
    storage_problem: Problem, value: str, message: str
) -> None:
    assert_issue(
        storage_problem(backups=f"{{max_age: {value}}}"),
        "pbs_storages[0].backups.max_age",
        line=6,
        message=message,
        fix=DURATION_FIX,
    )


def test_verify_max_age_is_a_duration_too(storage_problem: Problem) -> None:
    issue = storage_problem(backups="{verify_max_age: soon}")

    assert (issue.field, issue.line) == ("pbs_storages[0].backups.verify_max_age", 6)
    assert issue.message == "'soon' is not a duration"
    assert issue.fix == DURATION_FIX


@pytest.mark.parametrize(
    ("value", "fix"),
    [("0", "use a value > 0"), ("-5", "use a value > 0"), ("100.5", "use a value <= 100")],
)
def test_a_percentage_out_of_range_is_located(
    storage_problem: Problem, value: str, fix: str
) -> None:
    issue = storage_problem(backups=f"{{max_used_percent: {value}}}")

    assert (issue.field, issue.line) == ("pbs_storages[0].backups.max_used_percent", 6)
    assert f"(got {float(value) if '.' in value else int(value)})" in issue.message
    assert issue.fix.startswith(fix)


@pytest.mark.parametrize("value", ["100", "0.5", "85"])
def test_percentages_up_to_100_are_fine(storage_text: StorageText, load: Load, value: str) -> None:
    config = load(storage_text(backups=f"{{max_used_percent: {value}}}"))

    assert config.storages[0].backups.max_used_percent == float(value)


@pytest.mark.parametrize(
    ("value", "fix"), [("-1", "use a value >= 0"), ("3651", "use a value <= 3650")]
)
def test_days_to_full_out_of_range(storage_problem: Problem, value: str, fix: str) -> None:
    assert_issue(
        storage_problem(backups=f"{{min_days_to_full: {value}}}"),
        "pbs_storages[0].backups.min_days_to_full",
        fix=fix,
    )


def test_an_unknown_check_in_skip_names_the_checks(storage_problem: Problem) -> None:
    issue = storage_problem(backups="{skip: [capacity, freshness]}")

    assert_issue(issue, "pbs_storages[0].backups.skip[1]", "'freshness' is not allowed")
    assert issue.fix == (
        "`skip` lists the health checks to turn off: datastore, capacity, backups, verified"
    )


def test_skip_takes_one_check_as_a_word(storage_text: StorageText, load: Load) -> None:
    assert load(storage_text(backups="{skip: capacity}")).storages[0].backups.skip == ("capacity",)


DEFAULTED = """\
defaults:
  backups:
    max_age: 36h
    max_used_percent: 85
pbs_storages:
  - name: one
    server: pbs.example
    datastore: store1
    fingerprint: '{fp}'
    backups: {{max_age: 2d, require_verified: true}}
  - name: two
    server: pbs.example
    datastore: store2
    fingerprint: '{fp}'
"""


def test_defaults_are_merged_key_by_key(load: Load, fingerprint: str) -> None:
    one, two = load(DEFAULTED.format(fp=fingerprint)).storages

    assert one.backups.max_age == dt.timedelta(days=2)  # its own
    assert one.backups.max_used_percent == 85  # from defaults
    assert one.backups.require_verified is True
    assert two.backups.max_age == dt.timedelta(hours=36)
    assert two.backups.max_used_percent == 85
    assert two.backups.require_verified is False


def test_a_bad_default_is_reported_once_where_it_is_written(
    problems: Problems, fingerprint: str
) -> None:
    text = DEFAULTED.format(fp=fingerprint).replace("max_used_percent: 85", "max_used_percent: 120")

    issues = problems(text)

    assert [(i.field, i.line) for i in issues] == [("defaults.backups.max_used_percent", 4)]


def test_an_unknown_default_key_is_located_under_defaults(
    problems: Problems, fingerprint: str
) -> None:
    text = DEFAULTED.format(fp=fingerprint).replace("max_age: 36h", "max_days: 3")

    issues = problems(text)

    assert [(i.field, i.line, i.fix) for i in issues] == [
        ("defaults.backups.max_days", 3, "did you mean `max_age`?")
    ]


def test_a_duration_from_the_environment(storage_text: StorageText, load: Load) -> None:
    config = load(storage_text(backups="{max_age: '${MAX_AGE}'}"), env={"MAX_AGE": "30h"})

    assert config.storages[0].backups.max_age == dt.timedelta(hours=30)
