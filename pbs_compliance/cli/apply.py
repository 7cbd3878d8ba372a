"""`pbs apply`: validate, then the reconciler's one path - read, plan (printed as a diff),
apply under the per-cluster lock, re-read, verify - and say per storage what happened.

The same `remediate.Reconciler.reconcile` runs for `pytest checks/ --remediate`; the JSON forms
of the plan and the results are the reconciler's own (`Outcome.to_dict`).
"""

from __future__ import annotations

from typing import Annotated, Any, NoReturn

import typer

from pbs_compliance.cli.app import app, client_or_exit, now, settings_or_exit
from pbs_compliance.cli.output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    ConfigOption,
    Out,
    Output,
    OutputOption,
    examples,
)
from pbs_compliance.evidence import Evidence, gather_evidence
from pbs_compliance.pve import PveError
from pbs_compliance.settings import RunSettings
from pbs_compliance.tables import validation_details, validation_rows, validation_table
from remediate import Interrupted, Plan, PlanOptions, Reconciler, Results, Status

__all__ = ["apply_command"]


@app.command(
    name="apply",
    epilog=examples(
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
    settings = settings_or_exit(out, config)
    client = client_or_exit(out, settings)  # exit 2 before probing anything: no cluster to change
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
        evidence = _validate(out, settings, report, skip_validation)
        reconciler = Reconciler(settings, evidence, options, client, now)
        outcome = reconciler.reconcile(dry_run=dry_run, on_plan=lambda p: _print_plan(out, p))
    except Interrupted as stop:
        _interrupted(out, report, stop)
    except KeyboardInterrupt:
        message = "interrupted (Ctrl-C) before anything was written: PVE is unchanged"
        out.fail(EXIT_INTERRUPTED, message, "interrupted", **report)
    except PveError as exc:  # PVE could not be read again under the lock
        out.fail(EXIT_FAILED, f"cannot read PVE: {exc}", "pve", **report)
    ok = outcome.ok
    if out.json:
        out.data({**report, "ok": ok, **outcome.to_dict()})
        raise typer.Exit(EXIT_OK if ok else EXIT_FAILED)
    _print_results(out, outcome.results)
    if outcome.reread_error is not None:
        out.print(
            f"not confirmed: PVE could not be read again ({outcome.reread_error}); "
            "`pbs status` shows where it stands",
            style="bold red",
        )
    elif outcome.unconfirmed:
        out.print(
            f"re-read after apply: {', '.join(outcome.unconfirmed)} still differ(s) from the "
            "declaration (another writer?); `pbs status` shows how",
            style="bold red",
        )
    raise typer.Exit(EXIT_OK if ok else EXIT_FAILED)


def _validate(
    out: Out, settings: RunSettings, report: dict[str, Any], skip_validation: bool
) -> Evidence:
    """Probe and read PVE once, then validate connectivity (exit 1 on a failure, unless
    skipped); nothing is written here."""
    evidence = gather_evidence(settings)
    if evidence.live.error or evidence.live.skipped:
        out.fail(1, f"cannot read PVE: {evidence.live.error or evidence.live.skipped}", "pve")
    rows = validation_rows(settings.config, evidence, now(), settings.cert_expiry_days)
    report["validation"] = None if skip_validation else [row.to_dict() for row in rows]
    if skip_validation:
        return evidence
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
        raise typer.Exit(EXIT_FAILED)
    return evidence


def _interrupted(out: Out, report: dict[str, Any], stop: Interrupted) -> NoReturn:
    """Ctrl-C during the writes: say what each storage was left as, and that a re-run goes on."""
    results = stop.results
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
                "plan": None if stop.plan is None else stop.plan.to_dict(),
                "results": results.to_dicts(),
                "summary": results.counts(),
            }
        )
    else:
        _print_results(out, results)
        out.errors.print(f"pbs: {message}", style="bold red", soft_wrap=True)
    raise typer.Exit(EXIT_INTERRUPTED)


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
