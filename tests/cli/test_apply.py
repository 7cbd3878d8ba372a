"""`pbs apply`: validate, plan as a diff, apply with the reconciler's safety rules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import Invoke, as_json, storage, writes

from pbs_compliance.config import load_config
from pbs_compliance.evidence import client_for
from pbs_compliance.lab.runner import Lab
from pbs_compliance.pve import PveClient
from pbs_compliance.settings import Overrides, resolve


def client(config: Path) -> PveClient:
    found = client_for(resolve(load_config(config), Overrides()))
    assert found is not None
    return found


def add_missing(data: dict[str, Any]) -> None:
    """Declare `archive-prod` (same PBS and credentials as `homelab-backup`), absent in PVE."""
    extra = dict(storage(data, "homelab-backup"), name="archive-prod", datastore="archive")
    extra["namespace"] = "prod"
    extra.pop("prune_backups")
    data["pbs_storages"].append(extra)


@pytest.fixture
def drifted(lab: Lab, lab_config: Callable[..., Path]) -> Path:
    """A lab where homelab-backup's retention changed, archive is disabled, archive-prod is
    declared but missing; returns the declaration."""
    config = lab_config(lab, add_missing)
    pve = client(config)
    pve.update("homelab-backup", {"prune-backups": "keep-daily=14"})
    pve.update("archive", {"disable": "1"})
    return config


def test_dry_run_prints_the_plan_and_sends_no_write(
    invoke: Invoke, lab: Lab, drifted: Path
) -> None:
    before = len(writes(lab))
    result = invoke("apply", "--config", drifted, "--dry-run")
    assert result.exit_code == 1, result.output  # changes are pending
    assert len(writes(lab)) == before
    out = result.stdout
    assert "plan (live -> declared): 1 create, 1 update, 1 enable" in out
    assert "+ archive-prod  create" in out
    assert "~ homelab-backup  update  prune-backups: keep-daily=14 -> " in out
    assert "~ archive  enable  disable: 1 -> (unset)" in out
    assert "archive-prod: planned (create)" in out
    assert "dry run, nothing written: 3 planned, 0 refused, 2 unchanged" in out


def test_apply_fixes_the_drift_and_says_what_happened_per_storage(
    invoke: Invoke, lab: Lab, drifted: Path
) -> None:
    result = invoke("apply", "--config", drifted)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "archive: enabled" in out
    assert "archive-prod: created" in out
    assert "homelab-backup: updated" in out
    assert "PUT /storage/homelab-backup prune-backups=" in out
    assert "1 created, 1 updated, 1 enabled, 0 disabled" in out
    assert invoke("status", "--config", drifted).exit_code == 0
    again = invoke("apply", "--config", drifted, "--dry-run")
    assert again.exit_code == 0
    assert "plan: no changes" in again.stdout


def test_apply_json_reports_validation_plan_and_results(
    invoke: Invoke, lab: Lab, drifted: Path
) -> None:
    data = as_json(invoke("apply", "--config", drifted, "--output", "json"))
    assert data["ok"] is True
    assert data["dry_run"] is False
    assert [row["status"] for row in data["validation"]] == ["ok"] * 5
    actions = {a["storage"]: a for a in data["plan"]["actions"]}
    assert actions["archive-prod"]["kind"] == "create"
    assert actions["archive-prod"]["password_needed"] is True
    assert "password" not in actions["archive-prod"]["params"]
    assert actions["homelab-backup"]["drift"][0]["property"] == "prune-backups"
    verbs = {r["storage"]: r["verb"] for r in data["results"]}
    assert verbs == {
        "archive": "enabled",
        "archive-prod": "created",
        "homelab-backup": "updated",
        "media": "unchanged",
        "offsite": "unchanged",
    }
    assert data["summary"]["created"] == 1


def test_failed_validation_applies_nothing_unless_skipped(
    invoke: Invoke, lab: Lab, drifted: Path
) -> None:
    lab.pbs["pbs2.lab.example"].renew_certificate()  # offsite: fingerprint no longer matches
    before = len(writes(lab))
    result = invoke("apply", "--config", drifted)
    assert result.exit_code == 1
    assert "validation failed for offsite; nothing was applied" in result.stderr
    assert "another fingerprint" in result.stdout
    assert len(writes(lab)) == before
    data = as_json(invoke("apply", "--config", drifted, "-o", "json"))
    assert data["error"] == "validation"
    assert "plan" not in data

    skipped = invoke("apply", "--config", drifted, "--skip-validation")
    assert skipped.exit_code == 1  # offsite is refused
    assert "offsite: refused" in skipped.stdout
    assert "pbs fingerprint --update offsite" in skipped.stdout
    assert "homelab-backup: updated" in skipped.stdout
    assert "connectivity from here" not in skipped.stdout


def test_unmanaged_entries_are_only_deleted_with_prune_unmanaged(
    invoke: Invoke, lab: Lab, lab_config: Callable[..., Path]
) -> None:
    config = lab_config(lab, lambda data: data["pbs_storages"].remove(storage(data, "media")))
    kept = invoke("apply", "--config", config)
    assert kept.exit_code == 0
    assert "# media  note" in kept.stdout
    pruned = invoke("apply", "--config", config, "--prune-unmanaged")
    assert pruned.exit_code == 0, pruned.output
    assert "- media  delete" in pruned.stdout
    assert "media: deleted" in pruned.stdout
    assert "media" not in {e["storage"] for e in client(config).storages()}


def test_a_changed_datastore_is_only_recreated_with_allow_recreate(
    invoke: Invoke, lab: Lab, lab_config: Callable[..., Path]
) -> None:
    def move(data: dict[str, Any]) -> None:
        storage(data, "homelab-backup")["datastore"] = "archive"

    config = lab_config(lab, move)
    refused = invoke("apply", "--config", config)
    assert refused.exit_code == 1
    assert "homelab-backup: refused" in refused.stdout
    assert "--allow-recreate" in refused.stdout
    done = invoke("apply", "--config", config, "--allow-recreate")
    assert done.exit_code == 0, done.output
    assert "homelab-backup: re-created" in done.stdout
    assert "DELETE /storage/homelab-backup" in done.stdout


def test_rotate_secrets_sends_the_declared_password_without_showing_it(
    invoke: Invoke, lab: Lab, lab_config: Callable[..., Path]
) -> None:
    config = lab_config(lab)
    result = invoke("apply", "--config", config, "--rotate-secrets")
    assert result.exit_code == 0, result.output
    assert "password: (stored) -> (declared, rotated)" in result.stdout
    assert "password=***" in result.stdout
    puts = [r for r in writes(lab) if r["method"] == "PUT"]
    assert len(puts) == 4


def test_apply_needs_pve_credentials(
    invoke: Invoke, shared_lab: Lab, lab_config: Callable[..., Path]
) -> None:
    config = lab_config(shared_lab, lambda data: data.pop("pve"))
    result = invoke("apply", "--config", config, "--dry-run")
    assert result.exit_code == 2
    assert "no PVE credentials" in result.stderr


def test_apply_stops_when_pve_cannot_be_read(
    invoke: Invoke, shared_lab: Lab, lab_config: Callable[..., Path]
) -> None:
    def nowhere(data: dict[str, Any]) -> None:
        data["pve"]["url"] = "https://127.0.0.1:9"

    result = invoke("apply", "--config", lab_config(shared_lab, nowhere))
    assert result.exit_code == 1
    assert "cannot read PVE" in result.stderr
