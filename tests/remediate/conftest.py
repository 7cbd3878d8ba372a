"""Fixtures for the reconciler's apply tests (helpers in `remediate_lab.py`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from remediate_lab import NODES, TOKEN_ID, TOKEN_SECRET, Lab, NodeDouble, StartLab

from pbs_compliance.lab.certs import CertificateAuthority
from pbs_compliance.lab.pve_api import PveApiServer, PveServerConfig
from pbs_compliance.lab.pve_auth import ALL_STORAGE_PRIVILEGES, Principal


@pytest.fixture(scope="session")
def pve_pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(ca.pem, pve.pem, pve.key): a CA and the emulator's certificate for 127.0.0.1."""
    directory = tmp_path_factory.mktemp("pve-pki")
    ca = CertificateAuthority.create("remediate test CA")
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    cert, key = ca.issue("pve.lab", dns_names=["localhost"], ip_addresses=["127.0.0.1"]).write(
        directory, "pve"
    )
    return ca_file, cert, key


@pytest.fixture
def start_lab(tmp_path: Path, pve_pki: tuple[Path, Path, Path]) -> Iterator[StartLab]:
    """``start_lab(storage_cfg, passwords={...}, reach={node: {server: [datastores]}})``:
    a started PVE emulator with nodes pve1..pve3 (pve1 handles requests); stopped afterwards."""
    labs: list[Lab] = []
    ca_file, cert_file, key_file = pve_pki

    def start(
        storage_cfg: str = "",
        passwords: Mapping[str, str] | None = None,
        reach: Mapping[str, Mapping[str, list[str]]] | None = None,
    ) -> Lab:
        n = len(labs)
        nodes = {name: NodeDouble(name) for name in NODES}
        for name, servers in (reach or {}).items():
            nodes[name].reach = dict(servers)
        config = PveServerConfig(
            state_dir=tmp_path / f"pve{n}",
            cert_file=cert_file,
            key_file=key_file,
            nodes=nodes,
            principals=[Principal(TOKEN_ID, TOKEN_SECRET, ALL_STORAGE_PRIVILEGES)],
            request_log=tmp_path / f"requests{n}.jsonl",
            initial_storage_cfg=storage_cfg,
            initial_passwords=dict(passwords or {}),
        )
        server = PveApiServer(config)
        server.start()
        lab = Lab(server, nodes, config.request_log, ca_file)
        labs.append(lab)
        return lab

    yield start
    for lab in labs:
        lab.close()
