"""`pbs`: the command line for people and for CI.

One module per command (`validate`, `status`, `apply`, `fingerprint`, `lab` with `lab_faults`
and `lab_changes`, `demo`) on one Typer app (`app`), one output helper (`output`: text or JSON,
colour, exit statuses). Every command reuses the core and only decides what to show; secrets
are never shown: they come from the config's `${ENV}` references or the environment.
"""

from __future__ import annotations

# The commands register themselves on `app` when imported, in the order `pbs --help` lists them.
# isort: off
from pbs_compliance.cli import validate, status, apply, fingerprint, lab, lab_faults, lab_changes
from pbs_compliance.cli import demo, import_

# isort: on
from pbs_compliance.cli.app import app, main
from pbs_compliance.cli.output import Out, Output

__all__ = [
    "Out",
    "Output",
    "app",
    "apply",
    "demo",
    "fingerprint",
    "import_",
    "lab",
    "lab_changes",
    "lab_faults",
    "main",
    "status",
    "validate",
]
