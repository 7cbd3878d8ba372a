"""The model's validators word for word, and their boundaries.

The loader shows these messages as they are (`ConfigIssue.message`), so their text is what the
person fixing the file reads: each one is pinned here, with the limit on either side.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, SecretStr, ValidationError
from spec_builders import SEED_FP as FP
from spec_builders import STORAGE, storage_builder

from pbs_compliance.config.model import (
    DnsSettings,
    JobSettings,
    PruneBackups,
    PveSettings,
    StorageSpec,
    parse_nameserver,
)

LINE_BREAK = (
    'write it on one line, without one (a `|` block or a "\\n" escape adds it, and so may a ${VAR})'
)


storage = storage_builder(fingerprint=FP)


def rejected(model: type[BaseModel], **fields: Any) -> str:
    """The one validation message for `fields` (merged into a valid storage for StorageSpec)."""
    if model is StorageSpec:
        fields = STORAGE | {"fingerprint": FP} | fields
    with pytest.raises(ValidationError) as caught:
        model.model_validate(fields)
    errors = caught.value.errors(include_url=False)
    assert len(errors) == 1, errors
    error = errors[0]
    return (
        str(error["ctx"]["error"]) if "ctx" in error and "error" in error["ctx"] else error["msg"]
    )


def outcome(field: str, value: str) -> str | None:
    """None when a storage keeps `value` in `field` as it is, else the one validation message."""
    try:
        spec = storage(**{field: value})
    except ValidationError:
        return rejected(StorageSpec, **{field: value})
    assert getattr(spec, field) == value
    return None


# ---- names: the shared rules of _plain and the quoting of values -------------------------------


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("pbs1\n", f"storage ID 'pbs1\\n' ends in a line break; {LINE_BREAK}"),
        ("pbs1\r\n", f"storage ID 'pbs1\\r\\n' ends in a line break; {LINE_BREAK}"),
        ("pb\ns1", f"storage ID 'pb\\ns1' contains a line break; {LINE_BREAK}"),
        ("pbs1\n\n", f"storage ID 'pbs1\\n\\n' ends in a line break; {LINE_BREAK}"),
        ("\n", f"storage ID '\\n' contains a line break; {LINE_BREAK}"),
        (
            "pb\u017f1",
            "storage ID 'pb\\u017f1' contains U+017F (LATIN SMALL LETTER LONG S), which is not "
            "ASCII; Proxmox names are plain ASCII letters, digits and punctuation",
        ),
        (
            "pb\u03781",
            "storage ID 'pb\\u03781' contains U+0378 (unnamed), which is not ASCII; Proxmox names "
            "are plain ASCII letters, digits and punctuation",
        ),
        ("pb\x01s", "storage ID 'pb\\x01s' contains the control character U+0001"),
        ("a", "storage ID 'a' cannot be shorter than 2 characters"),
        (
            "1ab",
            "storage ID '1ab' contains illegal characters: start with a letter, then letters, "
            "digits, '-', '_' or '.', and end with a letter or digit",
        ),
    ],
)
def test_a_storage_id_is_rejected_with_what_is_wrong_with_it(name: str, message: str) -> None:
    assert rejected(StorageSpec, name=name) == message


def test_the_shortest_storage_id_has_two_characters() -> None:
    assert storage(name="ab").name == "ab"


def test_a_value_is_shown_whole_up_to_120_characters_then_cut() -> None:
    def shown(server: str) -> str:
        return rejected(StorageSpec, server=server).partition(" is neither")[0]

    assert shown("_" * 118) == "'" + "_" * 118 + "'"  # 120 with the quotes
    assert shown("_" * 119) == "'" + "_" * 116 + "..."


# ---- the storage fields ---------------------------------------------------------------------


def test_a_fingerprint_is_32_hex_pairs_and_kept_upper_case() -> None:
    assert storage(fingerprint=FP.lower()).fingerprint == FP
    assert rejected(StorageSpec, fingerprint=FP[:-3]) == (
        "must be 32 colon-separated hex bytes (SHA-256), like '54:52:3A:...:D1:54'; get it with "
        "`pbs fingerprint HOST`"
    )


@pytest.mark.parametrize("server", ["pbs.example", "192.0.2.7", "2001:db8::7", "a" * 63])
def test_a_server_is_a_host_name_or_an_address(server: str) -> None:
    assert storage(server=server).server == server


@pytest.mark.parametrize("server", ["pbs_1", "[2001:db8::7]", "fe80::1%eth0", "a" * 64, "pbs."])
def test_a_server_that_is_neither_says_how_to_write_it(server: str) -> None:
    assert rejected(StorageSpec, server=server) == (
        f"{server!r} is neither a host name nor an IPv4/IPv6 address (write IPv6 without "
        "brackets, and the port in `port:`)"
    )


def test_a_username_is_a_pbs_user_or_token_id() -> None:
    assert storage(username="backup@pbs!ci").username == "backup@pbs!ci"
    assert rejected(StorageSpec, username="root") == (
        "'root' is not a PBS user or token id; write `user@realm` (e.g. root@pam) or "
        "`user@realm!tokenname`"
    )
    assert rejected(StorageSpec, username="root@pam\n") == (
        f"username 'root@pam\\n' ends in a line break; {LINE_BREAK}"
    )


# What each PBS name may be, after the value itself.
NAME_RULES = {
    "datastore": "is not a valid PBS datastore name (3 to 32 letters, digits, '.', '_', '-')",
    "namespace": "is not a valid PBS namespace: up to 7 levels like `prod/vms`, each 1 to 32 "
    "letters, digits, '.', '_', '-'",
}


@pytest.mark.parametrize(
    ("field", "value", "valid"),
    [
        ("datastore", "ab", False),
        ("datastore", "abc", True),
        ("datastore", "a" * 32, True),
        ("datastore", "a" * 33, False),
        ("namespace", "/".join(["a" * 32] * 7), True),  # the longest: 7 levels of 32 (230 chars)
        ("namespace", "/".join(["a"] * 8), False),
        ("namespace", "a" * 33, False),
        ("namespace", "prod//vms", False),
    ],
)
def test_a_datastore_has_3_to_32_characters_a_namespace_up_to_7_levels_of_32(
    field: str, value: str, valid: bool
) -> None:
    assert outcome(field, value) == (None if valid else f"'{value}' {NAME_RULES[field]}")


def test_nodes_are_sorted_once_and_never_an_empty_list() -> None:
    assert storage(nodes=["pve2", "pve1", "pve2"]).nodes == ("pve1", "pve2")
    assert storage(nodes="pve1").nodes == ("pve1",)
    assert rejected(StorageSpec, nodes=[]) == (
        "an empty list would mean no node; leave `nodes` out for all nodes"
    )
    assert rejected(StorageSpec, nodes=["-pve"]) == "'-pve' is not a valid node name"


def test_content_is_backup_or_none_never_both_never_nothing() -> None:
    assert storage(content=["backup", "backup"]).content == ("backup",)
    assert storage(content="none").content == ("none",)
    assert storage(content=["none", "none"]).content == ("none",)
    assert rejected(StorageSpec, content=[]) == (
        "must list at least one content type: [backup] or [none]"
    )
    assert rejected(StorageSpec, content=["none", "backup"]) == (
        "unable to combine 'none' with other content types"
    )


def test_keep_all_stands_alone_naming_what_it_was_combined_with() -> None:
    assert rejected(PruneBackups, keep_all=True, keep_daily=7, keep_weekly=4) == (
        "keep_all cannot be combined with keep_daily, keep_weekly: keep everything, or remove "
        "keep_all and keep the others"
    )
    # A zero is as good as unset: nothing to combine with.
    combined = PruneBackups(keep_all=True, keep_daily=0)
    assert combined.items() == [("keep_daily", 0), ("keep_all", 1)]


# ---- pve: settings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://pve1.example:8006",
        "https://pve1.example:8006/",
        "https://192.0.2.1",
        "https://[2001:db8::1]:8006",
        "https://pve1.example:1",
        "https://pve1.example:65535",
        "pve1.example",
        "192.0.2.1",
    ],
)
def test_a_pve_address_is_a_url_or_a_host(url: str) -> None:
    assert PveSettings(url=url).url == url


@pytest.mark.parametrize(
    "url",
    [
        "http://pve1.example",
        "https://pve1.example:0",
        "https://pve1.example:65536",
        "https://[pve1.example]:8006",
        "https://[192.0.2.1]",
        "https://pve_1:8006",
        "pve1.example:8006",
    ],
)
def test_a_pve_address_that_is_neither_says_how_to_write_it(url: str) -> None:
    assert rejected(PveSettings, url=url) == (
        f"{url!r} is not a PVE address; write `https://pve1.example:8006` or a host name"
    )


def test_a_cluster_name_for_reports() -> None:
    assert PveSettings(name="a" * 63).name == "a" * 63
    assert rejected(PveSettings, name="a" * 64) == (
        f"'{'a' * 64}' is not a cluster name for reports; use 1 to 63 letters, digits, '.', '-' "
        "or '_', starting with a letter or digit, e.g. `site-a`"
    )
    assert (
        rejected(PveSettings, name="site\n") == f"name 'site\\n' ends in a line break; {LINE_BREAK}"
    )


def test_token_and_user_ids_say_their_format() -> None:
    secret = SecretStr("x")
    assert rejected(PveSettings, token_id="root@pam", token_secret=secret) == (
        "'root@pam' is not an API token id; write `user@realm!tokenname`"
    )
    assert rejected(PveSettings, user="root", password=secret) == (
        "'root' is not a PVE user id; write `user@realm`, e.g. `root@pam`"
    )
    assert rejected(PveSettings, token_id="a@pam!t\n", token_secret=secret) == (
        f"token_id 'a@pam!t\\n' ends in a line break; {LINE_BREAK}"
    )
    assert rejected(PveSettings, user="root@pam\r", password=secret) == (
        f"user 'root@pam\\r' ends in a line break; {LINE_BREAK}"
    )


@pytest.mark.parametrize(
    ("given", "have", "lack"),
    [
        ({"token_id": "a@pam!ci"}, "token_id", "token_secret"),
        ({"token_secret": SecretStr("x")}, "token_secret", "token_id"),
        ({"user": "root@pam"}, "user", "password"),
        ({"password": SecretStr("x")}, "password", "user"),
    ],
)
def test_half_a_credential_names_the_half_that_is_missing(
    given: dict[str, Any], have: str, lack: str
) -> None:
    assert rejected(PveSettings, **given) == (
        f"`{have}` is given without `{lack}`: set both (an API token is `token_id` plus "
        "`token_secret`, a login is `user` plus `password`), or neither"
    )


# ---- dns and jobs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("192.0.2.53", ("192.0.2.53", 53)),
        ("192.0.2.53:5353", ("192.0.2.53", 5353)),
        ("ns1.example:1", ("ns1.example", 1)),
        ("2001:db8::53", ("2001:db8::53", 53)),
        ("[2001:db8::53]", ("2001:db8::53", 53)),
        ("[2001:db8::53]:65535", ("2001:db8::53", 65535)),
    ],
)
def test_a_nameserver_is_a_host_with_an_optional_port(text: str, parsed: tuple[str, int]) -> None:
    assert parse_nameserver(text) == parsed
    assert DnsSettings(nameservers=(text,)).addresses == (parsed,)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[2001:db8::53]53", "'[2001:db8::53]53' is not `[address]:port`"),
        ("192.0.2.53:dns", "'192.0.2.53:dns': the port after ':' must be a number"),
        ("192.0.2.53:0", "'192.0.2.53:0': port 0 is outside 1-65535"),
        ("192.0.2.53:65536", "'192.0.2.53:65536': port 65536 is outside 1-65535"),
    ],
)
def test_a_nameserver_that_is_not_says_which_part_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message.replace('[', '.').replace(']', '.')}$"):
        parse_nameserver(text)


def test_a_job_id_is_pves_config_id() -> None:
    assert rejected(JobSettings, max_age={"1job": "1d"}) == (
        "'1job' is not a backup job id: a letter, then letters, digits, '-' or '_' (the ID "
        "column of Datacenter > Backup, e.g. backup-3f2a9c1e-8b7d)"
    )
