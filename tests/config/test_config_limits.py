"""Size limits, checked up front and reported truthfully (#10 item 12).

A number no setting can take, a date that is none, a file larger than any config and a document
with more values than any config are config errors - never a traceback, never minutes of work.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from config_helpers import Problem, StorageText, assert_issue

from pbs_compliance.config import (
    ConfigError,
    load_config,
    parse_config,
)
from pbs_compliance.config.files import MAX_CONFIG_BYTES
from pbs_compliance.config.yamlsource import MAX_NUMBER_CHARS, MAX_VALUES


def test_a_5000_digit_port_is_one_error_at_its_line(storage_problem: Problem) -> None:
    issue = storage_problem(port="9" * 5000)

    assert (issue.line, issue.column, issue.field) == (6, 11, "pbs_storages[0].port")
    assert issue.message == (
        f"a number of 5,000 characters is longer than any setting takes (at most "
        f"{MAX_NUMBER_CHARS})"
    )
    assert "a port is 1 to 65535" in issue.fix
    assert "quote" in issue.fix


def test_a_long_number_under_defaults_is_reported_once(
    problem: Problem, storage_text: StorageText
) -> None:
    issue = problem("defaults:\n  max_protected_backups: " + "1" * 4301 + "\n" + storage_text())

    assert issue.field == "defaults.max_protected_backups"


def test_a_number_of_the_longest_length_still_gets_the_range_check(
    storage_problem: Problem,
) -> None:
    issue = storage_problem(port="9" * MAX_NUMBER_CHARS)

    assert issue.message.startswith("Input should be less than or equal to 65535")


def test_a_long_number_from_the_environment_is_a_type_error_not_a_crash(
    storage_problem: Problem,
) -> None:
    issue = storage_problem(port="${PORT}", env={"PORT": "9" * 5000})

    assert issue.field == "pbs_storages[0].port"
    assert issue.message.startswith("Input should be a valid integer")
    assert len(issue.message) < 200


@pytest.mark.parametrize(
    ("value", "words"),
    [("2024-13-45", "month must be in 1..12"), ("2024-02-30", "day is out of range for month")],
)
def test_a_date_that_is_none_is_an_error_not_a_crash(
    storage_problem: Problem, value: str, words: str
) -> None:
    issue = storage_problem(description=value)

    assert_issue(
        issue,
        "pbs_storages[0].description",
        message=f"'{value}' reads as a timestamp but is not a valid one ({words})",
    )
    assert issue.fix == "correct it, or put quotes around it to keep it as text"


def test_a_config_file_larger_than_the_limit_is_rejected_before_it_is_parsed(
    tmp_path: Path, storage_text: StorageText
) -> None:
    path = tmp_path / "huge.yaml"
    entry = storage_text().removeprefix("pbs_storages:\n")
    with path.open("w", encoding="utf-8") as out:  # 20 MB of plain, valid entries
        out.write("pbs_storages:\n")
        for index in range(20_000_000 // len(entry)):
            out.write(entry.replace("pbs1", f"pbs{index}"))
    started = time.monotonic()

    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})

    assert time.monotonic() - started < 2
    (issue,) = caught.value.issues
    assert (issue.file, issue.line, issue.field) == (path, None, "")
    assert issue.message.startswith("the file is 19.")
    assert "MiB; a config file may be at most 2.0 MiB" in issue.message
    assert "alias" not in issue.message + issue.fix


def test_the_size_limit_holds_for_bytes_given_directly() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(b"#" * (MAX_CONFIG_BYTES + 1), Path("big.yaml"), {})

    assert "a config file may be at most 2.0 MiB" in caught.value.issues[0].message


def test_a_document_of_too_many_plain_values_says_so_without_blaming_aliases() -> None:
    raw = b"pbs_storages: [" + b"1," * (MAX_CONFIG_BYTES // 2 - 20) + b"1]\n"
    started = time.monotonic()

    with pytest.raises(ConfigError) as caught:
        parse_config(raw, Path("many.yaml"), {})

    assert time.monotonic() - started < 5
    (issue,) = caught.value.issues
    assert issue.message.startswith(f"the document has more than {MAX_VALUES} values;")
    assert "alias" not in issue.message + issue.fix


def test_an_alias_bomb_is_still_named_as_one(problem: Problem) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]

    issue = problem("\n".join(lines) + "\n")

    assert issue.message == f"the document expands to more than {MAX_VALUES} values through aliases"


def test_a_config_of_1000_storages_is_within_every_limit(storage_text: StorageText) -> None:
    entry = storage_text().removeprefix("pbs_storages:\n")
    text = "pbs_storages:\n" + "".join(entry.replace("pbs1", f"pbs{i}") for i in range(1000))

    config = parse_config(text.encode(), Path("fleet.yaml"), {})

    assert len(config.storages) == 1000
