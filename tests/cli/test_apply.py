"""`pbs apply`: validate, plan as a diff, apply with the reconciler's safety rules."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from subprocess import PIPE
from typing import Any

import pytest
from cli_helpers import Invoke, as_json, assert_shows, storage, writes

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
    assert_shows(
        out,
        "plan (live -> declared): 1 create, 1 update, 1 enable",
        "+ archive-prod  create",
        "~ homelab-backup  update  prune-backups: keep-daily=14 -> ",
        "~ archive  enable  disable: 1 -> (unset)",
        "archive-prod: planned (create)",
        "dry run, nothing written: 3 planned, 0 refused, 2 unchanged",
    )


def test_apply_fixes_the_drift_and_says_what_happened_per_storage(
    invoke: Invoke, lab: Lab, drifted: Path
) -> None:
    result = invoke("apply", "--config", drifted)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert_shows(
        out,
        "archive: enabled",
        "archive-prod: created",
        "homelab-backup: updated",
        "PUT /storage/homelab-backup prune-backups=",
        "1 created, 1 updated, 1 enabled, 0 disabled",
    )
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
    # re-read after the writes and judged by the drift case: every storage as declared
    assert data["verified"]["ok"] is True
    assert data["verified"]["unconfirmed"] == []
    assert {c["storage"]: c["status"] for c in data["verified"]["checks"]} == dict.fromkeys(
        verbs, "pass"
    )


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
    assert_shows(
        skipped.stdout,
        "offsite: refused",
        "pbs fingerprint --update offsite",
        "homelab-backup: updated",
    )
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


# -- disabled storages, a corrected password, two applies at once, Ctrl-C ----------------------

PBS = shutil.which("pbs") or str(Path(sys.executable).with_name("pbs"))


def test_a_disabled_storage_on_a_server_serving_another_certificate_is_refused(
    invoke: Invoke, lab: Lab, lab_config: Callable[..., Path]
) -> None:
    """media-cold is declared disabled on pbs3, which no enabled storage uses, so the checks
    never probe it; apply probes it itself before writing anything about it."""

    def cold(data: dict[str, Any]) -> None:
        media = storage(data, "media")
        data["pbs_storages"].remove(media)
        data["pbs_storages"].append(dict(media, name="media-cold", enabled=False))

    config = lab_config(lab, cold)
    pbs3 = lab.pbs["pbs3.lab.example"]
    pbs3.renew_certificate()  # the declared fingerprint is out of date now
    before = len(writes(lab))
    result = invoke("apply", "--config", config)
    assert result.exit_code == 1, result.output
    assert (
        f"media-cold: refused - pbs3.lab.example serves a certificate with fingerprint "
        f"{pbs3.fingerprint.upper()}, not the declared one"
    ) in result.stdout
    assert "`pbs fingerprint --update media-cold`" in result.stdout
    assert len(writes(lab)) == before
    assert "media-cold" not in {e["storage"] for e in client(config).storages()}


def test_a_corrected_password_is_sent_with_the_enable_on_the_next_apply(
    invoke: Invoke, lab: Lab, lab_config: Callable[..., Path], clean_env: pytest.MonkeyPatch
) -> None:
    def with_own_password(data: dict[str, Any]) -> None:
        add_missing(data)
        storage(data, "archive-prod")["password"] = "${ARCHIVE_PROD_PASSWORD}"

    config = lab_config(lab, with_own_password)
    clean_env.setenv("ARCHIVE_PROD_PASSWORD", "not-the-password")
    first = invoke("apply", "--config", config)
    assert first.exit_code == 1, first.output
    assert "archive-prod: failed - created disabled and left disabled: nodes pve1 (" in first.stdout
    assert "or log in as root@pam with the declared password" in first.stdout
    # what was written is counted: the entry exists (disabled) although the storage failed
    counted = "1 created, 0 updated, 0 enabled, 0 disabled, 0 re-created, 0 deleted, 0 refused"
    assert f"{counted}, 1 failed" in first.stdout
    assert client(config).storage("archive-prod")["disable"] == 1

    clean_env.setenv("ARCHIVE_PROD_PASSWORD", lab.env["PBS_LAB_HOMELAB_BACKUP_PASSWORD"])
    second = invoke("apply", "--config", config)
    assert second.exit_code == 0, second.output
    assert (
        "~ archive-prod  enable  password: (stored) -> (declared, every node logs in with it first)"
    ) in second.stdout
    assert "archive-prod: enabled" in second.stdout
    assert "PUT /storage/archive-prod disable=0 password=***" in second.stdout
    assert invoke("status", "--config", config).exit_code == 0
    for output in (first.output, second.output):
        assert "not-the-password" not in output
        assert lab.env["PBS_LAB_HOMELAB_BACKUP_PASSWORD"] not in output


def posts(lab: Lab) -> list[dict[str, Any]]:
    return [r for r in writes(lab) if r["method"] == "POST"]


def entry_reads(lab: Lab, name: str) -> list[dict[str, Any]]:
    """The `GET /storage/{name}` reads the lab has answered so far (the re-read before a write)."""
    return [
        r
        for r in lab.requests()
        if r.get("method") == "GET" and str(r.get("path", "")).endswith(f"/storage/{name}")
    ]


def two_applies(lab: Lab, config: Path, tmp_path: Path, hosts: int) -> str:
    """Two `pbs apply` at once, both exiting 0; `hosts=2` gives each its own temporary directory,
    where the per-cluster lock lives: as if they ran on two machines, so they do not take turns.
    Returns the stdout of the one that did not create archive-prod."""
    assert lab.pve is not None
    # Every answer held back 3 s until both have re-read the entry (missing) just before their
    # create: on a loaded machine the second process can start seconds after the first, and at
    # a short hold the first had created it before the second looked. Then 0.5 s.
    # (On one machine the second waits for the lock instead: no barrier, it would never pass.)
    lab.pve.faults.set(latency=3.0 if hosts > 1 else 0.5)
    asked = len(entry_reads(lab, "archive-prod"))
    command = [PBS, "apply", "--config", str(config)]
    runs = []
    for run in range(2):
        tmp = tmp_path / f"host{run % hosts}"
        tmp.mkdir(exist_ok=True)
        env = {**os.environ, "TMPDIR": str(tmp)}
        runs.append(subprocess.Popen(command, stdout=PIPE, stderr=PIPE, text=True, env=env))
    try:
        deadline = time.monotonic() + 60
        while hosts > 1 and len(entry_reads(lab, "archive-prod")) < asked + 2:
            assert time.monotonic() < deadline, "the two applies never both read the entry"
            assert all(run.poll() is None for run in runs), [r.communicate() for r in runs]
            time.sleep(0.05)
        lab.pve.faults.set(latency=0.5)
        outputs = [run.communicate(timeout=120) for run in runs]
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
    lab.pve.faults.clear()
    assert [run.returncode for run in runs] == [0, 0], outputs
    stdout = [out for out, _ in outputs]
    winner = next(out for out in stdout if "archive-prod: created" in out)
    return next(out for out in stdout if out is not winner)


def test_two_applies_at_once_on_two_machines_creating_the_same_entry_both_succeed(
    lab: Lab, lab_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = lab_config(lab, add_missing)
    loser = two_applies(lab, config, tmp_path, hosts=2)
    statuses = sorted(r["status"] for r in posts(lab))
    assert statuses == [200, 500], "the two applies did not race"
    assert_shows(
        loser,
        "storage ID 'archive-prod' already defined",
        "another writer created it at the same time",
        "0 failed",
    )


def test_two_applies_at_once_on_one_machine_take_turns_under_the_cluster_lock(
    lab: Lab, lab_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = lab_config(lab, add_missing)
    loser = two_applies(lab, config, tmp_path, hosts=1)
    assert [r["status"] for r in posts(lab)] == [200]  # one create; the other read it done
    assert_shows(
        loser, "plan: no changes, every declared PBS storage matches", "archive-prod: unchanged"
    )
    assert "already defined" not in loser


def ctrl_c_apply(
    lab: Lab, config: Path, when: Callable[[list[dict[str, Any]]], bool], *args: str
) -> tuple[int, str, str]:
    """Run `pbs apply` with every PVE answer held back 2.5 s, send it SIGINT as soon as
    `when(requests so far)` holds; (exit status, stdout, stderr).

    The hold is the window between seeing the state and the next write: on a loaded CI machine
    this test polls late, and at 1 s the enable was sometimes already sent."""
    assert lab.pve is not None
    lab.pve.faults.set(latency=2.5)
    process = subprocess.Popen(
        [PBS, "apply", "--config", str(config), *args], stdout=PIPE, stderr=PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not when(lab.requests()):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "pbs apply never got there"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    lab.pve.faults.clear()
    return process.returncode, out, err


def asking_nodes_after_create(requests: list[dict[str, Any]]) -> bool:
    """The entry was created and the nodes are being asked whether they reach the PBS."""
    created = next(
        (i for i, r in enumerate(requests) if r["method"] == "POST" and r["status"] == 200), None
    )
    return created is not None and any(
        str(r["path"]).endswith("/scan/pbs") for r in requests[created + 1 :]
    )


LEFT = "created disabled, not enabled yet (inert: no node uses it)"


def test_ctrl_c_mid_apply_says_what_it_left_and_a_re_run_continues(
    invoke: Invoke, lab: Lab, lab_config: Callable[..., Path]
) -> None:
    config = lab_config(lab, add_missing)
    code, out, err = ctrl_c_apply(lab, config, asking_nodes_after_create)
    assert code == 130, (out, err)
    assert f"archive-prod: interrupted - {LEFT}" in out
    assert "1 created, 0 updated" in out
    assert out.rstrip().endswith("0 failed, 4 unchanged, 1 interrupted")
    assert f"pbs: interrupted (Ctrl-C): archive-prod was left {LEFT}." in err
    assert "Re-run `pbs apply` to continue" in err
    assert client(config).storage("archive-prod")["disable"] == 1

    again = invoke("apply", "--config", config)
    assert again.exit_code == 0, again.output
    assert "archive-prod: enabled" in again.stdout
    assert invoke("status", "--config", config).exit_code == 0


def test_ctrl_c_mid_apply_with_json_output_is_one_document_saying_what_it_left(
    lab: Lab, lab_config: Callable[..., Path]
) -> None:
    config = lab_config(lab, add_missing)
    code, out, _ = ctrl_c_apply(lab, config, asking_nodes_after_create, "--output", "json")
    assert code == 130
    data = json.loads(out)
    assert (data["ok"], data["error"]) == (False, "interrupted")
    assert "archive-prod was left created disabled" in data["message"]
    result = next(r for r in data["results"] if r["storage"] == "archive-prod")
    assert (result["status"], result["reason"], result["writes"]) == ("interrupted", LEFT, 1)
    assert (data["summary"]["created"], data["summary"]["interrupted"]) == (1, 1)


def test_ctrl_c_before_any_write_says_pve_is_unchanged(
    lab: Lab, lab_config: Callable[..., Path]
) -> None:
    config = lab_config(lab, add_missing)
    before, asked = len(writes(lab)), len(lab.requests())
    code, out, err = ctrl_c_apply(lab, config, lambda requests: len(requests) > asked)
    assert code == 130, (out, err)
    assert "pbs: interrupted (Ctrl-C) before anything was written: PVE is unchanged" in err
    assert len(writes(lab)) == before
