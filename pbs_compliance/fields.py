"""The storage field table: every declared field, its PVE property and how the two translate.

One row per `StorageSpec` field says: the PVE property it becomes, the meaning PVE gives an absent
value (its default), how a value is encoded for PVE (`POST /storage` text) and decoded from it
(`GET /storage` text), whether PVE can change it in place (`fixed`: only delete + re-create) and
whether PVE ever shows it (`write_only`). Everything that translates storage fields is driven by
this table: `essence` (both directions of the comparison the checks and the reconciler share),
the API parameters of a create, the lab's declaration writer (`declaration_of`), and the test that
the example config documents exactly these fields.

Adding a storage field: add it to `StorageSpec` (validation) and a row here (translation), pick
or write a codec for its kind of value; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from pbs_compliance.config.model import PRUNE_KEYS, PruneBackups
from pbs_compliance.pvevalues import flag, join_list, split_list

__all__ = [
    "FIELDS",
    "KEEP_ALL",
    "Codec",
    "StorageField",
    "by_attr",
    "by_pve",
    "format_prune",
    "managed",
    "normalise_prune",
    "parse_prune",
]

T = TypeVar("T")

PBS_CONTENT = frozenset({"backup", "none"})  # PVE drops every other content type for PBS
KEEP_ALL: tuple[tuple[str, int], ...] = (("keep-all", 1),)
PRUNE_ORDER = tuple(key.replace("_", "-") for key in PRUNE_KEYS)
_BOOL_WORDS = {"1": 1, "0": 0, "yes": 1, "no": 0, "true": 1, "false": 0, "on": 1, "off": 0}


class Codec(Generic[T]):
    """How one field's value travels; `T` is its comparable meaning (the essence's value).

    `absent` is what PVE means when it has no value (its default). `declared` turns the
    validated declaration value into the meaning, `read` PVE's text (never empty) into it, `show`
    the meaning into PVE's spelling (comparable text; None: unset). `param` is what a create
    sends (None: nothing, PVE's default applies) and `to_declaration` the YAML value that declares
    a meaning (None: leave the field out).
    """

    def __init__(self, absent: T) -> None:
        self.absent = absent

    def declared(self, value: Any) -> T:
        return cast(T, value)

    def read(self, text: str) -> T:
        raise NotImplementedError

    def show(self, value: T) -> str | None:
        return None if value is None else str(value)

    def param(self, value: Any, always: bool) -> str | None:
        """The create parameter: sent when PVE needs it (`always`) or it is not PVE's default."""
        text = self.show(self.declared(value))
        if text is None or (not always and text == self.show(self.absent)):
            return None
        return text

    def to_declaration(self, value: T) -> Any:
        return value


class Text(Codec[str | None]):
    """A plain string property; the empty string is as good as unset."""

    def declared(self, value: Any) -> str | None:
        return str(value) if value else self.absent

    def read(self, text: str) -> str | None:
        return text


class Fingerprint(Text):
    """A SHA-256 fingerprint: PVE keeps the case it was sent in and compares upper-cased."""

    def declared(self, value: Any) -> str | None:
        return str(value).upper() if value else self.absent

    def read(self, text: str) -> str | None:
        return text.upper()


class Integer(Codec[int | None]):
    """An integer property; GET returns a JSON number, POST takes its text."""

    def read(self, text: str) -> int | None:
        return int(text)


class Inverted(Codec[bool]):
    """A declared yes/no that PVE stores as its opposite flag (`enabled` <-> `disable`).

    PVE writes the flag as `1` and drops it when off, so the declared default sends nothing.
    """

    def declared(self, value: Any) -> bool:
        return bool(value)

    def read(self, text: str) -> bool:
        return not flag(text)

    def show(self, value: bool) -> str | None:
        return None if value else "1"


class Content(Codec[frozenset[str]]):
    """PVE's content list, read the way the PBS plugin does: other types are dropped, and a list
    of only those is stored as `none`."""

    def declared(self, value: Any) -> frozenset[str]:
        return frozenset(value)

    def read(self, text: str) -> frozenset[str]:
        return frozenset(split_list(text)) & PBS_CONTENT or frozenset({"none"})

    def show(self, value: frozenset[str]) -> str | None:
        return join_list(value)

    def to_declaration(self, value: frozenset[str]) -> Any:
        return sorted(value)


class NodeList(Codec[frozenset[str] | None]):
    """The nodes an entry is restricted to; unset means all nodes."""

    def declared(self, value: Any) -> frozenset[str] | None:
        return frozenset(value) if value else None

    def read(self, text: str) -> frozenset[str] | None:
        return frozenset(split_list(text))

    def show(self, value: frozenset[str] | None) -> str | None:
        return None if value is None else join_list(value)

    def to_declaration(self, value: frozenset[str] | None) -> Any:
        return None if value is None else sorted(value)


Retention = tuple[tuple[str, int], ...]


class Prune(Codec[Retention]):
    """`prune-backups`: PVE stores the property string exactly as sent, so it is compared by
    meaning (zero values and nothing set both mean keep-all)."""

    def declared(self, value: Any) -> Retention:
        if not isinstance(value, PruneBackups):
            return KEEP_ALL
        return normalise_prune({k.replace("_", "-"): v for k, v in value.items()})

    def read(self, text: str) -> Retention:
        try:
            return normalise_prune(parse_prune(text))
        except ValueError:
            return (("unparsable: " + text, 0),)

    def show(self, value: Retention) -> str | None:
        return format_prune(value)

    def param(self, value: Any, always: bool) -> str | None:
        """Sent as declared (each set key, zeros too), so PVE shows what the YAML says."""
        if not isinstance(value, PruneBackups) or not value.items():
            return None
        return ",".join(f"{k.replace('_', '-')}={v}" for k, v in value.items())

    def to_declaration(self, value: Retention) -> Any:
        if value == KEEP_ALL:
            return None  # PVE's default: nothing to declare
        if value and value[0][0].startswith("unparsable: "):
            raise ValueError(f"invalid prune-backups '{value[0][0].removeprefix('unparsable: ')}'")
        return {key.replace("-", "_"): number for key, number in value}


@dataclass(frozen=True)
class StorageField:
    """One declared field: `attr` in the YAML and `StorageSpec`, `pve` the PVE property (None:
    never sent, a local note). `codec` None: not compared (the identity, a secret).

    `always`: a create sends it even when it is PVE's default (the required connection
    properties, and the ones the GUI sends too). `fixed`: PVE refuses to change it in place.
    `write_only`: PVE takes it but never shows it back (so there is no drift to see).
    """

    attr: str
    pve: str | None
    codec: Codec[Any] | None = None
    always: bool = False
    fixed: bool = False
    write_only: bool = False
    note: str = ""

    @property
    def managed(self) -> bool:
        """Compared with PVE and written by the reconciler."""
        return self.codec is not None and self.pve is not None

    @property
    def default(self) -> Any:
        """The meaning PVE gives the property when it is absent (None: unset)."""
        return None if self.codec is None else self.codec.absent


DEFAULT_PORT = 8007
DEFAULT_USERNAME = "root@pam"
DEFAULT_CONTENT = frozenset({"backup"})

# The order is the order diffs, plans and create parameters show the properties in.
FIELDS: tuple[StorageField, ...] = (
    StorageField("name", "storage", note="the storage ID; identifies the entry"),
    StorageField("server", "server", Text(""), always=True, fixed=True),
    StorageField("datastore", "datastore", Text(""), always=True, fixed=True),
    StorageField("enabled", "disable", Inverted(True)),
    StorageField("content", "content", Content(DEFAULT_CONTENT), always=True),
    StorageField("username", "username", Text(DEFAULT_USERNAME), always=True),
    StorageField("fingerprint", "fingerprint", Fingerprint(None), always=True),
    StorageField("port", "port", Integer(DEFAULT_PORT)),
    StorageField("namespace", "namespace", Text(None)),
    StorageField("nodes", "nodes", NodeList(None)),
    StorageField("max_protected_backups", "max-protected-backups", Integer(None)),
    StorageField("prune_backups", "prune-backups", Prune(KEEP_ALL)),
    StorageField("password", "password", write_only=True, note="sent apart, never shown by PVE"),
    StorageField("description", None, note="a local note, never sent to PVE"),
    StorageField("backups", None, note="backup health thresholds; judged here, never sent to PVE"),
)

_BY_ATTR = {f.attr: f for f in FIELDS}
_BY_PVE = {f.pve: f for f in FIELDS if f.pve is not None}


def managed() -> tuple[StorageField, ...]:
    """The rows compared with PVE and written by the reconciler, in display order."""
    return tuple(f for f in FIELDS if f.managed)


def by_attr(attr: str) -> StorageField:
    """The row of a declaration field (KeyError when there is none)."""
    return _BY_ATTR[attr]


def by_pve(prop: str) -> StorageField:
    """The row of a PVE property (KeyError when no declared field maps to it)."""
    return _BY_PVE[prop]


def normalise_prune(pairs: Mapping[str, int]) -> Retention:
    """PVE's meaning: zero values are as good as unset; nothing set (or keep-all) keeps all."""
    if pairs.get("keep-all"):
        return KEEP_ALL
    kept = tuple((k, pairs[k]) for k in PRUNE_ORDER if k != "keep-all" and pairs.get(k))
    return kept or KEEP_ALL


def parse_prune(text: str) -> dict[str, int]:
    """Parse PVE's `prune-backups` property string (`keep-daily=7,keep-weekly=4`)."""
    result: dict[str, int] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, raw = part.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or key not in PRUNE_ORDER:
            raise ValueError(f"invalid prune-backups entry '{part}'")
        if key == "keep-all":
            if raw.lower() not in _BOOL_WORDS:
                raise ValueError(f"invalid keep-all value '{raw}'")
            result[key] = _BOOL_WORDS[raw.lower()]
        else:
            if not raw.isdigit():
                raise ValueError(f"invalid {key} value '{raw}'")
            result[key] = int(raw)
    return result


def format_prune(pairs: Retention) -> str:
    return ",".join(f"{key}={value}" for key, value in pairs)
