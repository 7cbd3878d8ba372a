"""Bad input: every problem located (file, line, column, field), explained, with a fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from config_helpers import Load, Problem, Problems, StorageText, assert_issue

from pbs_compliance.config import ConfigError, ConfigIssue, load_config
from pbs_compliance.config.yamlsource import MAX_VALUES, format_path, load_yaml


def issues_of(raw: bytes, tmp_path: Path) -> list[ConfigIssue]:
    path = tmp_path / "pbs-storage.yaml"
    path.write_bytes(raw)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    return caught.value.issues


# -- the shape of an error ----------------------------------------------------------------------


def test_an_error_names_file_line_column_field_problem_and_fix(
    storage_problem: Problem, tmp_path: Path
) -> None:
    issue = storage_problem(prune_backups="{keep_daly: 7}")

    assert issue == ConfigIssue(
        file=tmp_path / "pbs-storage.yaml",
        line=6,
        column=21,  # the key, not its value `7` (#10 item 2)
        field="pbs_storages[0].prune_backups.keep_daly",
        message="unknown key `keep_daly`",
        fix="did you mean `keep_daily`?",
    )
    assert str(issue) == (
        f"{tmp_path / 'pbs-storage.yaml'}:6:21: pbs_storages[0].prune_backups.keep_daly: "
        "unknown key `keep_daly`\n    fix: did you mean `keep_daily`?"
    )


def test_the_third_storage_is_addressed_by_its_index(
    problem: Problem, storage_text: StorageText, fingerprint: str
) -> None:
    entry = storage_text().removeprefix("pbs_storages:\n")
    entries = [entry.replace("pbs1", f"pbs{i}") for i in range(3)]
    entries[2] = entries[2].replace(fingerprint, "AB:CD")

    assert_issue(
        problem("pbs_storages:\n" + "".join(entries)), "pbs_storages[2].fingerprint", at=(13, 18)
    )


def test_all_problems_of_a_file_are_reported_at_once_in_file_order(problems: Problems) -> None:
    text = """\
        pbs_storages:
          - name: a
            server: bad host
            datastore: store1
            fingerprint: nope
            colour: blue
          - name: pbs2
            datastore: x
        pve:
          url: ftp://pve
        """

    issues = problems(text)

    assert [(issue.line, issue.field) for issue in issues] == [
        (2, "pbs_storages[0].name"),
        (3, "pbs_storages[0].server"),
        (5, "pbs_storages[0].fingerprint"),
        (6, "pbs_storages[0].colour"),
        (7, "pbs_storages[1].server"),
        (7, "pbs_storages[1].fingerprint"),
        (8, "pbs_storages[1].datastore"),
        (10, "pve.url"),
    ]


def test_the_error_text_counts_the_problems_and_lists_each_with_its_fix(
    tmp_path: Path, storage_text: StorageText
) -> None:
    error = ConfigError(
        [
            ConfigIssue(tmp_path / "b.yaml", 3, None, "x", "second", "fix it"),
            ConfigIssue(tmp_path / "b.yaml", None, None, "", "whole file"),
            ConfigIssue(tmp_path / "b.yaml", 3, None, "x", "second", "fix it"),
        ]
    )

    assert str(error) == (
        "invalid configuration (2 problems):\n"
        f"  {tmp_path / 'b.yaml'}: whole file\n"
        f"  {tmp_path / 'b.yaml'}:3: x: second\n"
        "    fix: fix it"
    )
    assert str(ConfigError(error.issues[:1])).startswith("invalid configuration (1 problem):")


# -- unknown keys -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "fix"),
    [
        ("servr", "did you mean `server`?"),
        ("finger_print", "did you mean `fingerprint`?"),
        ("max-protected-backups", "did you mean `max_protected_backups`?"),
        ("prune-backups", "did you mean `prune_backups`?"),
        ("shared", "known keys: name, server, datastore"),
    ],
)
def test_an_unknown_storage_key_suggests_the_closest_field_or_lists_them(
    storage_problem: Problem, key: str, fix: str
) -> None:
    issue = storage_problem(**{key: "1"})

    assert_issue(issue, f"pbs_storages[0].{key}", message=f"unknown key `{key}`")
    assert issue.fix.startswith(fix)


def test_an_unknown_top_level_key_suggests_the_known_one(
    problem: Problem, storage_text: StorageText
) -> None:
    assert_issue(
        problem("pbs_storage:\n  - x\n" + storage_text()),
        "pbs_storage",
        fix="did you mean `pbs_storages`?",
    )


def test_a_key_that_yaml_reads_as_a_boolean_is_reported_as_written(
    storage_problem: Problem,
) -> None:
    issue = storage_problem(yes="1")

    assert issue.message == "unknown key `yes`"


# -- duplicate keys -----------------------------------------------------------------------------


def test_a_duplicate_key_is_an_error_pointing_at_the_second_with_the_first_line(
    storage_problem: Problem,
) -> None:
    assert_issue(
        storage_problem(server="other.example"),
        "pbs_storages[0].server",
        at=(6, 5),
        message="duplicate key `server` (first given on line 3)",
        fix_says="YAML would silently use the last one",
    )


def test_a_duplicate_top_level_section_is_an_error(
    problem: Problem, storage_text: StorageText
) -> None:
    assert_issue(problem(storage_text() + "pve: {}\npve: {}\n"), "pve", line=7)


# -- wrong types and shapes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("[a, b]\n", "", "the top level must be a mapping"),
        ("just text\n", "", "the top level must be a mapping"),
        ("pve: {}\n", "", "missing `pbs_storages`"),
        ("pbs_storages:\n", "pbs_storages", "`pbs_storages` is empty"),
        ("pbs_storages: {name: x}\n", "pbs_storages", "must be a list of storage entries"),
        ("pbs_storages: [pbs1]\n", "pbs_storages[0]", "each storage must be a mapping"),
    ],
)
def test_a_document_of_the_wrong_shape_says_what_shape_is_expected(
    problem: Problem, text: str, field: str, words: str
) -> None:
    issue = problem(text)

    assert_issue(issue, field, words)
    assert issue.fix
    assert issue.line is not None


@pytest.mark.parametrize(
    ("extra", "field", "fix"),
    [
        ({"port": "[8007]"}, "port", "write a whole number, e.g. `8007`"),
        ({"port": "80.5"}, "port", "write a whole number, e.g. `8007`"),
        ({"description": "[a]"}, "description", "write it as text"),
        ({"description": "2024-01-01"}, "description", "write it as text"),
        ({"description": "!!binary aGVsbG8="}, "description", "write it as text"),
        ({"nodes": "{a: 1}"}, "nodes", "write a list"),
        ({"content": "7"}, "content", "write a list"),
    ],
)
def test_a_value_of_the_wrong_type_says_what_to_write(
    storage_problem: Problem, extra: dict[str, str], field: str, fix: str
) -> None:
    issue = storage_problem(**extra)

    assert_issue(issue, f"pbs_storages[0].{field}", "(got ")
    assert issue.fix.startswith(fix)


def test_a_number_where_text_is_expected_suggests_quotes(
    problem: Problem, storage_text: StorageText
) -> None:
    assert_issue(
        problem(storage_text().replace("store1", "1234")),
        "pbs_storages[0].datastore",
        fix_says="put quotes around values",
    )


def test_a_long_wrong_value_is_shortened_in_the_message(storage_problem: Problem) -> None:
    issue = storage_problem(port="'" + "9" * 100 + "'")

    assert "...)" in issue.message
    assert len(issue.message) < 120


@pytest.mark.parametrize("key", ["[a]", "{a: 1}", '""'])
def test_a_mapping_key_that_is_not_plain_text_is_an_error(
    problem: Problem, storage_text: StorageText, key: str
) -> None:
    issue = problem(storage_text() + f"{key}: 1\n")

    assert issue.message == "mapping keys must be plain text"


# -- YAML syntax, empty, encoding, missing file -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("pbs_storages:\n  - name: a\n   server: b\n", 3),
        ("pbs_storages: [a\n", 2),
        ("pbs_storages:\n\t- a\n", 2),
        ("a: 'unterminated\n", 2),
        ("pbs_storages: []\n---\npbs_storages: []\n", 2),
        ("pbs_storages: *nothing\n", 1),
        ("pbs_storages: !custom x\n", 1),
    ],
)
def test_a_yaml_syntax_error_is_located_and_never_a_traceback(
    problem: Problem, text: str, line: int
) -> None:
    issue = problem(text)

    assert issue.line == line
    assert issue.column is not None
    assert issue.message.startswith("YAML syntax error: ")
    assert issue.fix


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n", "\ufeff"])
def test_an_empty_file_says_what_to_declare(problem: Problem, text: str) -> None:
    issue = problem(text)

    assert issue.message == "the file is empty"
    assert "pbs_storages:" in issue.fix


def test_a_utf8_byte_order_mark_is_ignored(tmp_path: Path, storage_text: StorageText) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + storage_text().encode())

    assert load_config(path, environ={}).storages[0].name == "pbs1"


def test_a_non_utf8_file_names_the_byte_and_where_it_is(tmp_path: Path) -> None:
    (issue,) = issues_of(b"pbs_storages: []\n# caf\xe9\n", tmp_path)

    assert (issue.line, issue.column) == (2, 6)
    assert issue.message == "not UTF-8 text (byte 0xe9 at offset 22)"
    assert issue.fix == "save the file as UTF-8"


def test_a_control_character_is_located(tmp_path: Path) -> None:
    (issue,) = issues_of(b"pbs_storages: []\nx: a\x01b\n", tmp_path)

    assert (issue.line, issue.column) == (2, 5)
    assert issue.message == "control character U+0001 is not allowed in YAML"


def test_a_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml", environ={})

    (issue,) = caught.value.issues
    assert issue.message == "file not found"
    assert "config/pbs-storage.example.yaml" in issue.fix


def test_a_directory_instead_of_a_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read: Is a directory"):
        load_config(tmp_path, environ={})


def test_load_config_reads_the_process_environment_by_default(
    tmp_path: Path, storage_text: StorageText, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PBS_TEST_PORT", "8100")
    path = tmp_path / "c.yaml"
    path.write_text(storage_text(port="${PBS_TEST_PORT}"), encoding="utf-8")

    assert load_config(path).storages[0].port == 8100


# -- YAML that would crash or explode a naive loader --------------------------------------------


def test_a_self_referencing_alias_is_an_error_not_a_recursion_error(problems: Problems) -> None:
    issues = problems("pbs_storages: &x [*x]\n")

    assert "an alias refers to itself" in [issue.message for issue in issues]


def test_aliases_of_ordinary_values_are_expanded(
    load: Load, storage_text: StorageText, fingerprint: str
) -> None:
    entry = storage_text().removeprefix("pbs_storages:\n")
    text = "pbs_storages:\n" + entry.replace(f"'{fingerprint}'", f"&fp '{fingerprint}'")
    text += entry.replace("pbs1", "pbs2").replace(f"'{fingerprint}'", "*fp")

    first, second = load(text).storages

    assert first.fingerprint == second.fingerprint == fingerprint


def test_an_alias_bomb_is_stopped(problem: Problem) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]

    issue = problem("\n".join(lines) + "\n")

    assert f"more than {MAX_VALUES} values" in issue.message


@pytest.mark.parametrize(
    "text", ["[" * 1000 + "]" * 1000, "a:\n" + "".join(" " * i + "- \n" for i in range(999))]
)
def test_absurdly_deep_nesting_is_an_error_not_a_recursion_error(
    problem: Problem, text: str
) -> None:
    assert problem(text).message == "the document is nested too deeply"


def test_reasonably_deep_nesting_is_validated_normally(problem: Problem) -> None:
    assert problem("[" * 300 + "]" * 300).message == "the top level must be a mapping"


def test_a_yaml_merge_key_gets_a_pointer_to_defaults(
    problems: Problems, storage_text: StorageText
) -> None:
    text = storage_text(**{"<<": "{port: 8207}"})

    issues = problems(text)

    assert [issue.message for issue in issues] == [
        "YAML merge keys (`<<: *anchor`) are not supported"
    ]
    assert "`defaults:`" in issues[0].fix


# -- yamlsource helpers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "text"),
    [((), ""), (("pve",), "pve"), (("pbs_storages", 2, "name"), "pbs_storages[2].name")],
)
def test_a_field_path_is_written_as_in_the_docs(path: tuple[str | int, ...], text: str) -> None:
    assert format_path(path) == text


def test_a_missing_key_is_located_at_its_closest_parent(tmp_path: Path) -> None:
    located = load_yaml("a:\n  b: 1\n", tmp_path / "c.yaml")

    assert located.mark(("a", "b")) == (2, 6)
    assert located.mark(("a", "c", "d")) == (2, 3)
    assert located.mark(("zzz",)) == (1, 1)
    assert load_yaml("", tmp_path / "c.yaml").mark(("a",)) == (None, None)
