"""Config errors whole: the file, line, column, field, message and fix of each, where all are known.

The other config tests prove which problems are found; these pin what the person reading the
error gets: the exact text and the exact place (columns past line 2 included), and the
boundaries (a float's length, a secret's size).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from config_helpers import Load, Problem, Problems, SecretFile, StorageText, secret_of

from pbs_compliance.config import ConfigError, ConfigIssue, load_config
from pbs_compliance.config.files import MAX_CONFIG_BYTES, MAX_SECRET_BYTES, size_text
from pbs_compliance.config.loader import parse_config

UNIQUE = "storage names are PVE storage IDs and must be unique"
CA_FIX = (
    "copy the CA certificate of the PVE cluster (/etc/pve/pve-root-ca.pem on any PVE node) to "
    "this machine and name that copy (a relative path is relative to the config file), or "
    "remove `ca_file` to trust the system's CAs"
)


def config_path(tmp_path: Path) -> Path:
    return tmp_path / "pbs-storage.yaml"


def only_issue(raw: bytes, file: Path) -> ConfigIssue:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, file, {})
    assert len(caught.value.issues) == 1, caught.value.render()
    return caught.value.issues[0]


# ---- the file itself ---------------------------------------------------------------------


def test_a_missing_file_names_itself_and_how_to_get_one(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(missing, environ={})
    assert caught.value.issues == [
        ConfigIssue(
            missing,
            None,
            None,
            "",
            "file not found",
            f"create {missing} (see config/pbs-storage.example.yaml) or pass "
            "--config/--pbs-config; `pbs lab serve` writes one for the lab",
        )
    ]


def test_an_unreadable_file_is_reported_against_that_file(tmp_path: Path) -> None:
    directory = tmp_path / "a-directory.yaml"
    directory.mkdir()
    with pytest.raises(ConfigError) as caught:
        load_config(directory, environ={})
    (issue,) = caught.value.issues
    assert (issue.file, issue.line, issue.column, issue.field) == (directory, None, None, "")
    assert issue.message.startswith("cannot read: ")
    assert issue.fix


def test_a_file_over_the_limit_says_its_size_the_limit_and_the_fix(tmp_path: Path) -> None:
    file = config_path(tmp_path)
    raw = b"#" * (MAX_CONFIG_BYTES + 1)
    assert only_issue(raw, file) == ConfigIssue(
        file,
        None,
        None,
        "",
        f"the file is {size_text(MAX_CONFIG_BYTES + 1)}; a config file may be at most "
        f"{size_text(MAX_CONFIG_BYTES)} (1,000 storages take about 350 KiB)",
        "check that this is the config file; split a fleet that large by cluster",
    )


def test_a_byte_that_is_not_utf8_is_located_by_line_column_and_offset(tmp_path: Path) -> None:
    file = config_path(tmp_path)
    raw = b"pbs_storages:\n  - name: \xff\n"
    assert only_issue(raw, file) == ConfigIssue(
        file, 2, 11, "", "not UTF-8 text (byte 0xff at offset 24)", "save the file as UTF-8"
    )


def test_a_utf8_byte_order_mark_is_ignored_and_lines_still_count_from_one(
    tmp_path: Path, storage_text: StorageText
) -> None:
    file = config_path(tmp_path)
    file.write_text("\ufeff" + storage_text(), encoding="utf-8")
    assert [s.name for s in load_config(file, environ={}).storages] == ["pbs1"]
    file.write_text("\ufeff" + storage_text(prot="8007"), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(file, environ={})
    assert [(i.line, i.column, i.field) for i in caught.value.issues] == [
        (6, 5, "pbs_storages[0].prot")
    ]


# ---- keys, names and values: the exact place past line 2 ----------------------------------


def test_an_unknown_key_on_line_six_is_pointed_at_its_column_with_the_close_match(
    storage_problem: Problem, tmp_path: Path
) -> None:
    assert storage_problem(prot="8007") == ConfigIssue(
        config_path(tmp_path),
        6,
        5,
        "pbs_storages[0].prot",
        "unknown key `prot`",
        "did you mean `port`?",
    )


def test_two_different_duplicate_names_each_cite_the_line_they_were_first_declared_on(
    problems: Problems, tmp_path: Path, fingerprint: str
) -> None:
    entry = "  - name: {}\n    server: pbs.example\n    datastore: store1\n    fingerprint: '{}'\n"
    text = "pbs_storages:\n" + "".join(
        entry.format(name, fingerprint) for name in ("aa", "bb", "aa", "bb", "cc")
    )
    file = config_path(tmp_path)
    assert problems(text) == [
        ConfigIssue(
            file,
            10,
            11,
            "pbs_storages[2].name",
            "duplicate storage name `aa` (first declared on line 2)",
            UNIQUE,
        ),
        ConfigIssue(
            file,
            14,
            11,
            "pbs_storages[3].name",
            "duplicate storage name `bb` (first declared on line 6)",
            UNIQUE,
        ),
    ]


@pytest.mark.parametrize(
    ("field", "value", "message", "fix"),
    [
        (
            "port",
            "true",
            "Input should be a valid integer (got 'true')",
            "write a whole number, e.g. `8007`, without quotes",
        ),
        (
            "enabled",
            "maybe",
            "Input should be a valid boolean (got 'maybe')",
            "write `true` or `false` without quotes",
        ),
    ],
)
def test_a_variable_holding_the_wrong_kind_of_value_is_the_fields_error(
    storage_problem: Problem, field: str, value: str, message: str, fix: str
) -> None:
    issue = storage_problem(**{field: "${VALUE}"}, env={"VALUE": value})
    assert (issue.line, issue.column, issue.field) == (
        6,
        7 + len(field),
        f"pbs_storages[0].{field}",
    )
    assert (issue.message, issue.fix) == (message, fix)


@pytest.mark.parametrize(
    ("value", "enabled"), [("yes", True), ("1", True), ("On", True), ("false", False), ("0", False)]
)
def test_a_variable_for_a_yes_no_field_is_read_as_yaml_would(
    load: Load, storage_text: StorageText, value: str, enabled: bool
) -> None:
    config = load(storage_text(enabled="${ENABLED}"), env={"ENABLED": value})
    assert config.storages[0].enabled is enabled


def test_a_variable_for_a_number_field_is_a_float_up_to_64_characters(
    load: Load, problem: Problem, storage_text: StorageText
) -> None:
    text = "pve:\n  timeout: ${T}\n" + storage_text()
    longest = "1." + "0" * 62
    assert load(text, env={"T": longest}).pve.timeout == 1.0
    issue = problem(text, env={"T": longest + "0"})
    assert (issue.line, issue.column, issue.field) == (2, 12, "pve.timeout")
    assert issue.message.startswith("Input should be a valid number (got '1.000")
    assert issue.fix == "write a number without quotes, e.g. `10`"


def test_an_integer_variable_with_spaces_around_is_still_a_number(
    load: Load, storage_text: StorageText
) -> None:
    assert load(storage_text(port="${PORT}"), env={"PORT": " 8008 "}).storages[0].port == 8008


# ---- paths: NUL, `~user`, the CA file ------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message", "fix"),
    [
        ('"a\\0b"', "a path cannot contain a NUL character", "write a plain file path"),
        (
            "~nosuchuser-xyz/pw",
            "cannot expand `~` in ~nosuchuser-xyz/pw",
            "write the full path",
        ),
    ],
)
def test_a_path_that_is_no_path_is_located_with_the_fix(
    storage_problem: Problem,
    problem: Problem,
    storage_text: StorageText,
    tmp_path: Path,
    value: str,
    message: str,
    fix: str,
) -> None:
    file = config_path(tmp_path)
    assert storage_problem(password_file=value) == ConfigIssue(
        file, 6, 20, "pbs_storages[0].password_file", message, fix
    )
    assert problem("pve:\n  ca_file: " + value + "\n" + storage_text()) == ConfigIssue(
        file, 2, 12, "pve.ca_file", message, fix
    )


def test_a_missing_ca_file_says_where_to_copy_it_from(
    problem: Problem, storage_text: StorageText, tmp_path: Path
) -> None:
    assert problem("pve:\n  ca_file: missing-ca.pem\n" + storage_text()) == ConfigIssue(
        config_path(tmp_path),
        2,
        12,
        "pve.ca_file",
        f"cannot read CA file {tmp_path / 'missing-ca.pem'}: No such file or directory",
        CA_FIX,
    )


def test_a_ca_file_without_pem_keeps_the_pem_fix(
    problem: Problem, storage_text: StorageText, tmp_path: Path
) -> None:
    (tmp_path / "notpem.pem").write_text("hello\n")
    issue = problem("pve:\n  ca_file: notpem.pem\n" + storage_text())
    assert issue.message == (
        f"cannot read CA file {tmp_path / 'notpem.pem'}: it holds no PEM certificate "
        "(`-----BEGIN CERTIFICATE-----`)"
    )
    assert issue.fix == (
        "name the PEM file of the CA that signed PVE's certificate "
        "(/etc/pve/pve-root-ca.pem on any PVE node)"
    )


# ---- secret files: what is the secret, and the size limit --------------------------------


def test_a_trailing_space_in_a_secret_file_is_part_of_the_secret(
    load: Load, storage_text: StorageText, secret_file: SecretFile
) -> None:
    path = secret_file("s3cret \n")
    config = load(storage_text(password_file=str(path)))
    assert secret_of(config) == "s3cret "


def test_a_secret_file_of_exactly_the_limit_is_read_one_byte_more_is_not(
    storage_problem: Problem, load: Load, storage_text: StorageText, secret_file: SecretFile
) -> None:
    exact = secret_file("x" * MAX_SECRET_BYTES)
    assert len(secret_of(load(storage_text(password_file=str(exact))))) == MAX_SECRET_BYTES
    over = secret_file("x" * (MAX_SECRET_BYTES + 1), name="big.pw")
    issue = storage_problem(password_file=str(over))
    assert (issue.line, issue.column, issue.field) == (6, 20, "pbs_storages[0].password_file")
    assert str(over) in issue.message
    assert issue.fix == "the file must hold only the secret"


# ---- the fix and the shown value of model errors --------------------------------------------

DURATION_FIX = "write a whole number and a unit (s, m, h, d or w), e.g. `2h`, `26h` or `8d`"


@pytest.mark.parametrize(
    ("jobs", "where", "message", "fix"),
    [
        ("  slack: soon\n", (2, 10, "jobs.slack"), "'soon' is not a duration", DURATION_FIX),
        (
            "  max_age:\n    backup-1: soon\n",
            (3, 15, "jobs.max_age.backup-1"),
            "'soon' is not a duration",
            DURATION_FIX,
        ),
        (
            "  max_age:\n    1job: 1d\n",
            (2, 3, "jobs.max_age"),
            "'1job' is not a backup job id: a letter, then letters, digits, '-' or '_' (the ID "
            "column of Datacenter > Backup, e.g. backup-3f2a9c1e-8b7d)",
            "copy the job's ID from `pvesh get /cluster/backup` (or Datacenter > Backup)",
        ),
    ],
)
def test_a_jobs_error_says_how_to_write_a_duration_or_where_to_copy_the_id(
    problem: Problem,
    storage_text: StorageText,
    jobs: str,
    where: tuple[int, int, str],
    message: str,
    fix: str,
) -> None:
    issue = problem("jobs:\n" + jobs + storage_text())
    assert (issue.line, issue.column, issue.field, issue.message, issue.fix) == (
        *where,
        message,
        fix,
    )


def test_a_rejected_value_is_shown_up_to_60_characters_then_cut(storage_problem: Problem) -> None:
    whole = storage_problem(port="'" + "x" * 58 + "'")  # repr: 60 characters
    assert whole.message == f"Input should be a valid integer (got '{'x' * 58}')"
    cut = storage_problem(port="'" + "x" * 59 + "'")
    assert cut.message == f"Input should be a valid integer (got '{'x' * 56}...)"


def test_a_content_type_pbs_does_not_keep_lists_what_it_may_be(storage_problem: Problem) -> None:
    issue = storage_problem(content="[bogus]")
    assert (issue.line, issue.column, issue.field) == (6, 15, "pbs_storages[0].content[0]")
    assert issue.message == "'bogus' is not allowed; input should be 'backup' or 'none'"
    assert issue.fix == (
        "PBS storages hold only `backup` (or `none`); PVE turns anything else into `none`"
    )


@pytest.mark.parametrize(
    ("name", "variable"),
    [("Offsite-A.b", "PBS_OFFSITE_A_B_PASSWORD"), ("123", "PBS_STORAGE_PASSWORD")],
)
def test_a_literal_password_suggests_a_variable_named_after_the_storage(
    problems: Problems, storage_text: StorageText, name: str, variable: str
) -> None:
    text = storage_text(password="hunter2").replace("name: pbs1", f"name: {name}")
    literal = [i for i in problems(text) if i.field == "pbs_storages[0].password"]
    assert [(i.message, i.fix) for i in literal] == [
        (
            "a literal secret does not belong in the config file",
            f"move it into the environment and write `password: ${{{variable}}}`, or into a "
            "file readable only by you and write `password_file: /path`",
        )
    ]


@pytest.mark.parametrize(
    ("text", "where", "message", "fix"),
    [
        (
            "{storage}    port: 0\n",
            (6, 11, "pbs_storages[0].port"),
            "Input should be greater than or equal to 1 (got 0)",
            "use a value >= 1",
        ),
        (
            "{storage}    port: 70000\n",
            (6, 11, "pbs_storages[0].port"),
            "Input should be less than or equal to 65535 (got 70000)",
            "use a value <= 65535",
        ),
        (
            "pve:\n  timeout: 0\n{storage}",
            (2, 12, "pve.timeout"),
            "Input should be greater than 0 (got 0)",
            "use a value > 0.0",
        ),
        (
            "{storage}    namespace: a//b\n",
            (6, 16, "pbs_storages[0].namespace"),
            "'a//b' is not a valid PBS namespace: up to 7 levels like `prod/vms`, each 1 to 32 "
            "letters, digits, '.', '_', '-'",
            "",  # the message says it all
        ),
        (
            "{storage}    backups:\n      max_age: soon\n",
            (7, 16, "pbs_storages[0].backups.max_age"),
            "'soon' is not a duration",
            "write a whole number and a unit (s, m, h, d or w), e.g. `26h`, `36h` or `7d`",
        ),
        (
            # A default kept beside the storage's own `backups:` is located under `defaults:`.
            "defaults:\n  backups:\n    max_age: soon\n    max_used_percent: 80\n{storage}"
            "    backups:\n      max_used_percent: 90\n",
            (3, 14, "defaults.backups.max_age"),
            "'soon' is not a duration",
            "write a whole number and a unit (s, m, h, d or w), e.g. `26h`, `36h` or `7d`",
        ),
        (
            "pbs_storages:\n  - just-a-string\n",
            (2, 5, "pbs_storages[0]"),
            "each storage must be a mapping",
            "start the entry with `- name: ...`",
        ),
    ],
)
def test_a_value_error_is_located_with_its_exact_message_and_fix(
    problem: Problem,
    storage_text: StorageText,
    text: str,
    where: tuple[int, int, str],
    message: str,
    fix: str,
) -> None:
    issue = problem(text.format(storage=storage_text()))
    assert (issue.line, issue.column, issue.field, issue.message, issue.fix) == (
        *where,
        message,
        fix,
    )
