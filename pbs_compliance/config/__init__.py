"""The declarative config: YAML in, typed immutable objects out, every problem located."""

from __future__ import annotations

from pbs_compliance.config.errors import ConfigError, ConfigIssue
from pbs_compliance.config.loader import load_config, parse_config
from pbs_compliance.config.model import (
    ComplianceConfig,
    DnsSettings,
    PruneBackups,
    PveSettings,
    StorageSpec,
    parse_nameserver,
)

__all__ = [
    "ComplianceConfig",
    "ConfigError",
    "ConfigIssue",
    "DnsSettings",
    "PruneBackups",
    "PveSettings",
    "StorageSpec",
    "load_config",
    "parse_config",
    "parse_nameserver",
]
