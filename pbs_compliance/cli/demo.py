"""`pbs demo`: the built-in lab, broken, checked, remediated and checked again."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pbs_compliance.cli.app import app
from pbs_compliance.cli.output import Out, Output, OutputOption, examples

__all__ = ["demo"]


@app.command(
    epilog=examples(
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
