"""The two directions between a declaration and PVE's wire format, meeting in one `Essence`.

PVE adds `shared` and `digest`, fills in `content`, omits defaults (`port`, `username`), keeps
`prune-backups` exactly as sent and orders `content`/`nodes` at random. Comparing raw dicts would
report drift forever; comparing essences - both sides normalised the same way - reports only what
differs in meaning. The checks and the reconciler both diff essences, so they cannot disagree.

What each field means and how it travels is the field table (`pbs_compliance.fields`); this
module only applies it: `Essence` has one attribute per managed row, built from the table, so a
new field needs no change here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pbs_compliance.config.model import StorageSpec
from pbs_compliance.fields import (
    DEFAULT_CONTENT,
    DEFAULT_PORT,
    DEFAULT_USERNAME,
    KEEP_ALL,
    PBS_CONTENT,
    PRUNE_ORDER,
    by_pve,
    format_prune,
    managed,
    normalise_prune,
    parse_prune,
)
from pbs_compliance.pvevalues import text

__all__ = [
    "DEFAULT_CONTENT",
    "DEFAULT_PORT",
    "DEFAULT_USERNAME",
    "FIXED",
    "KEEP_ALL",
    "MANAGED",
    "PBS_CONTENT",
    "PRUNE_ORDER",
    "Essence",
    "declaration_of",
    "essence_from_api",
    "essence_of",
    "format_prune",
    "normalise_prune",
    "parse_prune",
    "to_api_params",
]

# PVE property names this tool manages, in the order diffs are shown.
MANAGED = tuple(str(f.pve) for f in managed())
FIXED = frozenset(str(f.pve) for f in managed() if f.fixed)  # PVE refuses to change in place


class _Methods:
    """What every essence can do; the attributes come from the field table."""

    name: str

    def value(self, prop: str) -> str | None:
        """The property as PVE would show it (a comparable, printable string), None if unset."""
        row = by_pve(prop)
        if row.codec is None:
            raise KeyError(prop)
        shown: str | None = row.codec.show(getattr(self, row.attr))
        return shown


if TYPE_CHECKING:

    class Essence(_Methods):
        """The managed meaning of one PBS storage entry, with PVE's defaults made explicit."""

        def __init__(self, name: str, **values: Any) -> None: ...

        def __getattr__(self, attr: str) -> Any: ...

else:
    Essence = dataclasses.make_dataclass(
        "Essence",
        [
            ("name", str),
            *((f.attr, Any, dataclasses.field(default=f.default)) for f in managed()),
        ],
        bases=(_Methods,),
        frozen=True,
    )
    Essence.__module__ = __name__
    Essence.__doc__ = (
        "The managed meaning of one PBS storage entry, with PVE's defaults made explicit: "
        "`name` and one attribute per managed field of `pbs_compliance.fields.FIELDS`."
    )


def essence_of(spec: StorageSpec) -> Essence:
    """The declared side."""
    values = {f.attr: f.codec.declared(getattr(spec, f.attr)) for f in managed() if f.codec}
    return Essence(name=spec.name, **values)


def essence_from_api(entry: Mapping[str, object]) -> Essence:
    """The live side: an item of `GET /storage` (or POST parameters, which look the same)."""
    values: dict[str, Any] = {}
    for f in managed():
        assert f.codec is not None
        assert f.pve is not None
        raw = text(entry.get(f.pve))
        values[f.attr] = f.codec.absent if raw is None else f.codec.read(raw)
    return Essence(name=str(entry.get("storage", "")), **values)


def to_api_params(spec: StorageSpec) -> dict[str, str]:
    """POST /storage parameters for a declaration (without the password, which is sent apart).

    Only what differs from PVE's defaults is sent (besides the connection properties PVE needs),
    so a created entry reads back like one made by hand in the GUI. Booleans are `0`/`1`: PVE
    rejects `True`. The properties PVE needs come first, then the optional ones.
    """
    params: dict[str, str] = {"storage": spec.name, "type": "pbs"}
    rows = [f for f in managed() if f.always] + [f for f in managed() if not f.always]
    for f in rows:
        assert f.codec is not None
        assert f.pve is not None
        value = f.codec.param(getattr(spec, f.attr), f.always)
        if value is not None:
            params[f.pve] = value
    return params


def declaration_of(essence: Essence) -> dict[str, Any]:
    """The declaration fields (YAML values) that declare `essence`, without `name`: what the lab
    writes for the entries it starts with. Unset fields are left out."""
    declared: dict[str, Any] = {}
    for f in managed():
        assert f.codec is not None
        value = f.codec.to_declaration(getattr(essence, f.attr))
        if value is not None:
            declared[f.attr] = value
    return declared
