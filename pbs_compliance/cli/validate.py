"""`pbs validate`: the declaration, then every storage's connectivity from this machine."""

from __future__ import annotations

from typing import Annotated

import typer

from pbs_compliance.cli import waived
from pbs_compliance.cli.app import app, now, settings_or_exit
from pbs_compliance.cli.output import ConfigOption, Out, Output, OutputOption, examples
from pbs_compliance.evidence import gather
from pbs_compliance.tables import validation_details, validation_rows, validation_table

__all__ = ["validate"]


@app.command(
    epilog=examples(
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
    settings = settings_or_exit(out, config)
    storages = settings.config.storages
    evidence = gather(
        storages,
        settings.nameservers,
        settings.probe_timeout,
        None,
        "not read by pbs validate",
    )
    rows = validation_rows(settings.config, evidence, now(), settings.cert_expiry_days)
    rows, waived_lines = waived.validation_rows(settings.config, rows)
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
    for line in waived_lines:
        out.print(f"waived: {line}", style="magenta")
    failed = [row.spec.name for row in rows if not row.ok]
    if failed:
        out.print(f"not reachable as declared: {', '.join(failed)}", style="bold red")
    else:
        out.print("every enabled storage is reachable as declared", style="green")
    raise typer.Exit(0 if ok else 1)
