"""`pbs import`: declare the cluster's existing PBS entries (see `pbs_compliance.importer`)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from pbs_compliance.cli.app import app, client_or_exit, settings_or_exit
from pbs_compliance.cli.output import (
    EXIT_FAILED,
    EXIT_USAGE,
    ConfigOption,
    Out,
    Output,
    OutputOption,
    examples,
)
from pbs_compliance.config import ConfigError
from pbs_compliance.importer import Plan, merge, plan, render
from pbs_compliance.pinning import Target, fetch, open_document
from pbs_compliance.pve import PveError
from pbs_compliance.settings import RunSettings

__all__ = ["import_storages"]


@app.command(
    "import",
    epilog=examples(
        "pbs import --all --dry-run",
        "pbs import --storage homelab-backup --storage offsite",
        "pbs import --all --fingerprint-from-server --output json",
        "pbs import --storage media --replace",
        note="PVE never returns a stored password: each entry declares `password: "
        "${PBS_<NAME>_PASSWORD}`, which must be exported (or replaced by password_file) before "
        "the config loads. Then `pytest checks/ -m drift` passes for the imported entries.",
    ),
)
def import_storages(
    config: ConfigOption = None,
    storage: Annotated[
        list[str] | None,
        typer.Option("--storage", "-s", metavar="NAME", help="a PBS entry of PVE; repeatable"),
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="every PBS entry of PVE not declared yet")
    ] = False,
    replace: Annotated[
        bool, typer.Option("--replace", help="overwrite entries the config already declares")
    ] = False,
    from_server: Annotated[
        bool,
        typer.Option(
            "--fingerprint-from-server",
            help="declare the fingerprint the PBS serves instead of the one PVE pins "
            "(both are shown)",
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print the YAML it would add; write nothing")
    ] = False,
    output: OutputOption = Output.text,
) -> None:
    """Read the cluster's PBS storage entries and write their declaration into the config:
    every managed property as PVE holds it, the fingerprint PVE pins, and a ${VAR} reference
    for the password. The file's other entries, comments and layout are kept."""
    out = Out.create(output)
    names = list(storage or [])
    if not names and not all_:
        out.fail(EXIT_USAGE, "name the entries with --storage NAME, or import them --all", "usage")
    if names and all_:
        out.fail(EXIT_USAGE, "give --storage NAME or --all, not both", "usage")
    settings = settings_or_exit(out, config)
    client = client_or_exit(out, settings)
    try:
        entries = {str(e["storage"]): e for e in client.storages() if e.get("type") == "pbs"}
    except PveError as exc:
        out.fail(EXIT_FAILED, f"cannot read PVE's storage entries: {exc}", "pve")
    declared = [s.name for s in settings.config.storages]
    chosen = plan(entries, declared, names, replace)
    _refuse(out, chosen, sorted(entries))
    shown: list[dict[str, Any]] = []
    if from_server and chosen.entries:
        served, shown = _served(out, settings, chosen, entries)
        chosen = plan(entries, declared, names, replace, served)
    try:
        document = open_document(settings.config.source)
    except ConfigError as exc:
        out.config_error(exc)
    payload = {
        "command": "import",
        "config": str(settings.config.source),
        "dry_run": dry_run,
        "entries": [i.to_dict() for i in chosen.entries],
        "skipped": list(chosen.skipped),
        "fingerprints": shown,
    }
    if not dry_run and chosen.entries:
        merge(document, chosen.entries)
        document.write()
    if out.json:
        out.data({"ok": True, **payload})
        raise typer.Exit(0)
    for name in chosen.skipped:
        out.print(f"skipped {name}: already declared (--replace overwrites it)", style="yellow")
    if not chosen.entries:
        out.print("nothing to import: every PBS entry of PVE is declared")
        raise typer.Exit(0)
    if dry_run:
        out.print(f"# would add to {settings.config.source} (dry run: nothing written)")
        out.print(render(document, chosen.entries).rstrip("\n"))
        raise typer.Exit(0)
    for item in chosen.entries:
        verb = "replaced" if item.replaced else "added"
        out.print(f"{verb} {item.name} in {settings.config.source}", style="green")
    variables = " ".join(f"{i.variable}=..." for i in chosen.entries)
    out.print(f"next: export {variables} (PVE never returns passwords), then `pytest checks/`")
    raise typer.Exit(0)


def _refuse(out: Out, chosen: Plan, known: list[str]) -> None:
    """Stop (exit 1) when a named entry is unknown to PVE or already declared."""
    problems = [
        f"PVE has no PBS storage entry '{n}' (its PBS entries: {', '.join(known) or 'none'})"
        for n in chosen.unknown
    ] + [
        f"'{n}' is already declared; --replace overwrites its declaration with PVE's"
        for n in chosen.refused
    ]
    if problems:
        out.fail(EXIT_FAILED, "; ".join(problems) + ". Nothing was written.", "refused")


def _served(
    out: Out, settings: RunSettings, chosen: Plan, entries: dict[str, Any]
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """The fingerprint each chosen entry's server serves, shown beside the one PVE pins."""
    served: dict[str, str] = {}
    shown: list[dict[str, Any]] = []
    for item in chosen.entries:
        entry = entries[item.name]
        target = Target(str(entry["server"]), int(entry.get("port") or 8007))
        result, _ = fetch(target, settings.nameservers, settings.probe_timeout)
        pinned = str(entry.get("fingerprint") or "").upper() or None
        cert = result.certificate
        if not result.ok or cert is None:
            out.fail(
                EXIT_FAILED,
                f"no certificate from {target} for '{item.name}': {result.error}. Nothing was "
                "written; import without --fingerprint-from-server to keep the one PVE pins",
                "tls",
            )
        served[item.name] = cert.fingerprint
        shown.append({"name": item.name, "pinned": pinned, "served": cert.fingerprint})
        same = "same" if pinned == cert.fingerprint.upper() else "DIFFERENT"
        out.print(f"{item.name}: PVE pins   {pinned or '(none)'}")
        out.print(f"{item.name}: {target} serves {cert.fingerprint}  ({same})")
    return served, shown
