"""The backup health checks as pure functions: `datastore`, `capacity`, `backups`, `verified`.

Each judges one declared storage on the probes (`ServerEvidence`), PVE's storage entries
(`LiveState`) and the backup reads (`BackupEvidence`), at a reference time `now`, and follows the
rule of `verdicts`: one fault fails the case that names it, the other cases point at it. The order
here: `dns`, `port`, `tls`, `fingerprint` (the PBS cannot be reached from here either, or nothing
is sent to it); then `drift` for PVE's view (PVE reads another place than the declared one, or
has no such entry); then `datastore` (missing, in maintenance, namespace missing, credentials
refused); then the check's own judgement. `verified` judges only when `backups` found something.

Thresholds come from the storage's `backups:` settings; a check listed in `backups.skip` skips.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from pbs_compliance.backup_reads import (
    AUDIT,
    Backup,
    BackupEvidence,
    Guest,
    PbsTarget,
    PveBackups,
)
from pbs_compliance.config import StorageSpec
from pbs_compliance.config.model import format_duration
from pbs_compliance.evidence import LiveState, ServerEvidence
from pbs_compliance.pvevalues import active, enabled, split_list
from pbs_compliance.verdicts import Verdict

CHECKS = ("datastore", "capacity", "backups", "verified")
# The fact naming the guests a failed case is about (vmids, comma-separated): the JUnit
# property `guest` of the case.
GUEST_FACT = "guest"
# Maintenance modes in which PVE cannot write backups; all but read-only also block reads.
BLOCKING = ("offline", "unmount", "delete", "read-only", "s3-refresh")
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def human(size: float) -> str:
    """Bytes in binary units with one decimal: 1536 -> `1.5 KiB`."""
    value = float(size)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def age(seconds: float) -> str:
    """A human age: `50h`, `3d 4h`, `45m`."""
    minutes = max(0, int(seconds // 60))
    if minutes < 60:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 72:
        return f"{hours}h"
    days, rest = divmod(hours, 24)
    return f"{days}d {rest}h" if rest else f"{days}d"


def stamp(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def parse_maintenance(text: str) -> tuple[str, str]:
    """PBS's `maintenance-mode` property string -> (type, message); `type=offline,message=x`."""
    kind, message = "", ""
    for part in text.split(","):
        key, _, value = part.partition("=")
        if key.strip() == "type":
            kind = value.strip()
        elif key.strip() == "message":
            message = value.strip().strip('"')
    return kind, message


# -- what points at what --------------------------------------------------------------------------


def _v(check: str, spec: StorageSpec, status: str, message: str, facts: Any = ()) -> Verdict:
    return Verdict(check, spec.name, status, message, tuple(facts))  # type: ignore[arg-type]


def _first_gate(check: str, spec: StorageSpec, server: ServerEvidence | None) -> Verdict | None:
    """Disabled, turned off, or a connectivity fault another case names."""
    if not spec.enabled:
        return _v(
            check,
            spec,
            "skip",
            f"'{spec.name}' is declared `enabled: false`: its backups are not checked",
        )
    if not spec.backups.judges(check):
        return _v(
            check, spec, "skip", f"turned off for '{spec.name}' (`backups: {{skip: [{check}]}}`)"
        )
    if server is None:
        return None
    if not server.dns.ok:
        return _v(check, spec, "skip", f"{spec.server} did not resolve (see the dns case)")
    if any(not t.ok for t in server.tcp):
        return _v(
            check,
            spec,
            "skip",
            f"no TCP connection to {spec.server}:{spec.port} (see the port case)",
        )
    if server.tls is not None and not server.tls.ok:
        return _v(check, spec, "skip", f"no TLS with {spec.server}:{spec.port} (see the tls case)")
    cert = server.tls.certificate if server.tls is not None else None
    if cert is not None and not cert.matches(spec.fingerprint):
        return _v(
            check,
            spec,
            "skip",
            f"{spec.server} serves another certificate than the declared one, so nothing is sent "
            "to it (see the fingerprint case)",
        )
    return None


def _datastore_fault(pbs: PbsTarget | None) -> str | None:
    """Why the `datastore` case fails (None: it does not, or it could not judge)."""
    if pbs is None or not pbs.read:
        return None if pbs is None or pbs.skipped else "the PBS could not be read"
    if not pbs.listed:
        return f"datastore '{pbs.datastore}' is not available"
    kind, _ = parse_maintenance(pbs.maintenance)
    if kind in BLOCKING:
        return f"datastore '{pbs.datastore}' is in {kind} maintenance"
    if pbs.namespace and (pbs.namespace_exists is False or pbs.namespace_error):
        return f"namespace '{pbs.namespace}' is missing"
    return None


def _pve_entry_fault(spec: StorageSpec, live: LiveState) -> str | None:
    """Why PVE's backup list is not this storage's (then the drift case says it): PVE could
    not be read, has no such entry, has it disabled or without backup content, or connects
    elsewhere or otherwise (server, datastore, namespace, port, username, pinned fingerprint)."""
    if live.skipped:
        return None  # judged by what the backup read itself says
    if live.error:
        said = live.error.strip().splitlines()[0] if live.error.strip() else "no answer"
        return f"PVE could not be read: {said} (see the drift case)"
    entry = live.pbs_entries.get(spec.name)
    if entry is None:
        return f"PVE has no PBS storage '{spec.name}' (see the drift case)"
    if not enabled(entry):
        return f"'{spec.name}' is disabled in PVE (see the drift case)"
    content = split_list(entry.get("content")) or ["backup"]
    if "backup" not in content:
        return (
            f"'{spec.name}' does not hold backups in PVE (content: {','.join(content)}), so PVE "
            "lists none there (see the drift case)"
        )
    pinned = str(entry.get("fingerprint") or "").lower()
    differs = [
        key
        for key, declared in (
            ("server", spec.server),
            ("datastore", spec.datastore),
            ("namespace", spec.namespace or ""),
            ("port", str(spec.port)),
            ("username", spec.username),
        )
        if str(entry.get(key) or ("8007" if key == "port" else "")) != declared
    ]
    if pinned and pinned != spec.fingerprint.lower():
        differs.append("fingerprint")
    if differs:
        return (
            f"PVE's entry '{spec.name}' points elsewhere ({', '.join(differs)} differ), so its "
            "backup list is not the declared place's (see the drift case)"
        )
    return None


# -- datastore ------------------------------------------------------------------------------------


def _refused(spec: StorageSpec, pbs: PbsTarget, live: LiveState | None) -> str | None:
    """When the PBS refuses the declared credentials and the nodes cases judge them (they log
    in with the declared password from each node PVE has the entry on), the skip that points
    there; None when no nodes case does (no PVE read, no entry): then `datastore` fails."""
    if pbs.status != 401 or live is None or live.skipped or live.error:
        return None
    if not spec.enabled or spec.password is None or spec.name not in live.pbs_entries:
        return None
    return (
        f"the PBS {spec.server}:{spec.port} refuses the declared credentials of {pbs.auth_id} "
        "(see the nodes cases)"
    )


def _not_read(check: str, spec: StorageSpec) -> Verdict:
    return _v(check, spec, "skip", f"'{spec.name}' was not read (no backup evidence)")


def _pbs_gate(
    check: str, spec: StorageSpec, server: ServerEvidence | None, ev: BackupEvidence
) -> Verdict | PbsTarget:
    """The first gate, then the PBS read: a skip when it was not read or was skipped, else what
    it read (the datastore and capacity cases start here)."""
    gated = _first_gate(check, spec, server)
    if gated is not None:
        return gated
    pbs, _ = ev.target(spec)
    if pbs is None:
        return _not_read(check, spec)
    if pbs.skipped:
        return _v(check, spec, "skip", pbs.skipped)
    return pbs


def datastore(
    spec: StorageSpec,
    server: ServerEvidence | None,
    ev: BackupEvidence,
    live: LiveState | None = None,
) -> Verdict:
    """The datastore exists, is not in a maintenance mode that stops backups, and the declared
    namespace exists on it. A refused login is the nodes cases' fault when they judge it."""
    check = "datastore"
    pbs = _pbs_gate(check, spec, server, ev)
    if isinstance(pbs, Verdict):
        return pbs
    where = f"{spec.server}:{spec.port}"
    if pbs.error:
        refused = _refused(spec, pbs, live)
        if refused is not None:
            return _v(check, spec, "skip", refused)
        if pbs.status == 401:
            return _v(
                check,
                spec,
                "fail",
                f"the PBS {where} refused the declared credentials of {pbs.auth_id}: "
                f"{pbs.error}\nfix: check `username` and `password` of '{spec.name}' (for a "
                "token: user@realm!name and its secret); the nodes case shows whether the "
                "password PVE stores works",
                [("user", pbs.auth_id)],
            )
        return _v(check, spec, "fail", f"cannot read the PBS {where}: {pbs.error}")
    facts: list[tuple[str, str]] = [
        ("datastore", spec.datastore),
        ("namespace", spec.namespace or "(root)"),
        ("user", pbs.auth_id),
    ]
    if pbs.privileges is not None:
        facts.append(("privileges", ", ".join(pbs.privileges) or "none"))
    if not pbs.listed:
        seen = ", ".join(pbs.stores) or "none"
        if pbs.privileges == ():
            message = (
                f"{pbs.auth_id} sees no datastore '{spec.datastore}' on {spec.server}: it has no "
                f"privilege on /datastore/{spec.datastore} (missing Datastore.Audit or "
                f"Datastore.Backup), and PBS lists only datastores the user may see (it sees: "
                f"{seen})\nfix: on the PBS, `proxmox-backup-manager acl update "
                f"/datastore/{spec.datastore} DatastoreBackup --auth-id {pbs.auth_id}` (and "
                "DatastoreAudit to judge backups others wrote); PVE says `Cannot find datastore`"
            )
        else:
            message = (
                f"datastore '{spec.datastore}' does not exist on {spec.server} (it has: {seen}); "
                f"PVE says `{spec.name}: Cannot find datastore '{spec.datastore}', check "
                "permissions and existence!`\nfix: correct `datastore:` in the config, or create "
                "the datastore on the PBS"
            )
        return _v(check, spec, "fail", message, facts)
    kind, note = parse_maintenance(pbs.maintenance)
    facts.append(("maintenance", kind or "none"))
    if kind in BLOCKING:
        said = f" (message: {note})" if note else ""
        effect = (
            "backups cannot be written to it"
            if kind == "read-only"
            else "PVE can neither write nor read backups there"
        )
        return _v(
            check,
            spec,
            "fail",
            f"datastore '{spec.datastore}' on {spec.server} is in maintenance mode "
            f"'{kind}'{said}: {effect}\nfix: when the work is done, end it on the PBS "
            f"(`proxmox-backup-manager datastore update {spec.datastore} --delete "
            "maintenance-mode`, or Datastore > Options > Maintenance mode in the GUI)",
            facts,
        )
    if spec.namespace and pbs.namespace_error:
        return _v(
            check,
            spec,
            "fail",
            f"cannot tell whether namespace '{spec.namespace}' exists in datastore "
            f"'{spec.datastore}' on {spec.server}: {pbs.namespace_error}",
            facts,
        )
    if spec.namespace and pbs.namespace_exists is False:
        return _v(
            check,
            spec,
            "fail",
            f"namespace '{spec.namespace}' does not exist in datastore '{spec.datastore}' on "
            f"{spec.server}: PVE does not check it, so '{spec.name}' looks active until the "
            "first backup fails with `namespace not found`\nfix: create it on the PBS "
            f"(Datastore {spec.datastore} > Content > Add Namespace, or `proxmox-backup-client "
            f"namespace create {spec.namespace} --repository "
            f"{pbs.auth_id}@{spec.server}:{spec.datastore}`), or correct `namespace:`",
            facts,
        )
    return _v(check, spec, "pass", "", facts)


# -- capacity -------------------------------------------------------------------------------------


def capacity(
    spec: StorageSpec,
    server: ServerEvidence | None,
    ev: BackupEvidence,
    now: dt.datetime,
    live: LiveState | None = None,
) -> Verdict:
    """Used space at most `max_used_percent`, and not full within `min_days_to_full` days as PBS
    predicts it (`estimated-full-date`; exactly that many days passes)."""
    check = "capacity"
    pbs = _pbs_gate(check, spec, server, ev)
    if isinstance(pbs, Verdict):
        return pbs
    refused = _refused(spec, pbs, live)
    if refused is not None:
        return _v(check, spec, "skip", refused)
    fault = _datastore_fault(pbs)
    kind, _ = parse_maintenance(pbs.maintenance)
    if fault is not None and not fault.startswith("namespace") and kind != "read-only":
        return _v(check, spec, "skip", f"{fault} (see the datastore case)")
    usage = pbs.usage
    if usage is not None and usage.error:
        return _v(check, spec, "skip", f"{usage.error} (see the datastore case)")
    if usage is None or not usage.total or usage.used is None:
        return _v(
            check,
            spec,
            "fail",
            f"the PBS shows {pbs.auth_id} no sizes of datastore '{spec.datastore}': it lacks "
            f"Datastore.Audit or Datastore.Backup on /datastore/{spec.datastore}\nfix: grant "
            "DatastoreAudit (read-only) to it on the PBS",
        )
    limits = spec.backups
    percent = usage.used * 100 / usage.total
    facts: list[tuple[str, str]] = [
        ("used", f"{human(usage.used)} of {human(usage.total)} ({percent:.1f} %)"),
        ("max_used_percent", f"{limits.max_used_percent:g} %"),
    ]
    problems = []
    if percent > limits.max_used_percent:
        problems.append(
            f"{human(usage.used)} of {human(usage.total)} used ({percent:.1f} %), more than "
            f"max_used_percent {limits.max_used_percent:g} %"
        )
    full = usage.estimated_full
    if full:
        left = (full - now.timestamp()) / 86400
        predicted = (
            f"{dt.datetime.fromtimestamp(full, dt.UTC):%Y-%m-%d} (in {max(left, 0):.0f} days)"
        )
        facts.append(("predicted full", predicted))
        if limits.min_days_to_full and full < now.timestamp() + limits.min_days_to_full * 86400:
            problems.append(
                f"PBS predicts it full on {predicted}, within min_days_to_full "
                f"{limits.min_days_to_full} days"
            )
    else:
        facts.append(("predicted full", "never" if full == 0 else "no prediction"))
    if not problems:
        return _v(check, spec, "pass", "", facts)
    return _v(
        check,
        spec,
        "fail",
        f"datastore '{spec.datastore}' on {spec.server}: " + "; ".join(problems) + "\nfix: "
        "prune and garbage-collect (check `prune_backups` and the GC schedule), move backups "
        "elsewhere, or grow the datastore",
        facts,
    )


# -- backups and verified -------------------------------------------------------------------------


def _pve_gate(
    check: str,
    spec: StorageSpec,
    server: ServerEvidence | None,
    live: LiveState,
    ev: BackupEvidence,
) -> Verdict | tuple[PbsTarget | None, PveBackups]:
    gated = _first_gate(check, spec, server)
    if gated is not None:
        return gated
    pbs, pve = ev.target(spec)
    if pve is None:
        return _not_read(check, spec)
    entry = _pve_entry_fault(spec, live)
    if entry is not None:
        return _v(check, spec, "skip", entry)
    if pve.skipped:
        return _v(check, spec, "skip", f"{pve.skipped}: backups are read through PVE")
    # A PBS that cannot be read with the declared credentials does not stop PVE listing the
    # backups with its own: only what the PBS said about the datastore points there.
    fault = _datastore_fault(pbs) if pbs is not None and pbs.read else None
    if fault is not None and "read-only" not in fault:  # read-only still lists backups
        return _v(check, spec, "skip", f"{fault} (see the datastore case)")
    if pve.error:
        # PVE was asked through `pve.storage` (this storage, or another one of the same place)
        view = live.node_entry(pve.node, pve.storage) if pve.node else None
        if view is not None and not active(view):  # the nodes case of that node names why
            return _v(
                check,
                spec,
                "skip",
                f"'{pve.storage}' is not active on {pve.node}, so PVE could not list its backups "
                "there (see the nodes case)",
            )
        if pve.status == 403:
            return _v(
                check,
                spec,
                "fail",
                f"PVE refuses to list the backups of '{spec.name}': {pve.error}\nfix: the PVE "
                f"token needs Datastore.Audit or Datastore.AllocateSpace on /storage/{spec.name}, "
                "and to see the backups Datastore.Allocate there (or Datastore.AllocateSpace "
                "plus VM.Backup on /vms/ID)",
            )
        return _v(
            check,
            spec,
            "fail",
            f"PVE could not list the backups of '{spec.name}' (asked on node {pve.node}): "
            f"{pve.error}",
        )
    if ev.guests_error:
        return _v(check, spec, "fail", f"cannot tell which guests exist: {ev.guests_error}")
    return pbs, pve


def newest(items: Sequence[Backup]) -> dict[int, Backup]:
    """The newest finished snapshot per guest (one still being written does not count)."""
    found: dict[int, Backup] = {}
    for item in items:
        if item.in_progress:
            continue
        if item.vmid not in found or item.ctime > found[item.vmid].ctime:
            found[item.vmid] = item
    return found


def _row(guest: Guest, backup: Backup | None, now: dt.datetime) -> tuple[str, str]:
    if backup is None:
        return guest.label, "only a backup still being written"
    state = backup.verification or "not verified"
    return guest.label, f"{stamp(backup.ctime)}, {age(now.timestamp() - backup.ctime)} ago, {state}"


def guest_table(
    spec: StorageSpec, ev: BackupEvidence, now: dt.datetime
) -> list[tuple[Guest, Backup | None]]:
    """Every existing guest with backups on the storage and its newest finished one (None: only
    one still being written), by vmid: what the HTML table shows."""
    _, pve = ev.target(spec)
    if pve is None or not pve.read:
        return []
    latest = newest(pve.items)
    vmids = sorted({b.vmid for b in pve.items} & set(ev.guests))
    return [(ev.guests[v], latest.get(v)) for v in vmids]


def _empty(
    check: str, spec: StorageSpec, pbs: PbsTarget | None, pve: PveBackups, token: str
) -> Verdict:
    if pbs is not None and pbs.privileges is not None and AUDIT not in pbs.privileges:
        return _v(
            check,
            spec,
            "fail",
            f"PVE lists no backups on '{spec.name}': the PBS credentials {pbs.auth_id} lack "
            f"{AUDIT} on {pbs.acl_path}, so the PBS shows them only the backup groups they own "
            f"(none)\nfix: on the PBS, `proxmox-backup-manager acl update {pbs.acl_path} "
            f"DatastoreAudit --auth-id {pbs.auth_id}`",
            [("privileges", ", ".join(pbs.privileges) or "none")],
        )
    return _v(
        check,
        spec,
        "fail",
        f"PVE lists no backups at all on '{spec.name}' (asked on node {pve.node}): either none "
        f"was ever written, or PVE hides them from {token}, which needs Datastore.Allocate on "
        f"/storage/{spec.name} (or Datastore.AllocateSpace there plus VM.Backup on /vms/ID) to "
        "see them\nfix: check the backup jobs that target it (`pvesh get /cluster/backup`) and "
        "the token's permissions (`pveum user token permissions USER TOKEN`)",
    )


def backups(
    spec: StorageSpec,
    server: ServerEvidence | None,
    live: LiveState,
    ev: BackupEvidence,
    now: dt.datetime,
    who: str = "the PVE token",
) -> Verdict:
    """The newest finished backup of every guest that still exists is younger than `max_age`
    (exactly `max_age` passes); groups of guests that no longer exist are not judged."""
    check = "backups"
    gate = _pve_gate(check, spec, server, live, ev)
    if isinstance(gate, Verdict):
        return gate
    pbs, pve = gate
    if not pve.items:
        return _empty(check, spec, pbs, pve, who)
    limit = spec.backups.max_age
    table = guest_table(spec, ev, now)
    stale = [
        (g, b) for g, b in table if b is None or now.timestamp() - b.ctime > limit.total_seconds()
    ]
    gone = sorted({b.vmid for b in pve.items} - set(ev.guests))
    # Every guest's newest backup is the HTML table's (`backup_plugin`); the facts sum it up.
    facts = [
        ("max_age", format_duration(limit)),
        ("guests judged", f"{len(table)} ({len(stale)} stale)"),
    ]
    if gone:
        facts.append(("not judged", "guests that no longer exist: " + ", ".join(map(str, gone))))
    if not stale:
        return _v(check, spec, "pass", "", facts)
    facts.append((GUEST_FACT, ",".join(str(g.vmid) for g, _ in stale)))
    lines = [
        f"{len(stale)} of {len(table)} guests have no backup younger than "
        f"{format_duration(limit)} on '{spec.name}':"
    ]
    for guest, backup in stale:
        lines.append(f"  {_row(guest, backup, now)[0]}: newest " + _row(guest, backup, now)[1])
    lines.append(
        "fix: check the backup job covering them (`pvesh get /cluster/backup`) and the last "
        "vzdump task log on their node; raise `backups.max_age` if the schedule is slower"
    )
    return _v(check, spec, "fail", "\n".join(lines), facts)


def verified(
    spec: StorageSpec,
    server: ServerEvidence | None,
    live: LiveState,
    ev: BackupEvidence,
    now: dt.datetime,
) -> Verdict:
    """The newest backup of each judged guest is not `failed`; with `require_verified`, it was
    verified `ok` within `verify_max_age` (exactly that long ago passes)."""
    check = "verified"
    gate = _pve_gate(check, spec, server, live, ev)
    if isinstance(gate, Verdict):
        return gate
    table = [(g, b) for g, b in guest_table(spec, ev, now) if b is not None]
    if not table:
        return _v(
            check,
            spec,
            "skip",
            f"no finished backup to judge on '{spec.name}' (see the backups case)",
        )
    limits = spec.backups
    bad: list[tuple[Guest, str]] = []
    for guest, backup in table:
        if backup.verification == "failed":
            bad.append((guest, f"newest backup {stamp(backup.ctime)}: verification failed"))
        elif limits.require_verified and backup.verification != "ok":
            bad.append((guest, f"newest backup {stamp(backup.ctime)}: never verified"))
        elif limits.require_verified:
            when = backup.verified_at or backup.ctime
            if now.timestamp() - when > limits.verify_max_age.total_seconds():
                bad.append(
                    (
                        guest,
                        f"newest backup {stamp(backup.ctime)}: last verified "
                        f"{age(now.timestamp() - when)} ago",
                    )
                )
    setting = (
        f"require_verified, within {format_duration(limits.verify_max_age)}"
        if limits.require_verified
        else "not required (a failed verification fails)"
    )
    facts = [("verification", setting), ("guests judged", f"{len(table)} ({len(bad)} not ok)")]
    if not bad:
        return _v(check, spec, "pass", "", facts)
    facts.append((GUEST_FACT, ",".join(str(g.vmid) for g, _ in bad)))
    lines = [
        f"{len(bad)} of {len(table)} guests' newest backup on '{spec.name}' is not verified ok:"
    ]
    lines += [f"  {guest.label}: {why}" for guest, why in bad]
    lines.append(
        "fix: look at the verify task on the PBS (Datastore > Content, or the task log); run "
        "a new backup of the guest and verify it; schedule a verify job for the datastore"
    )
    return _v(check, spec, "fail", "\n".join(lines), facts)


def judge(
    check: str,
    spec: StorageSpec,
    server: ServerEvidence | None,
    live: LiveState,
    ev: BackupEvidence,
    now: dt.datetime,
    who: str = "the PVE token",
) -> Verdict:
    """One of the four checks by name (what the test functions call)."""
    if check == "datastore":
        return datastore(spec, server, ev, live)
    if check == "capacity":
        return capacity(spec, server, ev, now, live)
    if check == "backups":
        return backups(spec, server, live, ev, now, who)
    if check == "verified":
        return verified(spec, server, live, ev, now)
    raise KeyError(check)
