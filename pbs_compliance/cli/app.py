"""The `pbs` application and the steps its commands share: load the settings, make a client.

Every command reuses the core - `load_config`/`resolve` for settings, `gather`/`read_live` for
evidence, `verdicts` for judging, `remediate` for the reconcile path - and only decides what to
show (through `pbs_compliance.cli.output`).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer

from pbs_compliance.cli.output import EXIT_USAGE, Out
from pbs_compliance.config import ConfigError, load_config
from pbs_compliance.evidence import NO_CREDENTIALS, client_for
from pbs_compliance.pve import PveClient, PveError
from pbs_compliance.settings import Overrides, RunSettings, SettingError, config_path, resolve

__all__ = ["app", "client_or_exit", "main", "now", "settings_or_exit"]

app = typer.Typer(
    name="pbs",
    help="Declarative, checked Proxmox Backup Server storage entries for Proxmox VE.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # never print locals: they can hold secrets
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def main() -> None:
    """The `pbs` console script."""
    app()


def settings_or_exit(out: Out, config: Path | None) -> RunSettings:
    """The run's settings from the declaration, or exit 2 listing every problem."""
    overrides = Overrides(config=str(config) if config is not None else None)
    try:
        return resolve(load_config(config_path(overrides)), overrides)
    except ConfigError as exc:
        out.config_error(exc)
    except SettingError as exc:
        out.fail(EXIT_USAGE, str(exc), "setting")


def client_or_exit(out: Out, settings: RunSettings) -> PveClient:
    """A PVE client, or exit 2: without credentials there is no cluster to look at."""
    try:
        client = client_for(settings)
    except PveError as exc:
        out.fail(EXIT_USAGE, str(exc), "pve")
    if client is None:
        message = f"this command reads the cluster, but there are {NO_CREDENTIALS}"
        out.fail(EXIT_USAGE, message, "pve")
    return client


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
