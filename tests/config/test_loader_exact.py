"""The loader's own errors whole, and which section each value of the file lands in.

`_Loader.run` (the top level, `defaults:`, the sections, the storages) and the secrets (`${VAR}`,
`*_file`): every error's line, column, field, message and fix, and that each section's values
reach the config (not a default). Configs are parsed from text with `parse_config`, so these
tests depend on no shared fixture.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import pytest

from pbs_compliance.config import ComplianceConfig, ConfigError
from pbs_compliance.config.files import MAX_CONFIG_BYTES
from pbs_compliance.config.loader import _scalar_type, parse_config

FP = ":".join(["AB"] * 32)
STORAGE = f"""\
pbs_storages:
  - name: pbs1
    server: pbs.example
    datastore: store1
    fingerprint: '{FP}'
"""
Row = tuple[int | None, int | None, str, str, str]


def load(
    text: str, env: Mapping[str, str] | None = None, file: Path | None = None
) -> ComplianceConfig:
    return parse_config(text.encode(), file or Path("/etc/pbs/pbs.yaml"), env or {})


def rows(text: str, env: Mapping[str, str] | None = None, file: Path | None = None) -> list[Row]:
    """Every issue of the file as (line, column, field, message, fix)."""
    with pytest.raises(ConfigError) as caught:
        load(text, env, file)
    for issue in caught.value.issues:
        assert issue.file == (file or Path("/etc/pbs/pbs.yaml"))
    return [(i.line, i.column, i.field, i.message, i.fix) for i in caught.value.issues]


# ---- the top level ------------------------------------------------------------------------------


def test_an_empty_file_says_what_to_declare() -> None:
    assert rows("") == [
        (None, None, "", "the file is empty", "declare at least `pbs_storages:` (a list)")
    ]
    assert rows("# only a comment\n") == rows("")


def test_a_top_level_that_is_no_mapping_says_how_to_start() -> None:
    assert rows("- name: pbs1\n") == [
        (1, 1, "", "the top level must be a mapping", "start with `pbs_storages:`")
    ]


def test_a_file_without_pbs_storages_says_to_add_them() -> None:
    assert rows("dns: {}\n") == [
        (1, 1, "", "missing `pbs_storages`", "add `pbs_storages:` with a list of entries")
    ]


def test_pbs_storages_left_empty_says_how_to_list_entries() -> None:
    assert rows("pbs_storages:\n") == [
        (
            1,
            1,
            "pbs_storages",
            "`pbs_storages` is empty",
            "list the entries below it as `- name: ...`, or write `pbs_storages: []`",
        )
    ]
    assert load("pbs_storages: []\n").storages == ()


def test_pbs_storages_that_is_no_list_says_to_use_dashes() -> None:
    assert rows("pbs_storages: {name: pbs1}\n") == [
        (1, 1, "pbs_storages", "must be a list of storage entries", "use `- name: ...`")
    ]


def test_defaults_that_are_no_mapping_give_an_example() -> None:
    assert rows(STORAGE + "defaults: [port]\n") == [
        (6, 1, "defaults", "must be a mapping of field defaults", "e.g. `port: 8007`")
    ]


def test_a_default_name_is_refused_once_at_its_key() -> None:
    assert rows(STORAGE + "defaults:\n  name: shared\n") == [
        (
            7,
            3,
            "defaults.name",
            "`name` cannot have a default",
            "every storage needs its own name; remove it from `defaults:`",
        )
    ]


def test_an_unknown_default_lists_every_field_a_default_may_set_but_name() -> None:
    ((line, column, field, message, fix),) = rows(STORAGE + "defaults:\n  zzz: 1\n")
    assert (line, column, field, message) == (7, 3, "defaults.zzz", "unknown key `zzz`")
    assert fix == (
        "known keys: server, datastore, fingerprint, enabled, content, username, port, namespace, "
        "nodes, max_protected_backups, prune_backups, description, backups, password, "
        "password_file"
    )


def test_defaults_written_empty_are_no_defaults() -> None:
    assert load(STORAGE + "defaults:\n").storages[0].port == 8007


# ---- the sections reach the config, and each is reported under its own name --------------------


def test_every_section_of_the_file_reaches_the_config() -> None:
    config = load(
        STORAGE
        + "pve: {url: 'https://pve1.example:8006', name: site-a}\n"
        + "dns: {nameservers: [192.0.2.53]}\n"
        + "coverage: {exclude: [9000], exclude_tags: [template]}\n"
        + "jobs: {slack: 3h, allow_warnings: true}\n"
        + "defaults: {port: 8207}\n"
    )
    assert config.source == Path("/etc/pbs/pbs.yaml")
    assert (config.pve.url, config.pve.name) == ("https://pve1.example:8006", "site-a")
    assert config.dns.nameservers == ("192.0.2.53",)
    assert (config.coverage.exclude, config.coverage.exclude_tags) == ((9000,), ("template",))
    assert (config.jobs.slack, config.jobs.allow_warnings) == (dt.timedelta(hours=3), True)
    assert [s.port for s in config.storages] == [8207]
    assert config.waivers == ()


@pytest.mark.parametrize(
    ("section", "fix"),
    [
        ("pve", "e.g. `url: https://pve1.example:8006`"),
        ("dns", "e.g. `nameservers: [192.0.2.53]`"),
        ("coverage", "e.g. `exclude: [9000]`"),
        ("jobs", "e.g. `slack: 2h`"),
    ],
)
def test_a_section_that_is_no_mapping_is_the_one_error_with_its_example(
    section: str, fix: str
) -> None:
    assert rows(STORAGE + f"{section}: 5\n") == [
        (6, len(section) + 3, section, "must be a mapping", fix)
    ]


@pytest.mark.parametrize(
    ("text", "column", "field", "message", "fix"),
    [
        (
            "coverage:\n  exclude: [99]\n",
            13,
            "coverage.exclude[0]",
            "Input should be greater than or equal to 100 (got 99)",
            "use a value >= 100",
        ),
        (
            "jobs:\n  slack: 2\n",
            10,
            "jobs.slack",
            "2 is not a duration (a bare number has no unit)",
            "write a whole number and a unit (s, m, h, d or w), e.g. `2h`, `26h` or `8d`",
        ),
    ],
)
def test_a_bad_value_in_coverage_or_jobs_is_located_under_that_section(
    text: str, column: int, field: str, message: str, fix: str
) -> None:
    assert rows(STORAGE + text) == [(7, column, field, message, fix)]


# ---- secrets from the environment ---------------------------------------------------------------


PASSWORD_LINE = 6  # `password:` is the line after STORAGE's five


def secret_rows(value: str, env: Mapping[str, str]) -> list[Row]:
    return rows(STORAGE + f"    password: {value}\n", env)


def test_an_empty_variable_says_to_export_it() -> None:
    assert secret_rows("${PW}", {"PW": ""}) == [
        (
            PASSWORD_LINE,
            15,
            "pbs_storages[0].password",
            "environment variable `PW` is empty",
            "export PW=...",
        )
    ]


def test_a_variable_with_a_control_character_says_to_export_it_without() -> None:
    assert secret_rows("${PW}", {"PW": "se\x07cret"}) == [
        (
            PASSWORD_LINE,
            15,
            "pbs_storages[0].password",
            "the value of environment variable `PW` contains the control character U+0007",
            "export PW without it (`$(cat FILE)` drops a final newline)",
        )
    ]


def test_a_password_and_a_password_file_are_one_error_at_the_file() -> None:
    assert rows(STORAGE + "    password: ${PW}\n    password_file: /x\n", {"PW": "s"}) == [
        (
            7,
            20,
            "pbs_storages[0].password_file",
            "both `password` and `password_file` are given",
            "keep one of them",
        )
    ]


def test_a_secret_from_the_environment_reaches_the_storage() -> None:
    spec = load(STORAGE + "    password: ${PW}\n", {"PW": "s3cret"}).storages[0]
    assert spec.password is not None
    assert spec.password.get_secret_value() == "s3cret"


def test_a_written_null_secret_is_no_secret() -> None:
    assert load(STORAGE + "    password:\n    password_file:\n").storages[0].password is None


# ---- secrets from files -------------------------------------------------------------------------


def file_rows(tmp_path: Path, secret_file: str) -> list[Row]:
    config = tmp_path / "pbs.yaml"
    return rows(STORAGE + f"    password_file: {secret_file}\n", {}, config)


def private(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    os.chmod(path, 0o600)
    return path


def test_a_secret_file_that_is_no_path_gives_an_example(tmp_path: Path) -> None:
    assert file_rows(tmp_path, "[1, 2]") == [
        (
            6,
            5,
            "pbs_storages[0].password_file",
            "must be a file path",
            "e.g. `/etc/pbs-compliance/pbs.pw`",
        )
    ]


def test_a_secret_file_over_the_limit_says_its_size(tmp_path: Path) -> None:
    big = private(tmp_path / "big.pw", b"x" * 5000)
    assert file_rows(tmp_path, str(big)) == [
        (
            6,
            20,
            "pbs_storages[0].password_file",
            f"secret file {big} is larger than 4096 bytes (4.9 KiB)",
            "the file must hold only the secret",
        )
    ]


def test_a_secret_file_not_utf8_says_to_check_the_path(tmp_path: Path) -> None:
    binary = private(tmp_path / "bin.pw", b"\xff\xfe\n")
    assert file_rows(tmp_path, str(binary)) == [
        (
            6,
            20,
            "pbs_storages[0].password_file",
            f"cannot read secret file {binary}: not UTF-8",
            "check the path",
        )
    ]


@pytest.mark.parametrize("data", [b"", b"\n", b"\r\n"])
def test_an_empty_secret_file_says_to_write_the_secret(tmp_path: Path, data: bytes) -> None:
    empty = private(tmp_path / "empty.pw", data)
    assert file_rows(tmp_path, str(empty)) == [
        (
            6,
            20,
            "pbs_storages[0].password_file",
            f"secret file {empty} is empty",
            "write the secret into it",
        )
    ]


def test_a_relative_secret_file_is_read_next_to_the_config(tmp_path: Path) -> None:
    private(tmp_path / "pbs.pw", b"s3cret\n")
    config = tmp_path / "pbs.yaml"
    spec = load(STORAGE + "    password_file: pbs.pw\n", {}, config).storages[0]
    assert spec.password is not None
    assert spec.password.get_secret_value() == "s3cret"


def test_a_failed_pve_secret_file_is_one_error_not_also_half_a_credential(tmp_path: Path) -> None:
    text = STORAGE + "pve:\n  token_id: root@pam!ci\n  token_secret_file: missing.pw\n"
    ((line, column, field, message, _fix),) = rows(text, {}, tmp_path / "pbs.yaml")
    assert (line, column, field) == (8, 22, "pve.token_secret_file")
    assert message.startswith(f"cannot read secret file {tmp_path / 'missing.pw'}: ")


def test_an_error_after_a_resolved_secret_is_still_located_at_its_own_field(
    tmp_path: Path,
) -> None:
    private(tmp_path / "pbs.pw", b"s3cret\n")
    text = STORAGE + "    password_file: pbs.pw\n    port: 0\n"
    assert rows(text, {}, tmp_path / "pbs.yaml") == [
        (
            7,
            11,
            "pbs_storages[0].port",
            "Input should be greater than or equal to 1 (got 0)",
            "use a value >= 1",
        )
    ]


# ---- fixes of the model's errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field", "message", "fix"),
    [
        (
            "pve: {timeout: 0}\n",
            "pve.timeout",
            "Input should be greater than 0 (got 0)",
            "use a value > 0.0",
        ),
        (
            "defaults:\n  backups: {max_used_percent: 100.5}\n",
            "defaults.backups.max_used_percent",
            "Input should be less than or equal to 100 (got 100.5)",
            "use a value <= 100.0",
        ),
        (
            "defaults:\n  max_protected_backups: -2\n",
            "defaults.max_protected_backups",
            "Input should be greater than or equal to -1 (got -2)",
            "use a value >= -1",
        ),
        (  # the message says what to write: no fix (and not the content types' one)
            "defaults:\n  content: []\n",
            "defaults.content",
            "must list at least one content type: [backup] or [none]",
            "",
        ),
        (
            "jobs:\n  max_age: {'7up': 2d}\n",
            "jobs.max_age",
            "'7up' is not a backup job id: a letter, then letters, digits, '-' or '_' (the ID "
            "column of Datacenter > Backup, e.g. backup-3f2a9c1e-8b7d)",
            "copy the job's ID from `pvesh get /cluster/backup` (or Datacenter > Backup)",
        ),
    ],
)
def test_a_model_error_gets_its_own_fix(text: str, field: str, message: str, fix: str) -> None:
    ((_line, _column, found, found_message, found_fix),) = rows(STORAGE + text)
    assert (found, found_message, found_fix) == (field, message, fix)


def test_only_a_plain_bool_int_or_float_field_converts_a_variable() -> None:
    assert _scalar_type(Annotated[int, "limit"] | None) is int
    assert _scalar_type(bool) is bool
    assert _scalar_type(int | float) is None  # ambiguous: left to the model
    assert _scalar_type(int | float | None) is None
    assert _scalar_type(str) is None


def test_an_error_inside_a_merged_default_list_is_located_under_defaults() -> None:
    text = (
        STORAGE
        + "    backups: {max_age: 2d}\n"
        + "defaults:\n"
        + "  backups:\n"
        + "    skip: [verified, nonsense]\n"
    )
    ((line, column, field, message, fix),) = rows(text)
    assert (line, column, field) == (9, 22, "defaults.backups.skip[1]")
    assert message.startswith("'nonsense' is not allowed; ")
    assert fix == (
        "`skip` lists the health checks to turn off: datastore, capacity, backups, verified"
    )


# ---- what one problem hides, and what it must not ----------------------------------------------


def test_an_unset_variable_is_reported_once_and_the_next_field_still_is() -> None:
    text = STORAGE.replace("server: pbs.example", "server: ${NOPE}") + "    port: 0\n"
    assert rows(text) == [
        (
            3,
            13,
            "pbs_storages[0].server",
            "environment variable `NOPE` is not set",
            "export it before running, or write the value directly",
        ),
        (
            6,
            11,
            "pbs_storages[0].port",
            "Input should be greater than or equal to 1 (got 0)",
            "use a value >= 1",
        ),
    ]


def test_a_reference_that_is_no_variable_name_says_so() -> None:
    text = STORAGE.replace("server: pbs.example", "server: pbs-${1x}")
    assert rows(text) == [
        (
            3,
            13,
            "pbs_storages[0].server",
            "`${1x}` is not a valid variable reference",
            "export it before running, or write the value directly",
        )
    ]


def test_an_unknown_nested_key_does_not_hide_a_later_fields_error() -> None:
    text = STORAGE + "    prune_backups: {keep_dayly: 7}\n    description: 5\n"
    assert [(field, message) for _line, _column, field, message, _fix in rows(text)] == [
        ("pbs_storages[0].prune_backups.keep_dayly", "unknown key `keep_dayly`"),
        ("pbs_storages[0].description", "Input should be a valid string (got 5)"),
    ]


def test_a_bad_ca_file_still_lets_half_a_credential_be_reported_under_pve(tmp_path: Path) -> None:
    text = STORAGE + "pve:\n  ca_file: missing.pem\n  token_id: root@pam!ci\n"
    reported = rows(text, {}, tmp_path / "pbs.yaml")
    assert [(line, field) for line, _column, field, _message, _fix in reported] == [
        (6, "pve"),
        (7, "pve.ca_file"),
    ]
    assert reported[0][3].startswith("`token_id` is given without `token_secret`")
    assert reported[1][3].startswith(f"cannot read CA file {tmp_path / 'missing.pem'}")


def test_a_pve_password_given_twice_is_one_error_not_also_half_a_login() -> None:
    text = STORAGE + "pve:\n  user: root@pam\n  password: ${PW}\n  password_file: /x\n"
    assert rows(text, {"PW": "s"}) == [
        (
            9,
            18,
            "pve.password_file",
            "both `password` and `password_file` are given",
            "keep one of them",
        )
    ]


def test_an_unknown_key_suggests_the_closest_of_several_near_ones() -> None:
    text = STORAGE + "    prune_backups: {keep_dayly: 7, keep_weakly: 4}\n"
    assert [fix for *_where, fix in rows(text)] == [
        "did you mean `keep_daily`?",
        "did you mean `keep_weekly`?",
    ]


# ---- the bytes of the file ----------------------------------------------------------------------


def test_a_config_of_exactly_the_limit_is_read_one_byte_more_is_not() -> None:
    padding = MAX_CONFIG_BYTES - len(STORAGE.encode()) - 2
    text = STORAGE + "#" + "x" * padding + "\n"
    assert len(text.encode()) == MAX_CONFIG_BYTES
    assert [s.name for s in load(text).storages] == ["pbs1"]
    ((line, column, field, message, _fix),) = rows(text + "\n")
    assert (line, column, field) == (None, None, "")
    assert message.startswith("the file is 2.0 MiB; a config file may be at most 2.0 MiB")


@pytest.mark.parametrize(
    ("raw", "line", "column"),
    [
        (b"\xff", 1, 1),
        (b"\n\xff", 2, 1),  # the line break at offset 0 counts
        (b"a: 1\nb: 2\ncc: \xff", 3, 5),  # the column after the last line break, not the first
    ],
)
def test_a_byte_that_is_not_utf8_is_located_after_the_last_line_break(
    raw: bytes, line: int, column: int
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, Path("/etc/pbs/pbs.yaml"), {})
    ((issue),) = caught.value.issues
    assert (issue.line, issue.column) == (line, column)
    assert issue.message == f"not UTF-8 text (byte 0xff at offset {len(raw) - 1})"


@pytest.mark.parametrize("bom", ["\ufeff", ""])
def test_a_byte_order_mark_is_no_part_of_the_first_key(bom: str) -> None:
    assert [s.name for s in load(bom + STORAGE).storages] == ["pbs1"]
    assert rows(bom + "zzz: 1\n" + STORAGE)[0][:3] == (1, 1, "zzz")


def test_a_yaml_syntax_error_names_this_file() -> None:
    ((line, _column, field, message, _fix),) = rows("pbs_storages: [\n", file=Path("/x/a.yaml"))
    assert (line, field) == (2, "")
    assert message.startswith("YAML syntax error: ")
