"""Every field rule of a `pbs_storages` entry, and the seed file loading unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
from config_helpers import Load, Problem, Problems, StorageText, assert_issue
from pydantic import SecretStr

from pbs_compliance.config import (
    ComplianceConfig,
    PruneBackups,
    StorageSpec,
    load_config,
)

REPO = Path(__file__).resolve().parents[2]


# -- the seed -----------------------------------------------------------------------------------


def test_the_seed_file_loads_unchanged_with_every_value_as_written() -> None:
    config = load_config(REPO / "config" / "pbs-storage.yaml", environ={})

    assert config.storages == (
        StorageSpec(
            name="homelab-backup",
            server="proxmox-backup-server.maas",
            datastore="homelab-backup",
            fingerprint=(
                "54:52:3A:D2:43:F0:80:66:E3:D0:BB:D6:0B:28:50:9F:"
                "C6:1C:73:BD:45:EA:D0:38:BC:25:54:EE:A4:D5:D1:54"
            ),
            enabled=True,
            content=("backup",),
            username="root@pam",
            prune_backups=PruneBackups(keep_daily=7, keep_weekly=4, keep_monthly=3),
            description="Primary PBS storage for homelab backups",
        ),
    )
    assert config.source == REPO / "config" / "pbs-storage.yaml"


def test_a_storage_can_be_looked_up_by_name_and_an_unknown_name_is_a_key_error() -> None:
    config = load_config(REPO / "config" / "pbs-storage.yaml", environ={})

    assert config.storage("homelab-backup").datastore == "homelab-backup"
    with pytest.raises(KeyError):
        config.storage("nope")


# -- defaults -----------------------------------------------------------------------------------


def test_a_minimal_entry_gets_the_documented_defaults(
    load: Load, storage_text: StorageText
) -> None:
    (spec,) = load(storage_text()).storages

    assert spec.enabled is True
    assert spec.content == ("backup",)
    assert spec.username == "root@pam"
    assert spec.port == 8007
    assert spec.namespace is None
    assert spec.nodes is None
    assert spec.max_protected_backups is None
    assert spec.prune_backups is None
    assert spec.description is None
    assert spec.password is None


def test_a_config_without_pve_and_dns_sections_gets_their_defaults(
    load: Load, storage_text: StorageText
) -> None:
    config = load(storage_text())

    assert config.pve.url is None
    assert config.pve.verify_ssl is True
    assert config.pve.timeout == 10.0
    assert config.dns.nameservers == ()
    assert config.dns.timeout == 2.0


def test_an_empty_storage_list_is_a_valid_config(load: Load) -> None:
    assert load("pbs_storages: []\n").storages == ()


# -- required fields ----------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["name", "server", "datastore", "fingerprint"])
def test_each_required_field_missing_is_reported_at_its_entry(
    problem: Problem, storage_text: StorageText, field: str
) -> None:
    lines = [line for line in storage_text().splitlines()[1:] if field not in line]
    text = "pbs_storages:\n  - " + "\n".join(line.strip(" -") for line in lines[:1])
    text += "".join("\n    " + line.strip() for line in lines[1:]) + "\n"

    issue = problem(text)

    assert_issue(
        issue,
        f"pbs_storages[0].{field}",
        message="required field is missing",
        fix=f"add `{field}:`",
    )
    assert issue.line is not None


# -- name ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ab", "pbs1", "PBS_Offsite", "a.b-c_d9", "x" * 300])
def test_a_name_following_the_pve_storage_id_rules_is_accepted(
    load: Load, storage_text: StorageText, name: str
) -> None:
    assert load(storage_text().replace("name: pbs1", f"name: '{name}'")).storages[0].name == name


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("a", "shorter than 2 characters"),
        ("1bad", "illegal characters"),
        ("bad-", "illegal characters"),
        ("has space", "illegal characters"),
        ("_x", "illegal characters"),
    ],
)
def test_a_name_breaking_the_pve_storage_id_rules_is_rejected(
    problem: Problem, storage_text: StorageText, name: str, words: str
) -> None:
    assert_issue(
        problem(storage_text().replace("name: pbs1", f"name: '{name}'")),
        "pbs_storages[0].name",
        words,
    )


def test_two_storages_with_one_name_are_reported_at_the_second_with_the_first_line(
    problem: Problem, storage_text: StorageText
) -> None:
    entry = storage_text().removeprefix("pbs_storages:\n")

    assert_issue(
        problem("pbs_storages:\n" + entry + entry),
        "pbs_storages[1].name",
        "duplicate storage name `pbs1` (first declared on line 2)",
        at=(6, 11),
        fix_says="unique",
    )


def test_names_are_compared_after_interpolation(
    problem: Problem, storage_text: StorageText
) -> None:
    entry = storage_text().removeprefix("pbs_storages:\n")
    second = entry.replace("name: pbs1", "name: ${SECOND}")

    assert_issue(
        problem("pbs_storages:\n" + entry + second, env={"SECOND": "pbs1"}),
        "pbs_storages[1].name",
        "duplicate storage name `pbs1`",
    )


def test_a_duplicate_entry_is_still_validated_so_its_other_errors_show_too(
    problems: Problems, storage_text: StorageText
) -> None:
    entry = storage_text().removeprefix("pbs_storages:\n")
    second = entry.replace("store1", "x")

    fields = [issue.field for issue in problems("pbs_storages:\n" + entry + second)]

    assert fields == ["pbs_storages[1].name", "pbs_storages[1].datastore"]


# -- server -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "server",
    ["pbs.example", "pbs", "pbs-1.lan.example.org", "10.0.0.5", "2001:db8::1", "::1", "fe80::1"],
)
def test_a_host_name_or_an_ip_address_is_a_valid_server(
    load: Load, storage_text: StorageText, server: str
) -> None:
    (spec,) = load(storage_text().replace("server: pbs.example", f"server: '{server}'")).storages

    assert spec.server == server


@pytest.mark.parametrize(
    "server", ["https://pbs.example", "pbs.example:8007", "[2001:db8::1]", "bad host", "-pbs", ""]
)
def test_a_url_a_port_or_brackets_in_server_are_rejected_with_the_fix(
    problem: Problem, storage_text: StorageText, server: str
) -> None:
    assert_issue(
        problem(storage_text().replace("server: pbs.example", f"server: '{server}'")),
        "pbs_storages[0].server",
        "neither a host name nor an IPv4/IPv6 address",
        "the port in `port:`",
    )


# -- datastore ----------------------------------------------------------------------------------


@pytest.mark.parametrize("datastore", ["abc", "store_1", "a.b-c", "x" * 32])
def test_a_pbs_datastore_name_of_3_to_32_safe_characters_is_accepted(
    load: Load, storage_text: StorageText, datastore: str
) -> None:
    (spec,) = load(storage_text().replace("store1", datastore)).storages

    assert spec.datastore == datastore


@pytest.mark.parametrize("datastore", ["ab", "x" * 33, "a/b", "-abc", "has space"])
def test_a_datastore_name_pbs_would_reject_is_rejected(
    problem: Problem, storage_text: StorageText, datastore: str
) -> None:
    assert_issue(
        problem(storage_text().replace("store1", f"'{datastore}'")),
        "pbs_storages[0].datastore",
        "3 to 32",
    )


# -- fingerprint --------------------------------------------------------------------------------


def test_a_lower_case_fingerprint_is_normalised_to_upper_case(
    load: Load, storage_text: StorageText, fingerprint: str
) -> None:
    (spec,) = load(storage_text().replace(fingerprint, fingerprint.lower())).storages

    assert spec.fingerprint == fingerprint


def test_an_unquoted_all_digit_fingerprint_stays_text_instead_of_a_base_60_number(
    load: Load, storage_text: StorageText, fingerprint: str
) -> None:
    digits = ":".join(["12"] * 32)

    (spec,) = load(storage_text().replace(f"'{fingerprint}'", digits)).storages

    assert spec.fingerprint == digits


@pytest.mark.parametrize(
    "value",
    [
        "AB:" * 30 + "AB",  # 31 bytes
        "AB:" * 32 + "AB",  # 33 bytes
        "AB" * 32,  # no colons
        "GG:" * 31 + "GG",  # not hex
        "AB-" * 31 + "AB",  # wrong separator
        "sha256:" + "AB:" * 31 + "AB",
    ],
)
def test_a_fingerprint_that_is_not_32_colon_separated_hex_bytes_is_rejected(
    problem: Problem, storage_text: StorageText, fingerprint: str, value: str
) -> None:
    assert_issue(
        problem(storage_text().replace(fingerprint, value)),
        "pbs_storages[0].fingerprint",
        "32 colon-separated hex bytes",
        "pbs fingerprint HOST",
    )


# -- enabled, content ---------------------------------------------------------------------------


def test_enabled_false_is_kept(load: Load, storage_text: StorageText) -> None:
    assert load(storage_text(enabled="false")).storages[0].enabled is False


def test_enabled_must_be_a_boolean_not_a_number(storage_problem: Problem) -> None:
    issue = storage_problem(enabled="1")

    assert issue.field == "pbs_storages[0].enabled"
    assert issue.fix == "write `true` or `false` without quotes"


@pytest.mark.parametrize(
    ("written", "content"),
    [
        ("[backup]", ("backup",)),
        ("[none]", ("none",)),
        ("backup", ("backup",)),  # shorthand for a one-item list
        ("[backup, backup]", ("backup",)),
    ],
)
def test_content_is_backup_or_none_as_a_list_or_a_single_word(
    load: Load, storage_text: StorageText, written: str, content: tuple[str, ...]
) -> None:
    assert load(storage_text(content=written)).storages[0].content == content


def test_a_content_type_pbs_cannot_hold_is_rejected_with_what_pve_would_do(
    storage_problem: Problem,
) -> None:
    assert_issue(
        storage_problem(content="[backup, images]"),
        "pbs_storages[0].content[1]",
        "'images' is not allowed",
        fix_says="PVE turns anything else into `none`",
    )


@pytest.mark.parametrize(
    ("written", "words"),
    [("[backup, none]", "unable to combine 'none'"), ("[]", "at least one content type")],
)
def test_none_combined_with_backup_or_an_empty_content_list_is_rejected(
    storage_problem: Problem, written: str, words: str
) -> None:
    assert_issue(storage_problem(content=written), "pbs_storages[0].content", words)


# -- username -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "username", ["root@pam", "backup@pbs", "sync@pbs!ci", "svc.user@my-realm!token_1"]
)
def test_a_user_at_realm_or_a_token_id_is_a_valid_username(
    load: Load, storage_text: StorageText, username: str
) -> None:
    assert load(storage_text(username=f"'{username}'")).storages[0].username == username


@pytest.mark.parametrize(
    "username", ["root", "root@", "@pam", "a b@pam", "root@pam!", "root@pam!a!b", "a:b@pam"]
)
def test_a_username_that_is_no_pbs_auth_id_is_rejected_with_both_forms(
    storage_problem: Problem, username: str
) -> None:
    assert_issue(
        storage_problem(username=f"'{username}'"),
        "pbs_storages[0].username",
        "`user@realm`",
        "`user@realm!tokenname`",
    )


# -- port ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("port", [1, 8207, 65535])
def test_a_port_in_range_is_kept(load: Load, storage_text: StorageText, port: int) -> None:
    assert load(storage_text(port=str(port))).storages[0].port == port


@pytest.mark.parametrize(("port", "fix"), [("0", ">= 1"), ("65536", "<= 65535")])
def test_a_port_out_of_range_is_rejected_with_the_bound(
    storage_problem: Problem, port: str, fix: str
) -> None:
    assert_issue(storage_problem(port=port), "pbs_storages[0].port", fix=f"use a value {fix}")


def test_a_quoted_port_is_rejected_with_a_hint_to_drop_the_quotes(storage_problem: Problem) -> None:
    issue = storage_problem(port="'8007'")

    assert "valid integer" in issue.message
    assert "'8007'" in issue.message
    assert issue.fix == "write a whole number, e.g. `8007`, without quotes"


# -- namespace, nodes, max_protected_backups, description ---------------------------------------


@pytest.mark.parametrize("namespace", ["prod", "prod/vms", "a/b/c/d/e/f/g", "x" * 32])
def test_a_pbs_namespace_of_up_to_7_levels_is_accepted(
    load: Load, storage_text: StorageText, namespace: str
) -> None:
    assert load(storage_text(namespace=namespace)).storages[0].namespace == namespace


@pytest.mark.parametrize("namespace", ["a//b", "/a", "a/", "a/b/c/d/e/f/g/h", "x" * 33, "a b"])
def test_a_namespace_pbs_would_reject_is_rejected(storage_problem: Problem, namespace: str) -> None:
    assert_issue(
        storage_problem(namespace=f"'{namespace}'"),
        "pbs_storages[0].namespace",
        "not a valid PBS namespace",
    )


def test_nodes_are_a_sorted_set_and_a_single_word_is_a_one_node_list(
    load: Load, storage_text: StorageText
) -> None:
    assert load(storage_text(nodes="[pve2, pve1, pve2]")).storages[0].nodes == ("pve1", "pve2")
    assert load(storage_text(nodes="pve1")).storages[0].nodes == ("pve1",)


def test_an_empty_node_list_is_rejected_because_it_would_mean_no_node(
    storage_problem: Problem,
) -> None:
    assert_issue(
        storage_problem(nodes="[]"), "pbs_storages[0].nodes", "leave `nodes` out for all nodes"
    )


def test_an_invalid_node_name_is_reported_at_its_list_position(storage_problem: Problem) -> None:
    assert_issue(
        storage_problem(nodes="[pve1, 'pve 2']"),
        "pbs_storages[0].nodes[1]",
        "'pve 2' is not a valid node name",
        at=(6, 19),
    )


@pytest.mark.parametrize("value", [-1, 0, 10])
def test_max_protected_backups_of_minus_one_or_more_is_kept(
    load: Load, storage_text: StorageText, value: int
) -> None:
    spec = load(storage_text(max_protected_backups=str(value))).storages[0]

    assert spec.max_protected_backups == value


def test_max_protected_backups_below_minus_one_is_rejected(storage_problem: Problem) -> None:
    assert_issue(
        storage_problem(max_protected_backups="-2"),
        "pbs_storages[0].max_protected_backups",
        fix="use a value >= -1",
    )


def test_a_description_is_kept_as_text(load: Load, storage_text: StorageText) -> None:
    spec = load(storage_text(description="'Offsite copy: weekly'")).storages[0]

    assert spec.description == "Offsite copy: weekly"


# -- prune_backups ------------------------------------------------------------------------------


def test_every_prune_key_is_accepted_and_kept_in_pve_order(
    load: Load, storage_text: StorageText
) -> None:
    text = storage_text(
        prune_backups="{keep_yearly: 1, keep_monthly: 2, keep_weekly: 3, keep_daily: 4, "
        "keep_hourly: 5, keep_last: 6}"
    )

    prune = load(text).storages[0].prune_backups

    assert prune is not None
    assert prune.items() == [
        ("keep_last", 6),
        ("keep_hourly", 5),
        ("keep_daily", 4),
        ("keep_weekly", 3),
        ("keep_monthly", 2),
        ("keep_yearly", 1),
    ]


def test_keep_all_is_a_boolean_shown_to_pve_as_one_or_zero(
    load: Load, storage_text: StorageText
) -> None:
    on = load(storage_text(prune_backups="{keep_all: true}")).storages[0].prune_backups
    off = load(storage_text(prune_backups="{keep_all: false}")).storages[0].prune_backups

    assert on == PruneBackups(keep_all=True)
    assert on.items() == [("keep_all", 1)]
    assert off == PruneBackups(keep_all=False)
    assert off.items() == [("keep_all", 0)]


def test_keep_all_with_other_keys_at_zero_is_allowed_as_pve_allows_it(
    load: Load, storage_text: StorageText
) -> None:
    prune = load(storage_text(prune_backups="{keep_all: true, keep_daily: 0}"))

    assert prune.storages[0].prune_backups == PruneBackups(keep_all=True, keep_daily=0)


def test_keep_all_combined_with_a_retention_count_is_rejected_naming_the_others(
    storage_problem: Problem,
) -> None:
    assert_issue(
        storage_problem(prune_backups="{keep_all: true, keep_daily: 7, keep_last: 1}"),
        "pbs_storages[0].prune_backups",
        "keep_all cannot be combined with keep_last, keep_daily",
    )


@pytest.mark.parametrize("value", ["-1", "1.5", "'7'", "true"])
def test_a_prune_count_must_be_a_non_negative_integer(storage_problem: Problem, value: str) -> None:
    assert_issue(
        storage_problem(prune_backups=f"{{keep_daily: {value}}}"),
        "pbs_storages[0].prune_backups.keep_daily",
        line=6,
    )


# The mapping fields (`backups:` and `prune_backups:`) alike.
@pytest.mark.parametrize(
    ("section", "entry", "key", "meant"),
    [
        ("backups", "{max_ag: 36h}", "max_ag", "max_age"),
        ("prune_backups", "{keep-daily: 7}", "keep-daily", "keep_daily"),  # the underscore
    ],
)
def test_an_unknown_key_of_a_mapping_field_gets_the_close_one_suggested(
    storage_problem: Problem, section: str, entry: str, key: str, meant: str
) -> None:
    assert_issue(
        storage_problem(**{section: entry}),
        f"pbs_storages[0].{section}.{key}",
        message=f"unknown key `{key}`",
        fix=f"did you mean `{meant}`?",
    )


@pytest.mark.parametrize(("section", "value"), [("backups", "36h"), ("prune_backups", "[7]")])
def test_a_mapping_field_must_be_a_mapping(
    storage_problem: Problem, section: str, value: str
) -> None:
    assert_issue(
        storage_problem(**{section: value}),
        f"pbs_storages[0].{section}",
        fix="write a mapping of `key: value` lines below it",
    )


# -- the model from Python ----------------------------------------------------------------------


def test_a_storage_spec_built_in_python_accepts_lists_and_is_immutable(fingerprint: str) -> None:
    spec = StorageSpec(
        name="pbs1",
        server="h",
        datastore="ds1",
        fingerprint=fingerprint,
        content=["backup"],  # type: ignore[arg-type]
        nodes=["b", "a"],  # type: ignore[arg-type]
        password=SecretStr("pw"),
    )

    assert spec.content == ("backup",)
    assert spec.nodes == ("a", "b")
    with pytest.raises(ValueError, match="frozen"):
        spec.port = 1


def test_a_config_holds_its_source_path(tmp_path: Path) -> None:
    config = ComplianceConfig(source=tmp_path / "c.yaml")

    assert config.storages == ()
    assert config.source == tmp_path / "c.yaml"
