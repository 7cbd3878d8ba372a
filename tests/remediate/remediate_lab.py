"""The reconciler tests' lab: the PVE emulator over real HTTPS, reached through `PveClient`
(proxmoxer, TLS verified), with node-agent doubles whose reach each test decides."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from pbs_compliance.config.model import PveSettings
from pbs_compliance.lab.pve_api import PveApiServer
from pbs_compliance.lab.storage import list_storages
from pbs_compliance.pve import PveClient

TOKEN_ID = "root@pam!remediate"
TOKEN_SECRET = "0b6a1e3c-7f7d-4c1e-9d55-remediate"
PBS_PASSWORD = "pbs-Secret-99"
NODES = ("pve1", "pve2", "pve3")


@dataclass
class NodeDouble:
    """A `NodeAgent` test double: which PBS servers this node reaches, what each holds.

    `broken_activation` makes the scan succeed but the storage never activate (e.g. a stored
    password that differs), so the after-enable verification is what catches it.
    """

    name: str
    reach: dict[str, list[str]] = field(default_factory=dict)
    broken_activation: bool = False
    hook: Callable[[str], None] | None = None  # called with "scan" / "activate" first
    calls: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def pooled(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def _datastores(self, server: str, port: int) -> list[str]:
        with self.lock:
            self.calls.append(server)
        if server not in self.reach:
            raise ConnectionError(f"500 Can't connect to {server}:{port} (Connection refused)")
        return self.reach[server]

    def activate(self, storage: Mapping[str, object], password: str | None) -> str | None:
        if self.hook is not None:
            self.hook("activate")
        try:
            stores = self._datastores(str(storage["server"]), int(str(storage.get("port", 8007))))
        except ConnectionError as exc:
            return f"error fetching datastores - {exc}"
        if self.broken_activation or password != PBS_PASSWORD:
            return "error fetching datastores - 401 Unauthorized"
        if storage["datastore"] not in stores:
            return f"Cannot find datastore '{storage['datastore']}', check permissions!"
        return None

    def scan(
        self, server: str, username: str, password: str, fingerprint: str | None, port: int
    ) -> list[dict[str, object]]:
        if self.hook is not None:
            self.hook("scan")
        stores = self._datastores(server, port)
        if password != PBS_PASSWORD:
            raise PermissionError("401 Unauthorized")
        return [{"store": s} for s in stores]

    def status(self, storage: Mapping[str, object], password: str | None) -> tuple[int, int, int]:
        return (1000, 100, 900)


@dataclass
class Lab:
    """A running PVE emulator, its node doubles and request log, and clients for it."""

    server: PveApiServer
    nodes: dict[str, NodeDouble]
    log_path: Path
    ca_file: Path
    clients: list[PveClient] = field(default_factory=list)

    def client(self, timeout: float = 5.0) -> PveClient:
        """A `PveClient` with the root token, verifying the lab CA."""
        settings = PveSettings(
            url=self.server.url,
            token_id=TOKEN_ID,
            token_secret=SecretStr(TOKEN_SECRET),
            ca_file=self.ca_file,
            timeout=timeout,
        )
        client = PveClient(settings)
        self.clients.append(client)
        return client

    def live(self) -> list[dict[str, object]]:
        """`GET /storage` as the server would answer it now, without a request in the log."""
        return list_storages(self.server.store.state, {})

    def entry(self, name: str) -> dict[str, object] | None:
        return next((e for e in self.live() if e["storage"] == name), None)

    def password(self, name: str) -> str | None:
        return self.server.store.state.password(name)

    def requests(self) -> list[dict[str, Any]]:
        lines = self.log_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def writes(self) -> list[dict[str, Any]]:
        """Write requests to the API (the lab's admin endpoint and logins do not count)."""
        return [
            r
            for r in self.requests()
            if r["method"] != "GET" and "/_lab" not in r["path"] and "/access/" not in r["path"]
        ]

    def close(self) -> None:
        for client in self.clients:
            api = client._api  # the proxmoxer handle, if one was made
            if api is not None:
                api._store["session"].close()
        self.server.stop()


StartLab = Callable[..., "Lab"]
