"""The `coverage:` and `jobs:` settings: validated like every field, located, with the fix."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pbs_compliance.config import ConfigError, load_config
from pbs_compliance.config.model import CoverageSettings, JobSettings

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "pbs-storage.example.yaml"
ENV = {
    "PVE_TOKEN_SECRET": "x",
    "PBS_HOMELAB_BACKUP_PASSWORD": "x",
    "PBS_OFFSITE_PASSWORD": "x",
}


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "pbs.yaml"
    path.write_text("pbs_storages: []\n" + text, encoding="utf-8")
    return load_config(path, environ={"SLACK": "3h"})


def problems(tmp_path: Path, text: str) -> list[tuple[int | None, str, str, str]]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return [(i.line, i.field, i.message, i.fix) for i in caught.value.issues]


def test_defaults_when_the_sections_are_left_out(tmp_path: Path) -> None:
    config = load(tmp_path, "")

    assert config.coverage == CoverageSettings(exclude=(), exclude_tags=())  # type: ignore[attr-defined]
    assert config.jobs == JobSettings(  # type: ignore[attr-defined]
        slack=dt.timedelta(hours=2), max_age={}, allow_warnings=False
    )


def test_the_example_documents_both_sections() -> None:
    config = load_config(EXAMPLE, environ=ENV)

    assert config.coverage.exclude == (9000,)
    assert config.coverage.exclude_tags == ("no-backup",)
    assert config.jobs.slack == dt.timedelta(hours=2)
    assert config.jobs.max_age == {"backup-weekly": dt.timedelta(days=8)}
    assert config.jobs.allow_warnings is False


def test_values_as_written(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "coverage: {exclude: 9001, exclude_tags: keep-out}\n"
        "jobs:\n  slack: ${SLACK}\n  max_age: {nightly: 1d12h}\n  allow_warnings: true\n",
    )

    assert config.coverage.exclude == (9001,)  # type: ignore[attr-defined]
    assert config.coverage.exclude_tags == ("keep-out",)  # type: ignore[attr-defined]
    assert config.jobs.slack == dt.timedelta(hours=3)  # type: ignore[attr-defined]
    assert config.jobs.max_age == {"nightly": dt.timedelta(hours=36)}  # type: ignore[attr-defined]
    assert config.jobs.allow_warnings is True  # type: ignore[attr-defined]


def test_each_mistake_is_located_with_its_fix(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "coverage:\n"
        "  exclude: [9000, 99]\n"
        "  exclude_tags: [ok, 'no tag']\n"
        "jobs:\n"
        "  slack: 2\n"
        "  max_age: {weekly: 8x}\n"
        "  allow_warnings: maybe\n"
        "  slak: 1h\n",
    )

    assert found == [
        (
            3,
            "coverage.exclude[1]",
            "Input should be greater than or equal to 100 (got 99)",
            "use a value >= 100",
        ),
        (
            4,
            "coverage.exclude_tags[1]",
            "'no tag' is not a PVE tag (letters, digits, '_', then also '-', '+', '.')",
            "",
        ),
        (
            6,
            "jobs.slack",
            "2 is not a duration (a bare number has no unit)",
            "write a whole number and a unit (s, m, h, d or w), e.g. `2h`, `26h` or `8d`",
        ),
        (
            7,
            "jobs.max_age.weekly",
            "'8x' is not a duration",
            "write a whole number and a unit (s, m, h, d or w), e.g. `2h`, `26h` or `8d`",
        ),
        (
            8,
            "jobs.allow_warnings",
            "Input should be a valid boolean (got 'maybe')",
            "write `true` or `false` without quotes",
        ),
        (9, "jobs.slak", "unknown key `slak`", "did you mean `slack`?"),
    ]


def test_a_job_id_pve_cannot_hold(tmp_path: Path) -> None:
    found = problems(tmp_path, "jobs:\n  max_age: {9nightly: 1d}\n")

    assert found == [
        (
            3,
            "jobs.max_age",
            "'9nightly' is not a backup job id: a letter, then letters, digits, '-' or '_' "
            "(the ID column of Datacenter > Backup, e.g. backup-3f2a9c1e-8b7d)",
            "copy the job's ID from `pvesh get /cluster/backup` (or Datacenter > Backup)",
        )
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("coverage: [1]\n", "must be a mapping"),
        ("jobs: 2h\n", "must be a mapping"),
    ],
)
def test_a_section_that_is_not_a_mapping(tmp_path: Path, text: str, message: str) -> None:
    found = problems(tmp_path, text)

    assert [(line, m) for line, _path, m, _fix in found] == [(2, message)]
    assert found[0][3] in ("e.g. `exclude: [9000]`", "e.g. `slack: 2h`")


def test_allowed_age_is_max_age_else_period_plus_slack() -> None:
    settings = JobSettings(slack=dt.timedelta(hours=2), max_age={"weekly": dt.timedelta(days=8)})

    assert settings.allowed_age("weekly", dt.timedelta(hours=24)) == dt.timedelta(days=8)
    assert settings.allowed_age("weekly", None) == dt.timedelta(days=8)
    assert settings.allowed_age("daily", dt.timedelta(hours=24)) == dt.timedelta(hours=26)
    assert settings.allowed_age("daily", None) is None
