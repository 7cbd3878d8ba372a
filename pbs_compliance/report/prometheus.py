"""A compliance run as Prometheus series, for node_exporter's textfile collector.

`pytest checks/ --prometheus-textfile PATH` and `pbs status --output prometheus` write these
(the file atomically: a temporary file in the same directory, then a rename, so the collector
never reads half of it; no sample timestamps, which would make it skip the whole file):

- `pbs_compliance_check_passed{cluster,storage,check,node,result}`: 1 when the case passed or
  was remediated, else 0. `result` says what it came to - passed, failed, error, skipped,
  remediated or waived - so a waived or skipped case is visible without counting as compliant
  (`node` is "" for cases about a storage, `storage` is "(all)" for cluster-wide checks);
- `pbs_compliance_checks{cluster,result}`: how many cases came to each result (all six, 0 too);
- `pbs_compliance_last_run_timestamp_seconds{cluster}`, `pbs_compliance_run_duration_seconds`;
- `pbs_compliance_certificate_expiry_timestamp_seconds{cluster,server}` (server = host:port);
- the backup health figures, when the run read them:
  `pbs_compliance_backup_newest_timestamp_seconds{cluster,storage}` (the newest finished
  backup PVE lists there) and `pbs_compliance_datastore_used_ratio{cluster,storage}` (0..1).

Every label value comes from the config, PVE's node list, the check registry or the six
results: bounded, however often the run repeats.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pbs_compliance.backup_reads import BackupEvidence
from pbs_compliance.evidence import Evidence
from pbs_compliance.report import outcomes
from pbs_compliance.report.cases import Case

PREFIX = "pbs_compliance"
COMPLIANT = (outcomes.PASSED, outcomes.REMEDIATED)
RESULTS = (
    outcomes.PASSED,
    outcomes.FAILED,
    outcomes.ERROR,
    outcomes.SKIPPED,
    outcomes.REMEDIATED,
    outcomes.WAIVED,
)
BACKUPS_KEY = "backups"  # evidence.extra key of the backup health reads


@dataclass
class Figures:
    """What the series are made of, besides the cases."""

    cluster: str
    finished: float  # epoch seconds
    duration: float  # seconds
    certificates: dict[str, float] = field(default_factory=dict)  # host:port -> not_after
    newest_backup: dict[str, float] = field(default_factory=dict)  # storage -> epoch
    used_ratio: dict[str, float] = field(default_factory=dict)  # storage -> 0..1


def escape(value: str) -> str:
    """A label value in the text format: backslash, double quote and line feed escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


class _Text:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self, name: str, help_: str, samples: Iterable[tuple[dict[str, str], float]]
    ) -> None:
        full = f"{PREFIX}_{name}"
        self.lines += [f"# HELP {full} {help_}", f"# TYPE {full} gauge"]
        self.lines += [f"{full}{_labels(**labels)} {_number(v)}" for labels, v in samples]


def render(cases: Sequence[Case], figures: Figures) -> str:
    """The text exposition format (version 0.0.4) of one run."""
    cluster = figures.cluster
    text = _Text()
    text.family(
        "check_passed",
        "1 when the compliance case passed (or was remediated), else 0; result says what it "
        "came to (passed, failed, error, skipped, remediated, waived).",
        (
            (
                {
                    "cluster": cluster,
                    "storage": c.storage,
                    "check": c.check,
                    "node": c.node,
                    "result": c.outcome,
                },
                1.0 if c.outcome in COMPLIANT else 0.0,
            )
            for c in sorted(cases, key=lambda c: (c.storage, c.check, c.node))
        ),
    )
    counted = outcomes.counts([c.outcome for c in cases])
    text.family(
        "checks",
        "Compliance cases of the last run, by result.",
        (({"cluster": cluster, "result": r}, float(counted.get(r, 0))) for r in RESULTS),
    )
    text.family(
        "last_run_timestamp_seconds",
        "When the last compliance run finished (Unix time).",
        [({"cluster": cluster}, figures.finished)],
    )
    text.family(
        "run_duration_seconds",
        "How long the last compliance run took.",
        [({"cluster": cluster}, figures.duration)],
    )
    # One series per server or storage; a family is left out when its reads were not made.
    per_key = (
        (
            "certificate_expiry_timestamp_seconds",
            "When the certificate a PBS serves expires (Unix time).",
            "server",
            figures.certificates,
        ),
        (
            "backup_newest_timestamp_seconds",
            "The newest finished backup PVE lists on the storage (Unix time).",
            "storage",
            figures.newest_backup,
        ),
        (
            "datastore_used_ratio",
            "Used share of the storage's PBS datastore (0 to 1).",
            "storage",
            figures.used_ratio,
        ),
    )
    for name, help_text, label, values in per_key:
        if values:
            text.family(
                name,
                help_text,
                (({"cluster": cluster, label: k}, v) for k, v in sorted(values.items())),
            )
    return "\n".join(text.lines) + "\n"


def certificates(evidence: Evidence | None) -> dict[str, float]:
    """host:port -> the served certificate's expiry, for every server that handshook."""
    found: dict[str, float] = {}
    for key, server in (evidence.servers if evidence is not None else {}).items():
        certificate = server.tls.certificate if server.tls is not None else None
        if certificate is not None:
            found[key] = certificate.not_after.timestamp()
    return found


def backup_figures(evidence: Evidence | None) -> tuple[dict[str, float], dict[str, float]]:
    """(storage -> newest backup time, storage -> datastore used ratio) from the backup health
    reads, when the run made them (else two empty maps)."""
    data: Any = evidence.extra.get(BACKUPS_KEY) if evidence is not None else None
    if not isinstance(data, Mapping) or "storages" not in data:
        return {}, {}
    try:
        backups = BackupEvidence.from_data(data)
    except ValueError:  # another plugin's data under that key
        return {}, {}
    newest: dict[str, float] = {}
    used: dict[str, float] = {}
    for storage, key in backups.storages.items():
        pve = backups.pve.get(key)
        finished = [b.ctime for b in (pve.items if pve is not None else ()) if not b.in_progress]
        if finished:
            newest[storage] = float(max(finished))
        pbs = backups.pbs.get(key)
        usage = pbs.usage if pbs is not None else None
        if usage is not None and usage.total and usage.used is not None:
            used[storage] = usage.used / usage.total
    return newest, used


def write_textfile(path: Path, text: str) -> None:
    """Write atomically: a temporary file in the same directory (node_exporter reads only
    `*.prom`, so it never sees it), then a rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temp, 0o644)  # node_exporter runs as its own user and reads it
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
