"""Declaration <-> PVE wire format: both directions meet in one `Essence`."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from spec_builders import SEED_FP as FINGERPRINT
from spec_builders import storage_builder

from pbs_compliance.config import PruneBackups, StorageSpec
from pbs_compliance.drift import diff
from pbs_compliance.essence import (
    KEEP_ALL,
    MANAGED,
    Essence,
    essence_from_api,
    essence_of,
    format_prune,
    normalise_prune,
    parse_prune,
    to_api_params,
)

DIGEST = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
# The storage of PVE's sample entry.
seed_spec = storage_builder(
    name="homelab-backup",
    server="proxmox-backup-server.maas",
    datastore="homelab-backup",
    fingerprint=FINGERPRINT,
    prune_backups=PruneBackups(keep_daily=7, keep_weekly=4, keep_monthly=3),
    description="Primary PBS storage for homelab backups",
)
# The second entry of PVE's sample, every optional property set.
OFFSITE: dict[str, Any] = {
    "name": "offsite",
    "server": "10.0.0.5",
    "datastore": "offsite",
    "enabled": False,
    "username": "sync@pbs!ci",
    "port": 8207,
    "namespace": "prod/vms",
    "max_protected_backups": 10,
}


# -- to_api_params ------------------------------------------------------------------------------


def test_the_seed_maps_to_the_post_parameters_pve_stored_in_the_sample() -> None:
    assert to_api_params(seed_spec()) == {
        "storage": "homelab-backup",
        "type": "pbs",
        "server": "proxmox-backup-server.maas",
        "datastore": "homelab-backup",
        "content": "backup",
        "username": "root@pam",
        "fingerprint": FINGERPRINT,
        "prune-backups": "keep-daily=7,keep-weekly=4,keep-monthly=3",
    }


def test_every_optional_property_is_sent_as_pve_text_with_booleans_as_digits() -> None:
    spec = seed_spec(
        **OFFSITE,
        nodes=("pve2", "pve1"),
        prune_backups=PruneBackups(keep_all=True),
        password=SecretStr("s3cret"),
    )

    params = to_api_params(spec)

    assert params == {
        "storage": "offsite",
        "type": "pbs",
        "server": "10.0.0.5",
        "datastore": "offsite",
        "content": "backup",
        "username": "sync@pbs!ci",
        "fingerprint": FINGERPRINT,
        "disable": "1",
        "port": "8207",
        "namespace": "prod/vms",
        "nodes": "pve1,pve2",
        "max-protected-backups": "10",
        "prune-backups": "keep-all=1",
    }
    assert all(isinstance(value, str) for value in params.values())


def test_the_password_and_the_description_are_never_storage_parameters() -> None:
    params = to_api_params(seed_spec(password=SecretStr("s3cret")))

    assert "password" not in params
    assert "description" not in params
    assert "s3cret" not in repr(params)
    assert "Primary PBS" not in repr(params)


@pytest.mark.parametrize("prune", [None, PruneBackups()])
def test_no_retention_sends_no_prune_backups(prune: PruneBackups | None) -> None:
    assert "prune-backups" not in to_api_params(seed_spec(prune_backups=prune))


def test_defaults_port_and_enabled_are_not_sent() -> None:
    params = to_api_params(seed_spec())

    assert "port" not in params
    assert "disable" not in params
    assert "nodes" not in params
    assert "namespace" not in params
    assert "max-protected-backups" not in params


def test_a_lower_case_declared_fingerprint_is_sent_upper_case() -> None:
    assert to_api_params(seed_spec(fingerprint=FINGERPRINT.lower()))["fingerprint"] == FINGERPRINT


# -- essence_of ---------------------------------------------------------------------------------


def test_the_declared_essence_makes_every_default_explicit() -> None:
    essence = essence_of(seed_spec(prune_backups=None))

    assert essence == Essence(
        name="homelab-backup",
        server="proxmox-backup-server.maas",
        datastore="homelab-backup",
        enabled=True,
        content=frozenset({"backup"}),
        username="root@pam",
        fingerprint=FINGERPRINT,
        port=8007,
        namespace=None,
        nodes=None,
        max_protected_backups=None,
        prune_backups=KEEP_ALL,
    )


# -- essence_from_api ---------------------------------------------------------------------------


def test_a_get_entry_of_the_seed_reads_back_as_the_declared_essence() -> None:
    live = {
        "storage": "homelab-backup",
        "type": "pbs",
        "datastore": "homelab-backup",
        "server": "proxmox-backup-server.maas",
        "content": "backup",
        "fingerprint": FINGERPRINT,
        "prune-backups": "keep-daily=7,keep-weekly=4,keep-monthly=3",
        "username": "root@pam",
        "shared": 1,
        "digest": DIGEST,
    }

    assert essence_from_api(live) == essence_of(seed_spec())


def test_a_get_entry_with_json_numbers_reads_back_as_the_declared_essence() -> None:
    # The second entry of the reference storage.cfg sample, as GET /storage shows it.
    live = {
        "storage": "offsite",
        "type": "pbs",
        "disable": 1,
        "datastore": "offsite",
        "server": "10.0.0.5",
        "max-protected-backups": 10,
        "namespace": "prod/vms",
        "nodes": "pve2,pve1",
        "port": 8207,
        "username": "sync@pbs!ci",
        "content": "backup",
        "shared": 1,
        "digest": DIGEST,
    }
    declared = seed_spec(**OFFSITE, nodes=("pve1", "pve2"), prune_backups=None)

    essence = essence_from_api(live)

    assert essence.fingerprint is None
    assert essence == Essence(**(vars(essence_of(declared)) | {"fingerprint": None}))


@pytest.mark.parametrize(
    ("disable", "enabled"),
    [
        (None, True),
        (0, True),
        ("0", True),
        ("", True),
        (False, True),  # JSON false, read as Python's False ("False")
        ("false", True),
        (1, False),
        ("1", False),
        (True, False),
    ],
)
def test_only_a_set_disable_flag_means_disabled(disable: object, enabled: bool) -> None:
    entry: dict[str, object] = {"storage": "x", "disable": disable}

    assert essence_from_api(entry).enabled is enabled
    assert essence_from_api({"storage": "x"}).enabled is True


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, {"backup"}),
        ("", {"backup"}),
        ("backup", {"backup"}),
        ("none", {"none"}),
        ("iso", {"none"}),  # PVE keeps only backup/none for PBS
        ("backup,iso", {"backup"}),
        ("images;backup", {"backup"}),
    ],
)
def test_live_content_is_read_as_pbs_would_keep_it(content: str | None, expected: set[str]) -> None:
    assert essence_from_api({"storage": "x", "content": content}).content == expected


def test_live_nodes_are_a_set_whatever_the_separator_or_order() -> None:
    essence = essence_from_api({"storage": "x", "nodes": "pve3 pve1;pve2,pve1"})

    assert essence.nodes == frozenset({"pve1", "pve2", "pve3"})


def test_an_empty_live_namespace_means_the_root_namespace() -> None:
    assert essence_from_api({"storage": "x", "namespace": ""}).namespace is None
    assert essence_from_api({"storage": "x", "namespace": "prod"}).namespace == "prod"


def test_a_live_entry_without_server_or_datastore_reads_them_as_empty_text() -> None:
    essence = essence_from_api({"storage": "x"})
    assert (essence.server, essence.datastore) == ("", "")
    assert (essence.value("server"), essence.value("datastore")) == ("", "")


def test_an_empty_live_username_means_the_default_root_at_pam() -> None:
    assert essence_from_api({"storage": "x", "username": ""}).username == "root@pam"


def test_an_unparsable_live_prune_value_differs_from_every_declaration() -> None:
    essence = essence_from_api({"storage": "x", "prune-backups": "keep-daily=x"})

    assert essence.prune_backups == (("unparsable: keep-daily=x", 0),)
    assert essence.value("prune-backups") == "unparsable: keep-daily=x=0"


# -- prune-backups as PVE reads it --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "pairs"),
    [
        ("keep-daily=7,keep-weekly=4", {"keep-daily": 7, "keep-weekly": 4}),
        (" keep-last = 3 ,, ", {"keep-last": 3}),
        ("keep-last=3,,keep-daily=7", {"keep-last": 3, "keep-daily": 7}),  # an empty element
        ("keep-all=yes", {"keep-all": 1}),
        ("keep-all=OFF", {"keep-all": 0}),
        ("", {}),
    ],
)
def test_a_prune_property_string_is_parsed_into_a_map(text: str, pairs: dict[str, int]) -> None:
    assert parse_prune(text) == pairs


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("keep-daily", "invalid prune-backups entry 'keep-daily'"),
        ("keep-dayly=1", "invalid prune-backups entry 'keep-dayly=1'"),
        ("keep-daily=-1", "invalid keep-daily value '-1'"),
        ("keep-daily=x", "invalid keep-daily value 'x'"),
        ("keep-daily=7=8", "invalid keep-daily value '7=8'"),  # the key ends at the first '='
        ("keep-all=maybe", "invalid keep-all value 'maybe'"),
    ],
)
def test_a_malformed_prune_property_string_is_a_value_error(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(error)}$"):
        parse_prune(text)


@pytest.mark.parametrize(
    ("pairs", "normal"),
    [
        ({"keep-weekly": 4, "keep-daily": 7, "keep-hourly": 0}, "keep-daily=7,keep-weekly=4"),
        ({}, "keep-all=1"),
        ({"keep-daily": 0, "keep-yearly": 0}, "keep-all=1"),
        ({"keep-all": 1, "keep-daily": 0}, "keep-all=1"),
        ({"keep-daily": 7, "keep-all": 1, "keep-weekly": 4}, "keep-all=1"),  # keep-all wins
        ({"keep-all": 0, "keep-last": 2}, "keep-last=2"),
        ({"keep-all": 0}, "keep-all=1"),
    ],
)
def test_retention_is_normalised_to_what_it_means_to_pve(
    pairs: dict[str, int], normal: str
) -> None:
    assert format_prune(normalise_prune(pairs)) == normal


# -- Essence.value ------------------------------------------------------------------------------


def test_every_managed_property_has_a_printable_value() -> None:
    essence = essence_of(
        seed_spec(enabled=False, nodes=("b", "a"), max_protected_backups=-1, namespace="ns")
    )

    assert {prop: essence.value(prop) for prop in MANAGED} == {
        "server": "proxmox-backup-server.maas",
        "datastore": "homelab-backup",
        "disable": "1",
        "content": "backup",
        "username": "root@pam",
        "fingerprint": FINGERPRINT,
        "port": "8007",
        "namespace": "ns",
        "nodes": "a,b",
        "max-protected-backups": "-1",
        "prune-backups": "keep-daily=7,keep-weekly=4,keep-monthly=3",
    }


def test_unset_properties_have_no_value() -> None:
    essence = Essence(name="x", server="h", datastore="ds1")

    assert essence.value("disable") is None
    assert essence.value("nodes") is None
    assert essence.value("namespace") is None
    assert essence.value("fingerprint") is None
    assert essence.value("max-protected-backups") is None


def test_a_property_that_is_not_managed_is_a_key_error() -> None:
    with pytest.raises(KeyError) as raised:
        Essence(name="x", server="h", datastore="ds1").value("shared")
    assert raised.value.args == ("shared",)
    # Known to PVE but never compared: the identity and the write-only password.
    for prop in ("storage", "password"):
        with pytest.raises(KeyError) as raised:
            Essence(name="x", server="h", datastore="ds1").value(prop)
        assert raised.value.args == (prop,)


# -- the round trip, for any valid storage ------------------------------------------------------

LOWER = "abcdefghijklmnopqrstuvwxyz"
ALNUM = LOWER + LOWER.upper() + "0123456789"


def word(
    first: str, middle: str, last: str, max_middle: int, min_middle: int = 0
) -> st.SearchStrategy[str]:
    """One of `first`, some of `middle`, one of `last` (much cheaper than `from_regex`)."""
    return st.builds(
        lambda a, b, c: a + b + c,
        st.sampled_from(first),
        st.text(middle, min_size=min_middle, max_size=max_middle),
        st.sampled_from(last),
    )


label = word(LOWER + "0123456789", LOWER + "0123456789-", LOWER + "0123456789", 6)
safe_id = word(ALNUM + "_", ALNUM + "._-", ALNUM + "._-", 8, min_middle=1)
counts = st.none() | st.integers(min_value=0, max_value=400)


@st.composite
def prune_backups(draw: st.DrawFn) -> PruneBackups | None:
    if draw(st.booleans()):
        return None
    keep_all = draw(st.none() | st.booleans())
    keys = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")
    if keep_all:  # PVE allows only zeros next to keep-all=1
        values = {key: draw(st.none() | st.just(0)) for key in keys}
    else:
        values = {key: draw(counts) for key in keys}
    return PruneBackups(keep_all=keep_all, **values)


@st.composite
def storage_specs(draw: st.DrawFn) -> StorageSpec:
    fingerprint = ":".join(f"{byte:02x}" for byte in draw(st.binary(min_size=32, max_size=32)))
    user = draw(word(LOWER, LOWER + "0123456789._-", LOWER, 6))
    realm = draw(st.sampled_from(["pam", "pbs", "ldap-corp"]))
    token = draw(st.none() | safe_id)
    return StorageSpec(
        name=draw(word(LOWER + LOWER.upper(), ALNUM + "_.-", ALNUM, 10)),
        server=draw(
            st.ip_addresses().map(str) | st.lists(label, min_size=1, max_size=3).map(".".join)
        ),
        datastore=draw(safe_id),
        fingerprint=fingerprint.upper() if draw(st.booleans()) else fingerprint,
        enabled=draw(st.booleans()),
        content=draw(st.sampled_from([("backup",), ("none",)])),
        username=f"{user}@{realm}" + (f"!{token}" if token else ""),
        port=draw(st.sampled_from([8007]) | st.integers(min_value=1, max_value=65535)),
        namespace=draw(st.none() | st.lists(safe_id, min_size=1, max_size=3).map("/".join)),
        nodes=draw(st.none() | st.lists(label, min_size=1, max_size=4, unique=True).map(tuple)),
        max_protected_backups=draw(st.none() | st.integers(min_value=-1, max_value=1000)),
        prune_backups=draw(prune_backups()),
        description=draw(st.none() | st.text(max_size=20)),
    )


@st.composite
def as_pve_shows_it(draw: st.DrawFn, params: dict[str, str]) -> dict[str, Any]:
    """What GET /storage could return after POSTing `params` (reference sections 2 and 3)."""
    live: dict[str, Any] = dict(params)
    live["shared"] = 1
    live["digest"] = draw(st.binary(min_size=20, max_size=20)).hex()
    for key in ("port", "max-protected-backups", "disable"):  # JSON numbers on the way out
        if key in live:
            live[key] = int(live[key])
    for key in ("content", "nodes"):  # comma lists in hash order
        if key in live:
            live[key] = ",".join(draw(st.permutations(live[key].split(","))))
    if draw(st.booleans()):
        live["fingerprint"] = live["fingerprint"].lower()
    if live.get("username") == "root@pam" and draw(st.booleans()):
        del live["username"]
    if live.get("content") == "backup" and draw(st.booleans()):
        del live["content"]
    if draw(st.booleans()):  # a port of 8007 given explicitly by hand
        live.setdefault("port", 8007)
    if "prune-backups" in live or draw(st.booleans()):
        pairs = dict(part.split("=") for part in live.get("prune-backups", "").split(",") if part)
        for key in draw(st.lists(st.sampled_from(["keep-hourly", "keep-daily", "keep-yearly"]))):
            if key not in pairs and pairs.get("keep-all") != "1":
                pairs[key] = "0"
        if pairs:
            order = draw(st.permutations(sorted(pairs)))
            live["prune-backups"] = ",".join(f"{key}={pairs[key]}" for key in order)
    order = draw(st.permutations(sorted(live)))  # JSON key order varies too
    return {key: live[key] for key in order}


@settings(max_examples=80, deadline=None)
@given(storage_specs())
def test_any_valid_storage_maps_to_api_params_and_back_to_an_equal_essence(
    spec: StorageSpec,
) -> None:
    params = to_api_params(spec)

    assert all(isinstance(value, str) and value for value in params.values())
    assert essence_from_api(params) == essence_of(spec)


@settings(max_examples=80, deadline=None)
@given(storage_specs(), st.data())
def test_any_valid_storage_reads_back_equal_after_pve_like_mangling(
    spec: StorageSpec, data: st.DataObject
) -> None:
    live = data.draw(as_pve_shows_it(to_api_params(spec)), label="live entry")

    assert essence_from_api(live) == essence_of(spec)
    assert diff(essence_of(spec), essence_from_api(live)).compliant
