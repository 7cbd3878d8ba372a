"""The model's name validators share one rule (`_rule`): what each still does on its own.

`tests/config/test_model_exact.py` pins every message; these pin what the shared rule changed or
could get wrong: where the error is located, which names may hold Unicode, that a missing optional
name is no error, that a fingerprint is upper-cased only once valid, and the namespace limits
without the length check that the level rule already implies.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr, ValidationError

from pbs_compliance.config.model import (
    ComplianceConfig,
    CoverageSettings,
    DnsSettings,
    JobSettings,
    PruneBackups,
    PveSettings,
    StorageSpec,
    format_duration,
    is_ip,
    parse_duration,
)

FP = ":".join(["ab"] * 32)
STORAGE = {"name": "pbs1", "server": "pbs.example", "datastore": "store1", "fingerprint": FP}


def error(model: type[BaseModel], **fields: Any) -> tuple[tuple[Any, ...], str]:
    """The one validation error for `fields`: its location and message."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(fields)
    errors = caught.value.errors(include_url=False)
    assert len(errors) == 1, errors
    return errors[0]["loc"], str(errors[0]["ctx"]["error"])


def storage_error(**fields: Any) -> tuple[tuple[Any, ...], str]:
    return error(StorageSpec, **(STORAGE | fields))


def test_a_fingerprint_is_upper_cased_once_valid_and_its_error_shows_no_case_change() -> None:
    assert StorageSpec.model_validate(STORAGE).fingerprint == FP.upper()
    loc, message = storage_error(fingerprint=FP[:-1])
    assert loc == ("fingerprint",)
    assert message.startswith("must be 32 colon-separated hex bytes (SHA-256)")


@pytest.mark.parametrize(
    ("namespace", "valid"),
    [
        ("/".join(["a" * 32] * 7), True),  # 230 characters: the longest there is
        ("/".join(["a" * 32] * 7) + "a", False),  # a 33-character level
        ("/".join(["a" * 32] * 8), False),  # 263 characters, 8 levels
        ("/".join(["a" * 32] * 6 + ["a" * 60]), False),  # 252 characters, a long level
    ],
)
def test_the_level_rule_alone_bounds_a_namespace(namespace: str, valid: bool) -> None:
    if valid:
        assert StorageSpec.model_validate(STORAGE | {"namespace": namespace}).namespace == namespace
        return
    loc, message = storage_error(namespace=namespace)
    assert loc == ("namespace",)
    assert message.endswith(
        "is not a valid PBS namespace: up to 7 levels like `prod/vms`, each 1 to 32 letters, "
        "digits, '.', '_', '-'"
    )


def test_a_pbs_user_name_may_hold_unicode_and_a_wrong_one_is_shown_escaped() -> None:
    spec = StorageSpec.model_validate(STORAGE | {"username": "jos\u00e9@pbs"})
    assert spec.username == "jos\u00e9@pbs"
    assert storage_error(username="jos\u00e9") == (
        ("username",),
        "'jos\\xe9' is not a PBS user or token id; write `user@realm` (e.g. root@pam) or "
        "`user@realm!tokenname`",
    )


def test_a_storage_id_too_short_is_shown_quoted() -> None:
    assert storage_error(name="a") == (
        ("name",),
        "storage ID 'a' cannot be shorter than 2 characters",
    )


def test_pve_names_are_optional_and_each_error_is_located_at_its_field() -> None:
    assert PveSettings() == PveSettings(url=None, name=None, token_id=None, user=None)
    secret = SecretStr("s")
    assert error(PveSettings, url="ftp://pve1")[0] == ("url",)
    assert error(PveSettings, name="-site")[0] == ("name",)
    assert error(PveSettings, token_id="root@pam", token_secret=secret)[0] == ("token_id",)
    assert error(PveSettings, user="root", password=secret)[0] == ("user",)


def test_pve_user_and_token_ids_may_hold_unicode_in_the_user_part_only() -> None:
    secret = SecretStr("s")
    assert PveSettings(user="jos\u00e9@pam", password=secret).user == "jos\u00e9@pam"
    token = "jos\u00e9@pam!ci"
    assert PveSettings(token_id=token, token_secret=secret).token_id == token
    assert error(PveSettings, user="root@p\u00e4m", password=secret) == (
        ("user",),
        "'root@p\\xe4m' is not a PVE user id; write `user@realm`, e.g. `root@pam`",
    )


def test_a_url_and_a_cluster_name_must_be_ascii() -> None:
    assert error(PveSettings, url="https://pve\u212a.example") == (
        ("url",),
        "url 'https://pve\\u212a.example' contains U+212A (KELVIN SIGN), which is not ASCII; "
        "Proxmox names are plain ASCII letters, digits and punctuation",
    )
    assert error(PveSettings, name="site\u017f")[1].startswith(
        "name 'site\\u017f' contains U+017F (LATIN SMALL LETTER LONG S)"
    )


def test_a_tag_is_located_at_its_index() -> None:
    assert error(CoverageSettings, exclude_tags=["ok", "-bad"]) == (
        ("exclude_tags", 1),
        "'-bad' is not a PVE tag (letters, digits, '_', then also '-', '+', '.')",
    )


# ---- the model's own helpers, as the checks use them --------------------------------------------


def test_a_jobs_own_max_age_wins_else_its_period_plus_slack() -> None:
    jobs = JobSettings.model_validate({"slack": "1h", "max_age": {"backup-a1": "3d"}})
    day = dt.timedelta(days=1)
    assert jobs.allowed_age("backup-a1", day) == dt.timedelta(days=3)
    assert jobs.allowed_age("backup-a1", None) == dt.timedelta(days=3)
    assert jobs.allowed_age("backup-b2", day) == dt.timedelta(hours=25)
    assert jobs.allowed_age("backup-b2", None) is None


def test_one_vmid_is_a_list_of_one_but_a_yes_is_no_vmid() -> None:
    assert CoverageSettings.model_validate({"exclude": 9000}).exclude == (9000,)
    with pytest.raises(ValidationError) as caught:
        CoverageSettings.model_validate({"exclude": True})
    assert [e["loc"] for e in caught.value.errors()] == [("exclude",)]


@pytest.mark.parametrize(
    ("text", "ip"),
    [
        ("192.0.2.7", True),
        ("2001:db8::7", True),
        ("::1", True),
        ("fe80::1%eth0", False),  # Python takes a zone index, PVE does not
        ("192.0.2", False),
        ("pbs.example", False),
        ("", False),
    ],
)
def test_an_ip_address_is_ascii_without_a_zone(text: str, ip: bool) -> None:
    assert is_ip(text) is ip


def test_prune_items_are_in_pves_order_with_booleans_as_numbers() -> None:
    prune = PruneBackups(keep_yearly=1, keep_last=3, keep_daily=0)
    assert prune.items() == [("keep_last", 3), ("keep_daily", 0), ("keep_yearly", 1)]
    assert PruneBackups(keep_all=False).items() == [("keep_all", 0)]
    assert PruneBackups(keep_all=True).items() == [("keep_all", 1)]
    assert PruneBackups().items() == []


def test_nameservers_are_addresses_with_their_ports() -> None:
    dns = DnsSettings(nameservers=("192.0.2.53", "192.0.2.54:5353", "[2001:db8::53]:54"))
    assert dns.addresses == (("192.0.2.53", 53), ("192.0.2.54", 5353), ("2001:db8::53", 54))


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(90, "90s"), (120, "2m"), (3600, "1h"), (93600, "26h"), (86400 * 8, "8d"), (86400 * 14, "2w")],
)
def test_a_duration_is_written_in_its_largest_whole_unit(seconds: int, text: str) -> None:
    assert format_duration(dt.timedelta(seconds=seconds)) == text
    assert parse_duration(text) == dt.timedelta(seconds=seconds)


def test_a_declared_storage_is_found_by_name_and_only_that() -> None:
    spec = StorageSpec.model_validate(STORAGE)
    config = ComplianceConfig(source=Path("/etc/pbs/pbs.yaml"), storages=(spec,))
    assert config.storage("pbs1") is spec
    with pytest.raises(KeyError):
        config.storage("pbs2")


# ---- where a line break is, and bracketed IPv6 hosts ---------------------------------------------


@pytest.mark.parametrize(
    ("name", "where"),
    [
        ("X\n", "ends in"),
        (" \n", "ends in"),  # a space before the break is still the value's own
        ("pb\n \n", "contains"),  # a break, a space, a break: not only at the end
        ("pb\rs1\n", "contains"),
    ],
)
def test_a_line_break_only_at_the_end_ends_the_value_any_other_is_contained(
    name: str, where: str
) -> None:
    loc, message = storage_error(name=name)
    assert loc == ("name",)
    assert message.startswith(f"storage ID {name!a} {where} a line break; ")


def test_a_bracketed_ipv6_pve_host_is_read_whole() -> None:
    url = "https://[::ffff:192.0.2.1]:8006"
    assert PveSettings(url=url).url == url


def test_a_nameserver_with_text_after_its_bracket_is_no_address_and_port() -> None:
    assert error(DnsSettings, nameservers=("[2001:db8::53]]:53",)) == (
        ("nameservers", 0),
        "'[2001:db8::53]]:53' is not `[address]:port`",
    )
