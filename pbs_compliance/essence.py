"""The two directions between a declaration and PVE's wire format, meeting in one `Essence`.

PVE adds `shared` and `digest`, fills in `content`, omits defaults (`port`, `username`), keeps
`prune-backups` exactly as sent and orders `content`/`nodes` at random. Comparing raw dicts would
report drift forever; comparing essences - both sides normalised the same way - reports only what
differs in meaning. The checks and the reconciler both diff essences, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pbs_compliance.config.model import PRUNE_KEYS, StorageSpec
from pbs_compliance.pvevalues import enabled, join_list, split_list, text

DEFAULT_PORT = 8007
DEFAULT_USERNAME = "root@pam"
DEFAULT_CONTENT = frozenset({"backup"})
PBS_CONTENT = frozenset({"backup", "none"})
KEEP_ALL: tuple[tuple[str, int], ...] = (("keep-all", 1),)
PRUNE_ORDER = tuple(key.replace("_", "-") for key in PRUNE_KEYS)
_BOOL_WORDS = {"1": 1, "0": 0, "yes": 1, "no": 0, "true": 1, "false": 0, "on": 1, "off": 0}

# PVE property names this tool manages, in the order diffs are shown.
MANAGED = (
    "server",
    "datastore",
    "disable",
    "content",
    "username",
    "fingerprint",
    "port",
    "namespace",
    "nodes",
    "max-protected-backups",
    "prune-backups",
)
FIXED = frozenset({"server", "datastore"})  # PVE refuses to change these in place


@dataclass(frozen=True)
class Essence:
    """The managed meaning of one PBS storage entry, with PVE's defaults made explicit."""

    name: str
    server: str
    datastore: str
    enabled: bool = True
    content: frozenset[str] = DEFAULT_CONTENT
    username: str = DEFAULT_USERNAME
    fingerprint: str | None = None
    port: int = DEFAULT_PORT
    namespace: str | None = None
    nodes: frozenset[str] | None = None
    max_protected_backups: int | None = None
    prune_backups: tuple[tuple[str, int], ...] = KEEP_ALL

    def value(self, prop: str) -> str | None:
        """The property as PVE would show it (a comparable, printable string), None if unset."""
        match prop:
            case "disable":
                return None if self.enabled else "1"
            case "content":
                return join_list(self.content)
            case "nodes":
                return None if self.nodes is None else join_list(self.nodes)
            case "port":
                return str(self.port)
            case "max-protected-backups":
                mpb = self.max_protected_backups
                return None if mpb is None else str(mpb)
            case "prune-backups":
                return format_prune(self.prune_backups)
            case "server" | "datastore" | "username" | "fingerprint" | "namespace":
                attr: str | None = getattr(self, prop)
                return attr
        raise KeyError(prop)


def normalise_prune(pairs: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
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


def format_prune(pairs: tuple[tuple[str, int], ...]) -> str:
    return ",".join(f"{key}={value}" for key, value in pairs)


def essence_of(spec: StorageSpec) -> Essence:
    """The declared side."""
    prune = (
        {k.replace("_", "-"): v for k, v in spec.prune_backups.items()}
        if spec.prune_backups
        else {}
    )
    return Essence(
        name=spec.name,
        server=spec.server,
        datastore=spec.datastore,
        enabled=spec.enabled,
        content=frozenset(spec.content),
        username=spec.username,
        fingerprint=spec.fingerprint.upper(),
        port=spec.port,
        namespace=spec.namespace or None,
        nodes=frozenset(spec.nodes) if spec.nodes else None,
        max_protected_backups=spec.max_protected_backups,
        prune_backups=normalise_prune(prune),
    )


def to_api_params(spec: StorageSpec) -> dict[str, str]:
    """POST /storage parameters for a declaration (without the password, which is sent apart).

    Only what differs from PVE's defaults is sent, so a created entry reads back like one made by
    hand in the GUI. Booleans are `0`/`1`: PVE rejects `True`.
    """
    params: dict[str, str] = {
        "storage": spec.name,
        "type": "pbs",
        "server": spec.server,
        "datastore": spec.datastore,
        "content": ",".join(spec.content),
        "username": spec.username,
        "fingerprint": spec.fingerprint,
    }
    if not spec.enabled:
        params["disable"] = "1"
    if spec.port != DEFAULT_PORT:
        params["port"] = str(spec.port)
    if spec.namespace:
        params["namespace"] = spec.namespace
    if spec.nodes:
        params["nodes"] = ",".join(spec.nodes)
    if spec.max_protected_backups is not None:
        params["max-protected-backups"] = str(spec.max_protected_backups)
    if spec.prune_backups is not None and spec.prune_backups.items():
        params["prune-backups"] = ",".join(
            f"{k.replace('_', '-')}={v}" for k, v in spec.prune_backups.items()
        )
    return params


def essence_from_api(entry: Mapping[str, object]) -> Essence:
    """The live side: an item of `GET /storage` (or POST parameters, which look the same)."""

    content_text = text(entry.get("content"))
    content = frozenset(split_list(content_text)) & PBS_CONTENT if content_text else DEFAULT_CONTENT
    nodes_text = text(entry.get("nodes"))
    prune_text = text(entry.get("prune-backups"))
    try:
        prune = normalise_prune(parse_prune(prune_text)) if prune_text else KEEP_ALL
    except ValueError:
        prune = (("unparsable: " + (prune_text or ""), 0),)
    fingerprint = text(entry.get("fingerprint"))
    mpb = text(entry.get("max-protected-backups"))
    return Essence(
        name=str(entry.get("storage", "")),
        server=text(entry.get("server")) or "",
        datastore=text(entry.get("datastore")) or "",
        enabled=enabled(entry),
        content=content or frozenset({"none"}),
        username=text(entry.get("username")) or DEFAULT_USERNAME,
        fingerprint=fingerprint.upper() if fingerprint else None,
        port=int(text(entry.get("port")) or DEFAULT_PORT),
        namespace=text(entry.get("namespace")),
        nodes=frozenset(split_list(nodes_text)) if nodes_text else None,
        max_protected_backups=int(mpb) if mpb is not None else None,
        prune_backups=prune,
    )
