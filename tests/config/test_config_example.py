"""`config/pbs-storage.example.yaml` loads as documented and shows every field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from pbs_compliance.config import (
    ConfigError,
    DnsSettings,
    PveSettings,
    StorageSpec,
    load_config,
)
from pbs_compliance.essence import essence_from_api, essence_of, to_api_params

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "pbs-storage.example.yaml"


def documented_variables() -> dict[str, str]:
    """The environment variables the header lists, each set to a dummy secret."""
    header = EXAMPLE.read_text(encoding="utf-8").split("\n\n", 1)[0]
    names = re.findall(r"^#\s+([A-Z][A-Z0-9_]+)\s{2,}", header, re.MULTILINE)
    return {name: f"secret-of-{name}" for name in names}


def test_the_example_loads_with_the_documented_environment_variables_set() -> None:
    env = documented_variables()

    config = load_config(EXAMPLE, environ=env)

    assert [spec.name for spec in config.storages] == ["homelab-backup", "offsite"]
    assert config.pve.token_secret is not None
    assert config.pve.token_secret.get_secret_value() == env["PVE_TOKEN_SECRET"]
    secrets = [spec.password.get_secret_value() for spec in config.storages if spec.password]
    assert secrets == [env["PBS_HOMELAB_BACKUP_PASSWORD"], env["PBS_OFFSITE_PASSWORD"]]


def test_the_example_documents_exactly_the_variables_it_uses() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())

    assert set(re.findall(r"\$\{(\w+)\}", code)) == set(documented_variables())


def test_without_the_variables_the_example_names_each_missing_one() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(EXAMPLE, environ={})

    messages = {issue.message for issue in caught.value.issues}
    assert messages == {
        f"environment variable `{name}` is not set" for name in documented_variables()
    }


def test_the_example_declares_every_storage_field() -> None:
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    used = {key for entry in document["pbs_storages"] for key in entry}

    assert used == set(StorageSpec.model_fields)
    assert set(document) == {"pbs_storages", "pve", "dns", "defaults", "coverage", "jobs"}


@pytest.mark.parametrize(
    "keys",
    [
        [*PveSettings.model_fields, "token_secret_file", "password_file"],
        list(DnsSettings.model_fields),
        ["keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly"],
        ["keep_all"],
    ],
    ids=["pve", "dns", "prune-counts", "keep-all"],
)
def test_the_example_mentions_every_setting_at_least_in_a_comment(keys: list[str]) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")

    assert [key for key in keys if not re.search(rf"\b{key}:?", text)] == []


def test_the_example_storages_map_to_pve_and_back_unchanged() -> None:
    config = load_config(EXAMPLE, environ=documented_variables())

    for spec in config.storages:
        assert essence_from_api(to_api_params(spec)) == essence_of(spec)
