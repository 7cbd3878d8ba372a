"""`pbs`: the command line for people and for CI.

Every command reuses the core - `load_config`/`resolve` for settings, `gather`/`read_live` for
evidence, `verdicts` for judging, `remediate` for plan and apply - and only decides what to show.
Conventions shared by all commands:
- `--output json` prints exactly one JSON document on stdout (stable keys) and nothing else;
- colour only on a terminal, never with NO_COLOR;
- exit status 0 = compliant / applied, 1 = not compliant / failed, 2 = usage or config error
  (a broken config lists every problem, without a traceback);
- secrets are never shown: they come from the config's `${ENV}` references or the environment.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import requests
import typer
import yaml
from pydantic import ValidationError
from rich.console import Console

from pbs_compliance.config import ConfigError, load_config
from pbs_compliance.evidence import NO_CREDENTIALS, client_for, gather, gather_evidence, read_live
from pbs_compliance.lab.pve_faults import FAULT_HELP
from pbs_compliance.lab.runner import Lab, LabError
from pbs_compliance.lab.scenario import Scenario, builtin, parse_age
from pbs_compliance.pinning import Target, Updated, fetch, split_target, update_fingerprint
from pbs_compliance.pve import PveClient, PveError
from pbs_compliance.settings import Overrides, RunSettings, SettingError, config_path, resolve
from pbs_compliance.tables import (
    status_rows,
    status_table,
    validation_details,
    validation_rows,
    validation_table,
)
from remediate import Interrupted, PlanOptions, Reachability, Results, Status, apply, plan
from remediate.plan import Action, Plan
from remediate.reach import reach_for

DEFAULT_LAB_DIR = Path(".lab")


class Output(StrEnum):
    text = "text"
    json = "json"


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        metavar="PATH",
        help="the declaration (default: config/pbs-storage.yaml; env PBS_COMPLIANCE_CONFIG)",
    ),
]
OutputOption = Annotated[
    Output,
    typer.Option("--output", "-o", help="text for people, json for machines (stdout only)"),
]

app = typer.Typer(
    name="pbs",
    help="Declarative, checked Proxmox Backup Server storage entries for Proxmox VE.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # never print locals: they can hold secrets
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
lab_app = typer.Typer(
    help="The local PVE + PBS + DNS lab on loopback.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(lab_app, name="lab")


def _examples(*lines: str, note: str = "") -> str:
    """An epilog click prints as written (\\b keeps its lines from being re-wrapped)."""
    text = "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)
    return f"{text}\n\n{note}" if note else text


def main() -> None:
    """The `pbs` console script."""
    app()


# -- output ----------------------------------------------------------------------------------


@dataclass
class Out:
    """Where a command writes: rich for text (colour only on a TTY without NO_COLOR), or one
    JSON document on stdout."""

    json: bool
    console: Console
    errors: Console

    @classmethod
    def create(cls, output: Output) -> Out:
        return cls(output == Output.json, _console(sys.stdout), _console(sys.stderr))

    def print(self, *items: Any, style: str | None = None) -> None:
        if not self.json:  # lines stay whole (grep-able); tables size themselves
            self.console.print(*items, style=style, soft_wrap=True)

    def data(self, payload: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
        sys.stdout.flush()

    def fail(self, code: int, message: str, kind: str, **extra: Any) -> NoReturn:
        """End the command: the message on stderr (text) or as the JSON document (json)."""
        if self.json:
            self.data({"ok": False, "error": kind, "message": message, **extra})
        else:
            self.errors.print(f"pbs: {message}", style="bold red", soft_wrap=True)
        raise typer.Exit(code)

    def config_error(self, exc: ConfigError) -> NoReturn:
        issues = [
            {
                "file": str(i.file),
                "line": i.line,
                "column": i.column,
                "field": i.field,
                "message": i.message,
                "fix": i.fix,
            }
            for i in exc.issues
        ]
        self.fail(2, exc.render(), "config", issues=issues)


def _console(stream: Any) -> Console:
    colour = stream.isatty() and not os.environ.get("NO_COLOR")
    return Console(
        file=stream,
        force_terminal=colour,
        no_color=not colour,
        color_system="auto" if colour else None,
        markup=False,
        highlight=False,
        emoji=False,
        width=None if colour else 200,
    )


# -- shared steps ----------------------------------------------------------------------------


def _settings(out: Out, config: Path | None) -> RunSettings:
    overrides = Overrides(config=str(config) if config is not None else None)
    try:
        return resolve(load_config(config_path(overrides)), overrides)
    except ConfigError as exc:
        out.config_error(exc)
    except SettingError as exc:
        out.fail(2, str(exc), "setting")


def _client(out: Out, settings: RunSettings) -> PveClient:
    """A PVE client, or exit 2: without credentials there is no cluster to look at."""
    try:
        client = client_for(settings)
    except PveError as exc:
        out.fail(2, str(exc), "pve")
    if client is None:
        out.fail(2, f"this command reads the cluster, but there are {NO_CREDENTIALS}", "pve")
    return client


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# -- pbs validate ----------------------------------------------------------------------------


@app.command(
    epilog=_examples(
        "pbs validate",
        "pbs validate --config config/pbs-storage.yaml --verbose",
        "pbs validate --output json | jq '.storages[] | select(.status == \"fail\")'",
        note="Exit status 0 when every enabled storage is reachable with its pinned certificate.",
    )
)
def validate(
    config: ConfigOption = None,
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v", help="also show resolved addresses and certificates"),
    ] = False,
    output: OutputOption = Output.text,
) -> None:
    """Check the config, then DNS, TCP port, TLS and fingerprint of every declared storage,
    from this machine. PVE is not contacted."""
    out = Out.create(output)
    settings = _settings(out, config)
    storages = settings.config.storages
    evidence = gather(
        storages,
        settings.nameservers,
        settings.probe_timeout,
        None,
        "not read by pbs validate",
    )
    rows = validation_rows(settings.config, evidence, _now(), settings.cert_expiry_days)
    ok = all(row.ok for row in rows)
    if out.json:
        out.data(
            {
                "command": "validate",
                "config": str(settings.config.source),
                "ok": ok,
                "storages": [row.to_dict() for row in rows],
            }
        )
        raise typer.Exit(0 if ok else 1)
    out.print(f"config {settings.config.source}: valid, {len(storages)} PBS storage(s) declared")
    if rows:
        out.print(validation_table(rows))
    for row in rows:
        for line in validation_details(row, verbose):
            out.print(line)
    failed = [row.spec.name for row in rows if not row.ok]
    if failed:
        out.print(f"not reachable as declared: {', '.join(failed)}", style="bold red")
    else:
        out.print("every enabled storage is reachable as declared", style="green")
    raise typer.Exit(0 if ok else 1)


# -- pbs status ------------------------------------------------------------------------------


@app.command(
    epilog=_examples(
        "pbs status",
        "pbs status --config config/pbs-storage.yaml --output json",
        note="Exit status 0 when every declared entry exists as declared and is active on its "
        "nodes, and PVE has no undeclared PBS entry.",
    )
)
def status(config: ConfigOption = None, output: OutputOption = Output.text) -> None:
    """Show the cluster's live PBS entries beside the declared ones: enabled, disabled,
    missing or unmanaged, their drift, and on how many nodes they are active."""
    out = Out.create(output)
    settings = _settings(out, config)
    live = read_live(_client(out, settings), ())
    if live.error:
        out.fail(1, f"cannot read PVE: {live.error}", "pve")
    rows = status_rows(settings.config, live)
    ok = all(row.compliant for row in rows)
    if out.json:
        out.data(
            {
                "command": "status",
                "config": str(settings.config.source),
                "pve": settings.pve.url,
                "nodes": live.nodes,
                "node_errors": live.node_errors,
                "ok": ok,
                "storages": [row.to_dict() for row in rows],
            }
        )
        raise typer.Exit(0 if ok else 1)
    out.print(status_table(rows))
    for node, error in sorted(live.node_errors.items()):
        out.print(f"cannot read the view of {node}: {error}", style="bold red")
    if ok:
        out.print("every declared PBS storage is in place and active", style="green")
    else:
        out.print(
            "not compliant; `pbs apply --dry-run` shows what would change, "
            "`pytest checks/` explains every failure",
            style="bold red",
        )
    raise typer.Exit(0 if ok else 1)


# -- pbs apply -------------------------------------------------------------------------------


@app.command(
    name="apply",
    epilog=_examples(
        "pbs apply --dry-run",
        "pbs apply --config config/pbs-storage.yaml",
        "pbs apply --allow-recreate --prune-unmanaged",
        note="Exit status 0 when everything was applied (with --dry-run: when there is nothing "
        "to do); 1 when a storage was refused or failed (with --dry-run: changes are pending); "
        "130 when interrupted with Ctrl-C (it says what each storage was left as; a re-run "
        "continues).",
    ),
)
def apply_command(
    config: ConfigOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="show the plan; send no write request")
    ] = False,
    skip_validation: Annotated[
        bool,
        typer.Option(
            "--skip-validation",
            help="apply even when connectivity checks fail (unsafe storages are still refused)",
        ),
    ] = False,
    allow_recreate: Annotated[
        bool,
        typer.Option(
            "--allow-recreate",
            help="delete + re-create entries whose server or datastore changed",
        ),
    ] = False,
    prune_unmanaged: Annotated[
        bool,
        typer.Option("--prune-unmanaged", help="delete PBS entries the config does not declare"),
    ] = False,
    rotate_secrets: Annotated[
        bool,
        typer.Option("--rotate-secrets", help="send the declared password to every entry"),
    ] = False,
    output: OutputOption = Output.text,
) -> None:
    """Make PVE match the declaration: validate, print the plan as a diff, apply it with the
    reconciler's safety rules, and say per storage what happened."""
    out = Out.create(output)
    settings = _settings(out, config)
    client = _client(out, settings)  # exit 2 before probing anything: no cluster to change
    options = PlanOptions(
        allow_recreate=allow_recreate,
        prune_unmanaged=prune_unmanaged,
        rotate_secrets=rotate_secrets,
    )
    report: dict[str, Any] = {
        "command": "apply",
        "config": str(settings.config.source),
        "dry_run": dry_run,
    }
    try:
        planned, reach = _validate_and_plan(out, settings, options, report, skip_validation)
    except KeyboardInterrupt:
        message = "interrupted (Ctrl-C) before anything was written: PVE is unchanged"
        out.fail(INTERRUPTED_EXIT, message, "interrupted", **report)
    _print_plan(out, planned)
    storages = settings.config.storages
    try:
        results = apply(planned, client, storages, options, reach, dry_run=dry_run)
    except Interrupted as stop:
        _interrupted(out, report, planned, stop.results)
    ok = planned.is_empty if dry_run else results.ok
    if out.json:
        out.data(
            {
                **report,
                "ok": ok,
                "plan": plan_dict(planned),
                "results": results_dict(results),
                "summary": results.counts(),
            }
        )
        raise typer.Exit(0 if ok else 1)
    _print_results(out, results)
    raise typer.Exit(0 if ok else 1)


INTERRUPTED_EXIT = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


def _validate_and_plan(
    out: Out,
    settings: RunSettings,
    options: PlanOptions,
    report: dict[str, Any],
    skip_validation: bool,
) -> tuple[Plan, dict[str, Reachability]]:
    """Probe, read PVE, validate (exit 1 on a failure) and plan; nothing is written here."""
    evidence = gather_evidence(settings)
    if evidence.live.error or evidence.live.skipped:
        out.fail(1, f"cannot read PVE: {evidence.live.error or evidence.live.skipped}", "pve")
    storages = settings.config.storages
    rows = validation_rows(settings.config, evidence, _now(), settings.cert_expiry_days)
    report["validation"] = None if skip_validation else [row.to_dict() for row in rows]
    if not skip_validation:
        if rows:
            out.print(validation_table(rows))
        failed = [row for row in rows if not row.ok]
        if failed:
            for row in failed:
                for line in validation_details(row, verbose=False):
                    out.print(line)
            names = ", ".join(row.spec.name for row in failed)
            message = (
                f"validation failed for {names}; nothing was applied. Fix it, or apply the "
                "rest with --skip-validation (unsafe storages are still refused)"
            )
            if out.json:
                out.data({**report, "ok": False, "error": "validation", "message": message})
            else:
                out.errors.print(f"pbs: {message}", style="bold red", soft_wrap=True)
            raise typer.Exit(1)
    # The checks probe enabled storages only; what apply writes about, it probes itself.
    live = evidence.live.storages
    reach = reach_for(
        storages, live, options, evidence, settings.nameservers, settings.probe_timeout
    )
    return plan(storages, live, options, reach), reach


def _interrupted(out: Out, report: dict[str, Any], planned: Plan, results: Results) -> NoReturn:
    """Ctrl-C during the writes: say what each storage was left as, and that a re-run goes on."""
    stopped = [r for r in results.results if r.status == Status.INTERRUPTED]
    where = (
        "; ".join(f"{r.storage} was left {r.reason}" for r in stopped)
        or "between two storages, none half-done"
    )
    message = (
        f"interrupted (Ctrl-C): {where}. Re-run `pbs apply` to continue: it re-reads PVE and "
        "does only what is left"
    )
    if out.json:
        out.data(
            {
                **report,
                "ok": False,
                "error": "interrupted",
                "message": message,
                "plan": plan_dict(planned),
                "results": results_dict(results),
                "summary": results.counts(),
            }
        )
    else:
        _print_results(out, results)
        out.errors.print(f"pbs: {message}", style="bold red", soft_wrap=True)
    raise typer.Exit(INTERRUPTED_EXIT)


PLAN_STYLES = {"+": "green", "-": "red", "~": "yellow", "!": "bold red", "#": "dim"}
VERB_STYLES = {
    "created": "green",
    "updated": "yellow",
    "enabled": "green",
    "disabled": "yellow",
    "re-created": "yellow",
    "deleted": "red",
    "refused": "bold red",
    "failed": "bold red",
    "unchanged": "dim",
    "planned": "cyan",
    "interrupted": "bold red",
    "not started": "dim",
}


def _print_plan(out: Out, planned: Plan) -> None:
    lines = planned.describe().splitlines()
    out.print(lines[0], style="bold")
    for line in lines[1:]:
        marker = line.split(" ", 1)[0]
        out.print(line, style=PLAN_STYLES.get(marker, ""))


def _print_results(out: Out, results: Results) -> None:
    out.print("result:", style="bold")
    for result in results.results:
        out.print(f"  {result.line()}", style=VERB_STYLES.get(result.verb, ""))
        for step in result.steps:
            out.print(f"      {step}", style="dim")
    out.print(results.summary(), style="bold")


def plan_dict(planned: Plan) -> dict[str, Any]:
    return {"empty": planned.is_empty, "actions": [_action_dict(a) for a in planned.actions]}


def _action_dict(action: Action) -> dict[str, Any]:
    drift = action.drift
    return {
        "storage": action.storage,
        "kind": str(action.kind),
        "params": dict(action.params),
        "delete": list(action.delete),
        "reason": action.reason,
        "password_needed": action.password_needed,
        "enable_after": action.enable_after,
        "missing": bool(drift and drift.missing),
        "drift": []
        if drift is None
        else [{"property": d.key, "declared": d.declared, "live": d.live} for d in drift.diffs],
    }


def results_dict(results: Results) -> list[dict[str, Any]]:
    return [
        {
            "storage": r.storage,
            "status": str(r.status),
            "verb": r.verb,
            "reason": r.reason,
            "writes": r.writes,
            "retries": r.retries,
            "steps": list(r.steps),
            "unreachable_nodes": list(r.unreachable_nodes),
        }
        for r in results.results
    ]


# -- pbs fingerprint -------------------------------------------------------------------------


@app.command(
    epilog=_examples(
        "pbs fingerprint pbs1.example.com",
        "pbs fingerprint 192.0.2.10:8007 --output json",
        "pbs fingerprint pbs1.example.com --update homelab-backup --config config/pbs-storage.yaml",
        "pbs fingerprint --update homelab-backup      # HOST: the storage's declared server",
        "pbs fingerprint pbs1.lab.example --config .lab/pbs-storage.yaml  # via the lab's DNS",
        note="HOST is resolved by this machine's resolver (/etc/hosts, DNS); with --config, "
        "through that config's dns.nameservers, as the checks do - the lab's names are known "
        "only there.\n\nAfter a certificate renewal: confirm the new certificate on the PBS, "
        "--update, commit, then `pbs apply` pushes the fingerprint to PVE.",
    )
)
def fingerprint(
    target: Annotated[
        str | None, typer.Argument(metavar="HOST[:PORT]", help="the PBS (port 8007 by default)")
    ] = None,
    update: Annotated[
        str | None,
        typer.Option(
            "--update",
            metavar="NAME",
            help="write the served fingerprint into this storage's entry of --config",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            metavar="PATH",
            help="a declaration: HOST resolves through its dns.nameservers, the port defaults "
            "to the declared one, and --update writes into it",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, max=120, help="seconds for DNS, TCP and TLS")
    ] = 5.0,
    output: OutputOption = Output.text,
) -> None:
    """Connect to a PBS and show the SHA-256 fingerprint, subject, issuer and expiry of the
    certificate it serves; with --update, pin it in the config (comments and layout kept).
    Names resolve through --config's dns.nameservers, or else this machine's resolver."""
    out = Out.create(output)
    settings = _settings(out, config) if (config is not None or update is not None) else None
    declared = None
    if update is not None and settings is not None:
        declared = next((s for s in settings.config.storages if s.name == update), None)
        if declared is None:
            names = ", ".join(s.name for s in settings.config.storages) or "none"
            out.fail(
                2,
                f"no storage named '{update}' in {settings.config.source} (declared: {names})",
                "usage",
            )
    if target is None and declared is None:
        out.fail(2, "give HOST[:PORT], or --update NAME to use that storage's server", "usage")
    if target is None:
        assert declared is not None
        where = Target(declared.server, declared.port)
    else:
        try:
            host, port = split_target(target)
        except ValueError as exc:
            out.fail(2, str(exc), "usage")
        where = Target(host, port or _declared_port(settings, host))
    nameservers = settings.nameservers if settings is not None else ()
    result, resolved = fetch(where, nameservers, timeout)
    cert = result.certificate
    if not result.ok or cert is None:
        message = f"no certificate from {where}: {result.error}"
        if not nameservers and _system_cannot_resolve(where.host):
            message = (
                f"no certificate from {where}: this machine's resolver does not know "
                f"'{where.host}'. Try --config FILE to resolve it through that config's "
                "dns.nameservers (for the lab: --config .lab/pbs-storage.yaml, or the one in "
                "its --state-dir)"
            )
        out.fail(1, message, "tls", target=str(where))
    now = _now()
    facts: dict[str, Any] = {
        "command": "fingerprint",
        "target": str(where),
        "address": result.address,
        "resolved": resolved,
        "fingerprint": cert.fingerprint,
        "subject": cert.subject,
        "issuer": cert.issuer,
        "not_before": cert.not_before.isoformat(),
        "not_after": cert.not_after.isoformat(),
        "days_left": cert.days_left(now),
        "expired": cert.is_expired(now),
        "sans": list(cert.sans),
        "updated": None,
    }
    notes: list[str] = []
    if declared is not None and settings is not None:
        if where.host.lower() != declared.server.lower() or where.port != declared.port:
            notes.append(
                f"note: '{declared.name}' declares {declared.server}:{declared.port}, "
                f"the certificate pinned is the one {where} serves"
            )
        try:
            updated = update_fingerprint(settings.config.source, declared.name, cert.fingerprint)
        except ConfigError as exc:
            out.config_error(exc)
        facts["updated"] = _updated_dict(updated)
    if cert.is_expired(now):
        notes.append("warning: this certificate has EXPIRED; PVE will refuse it until renewed")
    if out.json:
        out.data({"ok": True, **facts, "notes": notes})
        raise typer.Exit(0)
    out.print(f"{where}  ({facts['resolved'] or result.address})", style="bold")
    out.print(f"  fingerprint  {cert.fingerprint}")
    out.print(f"  subject      {cert.subject}")
    out.print(f"  issuer       {cert.issuer}")
    out.print(
        f"  valid        {cert.not_before:%Y-%m-%d} .. {cert.not_after:%Y-%m-%d} "
        f"({cert.days_left(now)} days left)"
    )
    if cert.sans:
        out.print(f"  names        {', '.join(cert.sans)}")
    for note in notes:
        out.print(note, style="yellow")
    if facts["updated"] is not None:
        done = facts["updated"]
        if done["changed"]:
            out.print(
                f"pinned in {done['config']}: {done['storage']}.fingerprint "
                f"{done['previous'] or '(unset)'} -> {done['fingerprint']}",
                style="green",
            )
            out.print(
                "next: confirm the certificate is genuine, commit the change, then "
                "`pbs apply` (or `pytest checks/ --remediate`) pushes it to PVE"
            )
        else:
            out.print(f"{done['config']}: {done['storage']} already pins this certificate")
    raise typer.Exit(0)


def _system_cannot_resolve(host: str) -> bool:
    """Whether the name is unknown to this machine's resolver (an IP address never is)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return False
    except ValueError:
        pass
    try:
        socket.getaddrinfo(host, None)
    except socket.gaierror:
        return True
    except OSError:
        return False
    return False


def _declared_port(settings: RunSettings | None, host: str) -> int:
    """Without `:PORT`, the port a declared storage uses for that server, else PBS's 8007."""
    storages = settings.config.storages if settings is not None else ()
    return next((s.port for s in storages if s.server.lower() == host.lower()), 8007)


def _updated_dict(updated: Updated) -> dict[str, Any]:
    return {
        "storage": updated.storage,
        "config": str(updated.path),
        "previous": updated.previous,
        "fingerprint": updated.fingerprint,
        "changed": updated.changed,
    }


# -- pbs lab serve ---------------------------------------------------------------------------


@lab_app.command(
    "serve",
    epilog=_examples(
        "pbs lab serve",
        "pbs lab serve --spec my-lab.yaml --state-dir /tmp/lab",
        "set -a; . .lab/lab.env; set +a; pytest checks/ --pbs-config .lab/pbs-storage.yaml",
    ),
)
def lab_serve(
    spec: Annotated[
        Path | None,
        typer.Option(
            "--spec",
            metavar="FILE",
            help="a lab scenario (YAML; every key with an example: README, 'The lab'); "
            "default: the built-in lab",
        ),
    ] = None,
    state_dir: Annotated[
        Path,
        typer.Option("--state-dir", metavar="DIR", help="where the lab writes its files"),
    ] = DEFAULT_LAB_DIR,
    output: OutputOption = Output.text,
) -> None:
    """Run the lab (PVE API, PBS servers, DNS) in the foreground until Ctrl-C or SIGTERM."""
    out = Out.create(output)
    scenario = _scenario(out, spec)
    lab = Lab(scenario, state_dir.resolve())
    try:
        lab.start()
    except LabError as exc:
        out.fail(1, f"the lab cannot start: {exc}", "lab")
    try:
        _announce(out, lab)
        received = wait_for_signal()
    finally:
        lab.stop()
    if out.json:
        out.data({"event": "stopped", "signal": received})
    else:
        out.print(f"{received}: lab stopped, nothing left running ({lab.state_dir} kept)")


def _scenario(out: Out, spec: Path | None) -> Scenario:
    if spec is None:
        return builtin()
    try:
        return Scenario.load(spec)
    except OSError as exc:
        out.fail(2, f"cannot read the lab spec {spec}: {exc.strerror}", "usage")
    except yaml.YAMLError as exc:
        out.fail(2, f"the lab spec {spec} is not valid YAML: {exc}", "usage")
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        out.fail(2, f"the lab spec {spec} is invalid: {problems}", "usage")


def _announce(out: Out, lab: Lab) -> None:
    directory = lab.state_dir
    files = {
        "lab.json": directory / "lab.json",
        "lab.env": directory / "lab.env",
        "pbs-storage.yaml": directory / "pbs-storage.yaml",
    }
    if out.json:
        out.data(
            {
                "event": "ready",
                "state_dir": str(directory),
                "pve": lab.url,
                "nodes": list(lab.scenario.nodes),
                "pbs_servers": {name: f"{s.address}:{s.port}" for name, s in lab.pbs.items()},
                "files": {name: str(path) for name, path in files.items()},
                "notes": lab.notes,
            }
        )
        return
    out.print(f"lab running: PVE {lab.url}", style="bold green")
    out.print(f"  nodes        {', '.join(lab.scenario.nodes)}")
    for name, server in lab.pbs.items():
        out.print(f"  PBS          {name} on {server.address}:{server.port}")
    assert lab.dns is not None
    out.print(f"  DNS          {lab.dns.address}:{lab.dns.port} (knows the lab's PBS names)")
    for note in lab.notes:
        out.print(f"note: {note}", style="yellow")
    out.print(f"files in {directory}:")
    out.print(f"  {files['lab.json']}          everything about the lab (private: has secrets)")
    out.print(f"  {files['lab.env']}           the secrets the config references (mode 0600)")
    out.print(f"  {files['pbs-storage.yaml']}  the lab's PBS entries as a declaration")
    out.print("use it from another shell:")
    out.print(f"  set -a; . {files['lab.env']}; set +a")
    out.print(f"  pytest checks/ --pbs-config {files['pbs-storage.yaml']}")
    out.print(f"  pbs status --config {files['pbs-storage.yaml']}")
    first = next(iter(lab.pbs), "NAME")
    out.print(
        f"  pbs fingerprint {first} --config {files['pbs-storage.yaml']}"
        "   # the lab's names resolve only through its DNS (the config's dns.nameservers)"
    )
    out.print("break it on purpose (pbs lab fault --help):")
    out.print(f"  pbs lab fault --state-dir {directory} pbs {first} --mode down")
    out.print(f"  pbs lab fault --state-dir {directory} pbs {first} --renew")
    out.print(
        f"  pbs lab fault --state-dir {directory} dns servfail --node {lab.scenario.nodes[-1]}"
    )
    out.print("stop with Ctrl-C (or SIGTERM)", style="bold")
    sys.stdout.flush()


def wait_for_signal() -> str:
    """Block until SIGINT or SIGTERM; returns the signal's name. Handlers restored after."""
    stop = threading.Event()
    received: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        received.append(signum)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.2):
            pass
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
    return signal.Signals(received[0]).name


# -- pbs lab fault --------------------------------------------------------------------------

fault_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
)
lab_app.add_typer(fault_app, name="fault")

StateDirOption = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        metavar="DIR",
        help=f"the running lab's state directory (default: {DEFAULT_LAB_DIR}); also accepted "
        "before the sub-command: pbs lab fault --state-dir DIR pbs ...",
    ),
]


@fault_app.callback()
def lab_fault(state_dir: StateDirOption = None) -> None:
    """Break a running lab on purpose (it must have been started by `pbs lab serve`).

    --state-dir works here, before the sub-command, and after it."""


def _fault_state_dir(out: Out, ctx: typer.Context, state_dir: Path | None) -> Path:
    """--state-dir after the sub-command, else before it (`pbs lab fault --state-dir DIR`)."""
    before: Path | None = ctx.parent.params.get("state_dir") if ctx.parent else None
    if before is not None and state_dir is not None and before != state_dir:
        out.fail(
            2,
            f"--state-dir given twice, {before} before the sub-command and {state_dir} after "
            "it: give it once",
            "usage",
        )
    return state_dir or before or DEFAULT_LAB_DIR


class PbsMode(StrEnum):
    up = "up"
    down = "down"
    blackhole = "blackhole"


class MaintenanceMode(StrEnum):
    offline = "offline"
    read_only = "read-only"
    none = "none"


class DnsFault(StrEnum):
    servfail = "servfail"
    silence = "silence"
    none = "none"


@fault_app.command(
    "pbs",
    epilog=_examples(
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
    mode: Annotated[PbsMode | None, typer.Option("--mode", help="up, down or blackhole")] = None,
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
        MaintenanceMode | None,
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
    where = _fault_state_dir(out, ctx, state_dir)
    body: dict[str, Any] = {}
    if mode is not None:
        body["mode"] = str(mode)
    if renew:
        body["renew"] = True
    if expired is not None:
        body["expired"] = expired
    if maintenance is not None:
        body["maintenance"] = str(maintenance)
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
    answer = _lab_admin(out, where, f"pbs/{name}", body)
    _fault_done(out, answer, f"{name}: {', '.join(f'{k}={v}' for k, v in body.items())}")


@fault_app.command(
    "dns",
    epilog=_examples(
        "pbs lab fault dns servfail              # every resolver of the lab",
        "pbs lab fault dns silence --node pve3   # only the resolver pve3 uses",
        "pbs lab fault dns none                  # answer normally again",
    ),
)
def lab_fault_dns(
    ctx: typer.Context,
    fault: Annotated[DnsFault, typer.Argument(help="servfail, silence or none")],
    node: Annotated[
        str | None, typer.Option("--node", help="only the resolver this node uses")
    ] = None,
    state_dir: StateDirOption = None,
    output: OutputOption = Output.text,
) -> None:
    """Make the lab's DNS answer SERVFAIL or nothing at all (everywhere, or for one node)."""
    out = Out.create(output)
    where = _fault_state_dir(out, ctx, state_dir)
    body: dict[str, Any] = {"fault": None if fault == DnsFault.none else str(fault)}
    if node is not None:
        body["node"] = node
    answer = _lab_admin(out, where, "dns", body)
    _fault_done(out, answer, f"dns: {fault}" + (f" (resolver of {node})" if node else ""))


def _fault_keys() -> str:
    """The KEYs of `pbs lab fault pve`, one line each (\\b: click keeps the lines)."""
    width = max(len(key) for key in FAULT_HELP)
    lines = [f"  {key:<{width}}  {meaning}" for key, meaning in FAULT_HELP.items()]
    return "\b\nKeys (KEY=VALUE; a value is JSON, or else a plain word):\n" + "\n".join(lines)


@fault_app.command(
    "pve",
    epilog=_examples(
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
    where = _fault_state_dir(out, ctx, state_dir)
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
    answer = _lab_admin(out, where, "faults", body)
    _fault_done(out, answer, "pve faults now: " + json.dumps(answer))


def _lab_admin(
    out: Out, state_dir: Path, route: str, body: dict[str, Any], refused: str = "the fault"
) -> Any:
    """POST to the running lab's admin API, authenticated like any PVE client."""
    try:
        lab = json.loads((state_dir / "lab.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        out.fail(
            2,
            f"no running lab in {state_dir} (no lab.json): start one with "
            f"`pbs lab serve --state-dir {state_dir}`",
            "usage",
        )
    pve = lab["pve"]
    try:
        response = requests.post(
            f"{pve['url'].rstrip('/')}/api2/json/_lab/{route}",
            json=body,
            headers={"Authorization": f"PVEAPIToken={pve['token_id']}={pve['token_secret']}"},
            verify=pve["ca_file"],
            timeout=10,
        )
    except (requests.RequestException, OSError) as exc:  # OSError: its ca.pem is gone
        out.fail(
            1,
            f"the lab in {state_dir} does not answer at {pve['url']} "
            f"({type(exc).__name__}; stopped?)",
            "lab",
        )
    if response.status_code != 200:
        reason = response.reason or f"HTTP {response.status_code}"
        out.fail(1, f"the lab refused {refused}: {reason}", "lab")
    return response.json().get("data")


def _fault_done(out: Out, answer: Any, text: str) -> None:
    if out.json:
        out.data({"ok": True, "result": answer})
    else:
        out.print(text, style="yellow")
    raise typer.Exit(0)


# -- pbs lab backup | guest | job -------------------------------------------------------------

backup_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)
guest_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)
job_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)
lab_app.add_typer(backup_app, name="backup")
lab_app.add_typer(guest_app, name="guest")
lab_app.add_typer(job_app, name="job")

LabStateDirOption = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        metavar="DIR",
        help=f"the running lab's state directory (default: {DEFAULT_LAB_DIR}); also accepted "
        "before the sub-command",
    ),
]


class VerifyState(StrEnum):
    ok = "ok"
    failed = "failed"
    none = "none"


class GuestType(StrEnum):
    qemu = "qemu"
    lxc = "lxc"


@backup_app.callback()
def lab_backup(state_dir: LabStateDirOption = None) -> None:
    """Snapshots and fill levels of the running lab's PBS datastores (kept across restarts)."""


@guest_app.callback()
def lab_guest(state_dir: LabStateDirOption = None) -> None:
    """VMs and containers of the running lab's PVE cluster (kept across restarts)."""


@job_app.callback()
def lab_job(state_dir: LabStateDirOption = None) -> None:
    """Backup jobs of the running lab's PVE cluster and their runs (kept across restarts)."""


def _age_seconds(out: Out, option: str, text: str) -> int:
    try:
        return parse_age(text)
    except ValueError as exc:
        out.fail(2, f"{option}: {exc}", "usage")


def _lab_change(out: Out, ctx: typer.Context, state_dir: Path | None, route: str,
                body: dict[str, Any], text: str) -> None:  # fmt: skip
    where = _fault_state_dir(out, ctx, state_dir)
    answer = _lab_admin(out, where, route, body, refused="the change")
    _fault_done(out, answer, text)


@backup_app.command(
    "add",
    epilog=_examples(
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
        VerifyState, typer.Option("--verify", help="the last verification: ok, failed or none")
    ] = VerifyState.ok,
    in_progress: Annotated[
        bool,
        typer.Option("--in-progress", help="still being written: no size, no verification"),
    ] = False,
    protected: Annotated[bool, typer.Option("--protected", help="protected from pruning")] = False,
    comment: Annotated[str | None, typer.Option("--comment", help="the snapshot's notes")] = None,
    state_dir: LabStateDirOption = None,
    output: OutputOption = Output.text,
) -> None:
    """Add a snapshot to a datastore of the running lab's PBS."""
    out = Out.create(output)
    body: dict[str, Any] = {
        "server": server, "datastore": datastore, "backup": target, "ns": ns,
        "age": _age_seconds(out, "--age", age), "verify": str(verify),
        "in_progress": in_progress, "protected": protected, "comment": comment,
    }  # fmt: skip
    where = f"{datastore}" + (f" namespace {ns}" if ns else "")
    _lab_change(out, ctx, state_dir, "backup/add", body,
                f"{server}: {target} in {where}, {age} old, verification {verify}")  # fmt: skip


@backup_app.command(
    "fill",
    epilog=_examples(
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
    state_dir: LabStateDirOption = None,
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
    epilog=_examples(
        "pbs lab guest add pve1 110 --name app          # a VM no backup job covers yet",
        "pbs lab guest add pve2 111 --type lxc --name cache --pool prod",
        "pbs lab guest add pve3 9001 --template --name ubuntu-24",
    ),
)
def lab_guest_add(
    ctx: typer.Context,
    node: Annotated[str, typer.Argument(help="the node it lives on, e.g. pve1")],
    vmid: Annotated[int, typer.Argument(help="its VMID (100 to 999999999, unique)")],
    kind: Annotated[GuestType, typer.Option("--type", help="qemu (a VM) or lxc")] = GuestType.qemu,
    name: Annotated[str | None, typer.Option("--name", help="its name")] = None,
    template: Annotated[bool, typer.Option("--template", help="a template")] = False,
    pool: Annotated[str | None, typer.Option("--pool", help="its pool (created if new)")] = None,
    tags: Annotated[list[str] | None, typer.Option("--tag", help="a tag (repeatable)")] = None,
    state_dir: LabStateDirOption = None,
    output: OutputOption = Output.text,
) -> None:
    """Add a VM or container to the running lab's PVE cluster."""
    out = Out.create(output)
    body: dict[str, Any] = {"node": node, "vmid": vmid, "type": str(kind), "name": name,
                            "template": template, "pool": pool, "tags": tags or []}  # fmt: skip
    _lab_change(out, ctx, state_dir, "guest/add", body, f"{node}: {kind} {vmid} added")


@job_app.command(
    "add",
    epilog=_examples(
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
    state_dir: LabStateDirOption = None,
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
    epilog=_examples(
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
        VerifyState, typer.Option("--verify", help="the new snapshots' verification")
    ] = VerifyState.ok,
    state_dir: LabStateDirOption = None,
    output: OutputOption = Output.text,
) -> None:
    """Record a finished run of a backup job: a vzdump task on each node with included guests,
    and (for OK and WARNINGS) a snapshot per guest on the job's PBS storage."""
    out = Out.create(output)
    seconds = _age_seconds(out, "--age", age)
    body: dict[str, Any] = {"id": job_id, "status": status, "age": seconds, "verify": str(verify)}
    where = _fault_state_dir(out, ctx, state_dir)
    answer = _lab_admin(out, where, "job/run", body, refused="the change")
    written = len(answer.get("snapshots", [])) if isinstance(answer, dict) else 0
    tasks = len(answer.get("tasks", [])) if isinstance(answer, dict) else 0
    _fault_done(out, answer, f"job {job_id}: {status}, {tasks} task(s), {written} snapshot(s)")


# -- pbs demo --------------------------------------------------------------------------------


@app.command(
    epilog=_examples(
        "pbs demo",
        "pbs demo --reports /tmp/demo-reports --output json",
        note="Exit status 0 when every step of the demo ran.",
    )
)
def demo(
    reports: Annotated[
        Path,
        typer.Option("--reports", metavar="DIR", help="where report.html and junit.xml go"),
    ] = Path("reports"),
    ephemeral_ports: Annotated[
        bool,
        typer.Option(
            "--ephemeral-ports", help="run the lab's PBS servers on random ports, not 8007"
        ),
    ] = False,
    output: OutputOption = Output.text,
) -> None:
    """Start the built-in lab, break it in realistic ways, run the checks (HTML + JUnit),
    remediate, show the final matrix, and stop everything again."""
    from pbs_compliance.demo import DemoError, run_demo

    out = Out.create(output)
    try:
        result = run_demo(reports, say=None if out.json else out.console, ephemeral=ephemeral_ports)
    except DemoError as exc:
        out.fail(1, str(exc), "demo")
    if out.json:
        out.data({"command": "demo", "ok": True, **result.to_dict()})
    raise typer.Exit(0)


if __name__ == "__main__":  # pragma: no cover - `python -m pbs_compliance.cli`
    main()
