"""The backup health reads against the lab, over real sockets (PBS directly, PVE, the cluster)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import pytest
from lab_edits import token_without_audit
from pydantic import SecretStr

from pbs_compliance.backup_reads import (
    BackupEvidence,
    PbsTarget,
    PveBackups,
    read_backups,
    upid_start,
)
from pbs_compliance.config import ComplianceConfig, StorageSpec, load_config
from pbs_compliance.evidence import client_for
from pbs_compliance.lab.fixtures import LabFactory
from pbs_compliance.lab.runner import Lab
from pbs_compliance.settings import Overrides, RunSettings, resolve

OTHER_FINGERPRINT = ":".join(["AB"] * 32)


def settings_of(lab: Lab) -> RunSettings:
    config: ComplianceConfig = load_config(lab.config_path, environ=dict(lab.env))
    return resolve(config, Overrides(), dict(lab.env))


def read(
    lab: Lab, timeout: float = 2.0, pve: bool = True, **changes: dict[str, Any]
) -> tuple[BackupEvidence, dict[str, StorageSpec]]:
    """Read the lab's declaration, each storage changed as `changes[name]` says."""
    settings = settings_of(lab)
    specs = [s.model_copy(update=changes.get(s.name, {})) for s in settings.config.storages]
    client = client_for(settings) if pve else None
    evidence = read_backups(specs, settings.nameservers, timeout, client, "no PVE here")
    return evidence, {s.name: s for s in specs}


def target(evidence: BackupEvidence, spec: StorageSpec) -> tuple[PbsTarget, PveBackups]:
    pbs, pve = evidence.target(spec)
    assert pbs is not None
    assert pve is not None
    return pbs, pve


def test_the_built_in_lab_is_read_whole(shared_lab: Lab) -> None:
    evidence, specs = read(shared_lab)

    assert evidence.guests_error == ""
    assert {v: (g.name, g.node, g.kind, g.template) for v, g in evidence.guests.items()} == {
        100: ("web", "pve1", "qemu", False),
        101: ("dns", "pve1", "lxc", False),
        200: ("db", "pve2", "qemu", False),
        201: ("proxy", "pve2", "lxc", False),
        300: ("mail", "pve3", "qemu", False),
        9000: ("debian-12", "pve3", "qemu", True),
    }
    now = time.time()
    for name, vmids in {
        "homelab-backup": {100, 101, 200, 201, 300, 9000},
        "archive": {100, 200, 300},
        "offsite": {100, 200},
        "media": {101, 201},
    }.items():
        pbs, pve = target(evidence, specs[name])
        assert (pbs.error, pbs.skipped, pve.error, pve.skipped) == ("", "", "", "")
        assert pbs.listed
        assert pbs.maintenance == ""
        assert pbs.privileges is not None
        assert "Datastore.Audit" in pbs.privileges
        assert pbs.usage is not None
        assert pbs.usage.total
        assert pbs.usage.used is not None
        assert {b.vmid for b in pve.items} == vmids
        assert pve.node in ("pve1", "pve2", "pve3")
        for backup in pve.items:
            assert backup.verification == "ok"
            assert not backup.in_progress
            assert backup.verified_at is not None
            assert backup.verified_at >= backup.ctime
            assert now - 12 * 3600 < backup.ctime < now
    archive, _ = target(evidence, specs["archive"])
    assert (archive.namespace, archive.namespace_exists) == ("prod/vms", True)
    assert target(evidence, specs["offsite"])[1].node in ("pve1", "pve2")  # its nodes only


def test_each_read_happens_once_per_run(shared_lab: Lab) -> None:
    evidence, _ = read(shared_lab)

    # pbs1 holds two targets under two users; a token sends its header instead of logging in.
    assert evidence.reads == {
        "login": 3,
        "pbs session": 4,  # each resolves the name once
        "pbs access/permissions": 4,
        "pbs admin/datastore": 4,
        "pbs namespace": 1,
        "pbs status/datastore-usage": 4,
        "pve cluster/resources": 1,
        "pve storage content": 4,
    }


def test_storages_pointing_at_the_same_place_share_one_read(shared_lab: Lab) -> None:
    settings = settings_of(shared_lab)
    home = settings.config.storage("homelab-backup")
    twin = home.model_copy(update={"name": "homelab-twin"})
    client = client_for(settings)

    evidence = read_backups([home, twin], settings.nameservers, 2.0, client)

    assert evidence.storages["homelab-twin"] == evidence.storages["homelab-backup"]
    assert evidence.reads["pve storage content"] == 1
    assert evidence.reads["pbs admin/datastore"] == 1


def test_a_pbs_declared_by_its_address_is_read_without_asking_dns(lab: Lab) -> None:
    settings = settings_of(lab)
    home = settings.config.storage("homelab-backup")
    by_address = home.model_copy(update={"server": lab.pbs[home.server].address})
    assert lab.dns is not None
    asked = len(lab.dns.asked)

    evidence = read_backups([by_address], settings.nameservers, 2.0, client_for(settings))

    pbs, _ = target(evidence, by_address)
    assert (pbs.error, pbs.listed) == ("", True)
    assert len(lab.dns.asked) == asked


def test_a_storage_missing_from_pve_does_not_hide_the_backups_of_its_place(
    shared_lab: Lab,
) -> None:
    settings = settings_of(shared_lab)
    home = settings.config.storage("homelab-backup")
    missing = home.model_copy(update={"name": "aaa-not-in-pve"})  # declared first, same place
    client = client_for(settings)

    evidence = read_backups([missing, home], settings.nameservers, 2.0, client)

    _, pve = target(evidence, missing)
    assert pve.storage == "homelab-backup"
    assert pve.error == ""
    assert {b.vmid for b in pve.items} == {100, 101, 200, 201, 300, 9000}
    assert evidence.reads["pve storage content"] == 1


def test_the_evidence_round_trips_as_plain_data(shared_lab: Lab) -> None:
    evidence, _ = read(shared_lab)

    assert BackupEvidence.from_data(evidence.to_data()) == evidence


def test_maintenance_and_a_stale_backup_are_what_the_pbs_and_pve_say(lab: Lab) -> None:
    assert lab.admin is not None
    lab.admin.maintenance(
        "pbs1.lab.example", ["homelab"], {"maintenance": "offline", "message": "disk swap"}
    )
    lab.admin.add_backup(
        {"server": "pbs2.lab.example", "datastore": "offsite", "backup": "vm/300", "age": 50 * 3600}
    )
    lab.admin.add_backup(
        {
            "server": "pbs2.lab.example",
            "datastore": "offsite",
            "backup": "vm/200",
            "in_progress": True,
        }
    )

    evidence, specs = read(lab)

    home, home_pve = target(evidence, specs["homelab-backup"])
    assert home.maintenance == "type=offline,message=disk swap"
    assert home.usage is not None
    assert home.usage.error == "offline maintenance mode: disk swap"
    assert home_pve.items == ()
    assert (home_pve.status, home_pve.error) == (500, "error listing snapshots - 400 Bad Request")
    _, offsite = target(evidence, specs["offsite"])
    stale = [b for b in offsite.items if b.vmid == 300]
    assert len(stale) == 1
    assert 49 * 3600 < time.time() - stale[0].ctime < 51 * 3600
    running = [b for b in offsite.items if b.in_progress]
    assert [(b.vmid, b.size, b.verification) for b in running] == [(200, 1, None)]


def test_a_missing_namespace_is_found_on_the_pbs(shared_lab: Lab) -> None:
    evidence, specs = read(
        shared_lab, archive={"namespace": "prod/missing"}, offsite={"namespace": "prod"}
    )

    archive, _ = target(evidence, specs["archive"])
    offsite, _ = target(evidence, specs["offsite"])
    assert archive.namespace_exists is False
    assert archive.acl_path == "/datastore/archive/prod/missing"
    assert offsite.namespace_exists is True


def test_a_dead_pbs_costs_one_timeout(lab: Lab) -> None:
    lab.pbs["pbs1.lab.example"].set_mode("blackhole")
    lab.pbs["pbs2.lab.example"].set_mode("down")

    started = time.monotonic()
    evidence, specs = read(lab, timeout=1.0, pve=False)
    elapsed = time.monotonic() - started

    assert elapsed < 1.9  # both pbs1 logins wait at the same time, once
    for name in ("homelab-backup", "archive"):
        pbs, _ = target(evidence, specs[name])
        assert pbs.error.endswith("did not answer within 1 s"), pbs.error
        assert pbs.error.startswith("pbs1.lab.example:")
    offsite, _ = target(evidence, specs["offsite"])
    assert offsite.error.startswith("cannot reach pbs2.lab.example:")
    assert "refused" in offsite.error.lower()
    assert evidence.reads["login"] == 3  # pbs1's user and pbs2's: one try each; pbs3's
    assert "pbs admin/datastore" in evidence.reads  # pbs3 still answers
    media, _ = target(evidence, specs["media"])
    assert media.error == ""
    assert media.listed


def test_no_credential_goes_to_a_server_with_another_certificate(lab: Lab) -> None:
    before = lab.pbs["pbs3.lab.example"]._api.login_attempts

    evidence, specs = read(lab, pve=False, media={"fingerprint": OTHER_FINGERPRINT})

    media, _ = target(evidence, specs["media"])
    assert media.error == (
        f"pbs3.lab.example:{specs['media'].port} serves a certificate whose fingerprint is not "
        "the declared one: nothing was sent to it"
    )
    assert lab.pbs["pbs3.lab.example"]._api.login_attempts == before


def test_without_a_password_the_pbs_is_not_read(shared_lab: Lab) -> None:
    evidence, specs = read(shared_lab, pve=False, media={"password": None})

    media, pve = target(evidence, specs["media"])
    assert media.skipped == (
        "no password declared for 'media' (password or password_file): the PBS itself "
        "(datastore, namespace, maintenance, capacity) is not read"
    )
    assert pve.skipped == "no PVE here"
    assert evidence.guests_error == "no PVE here"


def test_a_wrong_password_is_the_pbs_refusal_without_the_password(shared_lab: Lab) -> None:
    wrong = "not-the-password-0815"
    evidence, specs = read(shared_lab, pve=False, media={"password": SecretStr(wrong)})

    media, _ = target(evidence, specs["media"])
    assert (media.status, media.error) == (401, "permission check failed.")
    assert wrong not in repr(evidence)
    assert wrong not in str(evidence.to_data())


def test_a_token_without_audit_sees_only_its_own_groups(make_lab: LabFactory) -> None:
    lab = make_lab(token_without_audit())

    evidence, specs = read(lab)

    archive, pve = target(evidence, specs["archive"])
    assert archive.privileges == ("Datastore.Backup",)
    assert pve.items == ()  # the snapshots are root@pam's: PBS shows the token none of them


def test_no_secret_in_any_reading(lab: Lab) -> None:
    lab.pbs["pbs2.lab.example"].set_mode("down")
    evidence, specs = read(lab, media={"password": SecretStr("wrong-canary-4711")})
    secrets: Sequence[str] = [
        *(s.password.get_secret_value() for s in specs.values() if s.password),
        *lab.env.values(),
    ]

    shown = repr(evidence) + str(evidence.to_data())
    assert [s for s in secrets if s in shown] == []


def test_upid_start() -> None:
    upid = "UPID:pbs1:00001F2A:0003C4B1:00000001:6553F100:verificationjob:homelab\\x3av:root@pam:"

    assert upid_start(upid) == 0x6553F100
    assert upid_start("UPID:pve1:0001:0002:6553F100:vzdump::root@pam:") is None
    assert upid_start("nonsense") is None


@pytest.mark.parametrize("size", [None, 1])
def test_a_volume_without_a_size_is_in_progress(size: int | None) -> None:
    from pbs_compliance.backup_reads import _backup

    item = {"format": "pbs-vm", "vmid": 100, "ctime": 5, **({"size": size} if size else {})}
    backup = _backup(item)

    assert backup is not None
    assert backup.in_progress
    assert backup.size == 1
    assert _backup({"format": "vma.zst", "vmid": 100, "ctime": 5}) is None


def test_gather_backups_uses_the_runs_settings(shared_lab: Lab) -> None:
    from pbs_compliance.backup_reads import gather_backups

    settings = settings_of(shared_lab)
    evidence = gather_backups(settings)
    bare = gather_backups(dataclasses.replace(settings, pve=settings.pve.model_copy(
        update={"token_id": None, "token_secret": None})))  # fmt: skip

    assert set(evidence.storages) == {s.name for s in settings.config.storages if s.enabled}
    assert evidence.reads["pve storage content"] == 4
    assert bare.guests_error.startswith("no PVE credentials configured")
    assert "pve storage content" not in bare.reads
