"""`pbs import`: PVE's PBS entries turned into their declaration, added to a config file.

Every managed property is declared as PVE holds it, through the field table
(`essence.declaration_of(essence_from_api(entry))`, the same reading the lab's declaration
writer uses), so `pytest checks/ -m drift` passes right after an import. PVE never returns a
password: the entry gets `password: ${PBS_<NAME>_PASSWORD}` (the variable the loader suggests)
and a comment saying it must be provided. The file is changed with the round trip of
`pinning` (comments, quoting, layout and the other entries kept); an entry already declared is
only replaced when asked to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from pbs_compliance.config.loader import _env_name as password_variable
from pbs_compliance.essence import declaration_of, essence_from_api
from pbs_compliance.pinning import Document

__all__ = ["Imported", "Plan", "declaration", "merge", "password_variable", "plan", "render"]

PASSWORD_NOTE = "must be provided: export {var} (PVE never returns a stored password)"


def declaration(entry: Mapping[str, Any], fingerprint: str | None = None) -> dict[str, Any]:
    """The declaration of one PBS entry of `GET /storage`, in the field table's order, with a
    `${VAR}` password reference; `fingerprint` replaces the one PVE pins (from the server)."""
    name = str(entry["storage"])
    declared: dict[str, Any] = {"name": name, **declaration_of(essence_from_api(entry))}
    if fingerprint is not None:
        declared["fingerprint"] = fingerprint
    declared["password"] = f"${{{password_variable({'name': name})}}}"
    return declared


@dataclass(frozen=True)
class Imported:
    """One entry of an import: what it declares, and whether it replaced a declared one."""

    name: str
    declared: dict[str, Any]
    replaced: bool = False

    @property
    def variable(self) -> str:
        return password_variable({"name": self.name})

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "replaced": self.replaced,
            "password_variable": self.variable,
            "declaration": self.declared,
        }


@dataclass(frozen=True)
class Plan:
    """What an import would do: entries to add or replace, names refused or skipped."""

    entries: tuple[Imported, ...] = ()
    refused: tuple[str, ...] = ()  # asked for by name, already declared, no --replace
    skipped: tuple[str, ...] = ()  # --all: already declared, no --replace
    unknown: tuple[str, ...] = ()  # asked for by name, PVE has no PBS entry of that name


def plan(
    entries: Mapping[str, Mapping[str, Any]],
    declared: Sequence[str],
    names: Sequence[str],
    replace: bool,
    fingerprints: Mapping[str, str] | None = None,
) -> Plan:
    """Which of PVE's PBS `entries` (by name) to import: `names`, or all when empty."""
    wanted = list(dict.fromkeys(names)) or sorted(entries)
    chosen: list[Imported] = []
    refused: list[str] = []
    skipped: list[str] = []
    unknown: list[str] = []
    for name in wanted:
        entry = entries.get(name)
        if entry is None:
            unknown.append(name)
            continue
        if name in declared and not replace:
            (refused if names else skipped).append(name)
            continue
        found = declaration(entry, (fingerprints or {}).get(name))
        chosen.append(Imported(name, found, replaced=name in declared))
    return Plan(tuple(chosen), tuple(refused), tuple(skipped), tuple(unknown))


def merge(document: Document, imported: Sequence[Imported]) -> None:
    """Add (or replace in place) the entries under `pbs_storages`, keeping everything else."""
    data = document.data
    if not isinstance(data, CommentedMap):
        raise ValueError("the config's top level is not a mapping")
    storages = data.get("pbs_storages")
    if not isinstance(storages, CommentedSeq):
        storages = CommentedSeq()
        data["pbs_storages"] = storages
    positions = {
        str(e.get("name")): i for i, e in enumerate(storages) if isinstance(e, CommentedMap)
    }
    for item in imported:
        entry = _entry(item)
        if item.name in positions:
            storages[positions[item.name]] = entry
        else:
            storages.append(entry)


def _entry(item: Imported) -> CommentedMap:
    entry = CommentedMap()
    for key, value in item.declared.items():
        if isinstance(value, list):
            seq = CommentedSeq(value)
            seq.fa.set_flow_style()
            entry[key] = seq
        elif isinstance(value, dict):
            mapping = CommentedMap(value)
            mapping.fa.set_flow_style()
            entry[key] = mapping
        elif key == "fingerprint":  # quoted: YAML 1.1 reads an all-digit one as a number
            entry[key] = DoubleQuotedScalarString(value)
        else:
            entry[key] = value
    entry.yaml_add_eol_comment(PASSWORD_NOTE.format(var=item.variable), "password")
    return entry


def render(document: Document, imported: Sequence[Imported]) -> str:
    """The YAML of the entries alone, as `--dry-run` shows them (in the file's layout)."""
    seq = CommentedSeq([_entry(i) for i in imported])
    preview = Document(document.path, document.yaml, CommentedMap({"pbs_storages": seq}))
    return preview.dump()
