"""PVE's section-config text format for `storage.cfg`, read and written the way PVE does it.

The emulator must hand out the same `digest` PVE would for the same file, so the text is
parsed leniently (as `PVE::SectionConfig::parse_config` does) and written in PVE's layout:
a `<type>: <id>` header, one TAB-indented `key value` line per option, a bare `disable`
line, and a blank line after every section. Sections of types the lab does not interpret
(everything but `pbs`) keep their option lines verbatim.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

__all__ = [
    "IMPLICIT_LOCAL",
    "Section",
    "StorageConfig",
    "config_digest",
    "parse_storage_cfg",
    "render_storage_cfg",
]

OptionLine = tuple[str, str | None]
"""One option line: key and value; `None` is a bare key (PVE writes `disable` that way)."""

_HEADER_RE = re.compile(r"^(\S+):\s*(\S+)\s*$")
# `\s+(\S+)(\s+(.*\S))?\s*$` in Perl; `$` there also matches before a final newline, which
# cannot occur here because the text is split on newlines first.
_OPTION_RE = re.compile(r"^\s+(\S+)(?:\s+(.*\S))?\s*$")
_COMMENT_RE = re.compile(r"^\s*#")

LOCAL_ID = "local"
LOCAL_PATH = "/var/lib/vz"


@dataclass(frozen=True)
class Section:
    """One storage definition as it stands in the file.

    `implicit` marks the `local` entry PVE's parser invents when the file lacks a usable one;
    it reports `priority: 0` until the first save writes it out.
    """

    type: str
    id: str
    options: tuple[OptionLine, ...] = ()
    implicit: bool = False

    def option(self, key: str) -> str | None:
        """Last value of `key` (PVE keeps the last of duplicate lines); bare keys give ''."""
        found: str | None = None
        for k, v in self.options:
            if k == key:
                found = "" if v is None else v
        return found

    def has_option(self, key: str) -> bool:
        return any(k == key for k, _ in self.options)


IMPLICIT_LOCAL = Section(
    type="dir",
    id=LOCAL_ID,
    options=(
        ("path", LOCAL_PATH),
        # PVE builds this from a Perl hash, so the order is whatever the hash gives; this is
        # the order the real code wrote into storage.cfg.sample.
        ("content", "iso,backup,images,snippets,rootdir,vztmpl"),
        ("prune-backups", "keep-all=1"),
    ),
    implicit=True,
)


@dataclass(frozen=True)
class StorageConfig:
    """The parsed file: sections in file order and the digest of the bytes they came from."""

    sections: tuple[Section, ...]
    digest: str
    text: str = field(default="", compare=False, repr=False)

    @cached_property
    def _by_id(self) -> Mapping[str, Section]:
        return {s.id: s for s in self.sections}

    def get(self, storage_id: str) -> Section | None:
        return self._by_id.get(storage_id)

    def ids(self) -> list[str]:
        return [s.id for s in self.sections]

    def replaced(self, sections: Iterable[Section]) -> StorageConfig:
        """The config after a save: PVE rewrites the whole file, so the digest changes with it."""
        secs = tuple(sections)
        text = render_storage_cfg(secs)
        return StorageConfig(sections=secs, digest=config_digest(text.encode()), text=text)


def config_digest(raw: bytes) -> str:
    """SHA-1 hex of the raw file bytes: one value for the whole file, as PVE computes it."""
    return hashlib.sha1(raw, usedforsecurity=False).hexdigest()


def parse_storage_cfg(text: str | None) -> StorageConfig:
    """Parse `storage.cfg` text (None or '' for a missing/empty file).

    Mirrors PVE: comment lines are skipped, a section runs until the first empty line,
    unparsable lines are ignored, a later duplicate ID replaces the earlier one, and a
    usable `local` dir storage is guaranteed (invented when absent, path filled in, node
    restrictions dropped).
    """
    raw = text or ""
    sections: dict[str, Section] = {}
    lines = [line for line in raw.split("\n") if not _COMMENT_RE.match(line)]
    i = 0
    while i < len(lines):
        header = _HEADER_RE.match(lines[i])
        i += 1
        if not header:
            continue
        options: list[OptionLine] = []
        while i < len(lines) and lines[i] != "":
            opt = _OPTION_RE.match(lines[i])
            if opt:
                options.append((opt.group(1), opt.group(2)))
            i += 1
        sec_type, sec_id = header.group(1), header.group(2)
        sections.pop(sec_id, None)
        sections[sec_id] = Section(type=sec_type, id=sec_id, options=tuple(options))
    result = _ensure_local(list(sections.values()))
    return StorageConfig(sections=tuple(result), digest=config_digest(raw.encode()), text=raw)


def _ensure_local(sections: list[Section]) -> list[Section]:
    local = next((s for s in sections if s.id == LOCAL_ID), None)
    path = local.option("path") if local else None
    if local is None or local.type != "dir" or (path and path != LOCAL_PATH):
        rest = [s for s in sections if s.id != LOCAL_ID]
        return [IMPLICIT_LOCAL, *rest]
    fixed = tuple((k, v) for k, v in local.options if k != "nodes")
    if not path:
        fixed = (("path", LOCAL_PATH), *((k, v) for k, v in fixed if k != "path"))
    if fixed != local.options:
        local = Section(type=local.type, id=local.id, options=fixed)
    return [local if s.id == LOCAL_ID else s for s in sections]


def render_storage_cfg(sections: Iterable[Section]) -> str:
    """PVE's layout: header, TAB-indented options, bare keys alone, blank line after each."""
    out: list[str] = []
    for sec in sections:
        out.append(f"{sec.type}: {sec.id}\n")
        for key, value in sec.options:
            out.append(f"\t{key}\n" if value is None else f"\t{key} {value}\n")
        out.append("\n")
    return "".join(out)
