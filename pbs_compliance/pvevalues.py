"""PVE's values as PVE sends and takes them: flags, comma lists, which nodes an entry applies to.

One set of helpers for the checks' verdicts, the tables, the evidence reader, `essence` and the
reconciler, so a value PVE spells differently (JSON `1` in `GET /storage`, `"1"` in a form body,
`True` from a JSON body, absent when off) means the same thing everywhere.

PVE facts this encodes (see the Proxmox API reference):
- Booleans are written `1`/`0` (PVE rejects `True` and `yes` on input) and read back as JSON
  numbers; `disable` is absent when the entry is enabled. A node's storage view reports
  `enabled` and `active` as 0/1.
- Lists (`content`, `nodes`) are comma-joined strings in arbitrary order; PVE's own splitter
  (`PVE::Tools::split_list`) also takes `;` and whitespace. Compare them as sets.
- An entry without `nodes` applies to every node of the cluster.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping

__all__ = [
    "active",
    "applies_to",
    "enabled",
    "entry_nodes",
    "flag",
    "flag_param",
    "join_list",
    "split_list",
    "text",
]

# What PVE's boolean reads as false (JSONSchema's `parse_boolean` words, Perl's "" and "0").
_FALSE = frozenset({"", "0", "false", "no", "off"})
_SEPARATORS = re.compile(r"[,;\s]+")


def text(value: object) -> str | None:
    """A property's text, None when PVE has none (absent, JSON null or the empty string)."""
    return None if value is None or value == "" else str(value)


def flag(value: object) -> bool:
    """A PVE boolean as read: `1`, `"1"`, `True`, `"true"` are true; absent, `0`, `"0"`,
    `False`, `""` (and `no`/`off`) are false."""
    if value is None or isinstance(value, bool):
        return bool(value)
    return str(value).strip().lower() not in _FALSE


def flag_param(value: bool) -> str:
    """A boolean as PVE takes it in a form body: `1` or `0` (never `True`)."""
    return "1" if value else "0"


def enabled(entry: Mapping[str, object]) -> bool:
    """Is a `GET /storage` item enabled (no `disable` flag)?"""
    return not flag(entry.get("disable"))


def active(view: Mapping[str, object] | None) -> bool:
    """Does a node's storage view (`GET /nodes/{node}/storage` item) report the entry active?"""
    return view is not None and flag(view.get("active"))


def split_list(value: object) -> list[str]:
    """A PVE list (`content`, `nodes`) in the order given, split on `,`, `;` and whitespace."""
    raw = text(value)
    return [] if raw is None else [part for part in _SEPARATORS.split(raw) if part]


def join_list(items: Iterable[str]) -> str:
    """A list as PVE's comma-joined text, sorted and without duplicates (a stable spelling)."""
    return ",".join(sorted(set(items)))


def entry_nodes(entry: Mapping[str, object]) -> frozenset[str] | None:
    """The nodes a `GET /storage` item is restricted to; None when it applies to all."""
    names = split_list(entry.get("nodes"))
    return frozenset(names) if names else None


def applies_to(restricted: Collection[str] | None, nodes: Iterable[str]) -> list[str]:
    """The nodes of `nodes` an entry is meant to be usable on, sorted.

    `restricted` is the entry's `nodes` (a declaration's `spec.nodes` or `entry_nodes(entry)`);
    None (or empty) means every node.
    """
    known = sorted(set(nodes))
    return known if not restricted else [n for n in known if n in restricted]
