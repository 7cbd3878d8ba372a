"""`pbs status`: the cluster's live PBS entries beside the declared ones.

One config is one cluster; `--config a.yaml --config b.yaml` shows several together: the table
per cluster under its name, `--output json` a list with one entry per cluster, the exit status
the worst of them (2 > 1 > 0), and a broken or unreachable config reported with its file while
the others are still shown.

`--output prometheus` (stdout) and `--prometheus-textfile PATH` (atomically, like `pytest
checks/ --prometheus-textfile`) give the run as node_exporter textfile series
(`pbs_compliance.report.prometheus`), with the names and labels of a pytest run: the cases `pbs
status` judges are the `drift` and `unmanaged` cases and the `nodes` case of every (storage,
node), as PVE alone shows them (`pytest checks/` also probes each PBS, so a node case that points
at a DNS or TLS fault there can be a failure here). Several clusters share one file: each family
once, one `cluster` label value per config.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from pbs_compliance import verdicts, waivers
from pbs_compliance.cli import waived
from pbs_compliance.cli.app import app
from pbs_compliance.cli.output import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    ConfigsOption,
    Out,
    StatusOutput,
    StatusOutputOption,
    config_issues,
    examples,
)
from pbs_compliance.config import ConfigError, load_config
from pbs_compliance.evidence import NO_CREDENTIALS, LiveState, client_for, read_live
from pbs_compliance.job_reads import gather_jobs
from pbs_compliance.job_verdicts import Summary as JobsSummary
from pbs_compliance.job_verdicts import summary as job_summary
from pbs_compliance.pve import PveError
from pbs_compliance.report import outcomes, prometheus
from pbs_compliance.report.cases import Case
from pbs_compliance.report.cluster import cluster_name
from pbs_compliance.settings import Overrides, RunSettings, SettingError, config_path, resolve
from pbs_compliance.tables import StatusRow, status_rows, status_table

__all__ = ["ClusterStatus", "look", "merge_textfiles", "status", "status_cases"]

TextfileOption = Annotated[
    Path | None,
    typer.Option(
        "--prometheus-textfile",
        metavar="PATH",
        help="also write the result as Prometheus series for node_exporter's textfile collector "
        "(atomically; name it *.prom in the collector's directory)",
    ),
]
OUTCOME = {"pass": outcomes.PASSED, "fail": outcomes.FAILED, "skip": outcomes.SKIPPED}


@dataclass
class ClusterStatus:
    """What `pbs status` found for one config: its rows, or why it could not look."""

    config: Path
    code: int = EXIT_OK
    cluster: str | None = None
    settings: RunSettings | None = None
    live: LiveState | None = None
    rows: list[StatusRow] = field(default_factory=list)
    waived_lines: list[str] = field(default_factory=list)
    backups: JobsSummary | None = None
    cases: list[Case] = field(default_factory=list)
    error: dict[str, Any] | None = None  # {"error": kind, "message": ..., ("issues": [...])}
    finished: float = 0.0
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.code == EXIT_OK

    @property
    def verdict(self) -> str:
        """A few words for the closing list of several clusters."""
        if self.error is None:
            return "compliant" if self.ok else "NOT compliant"
        if self.error["error"] == "pve":
            return "cannot read PVE" if self.code == EXIT_FAILED else "PVE not usable"
        return f"{self.error['error']} error"

    @property
    def problem(self) -> str:
        """The error's first line that says what is wrong (a config's first problem)."""
        message = str((self.error or {}).get("message", ""))
        lines = [line.strip() for line in message.splitlines()] or [""]
        return lines[1] if len(lines) > 1 and lines[0].startswith("invalid config") else lines[0]

    def fail(self, code: int, kind: str, message: str, **extra: Any) -> ClusterStatus:
        self.code = max(self.code, code)
        self.error = {"error": kind, "message": message, **extra}
        return self

    def to_dict(self) -> dict[str, Any]:
        head: dict[str, Any] = {"command": "status", "cluster": self.cluster}
        if self.error is not None or self.settings is None or self.live is None:
            return {**head, "config": str(self.config), "ok": False, **(self.error or {})}
        return {
            **head,
            "config": str(self.settings.config.source),
            "pve": self.settings.pve.url,
            "nodes": self.live.nodes,
            "node_errors": self.live.node_errors,
            "ok": self.ok,
            "storages": [row.to_dict() for row in self.rows],
            "backup_jobs": self.backups.to_dict() if self.backups is not None else None,
        }

    def series(self) -> str:
        """This cluster's Prometheus text (none when it was never read: no name, no cases)."""
        if self.cluster is None or self.live is None:
            return ""
        figures = prometheus.Figures(self.cluster, self.finished, self.duration)
        return prometheus.render(self.cases, figures)


def look(path: Path, series: bool) -> ClusterStatus:
    """Read one config's cluster; never exits (the caller reports every config)."""
    started = time.monotonic()
    found = ClusterStatus(path)
    overrides = Overrides(config=str(path))
    try:
        settings = resolve(load_config(config_path(overrides)), overrides)
    except ConfigError as exc:
        return found.fail(EXIT_USAGE, "config", exc.render(), issues=config_issues(exc))
    except SettingError as exc:
        return found.fail(EXIT_USAGE, "setting", f"{path}: {exc}")
    found.settings = settings
    try:
        client = client_for(settings)
    except PveError as exc:
        return found.fail(EXIT_USAGE, "pve", f"{path}: {exc}")
    if client is None:
        message = f"{path}: this command reads the cluster, but there are {NO_CREDENTIALS}"
        return found.fail(EXIT_USAGE, "pve", message)
    found.cluster = cluster_name(settings)
    live = read_live(client, ())
    found.live = live
    if series:  # judged like the pytest cases, also when PVE could not be read (they fail)
        found.cases = status_cases(settings, live)
    found.finished, found.duration = time.time(), time.monotonic() - started
    if live.error:
        return found.fail(EXIT_FAILED, "pve", f"{path}: cannot read PVE: {live.error}")
    rows, found.waived_lines = waived.status_rows(
        settings.config, status_rows(settings.config, live)
    )
    found.rows = rows
    now = dt.datetime.now(dt.UTC)  # backup coverage and job runs: shown, not part of the code
    found.backups = job_summary(settings.config, gather_jobs(settings, now), now)
    found.code = EXIT_OK if all(row.compliant for row in rows) else EXIT_FAILED
    found.finished, found.duration = time.time(), time.monotonic() - started
    return found


def status_cases(settings: RunSettings, live: LiveState) -> list[Case]:
    """The `drift`, `nodes` and `unmanaged` cases as `pytest checks/` would report them from
    PVE's view alone: same check, storage, node and outcome (waived by the same waivers)."""
    config = settings.config
    judged = [verdicts.drift(spec, live) for spec in config.storages]
    judged += [verdicts.node(spec, n, live) for spec, n in verdicts.node_targets(config, live)]
    judged.append(verdicts.unmanaged(config, live))
    day = waivers.today()
    servers = {s.name: s.server for s in config.storages}
    found = []
    for verdict in judged:
        decision = waivers.decide(
            config.waivers, verdict.storage, verdict.check, verdict.node, verdict.status, day
        )
        outcome = outcomes.WAIVED if decision.state == "waived" else OUTCOME[verdict.status]
        where = f"{verdict.storage}:{verdict.node}" if verdict.node else verdict.storage
        found.append(
            Case(
                nodeid=f"pbs status::test_{verdict.check}[{where}]",
                check=verdict.check,
                storage=verdict.storage,
                node=verdict.node or "",
                server=servers.get(verdict.storage, ""),
                outcome=outcome,
                message=verdict.message,
                facts=verdict.facts,
            )
        )
    return found


def merge_textfiles(texts: list[str]) -> str:
    """Several clusters' series in one text: each family's HELP and TYPE once, then the samples
    of every cluster (a family named twice is a file node_exporter refuses)."""
    headers: dict[str, list[str]] = {}
    samples: dict[str, list[str]] = {}
    for text in texts:
        family = ""
        for line in text.splitlines():
            if line.startswith("# "):
                family = line.split(" ", 3)[2]
                header = headers.setdefault(family, [])
                if not any(h.split(" ", 2)[1] == line.split(" ", 2)[1] for h in header):
                    header.append(line)
            elif line:
                samples.setdefault(family, []).append(line)
    lines = [line for name in headers for line in (*headers[name], *samples.get(name, ()))]
    return "\n".join(lines) + "\n" if lines else ""


@app.command(
    epilog=examples(
        "pbs status",
        "pbs status --config config/pbs-storage.yaml --output json",
        "pbs status --config site-a.yaml --config site-b.yaml",
        "pbs status --output prometheus",
        "pbs status --prometheus-textfile /var/lib/node_exporter/textfile/pbs.prom",
        note="Exit status 0 when every declared entry exists as declared and is active on its "
        "nodes, and PVE has no undeclared PBS entry; with several configs, the worst of them "
        "(2 = a config or its credentials unusable, 1 = not compliant or PVE unreadable).",
    )
)
def status(
    config: ConfigsOption = None,
    output: StatusOutputOption = StatusOutput.text,
    prometheus_textfile: TextfileOption = None,
) -> None:
    """Show the cluster's live PBS entries beside the declared ones: enabled, disabled,
    missing or unmanaged, their drift, and on how many nodes they are active. Several
    --config options show several clusters together."""
    out = Out.create(output)
    paths = list(dict.fromkeys(config)) if config else [config_path(Overrides())]
    series = output == StatusOutput.prometheus or prometheus_textfile is not None
    found = _named_once([look(path, series) for path in paths])
    code = max(f.code for f in found)
    if series:
        text = merge_textfiles([f.series() for f in found])
        if prometheus_textfile is not None:
            prometheus.write_textfile(prometheus_textfile, text)
        if output == StatusOutput.prometheus:
            sys.stdout.write(text)
            sys.stdout.flush()
    if len(found) == 1:
        _one(out, found[0])
    elif out.json:
        out.data(
            {"command": "status", "ok": code == EXIT_OK, "clusters": [f.to_dict() for f in found]}
        )
    else:
        _several(out, found)
    raise typer.Exit(code)


def _named_once(found: list[ClusterStatus]) -> list[ClusterStatus]:
    """Two configs naming one cluster would clash in every merged output: the later one is an
    error that names both files."""
    seen: dict[str, Path] = {}
    for index, item in enumerate(found):
        if item.cluster is None:
            continue
        first = seen.setdefault(item.cluster, item.config)
        if first != item.config:
            message = (
                f"{item.config}: names cluster {item.cluster!r} like {first}; give each config "
                "its own `pve.name` (the cluster label, the JUnit suite and this heading)"
            )
            clash = dataclasses.replace(item, cluster=None, live=None, cases=[], code=EXIT_OK)
            found[index] = clash.fail(EXIT_USAGE, "config", message)
    return found


def _one(out: Out, found: ClusterStatus) -> None:
    """One config: its document or its table (the error ends the command as before)."""
    if found.error is not None:
        extra = {k: v for k, v in found.error.items() if k not in ("error", "message")}
        out.fail(found.code, found.error["message"], found.error["error"], **extra)
    if out.json:
        out.data(found.to_dict())
        return
    _show(out, found)


def _several(out: Out, found: list[ClusterStatus]) -> None:
    """Several configs: each under its cluster's name, errors on stderr with their file, then
    one line per cluster."""
    for item in found:
        if item.error is None:
            _show(out, item)
        else:
            out.print(_heading(item), style="bold")
            out.errors.print(f"pbs: {item.error['message']}", style="bold red", soft_wrap=True)
            out.print(f"not shown: {escape(item.problem)}", style="bold red")
        out.print("")
    for item in found:
        name = item.cluster or "(unknown)"
        style = "green" if item.ok else "bold red"
        out.print(f"{escape(name)}: {item.verdict} ({escape(str(item.config))})", style=style)


def _heading(found: ClusterStatus) -> str:
    return f"cluster {escape(found.cluster or '(unknown)')} (config {escape(str(found.config))})"


def _show(out: Out, found: ClusterStatus) -> None:
    assert found.live is not None
    assert found.backups is not None
    out.print(_heading(found), style="bold")
    out.print(status_table(found.rows))
    for node, error in sorted(found.live.node_errors.items()):
        out.print(f"cannot read the view of {node}: {error}", style="bold red")
    for line in found.waived_lines:
        out.print(f"waived: {escape(line)}", style="magenta")
    backups = found.backups
    for line in backups.lines():
        out.print(escape(line), style=None if backups.ok else "yellow")
    if found.ok:
        out.print("every declared PBS storage is in place and active", style="green")
    else:
        out.print(
            "not compliant; `pbs apply --dry-run` shows what would change, "
            "`pytest checks/` explains every failure",
            style="bold red",
        )
