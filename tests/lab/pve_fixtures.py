"""Helpers and fixtures for the PVE emulator's tests: a throwaway CA, a fake node agent,
a started server and proxmoxer clients with TLS verification on."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from proxmoxer import ProxmoxAPI

from pbs_compliance.lab.certs import CertificateAuthority
from pbs_compliance.lab.pve_api import PveApiServer, PveServerConfig
from pbs_compliance.lab.pve_auth import ALL_STORAGE_PRIVILEGES, Principal

ROOT_PASSWORD = "pve-root-secret"
ROOT_TOKEN = "root@pam!compliance"
ROOT_TOKEN_SECRET = "11111111-2222-3333-4444-555555555555"
RO_TOKEN = "audit@pve!ro"
RO_TOKEN_SECRET = "66666666-7777-8888-9999-000000000000"
AUDIT_USER = "auditor@pve"
AUDIT_PASSWORD = "auditor-secret"
FP = ":".join(["AB"] * 32)


@dataclass(frozen=True)
class Pki:
    ca_file: Path
    cert_file: Path
    key_file: Path


def make_pki(directory: Path) -> Pki:
    """A CA and a server certificate for 127.0.0.1 / localhost signed by it."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority.create("lab test CA")
    leaf = ca.issue("pve.lab", dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    cert_file, key_file = leaf.write(directory, "pve")
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    return Pki(ca_file, cert_file, key_file)


@dataclass
class FakeAgent:
    """A node agent test double: which PBS servers it reaches and what they hold."""

    name: str
    datastores: dict[str, list[str]] = field(default_factory=dict)
    sizes: tuple[int, int, int] = (1000, 250, 750)
    delay: float = 0.0
    calls: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _reach(self, server: str, port: int) -> list[str]:
        with self.lock:
            self.calls.append(("connect", server))
        if self.delay:
            time.sleep(self.delay)
        if server not in self.datastores:
            raise ConnectionError(f"500 Can't connect to {server}:{port} (Connection refused)")
        return self.datastores[server]

    def activate(self, storage: Mapping[str, object], password: str | None) -> str | None:
        port = int(str(storage.get("port", 8007)))
        try:
            stores = self._reach(str(storage["server"]), port)
        except ConnectionError as exc:
            return f"error fetching datastores - {exc}"
        if storage["datastore"] not in stores:
            return (
                f"Cannot find datastore '{storage['datastore']}', check permissions and existence!"
            )
        return None

    def scan(
        self, server: str, username: str, password: str, fingerprint: str | None, port: int
    ) -> list[dict[str, object]]:
        return [{"store": s} for s in self._reach(server, port)]

    def status(self, storage: Mapping[str, object], password: str | None) -> tuple[int, int, int]:
        return self.sizes

    def snapshots(
        self, storage: Mapping[str, object], password: str | None, vmid: int | None
    ) -> list[dict[str, object]]:
        self._reach(str(storage["server"]), int(str(storage.get("port", 8007))))
        return []

    @contextlib.contextmanager
    def pooled(self) -> Iterator[None]:
        with self.lock:
            self.calls.append(("pooled", ""))
        yield

    def connects(self) -> int:
        with self.lock:
            return sum(1 for kind, _ in self.calls if kind == "connect")


def principals() -> list[Principal]:
    return [
        Principal("root@pam", ROOT_PASSWORD),
        Principal(ROOT_TOKEN, ROOT_TOKEN_SECRET, ALL_STORAGE_PRIVILEGES),
        Principal(RO_TOKEN, RO_TOKEN_SECRET, frozenset({"Datastore.Audit"})),
        Principal(AUDIT_USER, AUDIT_PASSWORD, frozenset({"Datastore.Audit"})),
    ]


@dataclass
class PveLab:
    """A running emulator and what a test needs to talk to it."""

    server: PveApiServer
    pki: Pki
    state_dir: Path
    log_file: Path
    agents: dict[str, FakeAgent]
    clients: list[ProxmoxAPI] = field(default_factory=list)

    def client(self, **auth: Any) -> ProxmoxAPI:
        """proxmoxer against the emulator, TLS verified against the test CA (root token by
        default)."""
        if not auth:
            auth = {
                "user": "root@pam",
                "token_name": "compliance",
                "token_value": ROOT_TOKEN_SECRET,
            }
        api = ProxmoxAPI(
            "127.0.0.1",
            port=self.server.port,
            verify_ssl=str(self.pki.ca_file),
            timeout=5,
            **auth,
        )
        self.clients.append(api)
        return api

    def close(self) -> None:
        for api in self.clients:
            api._store["session"].close()
        self.server.stop()


StartPve = Callable[..., PveLab]


@pytest.fixture(name="pve_pki", scope="session")
def fixture_pve_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """One throwaway CA and server certificate for all emulator tests of a worker."""
    return make_pki(tmp_path_factory.mktemp("pve-pki"))


@pytest.fixture(name="start_pve")
def fixture_start_pve(tmp_path: Path, pve_pki: Pki) -> Iterator[StartPve]:
    """Start an emulator (keyword arguments go to PveServerConfig); stopped afterwards."""
    labs: list[PveLab] = []
    pki = pve_pki

    def start(**overrides: Any) -> PveLab:
        n = len(labs)
        agents = overrides.pop("agents", None) or {
            "pve1": FakeAgent("pve1", {"10.0.0.1": ["store1", "store2"]}),
            "pve2": FakeAgent("pve2", {}),
        }
        state_dir = overrides.pop("state_dir", tmp_path / f"state{n}")
        log_file = tmp_path / f"requests{n}.jsonl"
        config = PveServerConfig(
            state_dir=state_dir,
            cert_file=pki.cert_file,
            key_file=pki.key_file,
            nodes=agents,
            principals=overrides.pop("principals", None) or principals(),
            request_log=log_file,
            **overrides,
        )
        server = PveApiServer(config)
        server.start()
        lab = PveLab(server, pki, state_dir, log_file, agents)
        labs.append(lab)
        return lab

    yield start
    for lab in labs:
        lab.close()


@pytest.fixture(name="pve")
def fixture_pve(start_pve: StartPve) -> PveLab:
    """A started emulator with the default two nodes (pve1 reaches 10.0.0.1, pve2 nothing)."""
    return start_pve()
