"""The cluster a run is about, by name: the JUnit suite, the HTML header, the Prometheus
`cluster` label, the heading of `pbs status` with several configs.

`pve.name` in the config when set (keep it set when the name must never change: CI history
tracks cases by it); else the cluster's own name as PVE reports it (`GET /cluster/status`);
else, for a single node or when PVE cannot say, the host of `pve.url`; else (no PVE at all)
the config file's name without its extension.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pbs_compliance.evidence import client_for
from pbs_compliance.pve import PveError
from pbs_compliance.settings import RunSettings


def fallback_name(settings: RunSettings) -> str:
    """The name without asking PVE: `pve.name`, the host of `pve.url`, the config's stem."""
    if settings.pve.name:
        return settings.pve.name
    url = settings.pve.url
    if url:
        host = urlsplit(url if "://" in url else f"https://{url}").hostname
        if host:
            return host
    return settings.config.source.stem if settings.config.source else "pbs-compliance"


def cluster_name(settings: RunSettings) -> str:
    """The cluster's name (one `GET /cluster/status` when `pve.name` is not set; never raises:
    an unreadable PVE gives the fallback)."""
    if settings.pve.name:
        return settings.pve.name
    try:
        client = client_for(settings)
        name = client.cluster_name() if client is not None else None
    except PveError:
        name = None
    return name or fallback_name(settings)
