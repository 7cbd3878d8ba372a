"""The typed, immutable config model: what the YAML declares, validated the way PVE and PBS will.

Validation is deliberately as strict as Proxmox itself (storage-ID syntax, fingerprint pattern,
content types PBS keeps): anything PVE would reject or silently rewrite would otherwise show up
as drift on every run, forever.
"""

from __future__ import annotations

import ipaddress
import re
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

STORAGE_ID_RE = re.compile(r"^[a-z][a-z0-9\-_.]*[a-z0-9]$", re.IGNORECASE)
FINGERPRINT_RE = re.compile(r"^([A-Fa-f0-9]{2}:){31}[A-Fa-f0-9]{2}$")
NODE_NAME_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$")
# PBS auth ids: user@realm or user@realm!tokenname (pbs-api-types; PBSPlugin.pm).
USERNAME_RE = re.compile(
    r"^[^\s:/\x00-\x1f\x7f@!]+@[A-Za-z0-9_][A-Za-z0-9._\-]*(![A-Za-z0-9_][A-Za-z0-9._\-]*)?$"
)
DATASTORE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._\-]{2,31}$")
NS_PART_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._\-]{0,31}$")
HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}\.?$)([A-Za-z0-9_]([A-Za-z0-9_\-]{0,61}[A-Za-z0-9])?)"
    r"(\.[A-Za-z0-9_]([A-Za-z0-9_\-]{0,61}[A-Za-z0-9])?)*\.?$"
)

PRUNE_KEYS = (
    "keep_last",
    "keep_hourly",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "keep_yearly",
    "keep_all",
)


def _storage_id(value: str) -> str:
    if len(value) < 2:
        raise ValueError(f"storage ID '{value}' cannot be shorter than 2 characters")
    if not STORAGE_ID_RE.match(value):
        raise ValueError(
            f"storage ID '{value}' contains illegal characters: start with a letter, then letters, "
            "digits, '-', '_' or '.', and end with a letter or digit"
        )
    return value


def _fingerprint(value: str) -> str:
    if not FINGERPRINT_RE.match(value):
        raise ValueError(
            "must be 32 colon-separated hex bytes (SHA-256), like '54:52:3A:...:D1:54'; "
            "get it with `pbs fingerprint HOST`"
        )
    return value.upper()


def _server(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not HOSTNAME_RE.match(value):
            raise ValueError(
                f"'{value}' is neither a host name nor an IPv4/IPv6 address "
                "(write IPv6 without brackets, and the port in `port:`)"
            ) from None
    return value


def _username(value: str) -> str:
    if not USERNAME_RE.match(value):
        raise ValueError(
            f"'{value}' is not a PBS user or token id; write `user@realm` (e.g. root@pam) or "
            "`user@realm!tokenname`"
        )
    return value


def _datastore(value: str) -> str:
    if not DATASTORE_RE.match(value):
        raise ValueError(
            f"'{value}' is not a valid PBS datastore name (3 to 32 letters, digits, '.', '_', '-')"
        )
    return value


def _namespace(value: str) -> str:
    parts = value.split("/")
    if len(value) > 256 or len(parts) > 7 or not all(NS_PART_RE.match(p) for p in parts):
        raise ValueError(
            f"'{value}' is not a valid PBS namespace: up to 7 levels like `prod/vms`, each 1 to 32 "
            "letters, digits, '.', '_', '-'"
        )
    return value


def _node(value: str) -> str:
    if not NODE_NAME_RE.match(value):
        raise ValueError(f"'{value}' is not a valid node name")
    return value


def _as_list(value: object) -> object:
    """Accept `content: backup` as shorthand for `content: [backup]`, and lists from Python."""
    if isinstance(value, str):
        return (value,)
    return tuple(value) if isinstance(value, list) else value


StorageId = Annotated[str, AfterValidator(_storage_id)]
Fingerprint = Annotated[str, AfterValidator(_fingerprint)]
Server = Annotated[str, AfterValidator(_server)]
Username = Annotated[str, AfterValidator(_username)]
Datastore = Annotated[str, AfterValidator(_datastore)]
Namespace = Annotated[str, AfterValidator(_namespace)]
NodeName = Annotated[str, AfterValidator(_node)]
ContentType = Literal["backup", "none"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class PruneBackups(_Frozen):
    """Retention as PVE's `prune-backups` property; unset keys are not sent."""

    keep_last: Annotated[int, Field(ge=0)] | None = None
    keep_hourly: Annotated[int, Field(ge=0)] | None = None
    keep_daily: Annotated[int, Field(ge=0)] | None = None
    keep_weekly: Annotated[int, Field(ge=0)] | None = None
    keep_monthly: Annotated[int, Field(ge=0)] | None = None
    keep_yearly: Annotated[int, Field(ge=0)] | None = None
    keep_all: bool | None = None

    @model_validator(mode="after")
    def _keep_all_alone(self) -> PruneBackups:
        others = [k for k in PRUNE_KEYS[:-1] if getattr(self, k)]
        if self.keep_all and others:
            raise ValueError(
                f"keep_all cannot be combined with {', '.join(others)}: keep everything, or "
                "remove keep_all and keep the others"
            )
        return self

    def items(self) -> list[tuple[str, int]]:
        """The set keys in PVE's order, booleans as 0/1."""
        result: list[tuple[str, int]] = []
        for key in PRUNE_KEYS:
            value = getattr(self, key)
            if value is not None:
                result.append((key, int(value)))
        return result


class StorageSpec(_Frozen):
    """One declared `type: pbs` storage entry."""

    name: StorageId
    server: Server
    datastore: Datastore
    fingerprint: Fingerprint
    enabled: bool = True
    content: Annotated[tuple[ContentType, ...], BeforeValidator(_as_list)] = ("backup",)
    username: Username = "root@pam"
    port: Annotated[int, Field(ge=1, le=65535)] = 8007
    namespace: Namespace | None = None
    nodes: Annotated[tuple[NodeName, ...], BeforeValidator(_as_list)] | None = None
    max_protected_backups: Annotated[int, Field(ge=-1)] | None = None
    prune_backups: PruneBackups | None = None
    description: str | None = None
    # Resolved by the loader from `${ENV}` or `password_file`; never a literal in the YAML.
    password: SecretStr | None = None

    @field_validator("content")
    @classmethod
    def _content_rules(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("must list at least one content type: [backup] or [none]")
        if "none" in value and len(set(value)) > 1:
            raise ValueError("unable to combine 'none' with other content types")
        return tuple(sorted(set(value)))

    @field_validator("nodes")
    @classmethod
    def _nodes_rules(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and not value:
            raise ValueError("an empty list would mean no node; leave `nodes` out for all nodes")
        return None if value is None else tuple(sorted(set(value)))


class PveSettings(_Frozen):
    """How to reach the PVE cluster. Secrets are resolved by the loader, never literals."""

    url: str | None = None
    token_id: str | None = None
    token_secret: SecretStr | None = None
    user: str | None = None
    password: SecretStr | None = None
    verify_ssl: bool = True
    ca_file: Path | None = None
    timeout: Annotated[float, Field(gt=0, le=600)] = 10.0

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.match(r"^https://[^/\s]+(:\d+)?/?$", value) and not HOSTNAME_RE.match(value):
            raise ValueError(
                f"'{value}' is not a PVE address; write `https://pve1.example:8006` or a host name"
            )
        return value

    @field_validator("token_id")
    @classmethod
    def _token_id(cls, value: str | None) -> str | None:
        if value is not None and not re.match(
            r"^[^\s:/]+@[A-Za-z][\w.\-]+![A-Za-z][\w.\-]+$", value
        ):
            raise ValueError(f"'{value}' is not an API token id; write `user@realm!tokenname`")
        return value

    @model_validator(mode="after")
    def _credentials_in_pairs(self) -> PveSettings:
        """Half a credential is a mistake, not a wish to run without one."""
        pairs = (("token_id", "token_secret"), ("user", "password"))
        for one, other in pairs:
            given = getattr(self, one) is not None
            if given != (getattr(self, other) is not None):
                have, lack = (one, other) if given else (other, one)
                raise ValueError(
                    f"`{have}` is given without `{lack}`: set both (an API token is `token_id` "
                    "plus `token_secret`, a login is `user` plus `password`), or neither"
                )
        return self


def _nameserver(value: str) -> str:
    parse_nameserver(value)
    return value


def parse_nameserver(value: str) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]:port` or a bare IPv6 address -> (address, port)."""
    host, port = value, 53
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest:
            if not re.fullmatch(r":[0-9]{1,5}", rest):
                raise ValueError(f"'{value}' is not `[address]:port`")
            port = int(rest[1:])
    elif value.count(":") == 1:
        host, _, text = value.partition(":")
        if not re.fullmatch(r"[0-9]{1,5}", text):
            raise ValueError(f"'{value}': the port after ':' must be a number")
        port = int(text)
    if not 1 <= port <= 65535:
        raise ValueError(f"'{value}': port {port} is outside 1-65535")
    _server(host)
    return host, port


class DnsSettings(_Frozen):
    """Which resolvers the DNS check asks; empty means the system's resolver."""

    nameservers: tuple[Annotated[str, AfterValidator(_nameserver)], ...] = ()
    timeout: Annotated[float, Field(gt=0, le=60)] = 2.0

    @property
    def addresses(self) -> tuple[tuple[str, int], ...]:
        return tuple(parse_nameserver(ns) for ns in self.nameservers)


class ComplianceConfig(_Frozen):
    """The whole declaration: the desired state plus how to reach and probe it."""

    source: Path
    pve: PveSettings = PveSettings()
    dns: DnsSettings = DnsSettings()
    storages: tuple[StorageSpec, ...] = ()

    @cached_property
    def _by_name(self) -> dict[str, StorageSpec]:
        return {spec.name: spec for spec in self.storages}

    def storage(self, name: str) -> StorageSpec:
        """The declared storage of that name (KeyError when there is none)."""
        return self._by_name[name]
