"""`pbs lab serve`: the local PVE + PBS + DNS lab in the foreground; the helpers every
`pbs lab` verb shares (which running lab, its admin API, saying it is done).

The lab itself - its admin client and how it waits for a signal - lives in
`pbs_compliance.lab`; this module only parses and prints. `pbs lab fault` is in `lab_faults`,
`pbs lab backup|guest|job` in `lab_changes`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import yaml
from pydantic import ValidationError

from pbs_compliance.cli.app import app
from pbs_compliance.cli.output import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Out,
    Output,
    OutputOption,
    examples,
)
from pbs_compliance.lab import admin_client
from pbs_compliance.lab.runner import Lab, LabError
from pbs_compliance.lab.scenario import Scenario, builtin
from pbs_compliance.lab.signals import catching_signals

__all__ = [
    "DEFAULT_LAB_DIR",
    "StateDirOption",
    "admin",
    "done",
    "lab_app",
    "lab_serve",
    "state_dir_of",
]

DEFAULT_LAB_DIR = Path(".lab")

StateDirOption = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        metavar="DIR",
        help=f"the running lab's state directory (default: {DEFAULT_LAB_DIR}); also accepted "
        "before the sub-command: pbs lab fault|backup|guest|job --state-dir DIR ...",
    ),
]

lab_app = typer.Typer(
    help="The local PVE + PBS + DNS lab on loopback.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(lab_app, name="lab")


@lab_app.command(
    "serve",
    epilog=examples(
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
    with catching_signals() as wait_for_signal:  # a signal while starting stops it once up
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


def state_dir_of(out: Out, ctx: typer.Context, state_dir: Path | None) -> Path:
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


def admin(
    out: Out, state_dir: Path, route: str, body: dict[str, Any], refused: str = "the fault"
) -> Any:
    """POST to the running lab's admin API (`pbs_compliance.lab.admin_client`), or exit: 2
    when there is no lab there, 1 when it does not answer or refuses."""
    try:
        return admin_client.post(state_dir, route, body, refused)
    except admin_client.NoLab as exc:
        out.fail(EXIT_USAGE, str(exc), "usage")
    except admin_client.AdminError as exc:
        out.fail(EXIT_FAILED, str(exc), "lab")


def done(out: Out, answer: Any, text: str) -> NoReturn:
    """The change was made: its answer (json) or one line (text), exit 0."""
    if out.json:
        out.data({"ok": True, "result": answer})
    else:
        out.print(text, style="yellow")
    raise typer.Exit(EXIT_OK)
