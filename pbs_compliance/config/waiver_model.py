"""A waiver as the config declares it (`waivers:`), and the run's "today" for judging expiry.

    waivers:
      - storage: offsite            # a declared storage, or "*" for every one (and cluster checks)
        check: nodes                # a check from the registry (`pytest --markers`)
        node: pve3                  # optional: only that node's case
        reason: "pve3 in maintenance until the new PSU arrives (ticket OPS-812)"
        expires: 2026-12-31         # UTC date; at most a year ahead; ignored on and after it

The loader validates the fields here and checks storages and nodes against the rest of the file;
check names are checked against the registry once every check is declared (see
`pbs_compliance.waivers`). Dates are compared in UTC. `PBS_COMPLIANCE_TODAY=YYYY-MM-DD` pins
"today" for tests (it exists for testing; leave it unset in production).
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Annotated, Any, Protocol

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from pbs_compliance.config.yamlsource import Located, Path_

ENV_TODAY = "PBS_COMPLIANCE_TODAY"  # for tests only: pins "today" (UTC) as YYYY-MM-DD
ANY_STORAGE = "*"
CHECK_NAME_RE = re.compile(r"[a-z][a-z0-9_]*", re.ASCII)  # the registry's names
MAX_REASON = 500


def today(environ: Mapping[str, str] | None = None, now: dt.datetime | None = None) -> dt.date:
    """Today in UTC: `PBS_COMPLIANCE_TODAY` when set (tests), else `now` (or the clock)."""
    env = os.environ if environ is None else environ
    pinned = env.get(ENV_TODAY, "").strip()
    if pinned:
        try:
            return dt.date.fromisoformat(pinned)
        except ValueError:
            raise ValueError(
                f"{ENV_TODAY}={pinned!r} is not a date; write YYYY-MM-DD, or unset it "
                "(it only pins today's date for tests)"
            ) from None
    return (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).date()


def _date(value: object) -> object:
    if isinstance(value, dt.datetime):
        raise ValueError(
            f"{value.isoformat()} has a time of day; a waiver expires at the start of a day "
            "(UTC): write the date alone, YYYY-MM-DD"
        )
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a date; write YYYY-MM-DD, e.g. 2026-03-31")


def _check_name(value: str) -> str:
    if not CHECK_NAME_RE.fullmatch(value):
        raise ValueError(
            f"{value!a} is not a check name (lower-case letters, digits and _, as "
            "`pytest checks/ --markers` lists them)"
        )
    return value


def _reason(value: str) -> str:
    text = value.strip()
    if not text:
        raise ValueError("a waiver needs a reason: why this cannot be fixed yet, and who knows")
    if len(text) > MAX_REASON:
        raise ValueError(f"the reason is {len(text)} characters; keep it under {MAX_REASON}")
    if any(not c.isprintable() for c in text):
        raise ValueError("the reason must be one line of text (no line breaks or control codes)")
    return text


class Waiver(BaseModel):
    """One declared waiver. `where` is `FILE:LINE` of its entry, for every message about it."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    storage: Annotated[str, Field(min_length=1)]
    check: Annotated[str, AfterValidator(_check_name)]
    node: str | None = None
    reason: Annotated[str, AfterValidator(_reason)]
    expires: Annotated[dt.date, BeforeValidator(_date)]
    where: str = ""

    def covers(self, storage: str, check: str, node: str | None) -> bool:
        """Whether the case (storage, check, node) is one this waiver names."""
        if check != self.check:
            return False
        if self.storage not in (ANY_STORAGE, storage):
            return False
        return self.node is None or self.node == node

    def active(self, day: dt.date) -> bool:
        """In force on `day`: on and after the expiry date it is ignored."""
        return day < self.expires

    @property
    def label(self) -> str:
        """`nodes on offsite (node pve3)`: what it waives, for messages."""
        target = "every storage" if self.storage == ANY_STORAGE else self.storage
        node = f" (node {self.node})" if self.node else ""
        return f"{self.check} on {target}{node}"


class _Loader(Protocol):
    """What `load_waivers` uses of the config loader (`config.loader._Loader`)."""

    file: Path
    environ: Mapping[str, str]

    def issue(self, path: Path_, message: str, fix: str) -> None: ...

    def key_issue(self, path: Path_, message: str, fix: str) -> None: ...

    def _unknown_keys(self, path: Path_, mapping: dict[str, Any], allowed: Any) -> None: ...

    def _validate(self, model: type[Waiver], values: dict[str, Any], locate: Any) -> Any: ...

    @property
    def located(self) -> Located: ...


def load_waivers(
    loader: _Loader,
    section: Any,
    storages: Collection[str],
    nodes: Mapping[str, tuple[str, ...] | None],
) -> tuple[Waiver, ...] | None:
    """The `waivers:` list validated, each problem reported at its line; None when any is
    wrong. `storages` are the declared names, `nodes` each valid storage's `nodes:` (None: all
    of PVE's nodes). A waiver's node must be one its storage applies to when that storage names
    its nodes (for "*": when every storage does, one of them); otherwise any valid node name is
    accepted here, and one PVE does not have is reported as stale by the run."""
    if section is None:
        return ()
    if not isinstance(section, list):
        loader.issue(
            ("waivers",),
            "must be a list of waivers",
            "write `- {storage: NAME, check: CHECK, reason: WHY, expires: YYYY-MM-DD}` entries",
        )
        return None
    try:
        day = today(loader.environ)
    except ValueError as exc:
        loader.issue(("waivers",), str(exc), f"unset {ENV_TODAY}")
        return None
    reported = len(getattr(loader, "issues", ()))
    found: list[Waiver] = []
    for index, entry in enumerate(section):
        path: Path_ = ("waivers", index)
        if not isinstance(entry, dict):
            loader.issue(path, "each waiver must be a mapping", "start it with `- storage: NAME`")
            continue
        allowed = [k for k in Waiver.model_fields if k != "where"]
        loader._unknown_keys(path, entry, allowed)
        values = {k: v for k, v in entry.items() if k in allowed}
        waiver = loader._validate(Waiver, values, lambda loc, p=path: (*p, *loc))
        if waiver is None:
            continue
        line = loader.located.mark(path)[0]
        waiver = waiver.model_copy(update={"where": f"{loader.file}:{line}"})
        if _refers(loader, path, waiver, day, storages, nodes):
            found.append(waiver)
    if len(getattr(loader, "issues", ())) > reported:
        return None
    return tuple(found)


def _refers(
    loader: _Loader,
    path: Path_,
    waiver: Waiver,
    day: dt.date,
    storages: Collection[str],
    nodes: Mapping[str, tuple[str, ...] | None],
) -> bool:
    """Whether the waiver names what exists and expires within a year (else reported)."""
    ok = True
    if waiver.storage != ANY_STORAGE and waiver.storage not in storages:
        close = difflib.get_close_matches(waiver.storage, list(storages), n=1)
        hint = f"did you mean `{close[0]}`? " if close else ""
        loader.issue(
            (*path, "storage"),
            f"no storage `{waiver.storage}` is declared under pbs_storages",
            f'{hint}name a declared storage, or "*" for every storage',
        )
        ok = False
    if waiver.node is not None:
        problem = _node_problem(waiver.node, _nodes_of(waiver.storage, nodes))
        if problem:
            loader.issue((*path, "node"), *problem)
            ok = False
    limit = _a_year_after(day)
    if waiver.expires > limit:
        loader.issue(
            (*path, "expires"),
            f"{waiver.expires} is more than a year ahead (today is {day}, UTC)",
            f"waive for at most a year (until {limit} at the latest) and renew it "
            "if it still cannot be fixed then",
        )
        ok = False
    return ok


def _a_year_after(day: dt.date) -> dt.date:
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year + 1, day=28)


def _nodes_of(storage: str, nodes: Mapping[str, tuple[str, ...] | None]) -> tuple[str, ...]:
    """The nodes a waiver of `storage` may name (empty: any, PVE's list is not known here)."""
    named = list(nodes.values()) if storage == ANY_STORAGE else [nodes.get(storage)]
    if not named or any(n is None for n in named):
        return ()
    return tuple(sorted({n for group in named for n in group or ()}))


def _node_problem(node: str, nodes: Collection[str]) -> tuple[str, str] | None:
    from pbs_compliance.config.model import NODE_NAME_RE  # the model holds the waivers

    if not NODE_NAME_RE.fullmatch(node):
        return (f"{node!a} is not a valid PVE node name", "write the node's name as PVE does")
    if nodes and node not in nodes:
        return (
            f"node `{node}` is not one the storage applies to (its `nodes:`: {', '.join(nodes)})",
            "name one of those nodes, or leave `node` out to waive the check on every node",
        )
    return None
