"""The typed, immutable config model: what the YAML declares, validated the way PVE and PBS will.

Validation is deliberately as strict as Proxmox itself (storage-ID syntax, fingerprint pattern,
content types PBS keeps): anything PVE would reject or silently rewrite would otherwise show up
as drift on every run, forever.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
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

from pbs_compliance.config.waiver_model import Waiver

# Every pattern is used with `fullmatch`: `re.match(...$)` also accepts a final newline, which PVE
# then writes into storage.cfg. Classes spell out ASCII ranges and never use IGNORECASE, under
# which U+017F (long s) matches `s` and U+212A (Kelvin sign) matches `k`.
# pve-storage-id (JSONSchema.pm parse_id: /^[a-z][a-z0-9\-\_\.]*[a-z0-9]$/i).
STORAGE_ID_RE = re.compile(r"[A-Za-z][A-Za-z0-9\-_.]*[A-Za-z0-9]", re.ASCII)
# fingerprint-sha256 (JSONSchema.pm).
FINGERPRINT_RE = re.compile(r"([A-Fa-f0-9]{2}:){31}[A-Fa-f0-9]{2}", re.ASCII)
# pve-node (JSONSchema.pm pve_verify_node_name).
NODE_NAME_RE = re.compile(r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?", re.ASCII)
# PBS auth ids: user@realm or user@realm!tokenname (pbs-api-types; PBSPlugin.pm). The user name
# is `[^\s:/\p{Cntrl}]+` there, so it may hold any other (Unicode) character, as PBS allows.
USERNAME_RE = re.compile(
    r"[^\s:/\x00-\x1f\x7f-\x9f@!]+@[A-Za-z0-9_][A-Za-z0-9._\-]*(![A-Za-z0-9_][A-Za-z0-9._\-]*)?"
)
# PBS safe ids (pbs-api-types DATASTORE_SCHEMA: 3 to 32 characters; namespace parts 1 to 32).
DATASTORE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._\-]{2,31}", re.ASCII)
NS_PART_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._\-]{0,31}", re.ASCII)
# dns-name (JSONSchema.pm pve_verify_dns_name), which pve-storage-server accepts besides an IP:
# no `_`, no final dot. Plus DNS's own limits (63 per label, 253 in all): longer never resolves.
HOSTNAME_RE = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)*",
    re.ASCII | re.DOTALL,
)
IP_TEXT_RE = re.compile(r"[0-9A-Fa-f:.]+", re.ASCII)  # no IPv6 zone (`%eth0`): PVE has none
# pve-userid and PVE API token ids (AccessControl.pm): user `[^\s:/]+`, realm and token name
# `[A-Za-z][A-Za-z0-9.\-_]+`.
PVE_USER_RE = re.compile(r"[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+")
PVE_TOKEN_ID_RE = re.compile(r"[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+![A-Za-z][A-Za-z0-9.\-_]+")
PVE_URL_RE = re.compile(r"https://(\[[^\]]*\]|[^/\[\]:]*)(:[0-9]{1,5})?/?", re.ASCII | re.DOTALL)

PRUNE_KEYS = (
    "keep_last",
    "keep_hourly",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "keep_yearly",
    "keep_all",
)


def _shown(value: str) -> str:
    """The value quoted for a message, invisible characters escaped: 'pbs1\\n', 'pb\\u017f1'."""
    text = ascii(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _plain(value: str, what: str) -> None:
    """Reject what no Proxmox name holds, explaining it: a line break, a look-alike letter."""
    if "\n" in value or "\r" in value:
        body = value.rstrip("\r\n")
        where = "ends in" if body and "\n" not in body and "\r" not in body else "contains"
        raise ValueError(
            f"{what} {_shown(value)} {where} a line break; write it on one line, without one "
            '(a `|` block or a "\\n" escape adds it, and so may a ${VAR})'
        )
    for char in value:
        if not char.isascii():
            name = unicodedata.name(char, "unnamed")
            raise ValueError(
                f"{what} {_shown(value)} contains U+{ord(char):04X} ({name}), which is not ASCII; "
                "Proxmox names are plain ASCII letters, digits and punctuation"
            )
        if not char.isprintable():
            raise ValueError(
                f"{what} {_shown(value)} contains the control character U+{ord(char):04X}"
            )


@dataclass(frozen=True)
class _Rule:
    """A validator of one Proxmox name: `_plain`'s rules, then `valid(value)` or a ValueError
    with `problem` (`{value}` in it is the value as `_shown` shows it). `unicode`: the name may
    hold any printable character (a PBS user name), only a line break is refused first.

    An object, not a closure: the rules are built at import, and mutation testing (mutmut)
    switches a mutant on only in code called later, such as this `__call__`."""

    what: str
    valid: Callable[[str], object]
    problem: str
    unicode: bool = False

    def __call__(self, value: str) -> str:
        if not self.unicode or "\n" in value or "\r" in value:
            _plain(value, self.what)
        if not self.valid(value):
            raise ValueError(self.problem.format(value=_shown(value)))
        return value


def _storage_id_ok(value: str) -> bool:
    if len(value) < 2:
        raise ValueError(f"storage ID {_shown(value)} cannot be shorter than 2 characters")
    return STORAGE_ID_RE.fullmatch(value) is not None


def is_ip(value: str) -> bool:
    """An IPv4 or IPv6 address as PVE's `ip` format takes it (ASCII, no zone index)."""
    if not IP_TEXT_RE.fullmatch(value):
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _host_ok(value: str) -> bool:
    """pve-storage-server: an IP address or a DNS name (NFSPlugin.pm verify_server)."""
    return is_ip(value) or HOSTNAME_RE.fullmatch(value) is not None


def _namespace_ok(value: str) -> bool:
    # At most 7 levels of at most 32 characters: 230 in all, within PBS's 256.
    parts = value.split("/")
    return len(parts) <= 7 and all(NS_PART_RE.fullmatch(p) for p in parts)


_storage_id = _Rule(
    "storage ID",
    _storage_id_ok,
    "storage ID {value} contains illegal characters: start with a letter, then letters, digits, "
    "'-', '_' or '.', and end with a letter or digit",
)
_fingerprint = _Rule(
    "fingerprint",
    FINGERPRINT_RE.fullmatch,
    "must be 32 colon-separated hex bytes (SHA-256), like '54:52:3A:...:D1:54'; get it with "
    "`pbs fingerprint HOST`",
)
_server = _Rule(
    "server",
    _host_ok,
    "{value} is neither a host name nor an IPv4/IPv6 address (write IPv6 without brackets, and "
    "the port in `port:`)",
)
_username = _Rule(
    "username",
    USERNAME_RE.fullmatch,
    "{value} is not a PBS user or token id; write `user@realm` (e.g. root@pam) or "
    "`user@realm!tokenname`",
    unicode=True,
)
_datastore = _Rule(
    "datastore",
    DATASTORE_RE.fullmatch,
    "{value} is not a valid PBS datastore name (3 to 32 letters, digits, '.', '_', '-')",
)
_namespace = _Rule(
    "namespace",
    _namespace_ok,
    "{value} is not a valid PBS namespace: up to 7 levels like `prod/vms`, each 1 to 32 letters, "
    "digits, '.', '_', '-'",
)
_node = _Rule("node name", NODE_NAME_RE.fullmatch, "{value} is not a valid node name")


def _as_list(value: object) -> object:
    """Accept `content: backup` as shorthand for `content: [backup]`, and lists from Python."""
    if isinstance(value, str):
        return (value,)
    return tuple(value) if isinstance(value, list) else value


StorageId = Annotated[str, AfterValidator(_storage_id)]
Fingerprint = Annotated[str, AfterValidator(_fingerprint), AfterValidator(str.upper)]
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


# The backup health checks (issue #12) a storage can turn off with `backups: {skip: [...]}`.
HEALTH_CHECKS = ("datastore", "capacity", "backups", "verified")
HealthCheck = Literal["datastore", "capacity", "backups", "verified"]
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_RE = re.compile(r"(?:[0-9]{1,6}[smhdw])+", re.ASCII)
_DURATION_PART_RE = re.compile(r"([0-9]{1,6})([smhdw])", re.ASCII)
MAX_DURATION = dt.timedelta(days=3650)


def parse_duration(value: str) -> dt.timedelta:
    """`26h`, `36h`, `7d`, `90m`, `2w`, `1d12h` -> a timedelta (ValueError saying what is wrong)."""
    text = value.strip()
    if not _DURATION_RE.fullmatch(text):
        raise ValueError(f"{_shown(value)} is not a duration")
    seconds = sum(int(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART_RE.findall(text))
    if seconds == 0:
        raise ValueError(f"{_shown(value)} is no time at all: a duration must be longer than 0")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"{_shown(value)} is longer than 10 years (3650d)")
    return dt.timedelta(seconds=seconds)


def _duration(value: object) -> object:
    if isinstance(value, dt.timedelta):
        return value
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError(f"{value!r} is not a duration (a bare number has no unit)")


def format_duration(value: dt.timedelta) -> str:
    """The shortest spelling `parse_duration` reads back: 93600 s -> `26h`, 8 days -> `8d`."""
    seconds = int(value.total_seconds())
    for unit in ("w", "d", "h", "m"):
        size = _DURATION_UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


Duration = Annotated[dt.timedelta, BeforeValidator(_duration)]


class BackupHealth(_Frozen):
    """Thresholds of the backup health checks (`backups:` per storage or under `defaults:`).

    Never sent to PVE and never drift: they say what "healthy" means for this storage's backups.
    """

    max_age: Duration = dt.timedelta(hours=26)  # newest snapshot of each guest younger than this
    max_used_percent: Annotated[float, Field(gt=0, le=100)] = 90.0
    min_days_to_full: Annotated[int, Field(ge=0, le=3650)] = 30  # 0: ignore PBS's prediction
    require_verified: bool = False
    verify_max_age: Duration = dt.timedelta(days=8)
    skip: Annotated[tuple[HealthCheck, ...], BeforeValidator(_as_list)] = ()

    def judges(self, check: str) -> bool:
        """Whether the check runs for this storage (not listed under `skip`)."""
        return check not in self.skip


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
    backups: BackupHealth = BackupHealth()  # backup health thresholds; never sent to PVE
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


CLUSTER_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def _pve_address(value: str) -> bool:
    """`https://HOST[:PORT][/]` (HOST a DNS name, IPv4 or `[IPv6]`), or a bare DNS name or IPv4."""
    match = PVE_URL_RE.fullmatch(value)
    if match is None:
        return HOSTNAME_RE.fullmatch(value) is not None
    host, port = match.group(1), match.group(2)
    if host.startswith("["):
        host_ok = ":" in host and is_ip(host[1:-1])
    else:
        host_ok = is_ip(host) or HOSTNAME_RE.fullmatch(host) is not None
    return host_ok and (port is None or 1 <= int(port[1:]) <= 65535)


_url = _Rule(
    "url",
    _pve_address,
    "{value} is not a PVE address; write `https://pve1.example:8006` or a host name",
)
_cluster_name = _Rule(
    "name",
    CLUSTER_NAME_RE.fullmatch,
    "{value} is not a cluster name for reports; use 1 to 63 letters, digits, '.', '-' or '_', "
    "starting with a letter or digit, e.g. `site-a`",
)
_token_id = _Rule(
    "token_id",
    PVE_TOKEN_ID_RE.fullmatch,
    "{value} is not an API token id; write `user@realm!tokenname`",
    unicode=True,
)
_user = _Rule(
    "user",
    PVE_USER_RE.fullmatch,
    "{value} is not a PVE user id; write `user@realm`, e.g. `root@pam`",
    unicode=True,
)


class PveSettings(_Frozen):
    """How to reach the PVE cluster. Secrets are resolved by the loader, never literals."""

    url: Annotated[str, AfterValidator(_url)] | None = None
    # The cluster's name in reports (JUnit suite, HTML, Prometheus `cluster` label); default:
    # PVE's cluster name (`/cluster/status`), else the host of `url`.
    name: Annotated[str, AfterValidator(_cluster_name)] | None = None
    token_id: Annotated[str, AfterValidator(_token_id)] | None = None
    token_secret: SecretStr | None = None
    user: Annotated[str, AfterValidator(_user)] | None = None
    password: SecretStr | None = None
    verify_ssl: bool = True
    ca_file: Path | None = None
    timeout: Annotated[float, Field(gt=0, le=600)] = 10.0

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


# pve-configid (a backup job's id) and pve-tag (JSONSchema.pm).
JOB_ID_RE = re.compile(r"[A-Za-z][A-Za-z0-9_\-]+", re.ASCII)
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-+.]*", re.ASCII)
Vmid = Annotated[int, Field(ge=100, le=999_999_999)]  # pve-vmid


def _one_or_list(value: object) -> object:
    """`exclude: 9000` as shorthand for `exclude: [9000]` (and `_as_list`'s cases)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    return _as_list(value)


_tag = _Rule(
    "tag",
    TAG_RE.fullmatch,
    "{value} is not a PVE tag (letters, digits, '_', then also '-', '+', '.')",
)


class CoverageSettings(_Frozen):
    """Guests the `coverage` check exempts: they must not (or need not) be backed up."""

    exclude: Annotated[tuple[Vmid, ...], BeforeValidator(_one_or_list)] = ()
    exclude_tags: Annotated[
        tuple[Annotated[str, AfterValidator(_tag)], ...], BeforeValidator(_as_list)
    ] = ()


class JobSettings(_Frozen):
    """How the `jobs` check judges each backup job's last run on each node."""

    # Added to each job's period (its schedule's longest gap): a daily job may be 26h old.
    slack: Duration = dt.timedelta(hours=2)
    # Per job id: the age its last run may have instead of period + slack.
    max_age: dict[str, Duration] = Field(default_factory=dict)
    allow_warnings: bool = False  # a run that ended `WARNINGS: n` passes

    @field_validator("max_age")
    @classmethod
    def _job_ids(cls, value: dict[str, dt.timedelta]) -> dict[str, dt.timedelta]:
        for key in value:
            _plain(key, "job id")
            if not JOB_ID_RE.fullmatch(key):
                raise ValueError(
                    f"{_shown(key)} is not a backup job id: a letter, then letters, digits, "
                    "'-' or '_' (the ID column of Datacenter > Backup, e.g. backup-3f2a9c1e-8b7d)"
                )
        return value

    def allowed_age(self, job_id: str, period: dt.timedelta | None) -> dt.timedelta | None:
        """How old a job's last run may be: its `max_age`, else period + slack (None: neither
        is known, a schedule that does not repeat)."""
        if job_id in self.max_age:
            return self.max_age[job_id]
        return None if period is None else period + self.slack


class ComplianceConfig(_Frozen):
    """The whole declaration: the desired state plus how to reach and probe it."""

    source: Path
    pve: PveSettings = PveSettings()
    dns: DnsSettings = DnsSettings()
    storages: tuple[StorageSpec, ...] = ()
    coverage: CoverageSettings = CoverageSettings()
    jobs: JobSettings = JobSettings()
    waivers: tuple[Waiver, ...] = ()  # known failures accepted until a date (`waivers:`)

    @cached_property
    def _by_name(self) -> dict[str, StorageSpec]:
        return {spec.name: spec for spec in self.storages}

    def storage(self, name: str) -> StorageSpec:
        """The declared storage of that name (KeyError when there is none)."""
        return self._by_name[name]
