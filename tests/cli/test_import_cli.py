"""`pbs import` options against the lab (#14): --fingerprint-from-server shows both
fingerprints and declares the served one; usage errors; an unknown name writes nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from cli_helpers import Invoke, as_json

from pbs_compliance.lab.runner import Lab


def without(*names: str) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        data["pbs_storages"] = [s for s in data["pbs_storages"] if s["name"] not in names]

    return edit


def test_fingerprint_from_server_shows_both_and_declares_the_served_one(
    invoke: Invoke, lab: Lab, lab_config: Callable[..., Path]
) -> None:
    pinned = lab.pbs["pbs2.lab.example"].fingerprint.upper()
    lab.pbs["pbs2.lab.example"].renew_certificate()
    served = lab.pbs["pbs2.lab.example"].fingerprint.upper()
    config = lab_config(lab, without("offsite"))
    result = invoke(
        "import", "--config", config, "--storage", "offsite", "--fingerprint-from-server"
    )
    assert result.exit_code == 0, result.output
    assert f"offsite: PVE pins   {pinned}" in result.stdout
    assert f"serves {served}  (DIFFERENT)" in result.stdout
    written = yaml.safe_load(config.read_text(encoding="utf-8"))
    offsite = next(s for s in written["pbs_storages"] if s["name"] == "offsite")
    assert offsite["fingerprint"] == served


def test_usage_errors_and_an_unknown_entry_write_nothing(
    invoke: Invoke, shared_lab: Lab, lab_config: Callable[..., Path]
) -> None:
    config = lab_config(shared_lab, without("media"))
    before = config.read_text(encoding="utf-8")
    neither = invoke("import", "--config", config)
    assert neither.exit_code == 2
    assert "name the entries with --storage NAME, or import them --all" in neither.stderr
    unknown = invoke("import", "--config", config, "--storage", "nas", "-o", "json")
    assert unknown.exit_code == 1
    document = as_json(unknown)
    assert document["error"] == "refused"
    assert (
        "PVE has no PBS storage entry 'nas' (its PBS entries: archive, homelab-backup"
        in (document["message"])
    )
    assert config.read_text(encoding="utf-8") == before
    dry = as_json(invoke("import", "--config", config, "--all", "--dry-run", "-o", "json"))
    assert [e["name"] for e in dry["entries"]] == ["media"]
    assert dry["entries"][0]["declaration"]["password"] == "${PBS_MEDIA_PASSWORD}"
    assert sorted(dry["skipped"]) == ["archive", "homelab-backup", "offsite"]
    assert config.read_text(encoding="utf-8") == before
