"""PVE's storage-configuration rules (`PVE::API2::Storage::Config` with the PBS plugin), pure.

Every function takes the current `StorageState` and the decoded request parameters and
returns data (and, for writes, the next state) or raises `PveError` with the status and text
PVE would send. The steps run in PVE's order because the order decides which error a bad
request sees: schema (400), then the plugin's `check_config` (500, no prefix at create), then
under the config lock the digest, existence, sensitive values, `delete` checks, hooks and the
activation check (500, prefixed `create|update|delete storage failed: `).

Only `pbs` entries are interpreted. Other types are listed, read and deleted like PVE does,
with their option lines kept verbatim.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from pbs_compliance.lab.pve_errors import PveError
from pbs_compliance.lab.pve_schema import (
    CREATE_SCHEMA,
    DELETE_SCHEMA,
    READ_SCHEMA,
    STORAGE_PROPERTIES,
    STORAGE_TYPES,
    UPDATE_SCHEMA,
    Params,
    Prop,
    Value,
    check_prop,
    perl_true,
    split_list,
    validate,
)
from pbs_compliance.lab.sectionconfig import Section, StorageConfig, parse_storage_cfg

__all__ = [
    "PBS_OPTIONS",
    "Activator",
    "PveError",
    "StorageSecrets",
    "StorageState",
    "create_storage",
    "delete_storage",
    "enabled_on_node",
    "list_storages",
    "read_storage",
    "storage_view",
    "touch_other_storage",
    "update_storage",
]


@dataclass(frozen=True)
class _Opt:
    fixed: bool = False
    optional: bool = True


# PBSPlugin.pm `options()`.
PBS_OPTIONS: Mapping[str, _Opt] = {
    "server": _Opt(fixed=True, optional=False),
    "datastore": _Opt(fixed=True, optional=False),
    "namespace": _Opt(),
    "port": _Opt(),
    "nodes": _Opt(),
    "disable": _Opt(),
    "content": _Opt(),
    "username": _Opt(),
    "password": _Opt(),
    "encryption-key": _Opt(),
    "master-pubkey": _Opt(),
    "prune-backups": _Opt(),
    "max-protected-backups": _Opt(),
    "fingerprint": _Opt(),
}
_PBS_SENSITIVE = ("encryption-key", "master-pubkey", "password")
_PBS_CONTENT = ("backup", "none")
_PBS_DEFAULT_CONTENT = "backup"
# Plugin.pm `@SHARED_STORAGE`: these types report `shared: 1` whatever the file says.
_SHARED_TYPES = frozenset(
    {"iscsi", "nfs", "cifs", "rbd", "cephfs", "iscsidirect", "glusterfs", "zfs", "drbd", "pbs"}
)
_TYPE_FILTER_SCHEMA = {"type": Prop("string", enum=STORAGE_TYPES)}

Activator = Callable[[Mapping[str, object], str | None], str | None]
"""Activation as the handling node: (storage view, password) -> None when active, else the
error text PVE logs, e.g. `error fetching datastores - ...`."""
KeyFactory = Callable[[], str]


@dataclass(frozen=True)
class StorageSecrets:
    """What PVE keeps under `/etc/pve/priv/storage/<id>.*`, never in storage.cfg."""

    password: str | None = field(default=None, repr=False)
    encryption_key: str | None = field(default=None, repr=False)
    master_pubkey: bytes | None = field(default=None, repr=False)

    @property
    def empty(self) -> bool:
        return self.password is None and self.encryption_key is None and self.master_pubkey is None


@dataclass(frozen=True)
class StorageState:
    """storage.cfg as parsed plus the per-storage secret files."""

    config: StorageConfig
    secrets: Mapping[str, StorageSecrets] = field(default_factory=dict)

    @classmethod
    def from_text(
        cls, text: str | None, secrets: Mapping[str, StorageSecrets] | None = None
    ) -> StorageState:
        return cls(parse_storage_cfg(text), dict(secrets or {}))

    def password(self, storage_id: str) -> str | None:
        return self.secrets.get(storage_id, StorageSecrets()).password

    def with_sections(
        self, sections: list[Section], secrets: Mapping[str, StorageSecrets] | None = None
    ) -> StorageState:
        """The state after PVE writes the file and reads it back."""
        written = self.config.replaced(sections)
        reparsed = parse_storage_cfg(written.text)
        kept = {
            k: v for k, v in (self.secrets if secrets is None else secrets).items() if not v.empty
        }
        return StorageState(reparsed, kept)


# ---- reading ---------------------------------------------------------------------------


def pbs_settings(section: Section) -> dict[str, str]:
    """A pbs section's options as PVE's parser keeps them: known, well-formed, decoded."""
    return dict(_pbs_settings_cached(section))


@functools.lru_cache(maxsize=8192)
def _pbs_settings_cached(section: Section) -> tuple[tuple[str, str], ...]:
    # Sections are immutable and re-read after every save; a 1,000-entry list would
    # otherwise re-validate every option of every entry on each request.
    settings: dict[str, str] = {}
    for key, raw in section.options:
        if key not in PBS_OPTIONS or key in settings:
            # PVE rejects unknown keys and duplicate lines ("duplicate attribute").
            continue
        prop = STORAGE_PROPERTIES[key]
        if raw is None:
            if prop.type != "boolean":
                continue
            raw = "1"
        if "\n" in raw or "\r" in raw or check_prop(raw, prop) is not None:
            continue
        try:
            settings[key] = _decode_value(key, _as_number_text(raw, prop))
        except PveError:
            continue
    return tuple(settings.items())


def _section_is_usable(section: Section) -> bool:
    if section.type != "pbs":
        return True
    settings = pbs_settings(section)
    return all(k in settings for k, o in PBS_OPTIONS.items() if not o.optional)


def storage_view(state: StorageState, storage_id: str) -> dict[str, object]:
    """One entry as GET returns it (`$api_storage_config`), digest included."""
    section = state.config.get(storage_id)
    if section is None or not _section_is_usable(section):
        raise PveError(500, f"storage '{storage_id}' does not exist")
    view = _pbs_view(section) if section.type == "pbs" else _generic_view(section)
    view["storage"] = storage_id
    view["digest"] = state.config.digest
    return view


def _pbs_view(section: Section) -> dict[str, object]:
    settings = pbs_settings(section)
    view: dict[str, object] = {"type": "pbs"}
    for key, value in settings.items():
        view[key] = _typed(key, value)
    view.setdefault("content", _PBS_DEFAULT_CONTENT)
    view["shared"] = 1
    return view


def _generic_view(section: Section) -> dict[str, object]:
    view: dict[str, object] = {"type": section.type}
    for key, raw in section.options:
        prop = STORAGE_PROPERTIES.get(key)
        if raw is None:
            if prop is None or prop.type != "boolean":
                continue
            raw = "1"
        view[key] = _typed(key, raw)
    if section.implicit:
        view["priority"] = 0
    if section.type in _SHARED_TYPES:
        view["shared"] = 1
    return view


def _typed(key: str, value: str) -> object:
    """GET output types: booleans and integers are JSON numbers, everything else text."""
    prop = STORAGE_PROPERTIES.get(key)
    if prop is not None and prop.type in ("boolean", "integer"):
        try:
            return int(value)
        except ValueError:
            return value
    return value


def list_storages(state: StorageState, params: Params) -> list[dict[str, object]]:
    """GET /storage: every usable entry, optionally of one type, in file order."""
    checked = validate(params, _TYPE_FILTER_SCHEMA)
    wanted = checked.get("type")
    out = []
    for section in state.config.sections:
        if wanted is not None and section.type != wanted:
            continue
        if _section_is_usable(section):
            out.append(storage_view(state, section.id))
    return out


def read_storage(state: StorageState, params: Params) -> dict[str, object]:
    """GET /storage/{storage}."""
    checked = validate(params, READ_SCHEMA)
    return storage_view(state, str(checked["storage"]))


def enabled_on_node(view: Mapping[str, object], node: str) -> bool:
    """`storage_check_enabled`: not disabled, and `nodes` (when set) names this node."""
    if perl_true(str(view.get("disable", ""))):
        return False
    nodes = view.get("nodes")
    return nodes is None or node in split_list(str(nodes))


# ---- check_config / decode_value --------------------------------------------------------


def _as_number_text(value: str, prop: Prop) -> str:
    """`check_value` returns `$value + 0` for numeric types: '+05' is stored as '5'."""
    if prop.type in ("boolean", "integer"):
        return str(int(value))
    return value


def _decode_value(key: str, value: str) -> str:
    """Plugin.pm `decode_value` then `encode_value`, as text for the file."""
    if key == "content":
        kept: list[str] = []
        for ctype in split_list(value):
            # Types PBS does not support are dropped with only a warning in the daemon log.
            if ctype in _PBS_CONTENT and ctype not in kept:
                kept.append(ctype)
        if "none" in kept and len(kept) > 1:
            raise PveError(500, "unable to combine 'none' with other content types")
        return ",".join(kept) or "none"
    if key == "nodes":
        nodes: list[str] = []
        for node in split_list(value):
            if check_prop(node, Prop("string", format="pve-node")) is None and node not in nodes:
                nodes.append(node)
        return ",".join(nodes)
    return value


def _check_config(params: Mapping[str, Value], create: bool) -> dict[str, str]:
    """`SectionConfig::check_config` for type pbs (schema already checked by the API)."""
    settings: dict[str, str] = {}
    for key in sorted(params):
        value = params[key]
        opt = PBS_OPTIONS.get(key)
        if not create and opt is not None and opt.fixed:
            raise PveError(500, f"can't change value of fixed parameter '{key}'")
        if value is None:
            raise PveError(500, f"got undefined value for option '{key}'")
        if opt is None:
            raise PveError(500, f"unexpected property '{key}'")
        text = value if isinstance(value, str) else ",".join(value)
        if "\n" in text or "\r" in text:
            raise PveError(500, "property contains a line feed")
        settings[key] = _decode_value(key, _as_number_text(text, STORAGE_PROPERTIES[key]))
    if create:
        for key, opt in sorted(PBS_OPTIONS.items()):
            if not opt.optional and params.get(key) is None:
                raise PveError(500, f"missing value for required option '{key}'")
    return settings


def _pbs_section(storage_id: str, settings: Mapping[str, str]) -> Section:
    """`write_config` layout: bare `disable`, required options, then the rest sorted."""
    lines: list[tuple[str, str | None]] = []
    if perl_true(settings.get("disable")):
        lines.append(("disable", None))
    required = sorted(k for k, o in PBS_OPTIONS.items() if not o.optional)
    optional = sorted(k for k, o in PBS_OPTIONS.items() if o.optional and k != "disable")
    for key in [*required, *optional]:
        value = settings.get(key)
        if value is not None and value != "":
            lines.append((key, value))
    return Section(type="pbs", id=storage_id, options=tuple(lines))


# ---- secrets (PBSPlugin.pm hooks) -------------------------------------------------------


def generate_encryption_key() -> str:
    """A key file like `proxmox-backup-client key create --kdf none` writes."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    data = os.urandom(32)
    digest = hashlib.sha256(data).digest()
    fingerprint = ":".join(f"{b:02x}" for b in digest)
    key = {
        "kdf": None,
        "created": now,
        "modified": now,
        "data": base64.b64encode(data).decode(),
        "fingerprint": fingerprint,
    }
    return json.dumps(key, indent=2)


def _encryption_key_fingerprint(key: str) -> str:
    try:
        decoded = json.loads(key)
    except ValueError:
        decoded = None
    if not isinstance(decoded, dict) or "data" not in decoded:
        raise PveError(500, "Value does not seems like a valid, JSON formatted encryption key!")
    fingerprint = decoded.get("fingerprint")
    return str(fingerprint) if fingerprint not in (None, "", "0", 0, False) else "1"


def _decode_base64(text: str) -> bytes:
    """Perl's `decode_base64` skips characters outside the alphabet instead of failing."""
    cleaned = "".join(c for c in text if c.isalnum() or c in "+/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned)
    except binascii.Error:
        return b""


def _apply_encryption_key(
    value: str, settings: dict[str, str], key_factory: KeyFactory
) -> tuple[str, str]:
    """(stored key text, text returned to the client) for a given `encryption-key` value."""
    key = key_factory() if value == "autogen" else value
    settings["encryption-key"] = _encryption_key_fingerprint(key)
    return key, key


# ---- writes ----------------------------------------------------------------------------


def _extract_sensitive(params: dict[str, Value], deletes: list[str]) -> dict[str, str | None]:
    """`extract_sensitive_params`: deleting means `undef`, a given value overrides that."""
    sensitive: dict[str, str | None] = {}
    for key in _PBS_SENSITIVE:
        if key in deletes:
            sensitive[key] = None
        value = params.pop(key, None)
        if value is not None:
            sensitive[key] = value if isinstance(value, str) else ",".join(value)
    return sensitive


def create_storage(
    state: StorageState,
    params: Params,
    *,
    handling_node: str,
    activate: Activator | None,
    key_factory: KeyFactory = generate_encryption_key,
) -> tuple[StorageState, dict[str, object]]:
    """POST /storage for type pbs; returns the next state and the response data."""
    checked = validate(params, CREATE_SCHEMA)
    storage_type = str(checked.pop("type"))
    storage_id = str(checked.pop("storage"))
    if not perl_true(_text(checked.get("nodes"))):
        checked.pop("nodes", None)
    if storage_type != "pbs":
        raise PveError(
            500, f"create storage failed: the lab models only type 'pbs', not '{storage_type}'"
        )
    sensitive = _extract_sensitive(checked, [])
    settings = _check_config(checked, create=True)

    prefix = "create storage failed: "
    if state.config.get(storage_id) is not None:
        raise PveError(500, f"{prefix}storage ID '{storage_id}' already defined")
    try:
        secrets, returned = _on_add_hook(sensitive, settings, key_factory)
    except PveError as exc:
        raise PveError(500, prefix + exc.message) from exc

    section = _pbs_section(storage_id, settings)
    view = _pbs_view(section) | {"storage": storage_id}
    if activate is not None and enabled_on_node(view, handling_node):
        problem = activate(view, secrets.password)
        if problem is not None:
            raise PveError(500, f"{prefix}{storage_id}: {problem.rstrip(chr(10))}")

    all_secrets = dict(state.secrets)
    all_secrets[storage_id] = secrets
    new_state = state.with_sections([*state.config.sections, section], all_secrets)
    return new_state, {"storage": storage_id, "type": "pbs", "config": returned}


def _on_add_hook(
    sensitive: Mapping[str, str | None], settings: dict[str, str], key_factory: KeyFactory
) -> tuple[StorageSecrets, dict[str, object]]:
    returned: dict[str, object] = {}
    enc_key: str | None = None
    master: bytes | None = None
    if (value := sensitive.get("encryption-key")) is not None:
        enc_key, returned["encryption-key"] = _apply_encryption_key(value, settings, key_factory)
    if (value := sensitive.get("master-pubkey")) is not None:
        if "encryption-key" not in settings:
            raise PveError(500, "'master-pubkey' can only be used together with 'encryption-key'")
        master = _decode_base64(value)
        settings["master-pubkey"] = "1"
    secrets = StorageSecrets(
        password=sensitive.get("password"), encryption_key=enc_key, master_pubkey=master
    )
    return secrets, returned


def update_storage(
    state: StorageState,
    params: Params,
    *,
    key_factory: KeyFactory = generate_encryption_key,
) -> tuple[StorageState, dict[str, object]]:
    """PUT /storage/{storage}; returns the next state and the response data."""
    checked = validate(params, UPDATE_SCHEMA)
    storage_id = str(checked.pop("storage"))
    digest = _text(checked.pop("digest", None))
    delete_text = _text(checked.pop("delete", None))
    deletes = split_list(delete_text) if perl_true(delete_text) else []

    prefix = "update storage failed: "
    try:
        current = state.config.digest
        if perl_true(current) and perl_true(digest) and current != digest:
            raise PveError(
                500, "detected modified configuration - file changed by other user? Try again."
            )
        section = state.config.get(storage_id)
        if section is None or not _section_is_usable(section):
            raise PveError(500, f"storage '{storage_id}' does not exist")
        if section.type != "pbs":
            raise PveError(500, f"the lab models updates of type 'pbs' only, not '{section.type}'")
        sensitive = _extract_sensitive(checked, deletes)
        opts = _check_config(checked, create=False)
        for key in deletes:
            opt = PBS_OPTIONS.get(key)
            if opt is None:
                raise PveError(500, f"no such option '{key}'")
            if not opt.optional:
                raise PveError(500, f"unable to delete required option '{key}'")
            if opt.fixed:  # pragma: no cover - PBS has no optional fixed option
                raise PveError(500, f"unable to delete fixed option '{key}'")
            if key in opts:
                raise PveError(500, f"cannot set and delete property '{key}' at the same time!")
        old = state.secrets.get(storage_id, StorageSecrets())
        secrets, returned = _on_update_hook(old, sensitive, opts, key_factory)
    except PveError as exc:
        raise PveError(500, prefix + exc.message) from exc

    settings = pbs_settings(section)
    for key in deletes:
        settings.pop(key, None)
    settings.update(opts)
    sections = [
        _pbs_section(storage_id, settings) if s.id == storage_id else s
        for s in state.config.sections
    ]
    all_secrets = dict(state.secrets)
    all_secrets[storage_id] = secrets
    new_state = state.with_sections(sections, all_secrets)
    return new_state, {"storage": storage_id, "type": "pbs", "config": returned}


def _on_update_hook(
    old: StorageSecrets,
    sensitive: Mapping[str, str | None],
    opts: dict[str, str],
    key_factory: KeyFactory,
) -> tuple[StorageSecrets, dict[str, object]]:
    returned: dict[str, object] = {}
    secrets = old
    if "password" in sensitive:
        secrets = replace(secrets, password=sensitive["password"])
    if "encryption-key" in sensitive:
        value = sensitive["encryption-key"]
        if value is None:
            secrets = replace(secrets, encryption_key=None)
        else:
            key, returned["encryption-key"] = _apply_encryption_key(value, opts, key_factory)
            secrets = replace(secrets, encryption_key=key)
    if "master-pubkey" in sensitive:
        value = sensitive["master-pubkey"]
        if value is None:
            secrets = replace(secrets, master_pubkey=None)
        else:
            secrets = replace(secrets, master_pubkey=_decode_base64(value))
            opts["master-pubkey"] = "1"
    return secrets, returned


def delete_storage(state: StorageState, params: Params) -> StorageState:
    """DELETE /storage/{storage}; the PBS hook removes the secret files too."""
    checked = validate(params, DELETE_SCHEMA)
    storage_id = str(checked["storage"])
    prefix = "delete storage failed: "
    section = state.config.get(storage_id)
    if section is None or not _section_is_usable(section):
        raise PveError(500, f"{prefix}storage '{storage_id}' does not exist")
    for other in state.config.sections:
        base = other.option("base")
        if base is not None and base.startswith(f"{storage_id}:"):
            raise PveError(
                500, f"{prefix}can't remove storage - storage is used as base of another storage"
            )
    all_secrets = dict(state.secrets)
    if section.type == "pbs":
        all_secrets.pop(storage_id, None)
    sections = [s for s in state.config.sections if s.id != storage_id]
    return state.with_sections(sections, all_secrets)


def touch_other_storage(state: StorageState) -> StorageState:
    """Play a second admin saving storage.cfg: same meaning, different bytes, new digest.

    PVE writes `content` and `nodes` in Perl hash order, so any save can reorder them; this
    rotates the content list of the first non-pbs entry that has two or more types (the
    `local` dir storage normally), else toggles a `shared 0` line on it.
    """
    sections = list(state.config.sections)
    for i, sec in enumerate(sections):
        content = sec.option("content")
        if sec.type != "pbs" and content and len(split_list(content)) > 1:
            items = split_list(content)
            rotated = ",".join([*items[1:], items[0]])
            options = tuple((k, rotated if k == "content" else v) for k, v in sec.options)
            sections[i] = replace(sec, options=options, implicit=False)
            return state.with_sections(sections)
    for i, sec in enumerate(sections):
        if sec.type != "pbs":
            if sec.has_option("shared"):
                options = tuple((k, v) for k, v in sec.options if k != "shared")
            else:
                options = (*sec.options, ("shared", "0"))
            sections[i] = replace(sec, options=options, implicit=False)
            return state.with_sections(sections)
    return state.with_sections(sections)  # pragma: no cover - `local` always exists


def _text(value: Value) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return ",".join(value)
