"""What `pbs validate` and `pbs status` show: rows built from the checks' own verdicts.

A row is plain data with one `to_dict()` for `--output json` and one rich table for people, so
both outputs always say the same thing. Nothing here judges anything itself: validation rows are
the connectivity verdicts of `pbs_compliance.verdicts`, status rows the same drift diff the
`drift` case uses, so `pbs validate` and `pytest checks/` can never disagree about a storage.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rich.table import Table
from rich.text import Text

from pbs_compliance import pvevalues, registry, verdicts
from pbs_compliance.config import ComplianceConfig, StorageSpec
from pbs_compliance.drift import Drift
from pbs_compliance.evidence import Evidence, LiveState, ServerEvidence, server_key
from pbs_compliance.verdicts import Verdict

# The built-in checks of the connection from here, in the registry's order (their columns).
CONNECTIVITY = tuple(
    c.name for c in registry.BUILTIN if c.scope == "storage" and "probes" in c.needs
)
CELL = {"pass": "ok", "fail": "FAIL", "skip": "skip"}
STYLE = {
    "ok": "green",
    "FAIL": "bold red",
    "skip": "yellow",
    "disabled": "dim",
    "fail": "bold red",
    "WAIVED": "magenta",
    "waived": "magenta",
}

RowStatus = Literal["ok", "fail", "disabled", "waived"]
LiveStatus = Literal["enabled", "disabled", "missing", "unmanaged"]


def first_line(text: str) -> str:
    """The headline of a verdict's message; a headline ending in ':' takes its first detail."""
    lines = [line.strip() for line in text.strip().splitlines()]
    if not lines:
        return ""
    if lines[0].endswith(":") and len(lines) > 1 and not lines[1].startswith("fix:"):
        return f"{lines[0]} {lines[1]}"
    return lines[0]


# -- pbs validate ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValidationRow:
    """One declared storage's connectivity as seen from here: dns, port, tls, fingerprint."""

    spec: StorageSpec
    verdicts: tuple[Verdict, ...]
    evidence: ServerEvidence | None
    waived: tuple[str, ...] = ()  # failed checks a waiver in force covers (`waivers`)

    @property
    def status(self) -> RowStatus:
        if not self.spec.enabled:
            return "disabled"
        failed = [v.check for v in self.verdicts if v.status == "fail"]
        if not failed:
            return "ok"
        return "waived" if set(failed) <= set(self.waived) else "fail"

    def cell(self, check: str) -> str:
        status = self.verdict(check).status
        return "WAIVED" if status == "fail" and check in self.waived else CELL[status]

    @property
    def ok(self) -> bool:
        return self.status != "fail"

    def verdict(self, check: str) -> Verdict:
        return next(v for v in self.verdicts if v.check == check)

    @property
    def issues(self) -> list[str]:
        """The first line of every failed check: what the Issues column shows."""
        return [first_line(v.message) for v in self.verdicts if v.status == "fail"]

    @property
    def addresses(self) -> list[str]:
        return [] if self.evidence is None else list(self.evidence.dns.addresses)

    def to_dict(self) -> dict[str, Any]:
        cert = None
        ev = self.evidence
        if ev is not None and ev.tls is not None and ev.tls.certificate is not None:
            facts = ev.tls.certificate
            cert = {
                "subject": facts.subject,
                "issuer": facts.issuer,
                "not_before": facts.not_before.isoformat(),
                "not_after": facts.not_after.isoformat(),
                "fingerprint": facts.fingerprint,
                "sans": list(facts.sans),
            }
        return {
            "name": self.spec.name,
            "server": self.spec.server,
            "port": self.spec.port,
            "enabled": self.spec.enabled,
            "status": self.status,
            "checks": {v.check: {"status": v.status, "message": v.message} for v in self.verdicts},
            "waived": list(self.waived),
            "issues": self.issues,
            "addresses": self.addresses,
            "certificate": cert,
            "declared_fingerprint": self.spec.fingerprint,
        }


def validation_rows(
    config: ComplianceConfig, evidence: Evidence, now: dt.datetime, expiry_days: int
) -> list[ValidationRow]:
    """Judge every declared storage's connectivity, sorted by name like the pytest ids."""
    rows = []
    for spec in sorted(config.storages, key=lambda s: s.name):
        ev = evidence.servers.get(server_key(spec.server, spec.port))
        judged = tuple(
            _connectivity(c, spec, ev, now, expiry_days, str(config.source)) for c in CONNECTIVITY
        )
        rows.append(ValidationRow(spec, judged, ev))
    return rows


def _connectivity(
    check: str,
    spec: StorageSpec,
    ev: ServerEvidence | None,
    now: dt.datetime,
    expiry_days: int,
    source: str,
) -> Verdict:
    if check == "dns":
        return verdicts.dns(spec, ev)
    if check == "port":
        return verdicts.port(spec, ev)
    if check == "tls":
        return verdicts.tls(spec, ev, now, expiry_days)
    assert check == "fingerprint", f"no connectivity verdict for {check!r}"
    return verdicts.fingerprint(spec, ev, source)


def validation_table(rows: Sequence[ValidationRow]) -> Table:
    table = Table(title="connectivity from here", title_justify="left", pad_edge=False)
    titles = [c.table_title for c in registry.BUILTIN if c.name in CONNECTIVITY]
    for column in ("Storage", "Status", *titles):
        table.add_column(column, no_wrap=True)
    table.add_column("Issues", overflow="fold")
    for row in rows:
        if row.status == "disabled":
            cells = [_styled("disabled")] + [_styled("-")] * len(CONNECTIVITY)
        else:
            cells = [_styled(CELL["fail"] if row.status == "fail" else row.status)] + [
                _styled(row.cell(c)) for c in CONNECTIVITY
            ]
        table.add_row(row.spec.name, *cells, "\n".join(row.issues) or "-")
    return table


def validation_details(row: ValidationRow, verbose: bool) -> list[str]:
    """Lines under the table: every failure in full (with its fix), and with --verbose the
    resolved addresses and the certificate."""
    lines: list[str] = []
    failed = [v for v in row.verdicts if v.status == "fail"]
    if not failed and not verbose:
        return lines
    lines.append(f"{row.spec.name}  ({row.spec.server}:{row.spec.port})")
    if verbose:
        ev = row.evidence
        if ev is None:
            lines.append("  not probed (declared `enabled: false`)")
        else:
            lines.append(f"  resolved:    {', '.join(ev.dns.addresses) or '-'}")
            lines += [f"  resolver:    {a.describe()}" for a in ev.dns.answers]
            lines += [f"  tcp:         {t.describe()}" for t in ev.tcp]
            cert = ev.tls.certificate if ev.tls is not None else None
            if cert is not None:
                lines.append(f"  subject:     {cert.subject}")
                lines.append(f"  issuer:      {cert.issuer}")
                lines.append(
                    f"  valid:       {cert.not_before:%Y-%m-%d} .. {cert.not_after:%Y-%m-%d}"
                )
                if cert.sans:
                    lines.append(f"  names:       {', '.join(cert.sans)}")
                lines.append(f"  served:      {cert.fingerprint}")
            lines.append(f"  declared:    {row.spec.fingerprint}")
    for verdict in failed:
        lines.append(f"  {verdict.check}:")
        lines += [f"    {line}" for line in verdict.message.splitlines()]
    return lines


# -- pbs status -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusRow:
    """A PBS entry: declared and/or live, with its drift and how many nodes have it active."""

    name: str
    server: str
    datastore: str
    status: LiveStatus
    declared: bool
    drift: Drift | None
    applicable: tuple[str, ...] = ()
    active: tuple[str, ...] = ()
    problem: str = ""
    want_enabled: bool = True
    waived: tuple[str, ...] = ()  # of `failing`, those a waiver in force covers (`waivers`)

    @property
    def failing(self) -> tuple[tuple[str, str | None], ...]:
        """(check, node) of every case `pytest checks/` fails for this entry."""
        if not self.declared:
            return (("unmanaged", None),)
        found: list[tuple[str, str | None]] = []
        if self.problem or self.drift is None or not self.drift.compliant:
            found.append(("drift", None))
        elif self.want_enabled:
            found += [("nodes", n) for n in self.applicable if n not in self.active]
        return tuple(found)

    @property
    def compliant(self) -> bool:
        """Nothing fails, or a waiver in force covers every failure (`waived`)."""
        return all((f"{c}:{n}" if n else c) in self.waived for c, n in self.failing)

    @property
    def drift_text(self) -> str:
        if self.problem:
            return self.problem
        if self.drift is None:
            return "not declared"
        if self.drift.missing:
            return "missing in PVE"
        if not self.drift.diffs:
            return "none"
        return ", ".join(d.key for d in self.drift.diffs)

    @property
    def nodes_text(self) -> str:
        if self.status == "missing":
            return "-"
        text = f"{len(self.active)}/{len(self.applicable)}"
        inactive = [n for n in self.applicable if n not in self.active]
        if inactive and self.status == "enabled":
            text += f" (not active: {', '.join(inactive)})"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "server": self.server,
            "datastore": self.datastore,
            "status": self.status,
            "declared": self.declared,
            "compliant": self.compliant,
            "missing": self.status == "missing",
            "drift": []
            if self.drift is None
            else [
                {"property": d.key, "declared": d.declared, "live": d.live}
                for d in self.drift.diffs
            ],
            "problem": self.problem,
            "waived": list(self.waived),
            "nodes": {
                "applicable": list(self.applicable),
                "active": list(self.active),
                "inactive": [n for n in self.applicable if n not in self.active],
            },
        }


def status_rows(config: ComplianceConfig, live: LiveState) -> list[StatusRow]:
    """Declared storages (sorted), then the undeclared PBS entries PVE has (sorted)."""
    rows: list[StatusRow] = []
    entries = live.pbs_entries
    for spec in sorted(config.storages, key=lambda s: s.name):
        judged = verdicts.drift(spec, live)
        entry = entries.get(spec.name)
        if entry is None:
            other = next((e for e in live.storages if e.get("storage") == spec.name), None)
            problem = "" if other is None else f"name taken by a {other.get('type')} storage"
            rows.append(
                StatusRow(
                    spec.name,
                    spec.server,
                    spec.datastore,
                    "missing",
                    True,
                    judged.drift,
                    problem=problem,
                    want_enabled=spec.enabled,
                )
            )
            continue
        rows.append(_live_row(entry, live, True, judged.drift, spec.enabled))
    declared = {s.name for s in config.storages}
    for name in sorted(set(entries) - declared):
        rows.append(_live_row(entries[name], live, False, None, True))
    return rows


def _live_row(
    entry: dict[str, Any], live: LiveState, declared: bool, drift: Drift | None, want: bool
) -> StatusRow:
    name = str(entry.get("storage"))
    disabled = not pvevalues.enabled(entry)
    status: LiveStatus = "unmanaged" if not declared else "disabled" if disabled else "enabled"
    applicable = tuple(pvevalues.applies_to(pvevalues.entry_nodes(entry), live.nodes))
    active = tuple(n for n in applicable if pvevalues.active(live.node_entry(n, name)))
    return StatusRow(
        name,
        str(entry.get("server", "")),
        str(entry.get("datastore", "")),
        status,
        declared,
        drift,
        applicable,
        active,
        want_enabled=want,
    )


def status_table(rows: Sequence[StatusRow]) -> Table:
    table = Table(title="PBS storages: declared and live", title_justify="left", pad_edge=False)
    for column in ("Name", "Server", "Datastore", "Status", "Drift", "Nodes active"):
        table.add_column(column, overflow="fold")
    for row in rows:
        status_style = {"enabled": "green", "disabled": "yellow"}.get(row.status, "bold red")
        drift_style = "green" if row.drift_text == "none" else "bold red"
        inactive = row.status == "enabled" and set(row.applicable) - set(row.active)
        table.add_row(
            row.name,
            row.server,
            row.datastore,
            Text(row.status, style=status_style),
            Text(row.drift_text, style=drift_style),
            Text(row.nodes_text, style="bold red" if inactive else ""),
        )
    return table


def _styled(text: str) -> Text:
    return Text(text, style=STYLE.get(text, ""))
