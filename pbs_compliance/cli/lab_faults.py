"""`pbs lab fault pbs|dns|pve`: break a running lab on purpose."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import typer

from pbs_compliance.cli.lab import StateDirOption, admin, done, lab_app, state_dir_of
from pbs_compliance.cli.output import Out, Output, OutputOption, examples
from pbs_compliance.lab.backups import Maintenance
from pbs_compliance.lab.dns_server import Fault
from pbs_compliance.lab.pbs_server import Mode
from pbs_compliance.lab.pve_faults import FAULT_HELP

__all__ = ["fault_app"]

fault_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
)
lab_app.add_typer(fault_app, name="fault")


@fault_app.callback()
def lab_fault(state_dir: StateDirOption = None) -> None:
    """Break a running lab on purpose (it must have been started by `pbs lab serve`).

    --state-dir works here, before the sub-command, and after it."""


# The choices are the lab's own, plus "none" where a fault can be taken back.
MaintenanceChoice = Literal[Maintenance, "none"]
DnsChoice = Literal[Fault, "none"]


@fault_app.command(
    "pbs",
    epilog=examples(
        "pbs lab fault pbs pbs1.lab.example --mode down       # connection refused",
        "pbs lab fault pbs pbs1.lab.example --mode blackhole  # accepts TCP, never answers",
        "pbs lab fault pbs pbs2.lab.example --renew           # a new certificate",
        "pbs lab fault pbs pbs3.lab.example --expired         # serve an expired certificate",
        "pbs lab fault pbs pbs1.lab.example --mode up --no-expired",
        "pbs lab fault pbs pbs1.lab.example --maintenance offline --datastore homelab",
        "pbs lab fault pbs pbs1.lab.example --maintenance none  # every datastore back",
    ),
)
def lab_fault_pbs(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="the PBS server's name, e.g. pbs1.lab.example")],
    mode: Annotated[Mode | None, typer.Option("--mode", help="up, down or blackhole")] = None,
    renew: Annotated[bool, typer.Option("--renew", help="issue a new certificate")] = False,
    expired: Annotated[
        bool | None,
        typer.Option(
            "--expired/--no-expired",
            help="serve an expired certificate; --no-expired serves the certificate from "
            "before --expired again (same fingerprint)",
        ),
    ] = None,
    maintenance: Annotated[
        MaintenanceChoice | None,
        typer.Option(
            "--maintenance",
            help="put datastores in PBS maintenance mode: offline (every read fails), "
            "read-only (writes fail), none (back to normal)",
        ),
    ] = None,
    datastore: Annotated[
        str | None,
        typer.Option("--datastore", metavar="DS", help="with --maintenance: only this datastore"),
    ] = None,
    state_dir: StateDirOption = None,
    output: OutputOption = Output.text,
) -> None:
    """Take a lab PBS down, make it hang, renew or expire its certificate, or put its
    datastores in maintenance mode."""
    out = Out.create(output)
    where = state_dir_of(out, ctx, state_dir)
    body: dict[str, Any] = {}
    if mode is not None:
        body["mode"] = mode
    if renew:
        body["renew"] = True
    if expired is not None:
        body["expired"] = expired
    if maintenance is not None:
        body["maintenance"] = maintenance
        if datastore is not None:
            body["datastore"] = datastore
    elif datastore is not None:
        out.fail(2, "--datastore goes with --maintenance", "usage")
    if not body:
        out.fail(
            2,
            "say what to change: --mode, --renew, --expired/--no-expired or --maintenance",
            "usage",
        )
    answer = admin(out, where, f"pbs/{name}", body)
    done(out, answer, f"{name}: {', '.join(f'{k}={v}' for k, v in body.items())}")


@fault_app.command(
    "dns",
    epilog=examples(
        "pbs lab fault dns servfail              # every resolver of the lab",
        "pbs lab fault dns silence --node pve3   # only the resolver pve3 uses",
        "pbs lab fault dns none                  # answer normally again",
    ),
)
def lab_fault_dns(
    ctx: typer.Context,
    fault: Annotated[DnsChoice, typer.Argument(help="servfail, silence or none")],
    node: Annotated[
        str | None, typer.Option("--node", help="only the resolver this node uses")
    ] = None,
    state_dir: StateDirOption = None,
    output: OutputOption = Output.text,
) -> None:
    """Make the lab's DNS answer SERVFAIL or nothing at all (everywhere, or for one node)."""
    out = Out.create(output)
    where = state_dir_of(out, ctx, state_dir)
    body: dict[str, Any] = {"fault": None if fault == "none" else fault}
    if node is not None:
        body["node"] = node
    answer = admin(out, where, "dns", body)
    done(out, answer, f"dns: {fault}" + (f" (resolver of {node})" if node else ""))


def _fault_keys() -> str:
    """The KEYs of `pbs lab fault pve`, one line each (\\b: click keeps the lines)."""
    width = max(len(key) for key in FAULT_HELP)
    lines = [f"  {key:<{width}}  {meaning}" for key, meaning in FAULT_HELP.items()]
    return "\b\nKeys (KEY=VALUE; a value is JSON, or else a plain word):\n" + "\n".join(lines)


@fault_app.command(
    "pve",
    epilog=examples(
        "pbs lab fault pve latency=2                 # every API call takes 2 s longer",
        "pbs lab fault pve fail_nth=1                # the next API request answers HTTP 500",
        "pbs lab fault pve fail_path='/storage/*' fail_method=PUT  # every storage PUT fails",
        "pbs lab fault pve concurrent_writer=true    # another writer changes storage.cfg",
        "pbs lab fault pve --clear",
        note=_fault_keys(),
    ),
)
def lab_fault_pve(
    ctx: typer.Context,
    settings: Annotated[
        list[str] | None,
        typer.Argument(metavar="KEY=VALUE...", help="fault settings (the KEYs are below)"),
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="remove every PVE fault first")] = False,
    state_dir: StateDirOption = None,
    output: OutputOption = Output.text,
) -> None:
    """Inject PVE API faults: latency, failing or dropped requests, a concurrent writer."""
    out = Out.create(output)
    where = state_dir_of(out, ctx, state_dir)
    body: dict[str, Any] = {"clear": True} if clear else {}
    for item in settings or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            out.fail(2, f"'{item}' is not KEY=VALUE", "usage")
        try:
            body[key] = json.loads(value)
        except ValueError:
            body[key] = value  # a bare word: a path or a method
    if not body:
        out.fail(2, "give KEY=VALUE settings, or --clear", "usage")
    answer = admin(out, where, "faults", body)
    done(out, answer, "pve faults now: " + json.dumps(answer))
