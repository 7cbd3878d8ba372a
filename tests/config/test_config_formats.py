"""Names are checked as PVE's formats check them: whole value, ASCII only (#10 item 13).

A regex `$` also matches before a final newline, and case-insensitive matching folds U+017F
(long s) to `s` and U+212A (Kelvin sign) to `k`; either let a value through that PVE then writes
into storage.cfg broken. Every pattern of the config is full-matched over ASCII classes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from config_helpers import Load, Problem, StorageText, assert_issue

from pbs_compliance.config import model, parse_nameserver

FINGERPRINT = ":".join(["AB"] * 32)
# (field, a valid value) of every checked text field of a storage entry.
STORAGE_FIELDS = [
    ("name", "pbs1"),
    ("server", "pbs.example"),
    ("datastore", "store1"),
    ("fingerprint", FINGERPRINT),
    ("username", "root@pam"),
    ("namespace", "prod/vms"),
]


def with_value(storage_text: StorageText, field: str, yaml_value: str) -> str:
    lines = [line for line in storage_text().splitlines() if not line.startswith(f"    {field}:")]
    lines = [line.replace(f"  - {field}:", "  - x:") for line in lines]
    if lines[1].startswith("  - x:"):  # `name` starts the entry
        lines[1] = f"  - name: {yaml_value}"
        return "\n".join(lines) + "\n"
    return "\n".join([*lines, f"    {field}: {yaml_value}"]) + "\n"


@pytest.mark.parametrize(("field", "value"), STORAGE_FIELDS)
@pytest.mark.parametrize("style", ['"{}\\n"', "|\n      {}"], ids=["escape", "block"])
def test_a_value_ending_in_a_newline_is_rejected(
    problem: Problem, storage_text: StorageText, field: str, value: str, style: str
) -> None:
    issue = problem(with_value(storage_text, field, style.format(value)))

    assert_issue(issue, f"pbs_storages[0].{field}", "ends in a line break")
    assert ascii(value + "\n") in issue.message  # shown escaped, on one line
    assert "\n" not in issue.message


@pytest.mark.parametrize(("field", "value"), STORAGE_FIELDS)
def test_a_value_from_a_variable_ending_in_a_newline_is_rejected(
    problem: Problem, storage_text: StorageText, field: str, value: str
) -> None:
    assert_issue(
        problem(with_value(storage_text, field, "${VALUE}"), env={"VALUE": value + "\n"}),
        f"pbs_storages[0].{field}",
        "ends in a line break",
    )


def test_a_node_ending_in_a_newline_is_rejected(storage_problem: Problem) -> None:
    assert_issue(
        storage_problem(nodes='[pve1, "pve2\\n"]'),
        "pbs_storages[0].nodes[1]",
        "ends in a line break",
    )


@pytest.mark.parametrize(
    ("value", "char"),
    [("pb\u017f1", "U+017F (LATIN SMALL LETTER LONG S)"), ("\u212aeep", "U+212A (KELVIN SIGN)")],
)
def test_a_storage_name_with_a_unicode_look_alike_is_rejected_naming_the_character(
    problem: Problem, storage_text: StorageText, value: str, char: str
) -> None:
    issue = problem(storage_text().replace("name: pbs1", f"name: {value}"))

    assert_issue(issue, "pbs_storages[0].name", char)
    assert ascii(value) in issue.message  # 'pb\u017f1': the look-alike made visible


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("server", "pbs.exampl\u212a"),
        ("datastore", "\u017ftore"),
        ("namespace", "prod/vm\u017f"),
        ("fingerprint", FINGERPRINT[:-1] + "\uff22"),  # fullwidth B
    ],
)
def test_other_fields_with_a_look_alike_are_rejected(
    problem: Problem, storage_text: StorageText, field: str, value: str
) -> None:
    assert_issue(
        problem(with_value(storage_text, field, f'"{value}"')),
        f"pbs_storages[0].{field}",
        "which is not ASCII",
    )


def test_a_node_name_with_a_look_alike_is_rejected(storage_problem: Problem) -> None:
    assert_issue(
        storage_problem(nodes="[pve\u212a]"), "pbs_storages[0].nodes[0]", "U+212A (KELVIN SIGN)"
    )


def test_a_pbs_user_name_may_hold_unicode_as_pbs_allows_but_not_a_line_break(
    storage_problem: Problem, load: Load, storage_text: StorageText
) -> None:
    (spec,) = load(storage_text(username="jürgen@pbs")).storages
    assert spec.username == "jürgen@pbs"

    issue = storage_problem(username='"backup@pbs!ci\\n"')
    assert "ends in a line break" in issue.message
    for realm in ["p\u017fs", "pbs!\u212a"]:  # realm and token name are ASCII in PBS
        assert storage_problem(username=f"root@{realm}").field == "pbs_storages[0].username"


@pytest.mark.parametrize("server", ["pbs_1.example", "pbs.example.", "fe80::1%eth0", "fe80::1%\n"])
def test_a_server_pve_would_refuse_is_rejected(
    problem: Problem, storage_text: StorageText, server: str
) -> None:
    text = storage_text().replace("server: pbs.example", f"server: {server!r}".replace("'", '"'))

    issue = problem(text.replace('"fe80::1%\n"', '"fe80::1%\\n"'))

    assert issue.field == "pbs_storages[0].server"


# -- the pve: section ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://pve1.example:8006\\n",
        "https://pve1.example:\u0668006",  # an Arabic-Indic digit
        "https://pv\u212a1:8006",
        "https://pve1:0",
        "https://pve1:65536",
        "https://[pve1]:8006",
        "https://pve_1:8006",
        "pve1.example\\n",
    ],
)
def test_a_pve_url_pve_cannot_be_reached_at_is_rejected(problem: Problem, url: str) -> None:
    issue = problem(f'pbs_storages: []\npve:\n  url: "{url}"\n')

    assert issue.field == "pve.url"


@pytest.mark.parametrize(
    "url", ["https://[2001:db8::1]:8006", "https://10.0.0.1", "https://pve1.example/", "pve1"]
)
def test_a_pve_url_with_an_ip_or_a_name_is_accepted(load: Load, url: str) -> None:
    assert load(f"pbs_storages: []\npve:\n  url: '{url}'\n").pve.url == url


@pytest.mark.parametrize(
    "token_id", ["a@pve!pbs\\n", "a@p\u017fe!pbs", "a@pve!pb\u017f", "a@pve!pbs\u0663"]
)
def test_a_pve_token_id_with_a_newline_or_unicode_in_realm_or_name_is_rejected(
    problem: Problem, token_id: str
) -> None:
    issue = problem(
        f'pbs_storages: []\npve:\n  token_id: "{token_id}"\n  token_secret: ${{S}}\n',
        env={"S": "x"},
    )

    assert issue.field == "pve.token_id"


@pytest.mark.parametrize("user", ["root@pam\\n", "root", "root@p", "root@p\u212am", "a b@pve"])
def test_a_pve_user_that_is_no_pve_user_id_is_rejected(problem: Problem, user: str) -> None:
    issue = problem(
        f'pbs_storages: []\npve:\n  user: "{user}"\n  password: ${{S}}\n', env={"S": "x"}
    )

    assert issue.field == "pve.user"


def test_a_pve_user_id_is_accepted(load: Load) -> None:
    text = "pbs_storages: []\npve:\n  user: automation@pve\n  password: ${S}\n"

    assert load(text, env={"S": "x"}).pve.user == "automation@pve"


# -- dns ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["ns1.example\n", "192.0.2.53\n", "ns1.exampl\u212a:53"])
def test_a_nameserver_with_a_newline_or_a_look_alike_is_rejected(value: str) -> None:
    with pytest.raises(ValueError):
        parse_nameserver(value)


# -- siblings: every pattern of the model is used whole -----------------------------------------


def test_every_pattern_in_the_model_is_only_ever_full_matched() -> None:
    source = re.sub(r"#.*", "", Path(model.__file__).read_text(encoding="utf-8"))

    assert re.findall(r"_RE\.(match|search)\(|re\.(match|search)\(", source) == []
    for name in dir(model):
        pattern = getattr(model, name)
        if isinstance(pattern, re.Pattern):
            assert not pattern.flags & re.IGNORECASE, name
            assert not str(pattern.pattern).startswith("^"), name
