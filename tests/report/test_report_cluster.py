"""The cluster's name: `pve.name`, else PVE's own (`/cluster/status`, read once), else the host
of `pve.url`, else the config's name; a bad `pve.name` is a located config error."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pbs_compliance.config import ConfigError, load_config
from pbs_compliance.lab.runner import Lab
from pbs_compliance.report.cluster import cluster_name, fallback_name
from pbs_compliance.settings import Overrides, RunSettings, resolve


def settings_of(lab: Lab, path: Path | None = None) -> RunSettings:
    config = load_config(path or lab.config_path, environ=dict(lab.env))
    return resolve(config, Overrides(), dict(lab.env))


def with_pve(lab: Lab, tmp_path: Path, **pve: object) -> Path:
    data = yaml.safe_load(lab.config_path.read_text(encoding="utf-8"))
    data["pve"].update(pve, ca_file=str(lab.ca_file))
    data["pve"] = {k: v for k, v in data["pve"].items() if v is not None}
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def status_reads(lab: Lab) -> int:
    return sum(r["path"] == "/api2/json/cluster/status" for r in lab.requests())


def test_without_pve_name_the_cluster_is_named_as_pve_names_it(shared_lab: Lab) -> None:
    before = status_reads(shared_lab)

    assert cluster_name(settings_of(shared_lab)) == "lab"
    assert status_reads(shared_lab) == before + 1


def test_pve_name_wins_and_pve_is_not_asked(shared_lab: Lab, tmp_path: Path) -> None:
    settings = settings_of(shared_lab, with_pve(shared_lab, tmp_path, name="site-a"))
    before = status_reads(shared_lab)

    assert cluster_name(settings) == "site-a"
    assert status_reads(shared_lab) == before


def test_without_credentials_the_host_of_the_url_names_it(shared_lab: Lab, tmp_path: Path) -> None:
    path = with_pve(shared_lab, tmp_path, token_id=None, token_secret=None)
    settings = settings_of(shared_lab, path)

    assert cluster_name(settings) == "127.0.0.1"
    assert fallback_name(settings) == "127.0.0.1"


def test_a_refused_token_falls_back_to_the_host(shared_lab: Lab, tmp_path: Path) -> None:
    path = with_pve(shared_lab, tmp_path, token_secret="${WRONG_SECRET}")
    config = load_config(
        path, environ={**shared_lab.env, "WRONG_SECRET": "0" * 8 + "-0000" * 3 + "-" + "0" * 12}
    )
    settings = resolve(config, Overrides(), dict(shared_lab.env))

    assert cluster_name(settings) == "127.0.0.1"


@pytest.mark.parametrize(
    ("bad", "said"),
    [
        ("site a", "is not a cluster name for reports"),
        ("-site", "is not a cluster name for reports"),
        ("x" * 64, "is not a cluster name for reports"),
        ("süd", "which is not ASCII"),
    ],
)
def test_a_pve_name_that_cannot_be_a_label_is_a_located_config_error(
    tmp_path: Path, bad: str, said: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump({"pve": {"url": "https://pve1:8006", "name": bad}, "pbs_storages": []}),
        encoding="utf-8",
    )

    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    text = caught.value.render()
    assert f"{path}:3:" in text
    assert "pve.name" in text
    assert said in text
