"""One precedence order for run settings: command-line option, then environment, then config file.

The pytest plugin and the CLI both resolve through here, so `--pve-url`, `PBS_COMPLIANCE_PVE_URL`
and `pve.url` mean the same thing everywhere, and a bad value names where it came from.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydantic import SecretStr, ValidationError

from pbs_compliance.config import ComplianceConfig, parse_nameserver
from pbs_compliance.config.model import PVE_TOKEN_ID_RE, PveSettings

N = TypeVar("N", int, float)

DEFAULT_CONFIG = Path("config/pbs-storage.yaml")
DEFAULT_PROBE_TIMEOUT = 3.0
DEFAULT_CERT_EXPIRY_DAYS = 30

ENV_CONFIG = "PBS_COMPLIANCE_CONFIG"
ENV_PVE_URL = "PBS_COMPLIANCE_PVE_URL"
ENV_TOKEN_ID = "PBS_COMPLIANCE_PVE_TOKEN_ID"
ENV_TOKEN_SECRET = "PBS_COMPLIANCE_PVE_TOKEN_SECRET"
ENV_DNS = "PBS_COMPLIANCE_DNS_SERVERS"
ENV_PROBE_TIMEOUT = "PBS_COMPLIANCE_PROBE_TIMEOUT"
ENV_CERT_EXPIRY_DAYS = "PBS_COMPLIANCE_CERT_EXPIRY_DAYS"
# What no secret holds: a line break or another control character (a pasted `echo` output, a
# file read with its newline). Sent as is, it fails as a refused token with no hint why.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class SettingError(ValueError):
    """A run setting is unusable; the message says which source gave it."""


@dataclass(frozen=True)
class Overrides:
    """What the command line said (None = not given)."""

    config: str | None = None
    pve_url: str | None = None
    dns_servers: Sequence[str] = ()
    probe_timeout: float | None = None
    cert_expiry_days: int | None = None


@dataclass(frozen=True)
class RunSettings:
    config: ComplianceConfig
    pve: PveSettings
    nameservers: tuple[tuple[str, int], ...]
    probe_timeout: float
    cert_expiry_days: int
    origins: Mapping[str, str] = field(default_factory=dict)

    @property
    def has_pve_credentials(self) -> bool:
        pve = self.pve
        return bool(pve.url) and bool(
            (pve.token_id and pve.token_secret) or (pve.user and pve.password)
        )

    @property
    def secrets(self) -> list[str]:
        """Every secret this run knows, for redaction of anything shown."""
        values = [self.pve.token_secret, self.pve.password]
        values += [s.password for s in self.config.storages]
        return [v.get_secret_value() for v in values if v is not None]


def config_path(overrides: Overrides, environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if overrides.config:
        return Path(overrides.config)
    if env.get(ENV_CONFIG):
        return Path(env[ENV_CONFIG])
    return DEFAULT_CONFIG


def resolve(
    config: ComplianceConfig, overrides: Overrides, environ: Mapping[str, str] | None = None
) -> RunSettings:
    """Merge option > environment > file for everything that is not the desired state itself."""
    env = os.environ if environ is None else environ
    origins: dict[str, str] = {}
    pve = config.pve
    updates: dict[str, object] = {}
    if overrides.pve_url:
        updates["url"], origins["pve_url"] = _url(overrides.pve_url, "--pve-url"), "--pve-url"
    elif env.get(ENV_PVE_URL):
        updates["url"], origins["pve_url"] = _url(env[ENV_PVE_URL], ENV_PVE_URL), ENV_PVE_URL
    elif pve.url:
        origins["pve_url"] = f"{config.source} (pve.url)"
    if env.get(ENV_TOKEN_ID) and env.get(ENV_TOKEN_SECRET):
        if not PVE_TOKEN_ID_RE.fullmatch(env[ENV_TOKEN_ID]):
            raise SettingError(
                f"{ENV_TOKEN_ID}={env[ENV_TOKEN_ID]!a} is not an API token id: the format "
                "is user@realm!name, e.g. root@pam!compliance (`pveum user token list USER`)"
            )
        if _CONTROL.search(env[ENV_TOKEN_SECRET]):
            raise SettingError(
                f"{ENV_TOKEN_SECRET} contains a line break or another control character; set "
                'it to the token\'s secret alone (a UUID), e.g. with `export VAR="$(cat FILE)"`'
            )
        updates["token_id"] = env[ENV_TOKEN_ID]
        updates["token_secret"] = SecretStr(env[ENV_TOKEN_SECRET])
        origins["pve_credentials"] = f"{ENV_TOKEN_ID}/{ENV_TOKEN_SECRET}"
    if updates:
        pve = pve.model_copy(update=updates)

    if overrides.dns_servers:
        raw_dns, origins["dns"] = list(overrides.dns_servers), "--dns-server"
    elif env.get(ENV_DNS):
        raw_dns = [s.strip() for s in env[ENV_DNS].split(",") if s.strip()]
        origins["dns"] = ENV_DNS
    else:
        raw_dns, origins["dns"] = list(config.dns.nameservers), f"{config.source} (dns.nameservers)"
    nameservers = []
    for item in raw_dns:
        try:
            nameservers.append(parse_nameserver(item))
        except ValueError as exc:
            raise SettingError(f"{origins['dns']}: {exc}") from None

    probe_timeout = _number(
        overrides.probe_timeout,
        env.get(ENV_PROBE_TIMEOUT),
        config.dns.timeout if "timeout" in config.dns.model_fields_set else DEFAULT_PROBE_TIMEOUT,
        "--probe-timeout",
        ENV_PROBE_TIMEOUT,
        float,
    )
    if not 0 < probe_timeout <= 120:
        raise SettingError(f"probe timeout {probe_timeout} must be between 0 and 120 seconds")
    expiry = _number(
        overrides.cert_expiry_days,
        env.get(ENV_CERT_EXPIRY_DAYS),
        DEFAULT_CERT_EXPIRY_DAYS,
        "--cert-expiry-days",
        ENV_CERT_EXPIRY_DAYS,
        int,
    )
    if expiry < 0:
        raise SettingError(f"certificate expiry days {expiry} must not be negative")
    return RunSettings(config, pve, tuple(nameservers), probe_timeout, int(expiry), origins)


def _url(value: str, origin: str) -> str:
    """The same rules as `pve.url` in the config: an option or variable is no way around them."""
    try:
        PveSettings(url=value)
    except ValidationError as exc:
        reason = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise SettingError(f"{origin}: {reason}") from None
    return value


def _number(
    option: N | None, env: str | None, default: N, option_name: str, env_name: str, kind: type[N]
) -> N:
    if option is not None:
        return option
    if env:
        try:
            return kind(env)
        except ValueError:
            raise SettingError(f"{env_name}={env!r} is not a {kind.__name__}") from None
    return default
