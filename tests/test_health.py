"""The backup health verdicts whole: check, storage, status, facts and message essentials, and
the boundaries (exactly max_age, exactly max_used_percent, exactly min_days_to_full)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from spec_builders import storage_builder

from pbs_compliance import health
from pbs_compliance.backup_reads import (
    Backup,
    BackupEvidence,
    Guest,
    PbsTarget,
    PveBackups,
    Usage,
    target_key,
)
from pbs_compliance.config import StorageSpec
from pbs_compliance.config.model import BackupHealth
from pbs_compliance.evidence import LiveState, ServerEvidence
from pbs_compliance.probes.dns import DnsResult

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
T = int(NOW.timestamp())
H = 3600
TIB = 1024**4
ALL = ("Datastore.Audit", "Datastore.Backup", "Datastore.Read")


spec = storage_builder(name="homelab", server="pbs1.example")


def pbs_target(s: StorageSpec, **values: Any) -> PbsTarget:
    base: dict[str, Any] = {
        "stores": ("other", s.datastore),
        "listed": True,
        "usage": Usage(10 * TIB, 5 * TIB, 5 * TIB, 0),
        "privileges": ALL,
        "namespace_exists": True if s.namespace else None,
    }
    return PbsTarget(
        s.server, s.port, s.datastore, s.namespace or "", s.username, **{**base, **values}
    )


GUESTS = {
    100: Guest(100, "web", "pve1", "qemu"),
    101: Guest(101, "dns", "pve1", "lxc"),
    200: Guest(200, "db", "pve2", "qemu"),
}


def fresh(vmid: int, hours_ago: float = 6, **values: Any) -> Backup:
    btype = "ct" if vmid == 101 else "vm"
    ctime = T - round(hours_ago * H)
    base: dict[str, Any] = {"verification": "ok", "verified_at": ctime + 600}
    return Backup(vmid, btype, ctime, 2 * 1024**3, **{**base, **values})


def evidence(
    s: StorageSpec,
    items: tuple[Backup, ...] | None = None,
    guests: dict[int, Guest] | None = None,
    pve: dict[str, Any] | None = None,
    **pbs: Any,
) -> BackupEvidence:
    key = target_key(s)
    listed = (fresh(100), fresh(101), fresh(200)) if items is None else items
    return BackupEvidence(
        guests=GUESTS if guests is None else guests,
        pbs={key: pbs_target(s, **pbs)},
        pve={key: PveBackups(s.name, "pve1", items=listed, **(pve or {}))},
        storages={s.name: key},
    )


def live(s: StorageSpec, **entry: Any) -> LiveState:
    base = {
        "storage": s.name,
        "type": "pbs",
        "server": s.server,
        "datastore": s.datastore,
        "username": s.username,
        "fingerprint": s.fingerprint.lower(),  # PVE keeps what was given; compared as hex
    }
    if s.namespace:
        base["namespace"] = s.namespace
    return LiveState(storages=[{**base, **entry}], nodes=["pve1", "pve2"])


def judge(check: str, s: StorageSpec, ev: BackupEvidence, state: LiveState | None = None) -> Any:
    return health.judge(check, s, None, state or live(s), ev, NOW)


# -- datastore -----------------------------------------------------------------------------------


def test_datastore_passes_with_its_facts() -> None:
    s = spec(namespace="prod/vms")

    verdict = health.datastore(s, None, evidence(s))

    assert (verdict.check, verdict.storage, verdict.status, verdict.message) == (
        "datastore",
        "homelab",
        "pass",
        "",
    )
    assert dict(verdict.facts) == {
        "datastore": "store1",
        "namespace": "prod/vms",
        "user": "root@pam",
        "privileges": "Datastore.Audit, Datastore.Backup, Datastore.Read",
        "maintenance": "none",
    }


def test_a_missing_datastore_names_what_the_pbs_has() -> None:
    s = spec()
    verdict = health.datastore(s, None, evidence(s, listed=False, stores=("a1", "b1")))

    assert verdict.status == "fail"
    assert verdict.message.startswith(
        "datastore 'store1' does not exist on pbs1.example (it has: a1, b1); PVE says "
        "`homelab: Cannot find datastore 'store1', check permissions and existence!`"
    )
    assert "fix: correct `datastore:`" in verdict.message


def test_a_datastore_hidden_by_privileges_names_the_missing_privilege() -> None:
    s = spec(username="backup@pbs!pve")
    ev = evidence(s, listed=False, stores=(), privileges=())

    verdict = health.datastore(s, None, ev)

    assert verdict.status == "fail"
    assert verdict.message.startswith(
        "backup@pbs!pve sees no datastore 'store1' on pbs1.example: it has no privilege on "
        "/datastore/store1 (missing Datastore.Audit or Datastore.Backup)"
    )
    assert "acl update /datastore/store1 DatastoreBackup --auth-id backup@pbs!pve" in (
        verdict.message
    )
    assert ("privileges", "none") in verdict.facts


@pytest.mark.parametrize(
    ("mode", "effect"),
    [
        ("type=offline,message=disk swap", "PVE can neither write nor read backups there"),
        ("type=read-only", "backups cannot be written to it"),
        ("type=unmount", "PVE can neither write nor read backups there"),
        ("type=delete", "PVE can neither write nor read backups there"),
    ],
)
def test_maintenance_fails_with_its_mode_and_message(mode: str, effect: str) -> None:
    s = spec()
    kind, note = health.parse_maintenance(mode)

    verdict = health.datastore(s, None, evidence(s, maintenance=mode))

    said = f" (message: {note})" if note else ""
    assert verdict.status == "fail"
    assert verdict.message.startswith(
        f"datastore 'store1' on pbs1.example is in maintenance mode '{kind}'{said}: {effect}"
    )
    assert ("maintenance", kind) in verdict.facts


def test_a_missing_namespace_fails_before_the_night() -> None:
    s = spec(namespace="prod/vms")

    verdict = health.datastore(s, None, evidence(s, namespace_exists=False))

    assert verdict.status == "fail"
    assert verdict.message.startswith(
        "namespace 'prod/vms' does not exist in datastore 'store1' on pbs1.example: PVE does not "
        "check it, so 'homelab' looks active until the first backup fails with "
        "`namespace not found`"
    )
    assert "namespace create prod/vms --repository root@pam@pbs1.example:store1" in (
        verdict.message
    )


def test_a_refused_login_fails_datastore_and_capacity_points_at_it() -> None:
    s = spec()
    ev = evidence(s, error="permission check failed.", status=401, listed=False, usage=None)

    verdict = health.datastore(s, None, ev)
    cap = health.capacity(s, None, ev, NOW)

    assert verdict.status == "fail"
    assert verdict.message.startswith(
        "the PBS pbs1.example:8007 refused the declared credentials of root@pam: "
        "permission check failed."
    )
    assert (cap.status, cap.message) == (
        "skip",
        "the PBS could not be read (see the datastore case)",
    )


def test_a_refused_login_the_nodes_judge_points_at_them_and_backups_are_still_judged() -> None:
    s = spec(password="declared-but-wrong")
    ev = evidence(s, error="permission check failed.", status=401, listed=False, usage=None)
    refused = (
        "the PBS pbs1.example:8007 refuses the declared credentials of root@pam (see the nodes "
        "cases)"
    )

    for check in ("datastore", "capacity"):
        verdict = judge(check, s, ev)
        assert (verdict.check, verdict.status, verdict.message) == (check, "skip", refused)
    # PVE lists the backups with the password it stores: they are judged all the same.
    assert judge("backups", s, ev).status == "pass"
    assert judge("verified", s, ev).status == "pass"
    # Without PVE's entry no nodes case logs in: the datastore case names the refusal.
    alone = judge("datastore", s, ev, LiveState(skipped="no PVE credentials configured"))
    assert alone.status == "fail"
    assert alone.message.startswith("the PBS pbs1.example:8007 refused the declared credentials")
    assert judge("datastore", s, ev, LiveState(nodes=["pve1"])).status == "fail"  # no entry


def test_an_unreadable_pbs_fails_datastore_with_the_reason() -> None:
    s = spec()
    ev = evidence(s, error="pbs1.example:8007 did not answer within 3 s", listed=False)

    verdict = health.datastore(s, None, ev)

    assert (verdict.status, verdict.message) == (
        "fail",
        "cannot read the PBS pbs1.example:8007: pbs1.example:8007 did not answer within 3 s",
    )


def test_skips_disabled_turned_off_no_password_unresolved() -> None:
    s = spec()
    dead = ServerEvidence(s.server, s.port, DnsResult(s.server, (), (), is_literal=False))

    assert health.datastore(spec(enabled=False), None, evidence(s)).message == (
        "'homelab' is declared `enabled: false`: its backups are not checked"
    )
    off = spec(backups=BackupHealth(skip=("datastore",)))
    assert health.datastore(off, None, evidence(off)).message == (
        "turned off for 'homelab' (`backups: {skip: [datastore]}`)"
    )
    assert health.datastore(s, None, evidence(s, skipped="no password")).message == "no password"
    for check in health.CHECKS:
        verdict = health.judge(check, s, dead, live(s), evidence(s), NOW)
        assert (verdict.check, verdict.status, verdict.message) == (
            check,
            "skip",
            "pbs1.example did not resolve (see the dns case)",
        )


# -- capacity ------------------------------------------------------------------------------------


def used(s: StorageSpec, percent: float, full: int | None = 0) -> BackupEvidence:
    total = 10 * TIB
    return evidence(s, usage=Usage(total, int(total * percent / 100), 0, full))


def test_capacity_exactly_at_the_limit_passes_and_above_fails() -> None:
    s = spec(backups=BackupHealth(max_used_percent=90))

    at = health.capacity(s, None, used(s, 90), NOW)
    above = health.capacity(s, None, used(s, 90.01), NOW)

    assert at.status == "pass"
    assert dict(at.facts)["used"] == "9.0 TiB of 10.0 TiB (90.0 %)"
    assert above.status == "fail"
    assert above.message.startswith(
        "datastore 'store1' on pbs1.example: 9.0 TiB of 10.0 TiB used (90.0 %), more than "
        "max_used_percent 90 %"
    )


def test_capacity_the_30_day_boundary() -> None:
    s = spec()
    exactly = T + 30 * 86400

    at = health.capacity(s, None, used(s, 50, exactly), NOW)
    within = health.capacity(s, None, used(s, 50, exactly - 1), NOW)

    assert at.status == "pass"
    assert dict(at.facts)["predicted full"] == "2025-07-01 (in 30 days)"
    assert within.status == "fail"
    assert "PBS predicts it full on 2025-07-01 (in 30 days), within min_days_to_full 30 days" in (
        within.message
    )


def test_capacity_without_prediction_or_with_the_check_of_days_off() -> None:
    s = spec()
    never = health.capacity(s, None, used(s, 50, 0), NOW)
    unknown = health.capacity(s, None, used(s, 50, None), NOW)
    off = spec(backups=BackupHealth(min_days_to_full=0))

    assert dict(never.facts)["predicted full"] == "never"
    assert dict(unknown.facts)["predicted full"] == "no prediction"
    assert health.capacity(off, None, used(off, 50, T + 86400), NOW).status == "pass"


def test_capacity_without_sizes_names_the_privilege() -> None:
    s = spec()

    verdict = health.capacity(s, None, evidence(s, usage=Usage()), NOW)

    assert verdict.status == "fail"
    assert verdict.message.startswith(
        "the PBS shows root@pam no sizes of datastore 'store1': it lacks Datastore.Audit or "
        "Datastore.Backup on /datastore/store1"
    )


def test_capacity_in_maintenance_points_at_datastore_but_read_only_is_judged() -> None:
    s = spec()
    offline = evidence(s, maintenance="type=offline", usage=Usage(error="offline maintenance"))
    read_only = dataclasses.replace(used(s, 97), pbs={target_key(s): pbs_target(
        s, maintenance="type=read-only", usage=Usage(10 * TIB, int(9.7 * TIB), 0, 0))})  # fmt: skip

    assert health.capacity(s, None, offline, NOW).message == (
        "datastore 'store1' is in offline maintenance (see the datastore case)"
    )
    assert health.capacity(s, None, read_only, NOW).status == "fail"


def test_human_units() -> None:
    assert [health.human(n) for n in (512, 1536, 5 * 1024**3, 1.5 * TIB)] == [
        "512 B",
        "1.5 KiB",
        "5.0 GiB",
        "1.5 TiB",
    ]


# -- backups -------------------------------------------------------------------------------------


def test_backups_pass_with_the_guests_counted_in_the_facts() -> None:
    s = spec()

    verdict = judge("backups", s, evidence(s))

    assert (verdict.check, verdict.storage, verdict.status) == ("backups", "homelab", "pass")
    assert verdict.facts == (("max_age", "26h"), ("guests judged", "3 (0 stale)"))
    assert [(g.vmid, b and b.ctime) for g, b in health.guest_table(s, evidence(s), NOW)] == [
        (100, T - 6 * H),
        (101, T - 6 * H),
        (200, T - 6 * H),
    ]


def test_backups_exactly_max_age_passes_a_second_more_fails() -> None:
    s = spec(backups=BackupHealth(max_age=dt.timedelta(hours=36)))
    at = evidence(s, items=(fresh(100, 36),))
    older = evidence(s, items=(fresh(100, 36 + 1 / 3600), fresh(200)))

    assert judge("backups", s, at).status == "pass"
    verdict = judge("backups", s, older)
    assert verdict.status == "fail"
    assert verdict.message.splitlines()[:2] == [
        "1 of 2 guests have no backup younger than 36h on 'homelab':",
        "  vm 100 (web) on pve1: newest 2025-05-30 23:59 UTC, 36h ago, ok",
    ]
    assert "fix: check the backup job covering them" in verdict.message
    assert verdict.facts == (
        ("max_age", "36h"),
        ("guests judged", "2 (1 stale)"),
        ("guest", "100"),
    )


def test_guests_that_no_longer_exist_are_not_judged() -> None:
    s = spec()
    ev = evidence(s, items=(fresh(100), fresh(555, 500)))

    verdict = judge("backups", s, ev)

    assert verdict.status == "pass"
    assert ("not judged", "guests that no longer exist: 555") in verdict.facts


def test_a_backup_still_being_written_is_not_the_newest() -> None:
    s = spec()
    running = Backup(100, "vm", T - 60, 1)
    ev = evidence(s, items=(fresh(100, 50), running, Backup(200, "vm", T - 60, 1)))

    verdict = judge("backups", s, ev)

    assert verdict.status == "fail"
    assert verdict.message.splitlines()[1:3] == [
        "  vm 100 (web) on pve1: newest 2025-05-30 10:00 UTC, 50h ago, ok",
        "  vm 200 (db) on pve2: newest only a backup still being written",
    ]


def test_an_empty_list_without_audit_names_the_missing_privilege() -> None:
    s = spec(username="backup@pbs!pve", namespace="prod")
    ev = evidence(s, items=(), privileges=("Datastore.Backup",))

    verdict = judge("backups", s, ev)

    assert verdict.status == "fail"
    assert verdict.message.startswith(
        "PVE lists no backups on 'homelab': the PBS credentials backup@pbs!pve lack "
        "Datastore.Audit on /datastore/store1/prod, so the PBS shows them only the backup groups "
        "they own (none)"
    )
    assert judge("verified", s, ev).message == (
        "no finished backup to judge on 'homelab' (see the backups case)"
    )


def test_an_empty_list_with_audit_names_the_pve_privilege() -> None:
    s = spec()

    verdict = health.backups(s, None, live(s), evidence(s, items=()), NOW, "root@pam!ro")

    assert verdict.status == "fail"
    assert "or PVE hides them from root@pam!ro, which needs Datastore.Allocate on " in (
        verdict.message
    )


def test_pve_refusing_the_list_names_the_privileges() -> None:
    s = spec()
    ev = evidence(s, items=(), pve={"error": "Permission check failed", "status": 403})

    verdict = judge("backups", s, ev)

    assert verdict.status == "fail"
    assert verdict.message.startswith(
        "PVE refuses to list the backups of 'homelab': Permission check failed\nfix: the PVE "
        "token needs Datastore.Audit or Datastore.AllocateSpace on /storage/homelab"
    )


def test_backups_point_at_drift_and_datastore() -> None:
    s = spec(namespace="prod")
    elsewhere = live(s, namespace="other")

    assert judge("backups", s, evidence(s), LiveState(nodes=["pve1"])).message == (
        "PVE has no PBS storage 'homelab' (see the drift case)"
    )
    assert judge("backups", s, evidence(s), elsewhere).message.endswith(
        "(namespace differ), so its backup list is not the declared place's (see the drift case)"
    )
    assert judge("verified", s, evidence(s, namespace_exists=False)).message == (
        "namespace 'prod' is missing (see the datastore case)"
    )


@pytest.mark.parametrize(
    ("entry", "said"),
    [
        ({"username": "sync@pbs"}, "(username differ)"),
        ({"fingerprint": ":".join(["CD"] * 32)}, "(fingerprint differ)"),
        ({"port": "8008", "datastore": "x"}, "(datastore, port differ)"),
        ({"content": "none"}, "'homelab' does not hold backups in PVE (content: none)"),
        ({"disable": 1}, "'homelab' is disabled in PVE (see the drift case)"),
    ],
)
def test_pve_connecting_otherwise_points_at_drift(entry: dict[str, Any], said: str) -> None:
    s = spec()

    for check in ("backups", "verified"):
        verdict = judge(check, s, evidence(s), live(s, **entry))
        assert (verdict.status, verdict.check) == ("skip", check)
        assert said in verdict.message
        assert verdict.message.endswith("(see the drift case)")


def test_pve_unreadable_points_at_drift_and_an_inactive_node_at_its_nodes_case() -> None:
    s = spec()
    unread = LiveState(error="PVE at https://pve1:8006 did not answer within 0.5 s\nmore")
    failed = evidence(s, items=(), pve={"error": "error listing snapshots - 401", "status": 500})
    inactive = LiveState(
        storages=live(s).storages,
        nodes=["pve1"],
        node_views={"pve1": [{"storage": "homelab", "enabled": 1, "active": 0}]},
    )

    assert judge("backups", s, failed, unread).message == (
        "PVE could not be read: PVE at https://pve1:8006 did not answer within 0.5 s "
        "(see the drift case)"
    )
    verdict = judge("verified", s, failed, inactive)
    assert (verdict.status, verdict.message) == (
        "skip",
        "'homelab' is not active on pve1, so PVE could not list its backups there (see the "
        "nodes case)",
    )
    active_view = LiveState(
        storages=live(s).storages,
        nodes=["pve1"],
        node_views={"pve1": [{"storage": "homelab", "enabled": 1, "active": 1}]},
    )
    assert judge("backups", s, failed, active_view).message.startswith(
        "PVE could not list the backups of 'homelab' (asked on node pve1): error listing "
        "snapshots - 401"
    )


def test_without_pve_backups_skip_with_the_reason() -> None:
    s = spec()
    ev = evidence(s, pve={"skipped": "no PVE credentials configured"})

    assert judge("backups", s, ev).message == (
        "no PVE credentials configured: backups are read through PVE"
    )


# -- verified ------------------------------------------------------------------------------------


def test_a_failed_verification_fails() -> None:
    s = spec()
    ev = evidence(s, items=(fresh(100, verification="failed"), fresh(200)))

    verdict = judge("verified", s, ev)

    assert verdict.status == "fail"
    assert verdict.message.splitlines()[:2] == [
        "1 of 2 guests' newest backup on 'homelab' is not verified ok:",
        "  vm 100 (web) on pve1: newest backup 2025-06-01 06:00 UTC: verification failed",
    ]
    assert verdict.facts == (
        ("verification", "not required (a failed verification fails)"),
        ("guests judged", "2 (1 not ok)"),
        ("guest", "100"),
    )


def test_unverified_passes_unless_required() -> None:
    s = spec()
    strict = spec(backups=BackupHealth(require_verified=True))
    items = (fresh(100, verification=None, verified_at=None),)

    lenient = judge("verified", s, evidence(s, items=items))
    assert lenient.status == "pass"
    assert lenient.facts == (
        ("verification", "not required (a failed verification fails)"),
        ("guests judged", "1 (0 not ok)"),
    )
    verdict = judge("verified", strict, evidence(strict, items=items))
    assert dict(verdict.facts)["verification"] == "require_verified, within 8d"
    assert verdict.status == "fail"
    assert "vm 100 (web) on pve1: newest backup 2025-06-01 06:00 UTC: never verified" in (
        verdict.message
    )


def test_verify_max_age_boundary() -> None:
    s = spec(backups=BackupHealth(require_verified=True, verify_max_age=dt.timedelta(days=8)))
    at = fresh(100, 200, verified_at=T - 8 * 86400)
    older = fresh(100, 200, verified_at=T - 8 * 86400 - 1)

    assert judge("verified", s, evidence(s, items=(at,))).status == "pass"
    verdict = judge("verified", s, evidence(s, items=(older,)))
    assert verdict.status == "fail"
    assert "last verified 8d ago" in verdict.message
