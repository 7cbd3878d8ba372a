"""The model's name validators share one rule (`_rule`): what each still does on its own.

`tests/config/test_model_exact.py` pins every message; these pin what the shared rule changed or
could get wrong: where the error is located, which names may hold Unicode, that a missing optional
name is no error, that a fingerprint is upper-cased only once valid, and the namespace limits
without the length check that the level rule already implies.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, SecretStr, ValidationError

from pbs_compliance.config.model import CoverageSettings, PveSettings, StorageSpec

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
