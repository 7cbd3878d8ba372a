"""Re-pinning a renewed PBS certificate: what does the server serve, and write it into the YAML.

`pbs fingerprint` and the demo use this. The fetch is the TLS probe itself (pinning-style, no
chain verification, SNI for names); the write is a ruamel.yaml round trip that changes one
scalar and keeps the file's comments, quoting, indentation and key order, because the
declaration is a file people edit and review in merge requests.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import ScalarString

from pbs_compliance.config import ConfigError, ConfigIssue
from pbs_compliance.probes.dns import resolve
from pbs_compliance.probes.tls import TlsResult, handshake


@dataclass(frozen=True)
class Target:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def split_target(text: str) -> tuple[str, int | None]:
    """`host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address -> (host, port or None)."""
    host, port_text = text.strip(), ""
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f"'{text}': write [IPv6]:PORT")
        port_text = rest[1:]
    elif host.count(":") == 1:
        host, _, port_text = host.partition(":")
    if not host:
        raise ValueError(f"'{text}' has no host")
    if not port_text:
        return host, None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"'{text}': the port must be a number between 1 and 65535")
    return host, int(port_text)


def fetch(
    target: Target, nameservers: Sequence[tuple[str, int]], timeout: float
) -> tuple[TlsResult, str]:
    """Handshake with the target; returns the result and how the host was resolved.

    With nameservers (from a config) the name is resolved through them, like the checks do;
    without, the system's resolver (including /etc/hosts) is used by the connect itself.
    """
    address = target.host
    how = "system resolver"
    if nameservers:
        answer = resolve(target.host, nameservers, timeout)
        if not answer.ok:
            return (
                TlsResult(target.host, target.port, target.host, False, answer.describe(), 0.0),
                "",
            )
        address = answer.addresses[0]
        said = next((a for a in answer.answers if a.ok), None)
        how = "an IP address" if said is None else f"{address} from {said.nameserver}:{said.port}"
    return handshake(address, target.port, target.host, timeout), how


@dataclass(frozen=True)
class Updated:
    storage: str
    path: Path
    previous: str | None
    fingerprint: str

    @property
    def changed(self) -> bool:
        return (self.previous or "").upper() != self.fingerprint.upper()


@dataclass
class Document:
    """A declaration loaded for a round trip: change `data`, then `write()` keeps the file's
    comments, quoting, indentation and key order (`pbs fingerprint --update`, `pbs import`)."""

    path: Path
    yaml: YAML
    data: Any

    @property
    def storages(self) -> Any:
        return self.data.get("pbs_storages") if isinstance(self.data, dict) else None

    def dump(self) -> str:
        buffer = io.StringIO()
        self.yaml.dump(self.data, buffer)
        return buffer.getvalue()

    def write(self) -> None:
        _write_atomically(self.path, self.dump())


def open_document(path: Path) -> Document:
    """Read `path` for a round trip (a ConfigError when it cannot be read or parsed)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _error(path, f"cannot read: {exc.strerror}") from None
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    try:
        data: Any = yaml.load(text)
    except YAMLError as exc:
        raise _error(path, f"not valid YAML: {exc}") from None
    document = Document(path, yaml, data)
    yaml.indent(**_layout(data, document.storages, text.splitlines()))
    return document


def update_fingerprint(path: Path, storage: str, fingerprint: str) -> Updated:
    """Set `fingerprint` of the storage named `storage` in `path`, keeping everything else."""
    document = open_document(path)
    storages = document.storages
    entries = [e for e in storages or [] if isinstance(e, CommentedMap)]
    entry = next((e for e in entries if e.get("name") == storage), None)
    if entry is None:
        names = ", ".join(str(e.get("name")) for e in entries) or "none"
        raise _error(
            path,
            f"no storage named '{storage}' under pbs_storages (declared: {names})",
            "pbs_storages",
        )
    previous = entry.get("fingerprint")
    if isinstance(previous, ScalarString):
        entry["fingerprint"] = type(previous)(fingerprint)
    elif previous is not None:
        entry["fingerprint"] = fingerprint
    else:  # not declared yet: after the datastore, where the example config has it
        keys = list(entry.keys())
        position = keys.index("datastore") + 1 if "datastore" in keys else len(keys)
        entry.insert(position, "fingerprint", fingerprint)
    document.write()
    return Updated(storage, path, None if previous is None else str(previous), fingerprint)


def _layout(document: Any, storages: Any, lines: list[str]) -> dict[str, int]:
    """The file's own indentation, so the dump writes it back the way it was read.

    ruamel.yaml applies one indentation to the whole document; it is read off the file: the
    `pbs_storages` list (`- name:` at column 0, or `  - name:` under the key) and the first
    nested block mapping (`pve:` then `  url:`).
    """
    mapping = 2
    for value in document.values() if isinstance(document, dict) else ():
        if isinstance(value, CommentedMap) and value and value.fa.flow_style() is not True:
            mapping = value.lc.key(next(iter(value)))[1] or 2
            break
    sequence, offset = mapping, 0
    if isinstance(storages, CommentedSeq) and storages and storages.fa.flow_style() is not True:
        line, column = storages.lc.item(0)
        dash = lines[line].rfind("-", 0, column) if line < len(lines) else -1
        if dash >= 0:
            sequence, offset = column, dash
    return {"mapping": mapping, "sequence": sequence, "offset": offset}


def _write_atomically(path: Path, text: str) -> None:
    """Replace the file in one rename, with its mode, so a crash never leaves half a config."""
    mode = path.stat().st_mode & 0o777
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _error(path: Path, message: str, field: str = "") -> ConfigError:
    return ConfigError([ConfigIssue(path, None, None, field, message)])
