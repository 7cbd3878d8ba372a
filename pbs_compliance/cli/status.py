"""`pbs status`: the cluster's live PBS entries beside the declared ones."""

from __future__ import annotations

import datetime as dt

import typer
from rich.markup import escape

from pbs_compliance.cli import waived
from pbs_compliance.cli.app import app, client_or_exit, settings_or_exit
from pbs_compliance.cli.output import ConfigOption, Out, Output, OutputOption, examples
from pbs_compliance.evidence import read_live
from pbs_compliance.job_reads import gather_jobs
from pbs_compliance.job_verdicts import summary as job_summary
from pbs_compliance.tables import status_rows, status_table

__all__ = ["status"]


@app.command(
    epilog=examples(
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
    settings = settings_or_exit(out, config)
    live = read_live(client_or_exit(out, settings), ())
    if live.error:
        out.fail(1, f"cannot read PVE: {live.error}", "pve")
    rows, waived_lines = waived.status_rows(settings.config, status_rows(settings.config, live))
    ok = all(row.compliant for row in rows)
    now = dt.datetime.now(dt.UTC)  # backup coverage and job runs: shown, not part of `ok`
    backups = job_summary(settings.config, gather_jobs(settings, now), now)
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
                "backup_jobs": backups.to_dict(),
            }
        )
        raise typer.Exit(0 if ok else 1)
    out.print(status_table(rows))
    for node, error in sorted(live.node_errors.items()):
        out.print(f"cannot read the view of {node}: {error}", style="bold red")
    for line in waived_lines:
        out.print(f"waived: {escape(line)}", style="magenta")
    for line in backups.lines():
        out.print(escape(line), style=None if backups.ok else "yellow")
    if ok:
        out.print("every declared PBS storage is in place and active", style="green")
    else:
        out.print(
            "not compliant; `pbs apply --dry-run` shows what would change, "
            "`pytest checks/` explains every failure",
            style="bold red",
        )
    raise typer.Exit(0 if ok else 1)
