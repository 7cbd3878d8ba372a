"""PVE's parameter schema check for the storage endpoints (`PVE::JSONSchema::validate`).

The properties are the data of pve-docs `apidata.js` (the reference `pve-apidata-storage.json`);
the checks, their order and their texts follow `PVE::JSONSchema::check_prop`: type, then
format, then pattern, length, numeric range, enum. Every failing parameter gets one entry in
the `errors` dict of a 400 `Parameter verification failed.`
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pbs_compliance.lab.pve_errors import PveError, param_error

__all__ = [
    "CONTENT_TYPES",
    "CREATE_SCHEMA",
    "DELETE_SCHEMA",
    "READ_SCHEMA",
    "STORAGE_PROPERTIES",
    "STORAGE_TYPES",
    "UPDATE_SCHEMA",
    "Params",
    "Prop",
    "Value",
    "is_integer",
    "parse_prune_backups",
    "perl_true",
    "split_list",
    "validate",
]

Value = str | list[str] | None
"""A decoded wire value: text, a repeated key's values, or undefined (`key` without `=`)."""
Params = Mapping[str, Value]

STORAGE_TYPES = (
    "btrfs", "cephfs", "cifs", "dir", "esxi", "iscsi", "iscsidirect",
    "lvm", "lvmthin", "nfs", "pbs", "rbd", "zfs", "zfspool",
)  # fmt: skip
# `valid_content_types('dir')`: the dir plugin accepts every generic content type.
CONTENT_TYPES = frozenset(
    {"images", "rootdir", "vztmpl", "iso", "backup", "snippets", "none", "import"}
)


@dataclass(frozen=True)
class Prop:
    """One parameter's JSON-schema entry, reduced to what the check looks at."""

    type: str
    optional: bool = True
    format: str | None = None
    pattern: str | None = None
    enum: tuple[str, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = None
    min_length: int | None = None


_S = Prop("string")
_B = Prop("boolean")
_PATH = Prop("string", format="pve-storage-path")
_VGNAME = Prop("string", format="pve-storage-vgname")
_FP = "([A-Fa-f0-9]{2}:){31}[A-Fa-f0-9]{2}"

STORAGE_PROPERTIES: Mapping[str, Prop] = {
    "authsupported": _S,
    "base": Prop("string", format="pve-volume-id"),
    "blocksize": _S,
    "bwlimit": Prop("string", format="bwlimit"),
    "comstar_hg": _S,
    "comstar_tg": _S,
    "content": Prop("string", format="pve-storage-content-list"),
    "content-dirs": Prop("string", format="pve-dir-override-list"),
    "create-base-path": _B,
    "create-subdirs": _B,
    "data-pool": _S,
    "datastore": _S,
    "disable": _B,
    "domain": Prop("string", max_length=256),
    "encryption-key": _S,
    "export": _PATH,
    "fingerprint": Prop("string", pattern=_FP),
    "format": Prop("string", enum=("raw", "qcow2", "subvol", "vmdk")),
    "fs-name": Prop("string", format="pve-configid"),
    "fuse": _B,
    "is_mountpoint": _S,
    "iscsiprovider": _S,
    "keyring": _S,
    "krbd": _B,
    "lio_tpg": _S,
    "master-pubkey": _S,
    "max-protected-backups": Prop("integer", minimum=-1),
    "mkdir": _B,
    "monhost": Prop("string", format="pve-storage-portal-dns-list"),
    "mountpoint": _PATH,
    "namespace": _S,
    "nocow": _B,
    "nodes": Prop("string", format="pve-node-list"),
    "nowritecache": _B,
    "options": Prop("string", format="pve-storage-options"),
    "password": Prop("string", max_length=256),
    "path": _PATH,
    "pool": _S,
    "port": Prop("integer", minimum=1, maximum=65535),
    "portal": Prop("string", format="pve-storage-portal-dns"),
    "preallocation": Prop("string", enum=("off", "metadata", "falloc", "full")),
    "prune-backups": Prop("string", format="prune-backups"),
    "saferemove": _B,
    "saferemove-stepsize": Prop("integer", enum=("1", "2", "4", "8", "16", "32")),
    "saferemove_throughput": _S,
    "server": Prop("string", format="pve-storage-server"),
    "share": _S,
    "shared": _B,
    "skip-cert-verification": _B,
    "smbversion": Prop("string", enum=("default", "2.0", "2.1", "3", "3.0", "3.11")),
    "snapshot-as-volume-chain": _B,
    "sparse": _B,
    "subdir": _PATH,
    "tagged_only": _B,
    "target": _S,
    "thinpool": _VGNAME,
    "username": _S,
    "vgname": _VGNAME,
    "zfs-base-path": _PATH,
}

_STORAGE_ID = Prop("string", optional=False, format="pve-storage-id")
# Create-only properties: fixed in every plugin that has them, so absent from the PUT schema.
_CREATE_ONLY = frozenset(
    {"authsupported", "base", "datastore", "export", "iscsiprovider", "path", "portal",
     "share", "target", "thinpool", "vgname"}
)  # fmt: skip

CREATE_SCHEMA: Mapping[str, Prop] = {
    **STORAGE_PROPERTIES,
    "storage": _STORAGE_ID,
    "type": Prop("string", optional=False, enum=STORAGE_TYPES),
}
UPDATE_SCHEMA: Mapping[str, Prop] = {
    **{k: v for k, v in STORAGE_PROPERTIES.items() if k not in _CREATE_ONLY},
    "storage": _STORAGE_ID,
    "delete": Prop("string", format="pve-configid-list", max_length=4096),
    "digest": Prop("string", max_length=64),
}
READ_SCHEMA: Mapping[str, Prop] = {"storage": _STORAGE_ID}
DELETE_SCHEMA = READ_SCHEMA

_MISSING = "property is missing and it is not optional"
_UNDEFINED = "property is not defined in schema and the schema does not allow additional properties"


def validate(params: Params, schema: Mapping[str, Prop]) -> dict[str, Value]:
    """Check `params` against `schema`; raise PVE's 400 with every failing parameter.

    Returns the params after PVE's legacy normalisation: a repeated key of a `*-list`
    format is joined with commas.
    """
    normalized = normalize_lists(params, schema)
    errors: dict[str, str] = {}
    for key, prop in schema.items():
        msg = check_prop(normalized.get(key), prop, key)
        if msg is not None:
            _add_error(errors, key, msg)
    for key in normalized:
        if key not in schema:
            _add_error(errors, key, _UNDEFINED)
    if errors:
        raise param_error(errors)
    return normalized


def normalize_lists(params: Params, schema: Mapping[str, Prop]) -> dict[str, Value]:
    out: dict[str, Value] = {}
    for key, value in params.items():
        prop = schema.get(key)
        fmt = prop.format if prop else None
        if isinstance(value, list) and fmt is not None and fmt.endswith("-list"):
            out[key] = ",".join(value)
        else:
            out[key] = value
    return out


def _add_error(errors: dict[str, str], key: str, msg: str) -> None:
    # PVE joins several messages for one key with a literal backslash-n.
    errors[key] = f"{errors[key]}\\n{msg}" if key in errors else msg


def check_prop(value: Value, prop: Prop, path: str = "") -> str | None:
    """The first failing check's message for one value, or None when it passes."""
    if value is None:
        return None if prop.optional else _MISSING
    if isinstance(value, list):
        return f"type check ('{prop.type}') failed - got ARRAY"
    type_error = _check_type(value, prop.type)
    if type_error:
        return type_error
    if prop.format is not None:
        fmt_error = check_format(prop.format, value, path)
        if fmt_error is not None:
            return f"invalid format - {fmt_error}"
    if prop.pattern is not None and not re.match(f"^(?:{prop.pattern})$", value):
        return "value does not match the regex pattern"
    if prop.max_length is not None and len(value) > prop.max_length:
        return f"value may only be {prop.max_length} characters long"
    if prop.min_length is not None and len(value) < prop.min_length:
        return f"value must be at least {prop.min_length} characters long"
    if _is_number(value):
        number = float(value)
        if prop.maximum is not None and number > prop.maximum:
            return f"value must have a maximum value of {prop.maximum}"
        if prop.minimum is not None and number < prop.minimum:
            return f"value must have a minimum value of {prop.minimum}"
    if prop.enum is not None and value not in prop.enum:
        return f"value '{value}' does not have a value in the enumeration '{', '.join(prop.enum)}'"
    return None


def _check_type(value: str, type_name: str) -> str | None:
    if type_name == "boolean" and value not in ("0", "1"):
        return f"type check ('boolean') failed - got '{value}'"
    if type_name == "integer" and not is_integer(value):
        return f"type check ('integer') failed - got '{value}'"
    if type_name == "number" and not _is_number(value):
        return f"type check ('number') failed - got '{value}'"
    return None


def is_integer(value: str) -> bool:
    return re.match(r"^[+-]?\d+$", value) is not None


def _is_number(value: str) -> bool:
    return re.match(r"^[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?$", value) is not None


def perl_true(value: str | None) -> bool:
    """Perl truthiness of a scalar: undef, '' and '0' are false."""
    return value is not None and value not in ("", "0")


def split_list(text: str | None) -> list[str]:
    """`PVE::Tools::split_list`: NUL-separated, else split on commas, semicolons, whitespace."""
    text = text or ""
    if "\0" in text:
        return text.split("\0")
    return re.sub(r"[,;]", " ", text).split()


# ---- formats: each returns PVE's `die` text (newline-terminated) or None -------------------

_IPV4_OCTET = r"(?:25[0-5]|(?:2[0-4]|1[0-9]|[1-9])?[0-9])"
_IPV4_RE = re.compile(rf"^(?:{_IPV4_OCTET}\.){{3}}{_IPV4_OCTET}$")
_DNS_LABEL = r"([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)"
_DNS_RE = re.compile(rf"^({_DNS_LABEL}\.)*{_DNS_LABEL}$")
_NODE_RE = re.compile(r"^([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)$")
_CONFIGID_RE = re.compile(r"^[a-z][a-z0-9_-]+$", re.IGNORECASE)
_STORAGE_ID_RE = re.compile(r"^[a-z][a-z0-9\-_.]*[a-z0-9]$", re.IGNORECASE)
_VGNAME_RE = re.compile(r"^[a-zA-Z0-9.+_][a-zA-Z0-9.+_\-]*$")


def _is_ip(value: str) -> bool:
    if _IPV4_RE.match(value):
        return True
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


def _storage_id(value: str) -> str | None:
    if len(value) < 2:
        return f"storage ID '{value}' cannot be shorter than 2 characters\n"
    if not _STORAGE_ID_RE.match(value):
        return f"storage ID '{value}' contains illegal characters\n"
    return None


def _server(value: str) -> str | None:
    if _is_ip(value) or _DNS_RE.match(value):
        return None
    return "value does not look like a valid server name or IP address\n"


def _content(value: str) -> str | None:
    if value == "" or value in CONTENT_TYPES:
        return None
    return f"invalid content type '{value}'\n"


def _node(value: str) -> str | None:
    return None if _NODE_RE.match(value) else "value does not look like a valid node name\n"


def _configid(value: str) -> str | None:
    return None if _CONFIGID_RE.match(value) else f"invalid configuration ID '{value}'\n"


def _path(value: str) -> str | None:
    if re.match(r"^/[^;()]+", value):
        return None
    return "value does not look like a valid absolute path\n"


def _vgname(value: str) -> str | None:
    if _VGNAME_RE.match(value):
        return None
    return "value does not look like a valid volume group name\n"


def _portal(value: str) -> str | None:
    host, _, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
    if (_is_ip(host) or _DNS_RE.match(host)) and (port == "" or port.isdigit()):
        return None
    return f"value does not look like a valid portal address: '{value}'\n"


def _lenient(_value: str) -> str | None:
    """Formats of other storage types that PBS never accepts anyway; not modelled further."""
    return None


_FORMATS: Mapping[str, Callable[[str], str | None]] = {
    "pve-storage-id": _storage_id,
    "pve-storage-server": _server,
    "pve-storage-content": _content,
    "pve-node": _node,
    "pve-configid": _configid,
    "pve-storage-path": _path,
    "pve-storage-vgname": _vgname,
    "pve-storage-portal-dns": _portal,
    "pve-volume-id": _lenient,
    "pve-dir-override": _lenient,
    "pve-storage-options": _lenient,
    "bwlimit": _lenient,
}


def check_format(fmt: str, value: str, path: str) -> str | None:
    """`PVE::JSONSchema::check_format`: `-list` formats check each `split_list` item."""
    if fmt == "prune-backups":
        try:
            parse_prune_backups(value, path)
        except PveError as exc:
            return _stringify(exc)
        return None
    base, is_list = (fmt[: -len("-list")], True) if fmt.endswith("-list") else (fmt, False)
    check = _FORMATS[base]
    for item in split_list(value) if is_list else [value]:
        err = check(item)
        if err is not None:
            return err
    return None


def _stringify(exc: PveError) -> str:
    """`PVE::Exception` as text: message, then one `key: error` line per parameter error."""
    text = exc.message
    for key, msg in (exc.errors or {}).items():
        text += f"{key}: {msg}\n"
    return text


_PRUNE_KEYS: Mapping[str, str] = {
    "keep-all": "boolean",
    "keep-last": "integer",
    "keep-hourly": "integer",
    "keep-daily": "integer",
    "keep-weekly": "integer",
    "keep-monthly": "integer",
    "keep-yearly": "integer",
}
# `PVE::JSONSchema::parse_boolean`, applied to boolean keys inside property strings only.
_PERL_BOOL = {"1": "1", "on": "1", "yes": "1", "true": "1"} | {
    "0": "0", "off": "0", "no": "0", "false": "0"
}  # fmt: skip


def parse_prune_backups(value: str, path: str = "prune-backups") -> dict[str, int]:
    """Parse and validate a `prune-backups` property string as PVE does.

    Raises PveError (status 0: a plain message) with PVE's text on the first problem. Returns
    the effective settings: `{'keep-all': 1}` when nothing positive is kept.
    """
    parsed: dict[str, str] = {}
    for part in value.split(","):
        if re.match(r"^\s*$", part):
            continue
        kv = re.match(r"^([^=]+)=(.+)$", part, re.DOTALL)
        if kv:
            key, val = kv.group(1), kv.group(2)
            if key in parsed:
                raise PveError(0, f"duplicate key in comma-separated list property: {key}")
            if key not in _PRUNE_KEYS:
                raise PveError(0, f"invalid key in comma-separated list property: {key}")
            if _PRUNE_KEYS[key] == "boolean":
                val = _PERL_BOOL.get(val.lower(), val)
            parsed[key] = val
        elif "=" not in part:
            raise PveError(0, "value without key, but schema does not define a default key")
        else:
            raise PveError(0, "missing key in comma-separated list property")
    errors: dict[str, str] = {}
    for key, type_name in _PRUNE_KEYS.items():
        if key in parsed:
            prop = Prop(type_name, minimum=0 if type_name == "integer" else None)
            msg = check_prop(parsed[key], prop)
            if msg is not None:
                _add_error(errors, f"{path}.{key}" if path else key, msg)
    if errors:
        raise PveError(0, "format error", errors)
    keep = {k: int(v) for k, v in parsed.items() if k != "keep-all"}
    if not any(v > 0 for v in keep.values()):
        return {"keep-all": 1}
    if parsed.get("keep-all") == "1":
        raise PveError(0, "keep-all cannot be set together with other options.")
    return keep
