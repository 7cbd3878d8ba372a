"""Where an error points: a key's error at the key, a value's at the value (#10 item 2)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from config_helpers import Problem, StorageText, assert_issue, storage_document
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pbs_compliance.config import ConfigError, ConfigIssue, parse_config
from pbs_compliance.config.yamlsource import load_yaml

FINGERPRINT = ":".join(["AB"] * 32)


def test_an_unknown_key_whose_value_is_a_mapping_points_at_the_key(
    problem: Problem, storage_text: StorageText
) -> None:
    text = storage_text().replace(
        "    datastore: store1\n", "    prune_backup:\n      keep_daily: 7\n    datastore: store1\n"
    )

    issue = problem(text)

    assert issue.field == "pbs_storages[0].prune_backup"
    assert (issue.line, issue.column) == (4, 5)  # `prune_backup:`, not `keep_daily: 7` below it
    assert issue.fix == "did you mean `prune_backups`?"


def test_an_unknown_key_whose_value_is_a_list_points_at_the_key(problem: Problem) -> None:
    assert_issue(
        problem("pbs_storages: []\ndns:\n  name_servers:\n    - 192.0.2.53\n"),
        "dns.name_servers",
        at=(3, 3),
    )


def test_an_unknown_top_level_section_points_at_its_key(problem: Problem) -> None:
    issue = problem("pbs_storages: []\nproxmox:\n  url: https://pve1:8006\n")

    assert (issue.line, issue.column, issue.field) == (2, 1, "proxmox")


def test_a_name_under_defaults_points_at_the_key(
    problem: Problem, storage_text: StorageText
) -> None:
    issue = problem("defaults:\n  port: 8007\n  name:\n    x: 1\n" + storage_text())

    assert (issue.line, issue.column, issue.field) == (3, 3, "defaults.name")


def test_a_bad_value_still_points_at_the_value(storage_problem: Problem) -> None:
    issue = storage_problem(port="70000")

    assert (issue.line, issue.column, issue.field) == (6, 11, "pbs_storages[0].port")


def test_a_value_written_on_the_next_line_is_pointed_at_there(storage_problem: Problem) -> None:
    issue = storage_problem(port="\n      70000")

    assert (issue.line, issue.column) == (7, 7)


def test_a_mapping_value_that_is_wrong_as_a_whole_points_at_its_key(
    storage_problem: Problem,
) -> None:
    assert_issue(
        storage_problem(prune_backups="\n      keep_all: true\n      keep_daily: 7"),
        "pbs_storages[0].prune_backups",
        "keep_all cannot be combined with keep_daily",
        at=(6, 5),
    )


def test_an_empty_value_points_at_its_key_not_the_next_line(
    problem: Problem, storage_text: StorageText
) -> None:
    text = storage_text().replace("server: pbs.example", "server:")

    issue = problem(text)

    assert (issue.line, issue.column, issue.field) == (3, 5, "pbs_storages[0].server")


def test_a_list_value_of_the_wrong_kind_points_at_its_key(problem: Problem) -> None:
    issue = problem("pbs_storages:\n  name: pbs1\n")

    assert (issue.line, issue.column, issue.field) == (1, 1, "pbs_storages")


def test_key_and_value_positions_are_both_kept(tmp_path: Path) -> None:
    located = load_yaml("a:\n  b:\n    - 1\n", tmp_path / "c.yaml")

    assert located.key_mark(("a", "b")) == (2, 3)
    assert located.mark(("a", "b")) == (2, 3)  # a list: its key names it
    assert located.mark(("a", "b", 0)) == (3, 7)
    assert located.key_mark(("a", "b", 0)) == (3, 7)  # a list item has no key


# -- the property: every error's line holds the field it names ---------------------------------

STORAGE_KEYS = [
    "name", "server", "datastore", "fingerprint", "enabled", "content", "username", "port",
    "namespace", "nodes", "max_protected_backups", "prune_backups", "description", "password",
]  # fmt: skip
TYPOS = ["servr", "prune_backup", "finger_print", "keep_daly", "colour", "nameservers", "urls"]
bad_scalars = st.sampled_from(
    [None, "", "x", "bad host", "-1", 70000, -5, 1.5, True, "${MISSING}", "a\nb", "pbs1\n", "ſ"]
)
bad_values = st.recursive(
    bad_scalars,
    lambda inner: (
        st.lists(inner, max_size=2)
        | st.dictionaries(st.sampled_from([*TYPOS, "keep_daily", "keep_all"]), inner, max_size=2)
    ),
    max_leaves=4,
)


valid_storage = storage_document


@st.composite
def broken_configs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid config with a few values made wrong and a few unknown keys added."""
    storages = [valid_storage(i) for i in range(draw(st.integers(1, 3)))]
    for entry in storages:
        for key in draw(st.lists(st.sampled_from(STORAGE_KEYS), max_size=2, unique=True)):
            entry[key] = draw(bad_values)
        for key in draw(st.lists(st.sampled_from(TYPOS), max_size=2, unique=True)):
            entry[key] = draw(bad_values)
    config: dict[str, Any] = {"pbs_storages": storages}
    if draw(st.booleans()):
        config["pve"] = {
            "url": draw(st.sampled_from(["https://pve1:8006", "ftp://x", "pve\n"])),
            draw(st.sampled_from(["verify_ssl", "verify_tls", "timeout"])): draw(bad_values),
        }
    if draw(st.booleans()):
        config["defaults"] = {draw(st.sampled_from(["port", "name", "portt"])): draw(bad_values)}
    return config


def dump(config: dict[str, Any]) -> str:
    # Block style, one `key: value` per line, long strings not folded onto further lines.
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=False, width=10_000)


def last_key(field: str) -> str:
    """The last key in `pbs_storages[0].prune_backups.keep_daly` or `pbs_storages[0].nodes[1]`."""
    return re.sub(r"\[[0-9]+\]", "", field).rsplit(".", 1)[-1]


def assert_each_issue_is_on_its_line(text: str, issues: list[ConfigIssue]) -> None:
    lines = text.splitlines()
    for issue in issues:
        if issue.line is None or not issue.field or issue.message == "required field is missing":
            continue
        line = lines[issue.line - 1]
        key = last_key(issue.field)
        own_line = issue.field.endswith("]") and line.lstrip().startswith("-")  # `- item`
        holds_key = re.search(rf"(^|[\s{{,'\"]){re.escape(key)}['\"]?:", line) is not None
        assert own_line or holds_key, (str(issue), line)
        if issue.message.startswith("unknown key"):
            assert line[issue.column - 1 :].startswith(key), (str(issue), line)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(broken_configs())
@example({"pbs_storages": [{**valid_storage(0), "prune_backup": {"keep_daily": 7}}]})
@example(
    {"pbs_storages": [{**valid_storage(0), "prune_backups": {"keep_all": True, "keep_daily": 7}}]}
)
@example({"pbs_storages": [{**valid_storage(0), "server": None}]})
def test_every_error_cites_the_line_that_holds_the_field_it_names(config: dict[str, Any]) -> None:
    text = dump(config)
    try:
        parse_config(text.encode(), Path("/nonexistent/pbs-storage.yaml"), {})
    except ConfigError as error:
        assert_each_issue_is_on_its_line(text, error.issues)
