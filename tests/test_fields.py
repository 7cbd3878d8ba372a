"""The storage field table drives every translation of a storage field, and covers every field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr
from spec_builders import FP as FINGERPRINT
from spec_builders import storage_builder

from pbs_compliance.config import PruneBackups, StorageSpec, load_config
from pbs_compliance.essence import (
    FIXED,
    MANAGED,
    declaration_of,
    essence_from_api,
    essence_of,
    to_api_params,
)
from pbs_compliance.evidence import client_for
from pbs_compliance.fields import FIELDS, StorageField, by_attr, by_pve, managed
from pbs_compliance.lab.runner import Lab
from pbs_compliance.settings import Overrides, resolve

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "pbs-storage.example.yaml"
spec = storage_builder()


EVERY_FIELD = spec(
    enabled=False,
    content=("none",),
    username="sync@pbs!ci",
    port=8207,
    namespace="prod/vms",
    nodes=("pve2", "pve1"),
    max_protected_backups=-1,
    prune_backups=PruneBackups(keep_daily=7, keep_weekly=4),
    password=SecretStr("s3cret"),
    description="a note",
)


def test_the_table_has_one_row_per_declared_field() -> None:
    assert [f.attr for f in FIELDS] == list(dict.fromkeys(f.attr for f in FIELDS))
    assert {f.attr for f in FIELDS} == set(StorageSpec.model_fields)


def test_the_example_config_documents_exactly_the_tables_fields() -> None:
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    used = {key for entry in document["pbs_storages"] for key in entry}

    assert used == {f.attr for f in FIELDS}


def test_the_table_says_what_pve_cannot_change_and_never_shows() -> None:
    assert {"server", "datastore"} == FIXED
    assert [f.attr for f in FIELDS if f.write_only] == ["password"]
    assert by_attr("description").pve is None  # a local note: never sent
    assert by_attr("name").pve == "storage"
    assert by_pve("disable").attr == "enabled"
    assert MANAGED == (
        "server",
        "datastore",
        "disable",
        "content",
        "username",
        "fingerprint",
        "port",
        "namespace",
        "nodes",
        "max-protected-backups",
        "prune-backups",
    )


OPTIONAL = [f for f in managed() if not StorageSpec.model_fields[f.attr].is_required()]


@pytest.mark.parametrize("row", OPTIONAL, ids=[f.attr for f in OPTIONAL])
def test_declaring_a_fields_default_means_what_pve_does_without_it(row: StorageField) -> None:
    """The model's default and PVE's default agree: leaving a field out is no drift."""
    declared = StorageSpec.model_fields[row.attr].default

    assert row.codec is not None
    assert row.codec.declared(declared) == row.default
    # so a create sends it only when PVE needs it spelled out
    assert (row.codec.param(declared, row.always) is None) is not row.always


def test_a_secret_and_a_note_are_never_compared_or_sent() -> None:
    params = to_api_params(EVERY_FIELD)

    assert not {"password", "description", "storage"} & set(MANAGED)
    assert "password" not in params
    assert "s3cret" not in repr(params)
    assert "a note" not in repr(params)


def test_every_managed_field_becomes_a_parameter_when_not_pves_default() -> None:
    params = to_api_params(EVERY_FIELD)

    assert set(params) == {"storage", "type", *MANAGED}
    assert params["disable"] == "1"
    assert params["nodes"] == "pve1,pve2"
    assert params["max-protected-backups"] == "-1"


def test_declaration_of_declares_exactly_what_pve_holds() -> None:
    live = essence_from_api({**to_api_params(EVERY_FIELD), "shared": 1, "digest": "0" * 40})

    declared = declaration_of(live)

    assert declared == {
        "server": "pbs.example",
        "datastore": "store1",
        "enabled": False,
        "content": ["none"],
        "username": "sync@pbs!ci",
        "fingerprint": FINGERPRINT,
        "port": 8207,
        "namespace": "prod/vms",
        "nodes": ["pve1", "pve2"],
        "max_protected_backups": -1,
        "prune_backups": {"keep_daily": 7, "keep_weekly": 4},
    }
    assert essence_of(StorageSpec(name="pbs1", **declared)) == live


def test_declaration_of_leaves_pves_unset_values_out() -> None:
    live = essence_from_api({"storage": "a", "server": "h", "datastore": "ds1", "disable": 1})

    assert declaration_of(live) == {
        "server": "h",
        "datastore": "ds1",
        "enabled": False,
        "content": ["backup"],
        "username": "root@pam",
        "port": 8007,
    }


def test_an_unparsable_live_retention_cannot_be_declared() -> None:
    live = essence_from_api({"storage": "a", "prune-backups": "keep-daily=x"})

    with pytest.raises(ValueError, match="invalid prune-backups 'keep-daily=x'"):
        declaration_of(live)


LAB_EVERY_OPTION: dict[str, Any] = {
    "nodes": ["pve1", "pve2"],
    "pbs_servers": [
        {"name": "pbs1.lab.example", "address": "127.0.0.11", "datastores": {"homelab": []}}
    ],
    "storages": [
        {
            "name": "every",
            "server": "pbs1.lab.example",
            "datastore": "homelab",
            "options": {
                "disable": "1",
                "content": "backup,iso",  # PVE keeps only backup for a PBS
                "namespace": "prod",
                "nodes": "pve2,pve1",
                "max-protected-backups": "3",
                "prune-backups": "keep-last=0,keep-daily=7",
            },
        }
    ],
}


def test_the_labs_declaration_reads_back_as_pve_holds_it(make_lab: Any) -> None:
    lab: Lab = make_lab(LAB_EVERY_OPTION)
    config = load_config(lab.config_path, environ=lab.env)
    client = client_for(resolve(config, Overrides(), environ={}))
    assert client is not None
    entry = next(e for e in client.storages() if e["storage"] == "every")
    written = yaml.safe_load(lab.config_path.read_text(encoding="utf-8"))["pbs_storages"][0]

    assert essence_of(config.storage("every")) == essence_from_api(entry)
    assert written["enabled"] is False
    assert written["content"] == ["backup"]
    assert written["nodes"] == ["pve1", "pve2"]
    assert written["prune_backups"] == {"keep_daily": 7}
    assert written["max_protected_backups"] == 3
