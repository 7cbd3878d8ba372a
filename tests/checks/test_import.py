"""`pbs import` against the lab (issue #14): the entries PVE holds become their declaration -
every optional property set on one, one disabled - added to a commented file without touching
the rest, and right after it `pytest checks/ -m drift` passes for every imported entry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from checks_harness import (
    RunChecks,
    WriteConfig,
    export_lab_env,
    lab_config,
    pve_client,
)
from typer.testing import CliRunner, Result

from pbs_compliance.cli import app
from pbs_compliance.lab.runner import Lab, env_name

HEADER = "# Declared by hand; keep this comment.\n"


def pbs(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def only_media(lab: Lab, write_config: WriteConfig) -> Path:
    """The lab's declaration with only `media` declared, a comment on top and one inside."""
    data = lab_config(lab)
    data["pbs_storages"] = [s for s in data["pbs_storages"] if s["name"] == "media"]
    text = yaml.safe_dump(data, sort_keys=False)
    text = text.replace("- name: media\n", "- name: media  # the media box\n", 1)
    return write_config(HEADER + text)


def test_import_all_then_drift_passes_for_every_imported_entry(
    run_checks: RunChecks, lab: Lab, write_config: WriteConfig, clean_env: pytest.MonkeyPatch
) -> None:
    client = pve_client(lab)
    # Every optional property on one entry, and one entry disabled.
    client.update(
        "archive",
        {"nodes": "pve1,pve3", "prune-backups": "keep-daily=7,keep-monthly=2", "port": "8007"},
    )
    client.update("offsite", {"disable": "1"})
    config = only_media(lab, write_config)
    before = config.read_text(encoding="utf-8")
    export_lab_env(clean_env, lab)
    preview = pbs("import", "--config", config, "--all", "--dry-run")
    assert preview.exit_code == 0, preview.output
    assert config.read_text(encoding="utf-8") == before  # a dry run writes nothing
    assert "- name: archive" in preview.stdout
    assert "namespace: prod/vms" in preview.stdout
    assert "skipped media: already declared" in preview.stdout

    done = pbs("import", "--config", config, "--all")
    assert done.exit_code == 0, done.output
    for name in ("archive", "homelab-backup", "offsite"):
        assert f"added {name} in {config}" in done.stdout
    text = config.read_text(encoding="utf-8")
    assert text.startswith(HEADER)  # the file's comments are kept
    assert "- name: media  # the media box" in text
    written = yaml.safe_load(text)
    by_name = {s["name"]: s for s in written["pbs_storages"]}
    assert list(by_name) == ["media", "archive", "homelab-backup", "offsite"]
    archive = by_name["archive"]
    assert archive["namespace"] == "prod/vms"
    assert archive["nodes"] == ["pve1", "pve3"]
    assert archive["max_protected_backups"] == 10
    assert archive["prune_backups"] == {"keep_daily": 7, "keep_monthly": 2}
    assert archive["port"] == 8007
    assert archive["username"] == "backup@pbs!pve"
    assert archive["password"] == "${PBS_ARCHIVE_PASSWORD}"
    assert (
        "password: ${PBS_ARCHIVE_PASSWORD}  # must be provided: export PBS_ARCHIVE_PASSWORD" in text
    )
    assert by_name["offsite"]["enabled"] is False
    assert by_name["offsite"]["fingerprint"] == lab.pbs["pbs2.lab.example"].fingerprint.upper()

    passwords = {
        f"PBS_{name.upper().replace('-', '_')}_PASSWORD": lab.env.get(env_name(name), "unused")
        for name in ("archive", "homelab-backup", "offsite")
    }
    result = run_checks(lab, "-m", "drift", config=config, extra_env=passwords)
    assert result.result.ret == 0, result.output
    assert result.ids("passed") == {
        "drift[archive]",
        "drift[homelab-backup]",
        "drift[media]",
        "drift[offsite]",
    }

    again = pbs("import", "--config", config, "--storage", "archive")
    assert again.exit_code == 1
    assert "'archive' is already declared; --replace overwrites" in again.stderr
    assert config.read_text(encoding="utf-8") == text  # refused: nothing written
    replaced = pbs("import", "--config", config, "--storage", "archive", "--replace", "-o", "json")
    assert replaced.exit_code == 0, replaced.output
    document = json.loads(replaced.stdout)
    assert [(e["name"], e["replaced"]) for e in document["entries"]] == [("archive", True)]
    assert document["entries"][0]["password_variable"] == "PBS_ARCHIVE_PASSWORD"
    assert yaml.safe_load(config.read_text(encoding="utf-8")) == written
