"""`pbs lab backup|guest|job`: snapshots, fill levels, guests and backup jobs of a running lab."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from pbs_compliance.cli.lab import StateDirOption, admin, done, lab_app, state_dir_of
from pbs_compliance.cli.output import Out, Output, OutputOption, examples
from pbs_compliance.lab.backups import Verification
from pbs_compliance.lab.pve_cluster import GuestType
from pbs_compliance.lab.scenario import parse_age

__all__ = ["backup_app", "guest_app", "job_app"]

backup_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)
guest_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)
job_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)
lab_app.add_typer(backup_app, name="backup")
lab_app.add_typer(guest_app, name="guest")
lab_app.add_typer(job_app, name="job")


VerifyChoice = Literal[Verification, "none"]  # the lab's verification states, or none


@backup_app.callback()
def lab_backup(state_dir: StateDirOption = None) -> None:
    """Snapshots and fill levels of the running lab's PBS datastores (kept across restarts)."""


@guest_app.callback()
def lab_guest(state_dir: StateDirOption = None) -> None:
    """VMs and containers of the running lab's PVE cluster (kept across restarts)."""


@job_app.callback()
def lab_job(state_dir: StateDirOption = None) -> None:
    """Backup jobs of the running lab's PVE cluster and their runs (kept across restarts)."""


def _age_seconds(out: Out, option: str, text: str) -> int:
    try:
        return parse_age(text)
    except ValueError as exc:
        out.fail(2, f"{option}: {exc}", "usage")


def _lab_change(out: Out, ctx: typer.Context, state_dir: Path | None, route: str,
                body: dict[str, Any], text: str) -> None:  # fmt: skip
    where = state_dir_of(out, ctx, state_dir)
    answer = admin(out, where, route, body, refused="the change")
    done(out, answer, text)


@backup_app.command(
    "add",
    epilog=examples(
        "pbs lab backup add pbs1.lab.example homelab vm/100             # fresh, verified",
        "pbs lab backup add pbs1.lab.example homelab vm/100 --age 50h   # a stale one",
        "pbs lab backup add pbs1.lab.example archive ct/101 --ns prod/vms --verify failed",
        "pbs lab backup add pbs1.lab.example homelab vm/100 --in-progress  # still running",
    ),
)
def lab_backup_add(
    ctx: typer.Context,
    server: Annotated[str, typer.Argument(help="the PBS server's name, e.g. pbs1.lab.example")],
    datastore: Annotated[str, typer.Argument(help="the datastore on that server")],
    target: Annotated[str, typer.Argument(metavar="vm/ID|ct/ID", help="the backup group")],
    ns: Annotated[str, typer.Option("--ns", help="the namespace (default: the root)")] = "",
    age: Annotated[
        str, typer.Option("--age", help="how old the snapshot is: 30m, 50h, 7d, 2w")
    ] = "0s",
    verify: Annotated[
        VerifyChoice, typer.Option("--verify", help="the last verification: ok, failed or none")
    ] = "ok",
    in_progress: Annotated[
        bool,
        typer.Option("--in-progress", help="still being written: no size, no verification"),
    ] = False,
    protected: Annotated[bool, typer.Option("--protected", help="protected from pruning")] = False,
    comment: Annotated[str | None, typer.Option("--comment", help="the snapshot's notes")] = None,
    state_dir: StateDirOption = None,
    output: OutputOption = Output.text,
) -> None:
    """Add a snapshot to a datastore of the running lab's PBS."""
    out = Out.create(output)
    body: dict[str, Any] = {
        "server": server, "datastore": datastore, "backup": target, "ns": ns,
        "age": _age_seconds(out, "--age", age), "verify": verify,
        "in_progress": in_progress, "protected": protected, "comment": comment,
    }  # fmt: skip
    where = f"{datastore}" + (f" namespace {ns}" if ns else "")
    _lab_change(out, ctx, state_dir, "backup/add", body,
                f"{server}: {target} in {where}, {age} old, verification {verify}")  # fmt: skip


@backup_app.command(
    "fill",
    epilog=examples(
        "pbs lab backup fill pbs1.lab.example homelab --used-percent 97",
        "pbs lab backup fill pbs1.lab.example homelab --used-percent 80 --full-in 10d",
    ),
)
def lab_backup_fill(
    ctx: typer.Context,
    server: Annotated[str, typer.Argument(help="the PBS server's name")],
    datastore: Annotated[str, typer.Argument(help="the datastore on that server")],
    used_percent: Annotated[
        float,
        typer.Option("--used-percent", min=0, max=100, help="how full the datastore is"),
    ],
    full_in: Annotated[
        str | None,
        typer.Option(
            "--full-in",
            help="the usage trend reaches 100 % this far ahead (estimated-full-date); "
            "default: a flat trend (never full)",
        ),
    ] = None,
    state_dir: StateDirOption = None,
    output: OutputOption = Output.text,
) -> None:
    """Set how full a datastore of the running lab's PBS is, and when it will be full."""
    out = Out.create(output)
    body: dict[str, Any] = {"server": server, "datastore": datastore, "used_percent": used_percent}
    if full_in is not None:
        body["full_in"] = _age_seconds(out, "--full-in", full_in)
    trend = f", full in {full_in}" if full_in else ""
    _lab_change(out, ctx, state_dir, "backup/fill", body,
                f"{server}: {datastore} {used_percent:g} % used{trend}")  # fmt: skip


@guest_app.command(
    "add",
    epilog=examples(
        "pbs lab guest add pve1 110 --name app          # a VM no backup job covers yet",
        "pbs lab guest add pve2 111 --type lxc --name cache --pool prod",
        "pbs lab guest add pve3 9001 --template --name ubuntu-24",
    ),
)
def lab_guest_add(
    ctx: typer.Context,
    node: Annotated[str, typer.Argument(help="the node it lives on, e.g. pve1")],
    vmid: Annotated[int, typer.Argument(help="its VMID (100 to 999999999, unique)")],
    kind: Annotated[GuestType, typer.Option("--type", help="qemu (a VM) or lxc")] = "qemu",
    name: Annotated[str | None, typer.Option("--name", help="its name")] = None,
    template: Annotated[bool, typer.Option("--template", help="a template")] = False,
    pool: Annotated[str | None, typer.Option("--pool", help="its pool (created if new)")] = None,
    tags: Annotated[list[str] | None, typer.Option("--tag", help="a tag (repeatable)")] = None,
    state_dir: StateDirOption = None,
    output: OutputOption = Output.text,
) -> None:
    """Add a VM or container to the running lab's PVE cluster."""
    out = Out.create(output)
    body: dict[str, Any] = {"node": node, "vmid": vmid, "type": kind, "name": name,
                            "template": template, "pool": pool, "tags": tags or []}  # fmt: skip
    _lab_change(out, ctx, state_dir, "guest/add", body, f"{node}: {kind} {vmid} added")


@job_app.command(
    "add",
    epilog=examples(
        "pbs lab job add nightly --storage homelab-backup --all",
        "pbs lab job add few --storage offsite --vmid 100,200 --schedule 'mon..fri 02:00'",
        "pbs lab job add paused --storage media --all --disabled",
    ),
)
def lab_job_add(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="ID", help="the job's ID")],
    storage: Annotated[str, typer.Option("--storage", help="the storage it backs up to")],
    all_guests: Annotated[bool, typer.Option("--all", help="every guest")] = False,
    vmid: Annotated[
        str | None, typer.Option("--vmid", help="these guests: a comma list of VMIDs")
    ] = None,
    exclude: Annotated[
        str | None, typer.Option("--exclude", help="with --all: not these VMIDs")
    ] = None,
    pool: Annotated[str | None, typer.Option("--pool", help="the guests of this pool")] = None,
    node: Annotated[str | None, typer.Option("--node", help="only guests on this node")] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="a disabled job")] = False,
    schedule: Annotated[
        str, typer.Option("--schedule", help="a PVE calendar event, e.g. 'mon..fri 02:00'")
    ] = "21:00",
    state_dir: StateDirOption = None,
    output: OutputOption = Output.text,
) -> None:
    """Add a backup job to the running lab's PVE, with PVE's own rules (as POST /cluster/backup)."""
    out = Out.create(output)
    body: dict[str, Any] = {"id": job_id, "storage": storage, "all": all_guests or None,
                            "vmid": vmid, "exclude": exclude, "pool": pool, "node": node,
                            "disabled": disabled, "schedule": schedule}  # fmt: skip
    _lab_change(out, ctx, state_dir, "job/add", body, f"job {job_id} added (to {storage})")


@job_app.command(
    "run",
    epilog=examples(
        "pbs lab job run backup-homelab                     # OK now, fresh snapshots",
        "pbs lab job run backup-homelab --age 30h           # it last ran 30 hours ago",
        "pbs lab job run backup-offsite --status 'job errors'",
        "pbs lab job run backup-media --status 'WARNINGS: 1'",
    ),
)
def lab_job_run(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="ID", help="the job's ID")],
    status: Annotated[
        str,
        typer.Option(
            "--status", help="how the run ended: OK, 'WARNINGS: N', 'job errors' or any error text"
        ),
    ] = "OK",
    age: Annotated[str, typer.Option("--age", help="how long ago it ended: 30m, 30h, 7d")] = "0s",
    verify: Annotated[
        VerifyChoice, typer.Option("--verify", help="the new snapshots' verification")
    ] = "ok",
    state_dir: StateDirOption = None,
    output: OutputOption = Output.text,
) -> None:
    """Record a finished run of a backup job: a vzdump task on each node with included guests,
    and (for OK and WARNINGS) a snapshot per guest on the job's PBS storage."""
    out = Out.create(output)
    seconds = _age_seconds(out, "--age", age)
    body: dict[str, Any] = {"id": job_id, "status": status, "age": seconds, "verify": verify}
    where = state_dir_of(out, ctx, state_dir)
    answer = admin(out, where, "job/run", body, refused="the change")
    written = len(answer.get("snapshots", [])) if isinstance(answer, dict) else 0
    tasks = len(answer.get("tasks", [])) if isinstance(answer, dict) else 0
    done(out, answer, f"job {job_id}: {status}, {tasks} task(s), {written} snapshot(s)")
