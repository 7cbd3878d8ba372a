"""pytest fixtures that run labs: `pytest_plugins = ["pbs_compliance.lab.fixtures"]`.

Labs use ephemeral ports, so tests (and xdist workers) can run many side by side.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from pbs_compliance.lab.dns_server import DnsServer
from pbs_compliance.lab.pbs_server import PbsServer, PbsServerSpec
from pbs_compliance.lab.runner import Lab
from pbs_compliance.lab.scenario import Scenario, builtin

LabFactory = Callable[..., Lab]


def _scenario(spec: Scenario | Mapping[str, Any] | None) -> Scenario:
    if spec is None:
        scenario = builtin()
    elif isinstance(spec, Scenario):
        scenario = spec
    else:
        scenario = Scenario.model_validate(dict(spec))
    if "auth_failure_delay" not in scenario.model_fields_set:
        # PVE's ~3 s penalty on a failed login is faithful but would only slow tests down.
        scenario = scenario.model_copy(update={"auth_failure_delay": 0.0})
    return scenario.with_ephemeral_ports()


@pytest.fixture
def make_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabFactory]:
    """Start labs for one test: `make_lab()` (built-in scenario) or `make_lab({...spec...})`."""
    labs: list[Lab] = []

    def start(
        spec: Scenario | Mapping[str, Any] | None = None, state_dir: Path | None = None
    ) -> Lab:
        lab = Lab(_scenario(spec), state_dir or tmp_path_factory.mktemp("lab"))
        lab.start()
        labs.append(lab)
        return lab

    yield start
    for lab in labs:
        lab.stop()


@pytest.fixture(scope="session")
def shared_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One built-in lab for the whole session; tests must not change its state."""
    lab = Lab(_scenario(None), tmp_path_factory.mktemp("shared-lab"))
    lab.start()
    yield lab
    lab.stop()


@pytest.fixture
def lab(make_lab: LabFactory) -> Lab:
    """A fresh built-in lab for one test (free to change)."""
    return make_lab()


@pytest.fixture
def pbs_defaults() -> dict[str, Any]:
    """The spec `start_pbs` starts from; override this fixture to change it for a directory."""
    return {
        "name": "pbs1.lab.example",
        "address": "127.0.0.2",
        "datastores": {"homelab": []},
        "users": {"root@pam": "lab-test-pw"},
    }


@pytest.fixture
def start_pbs(tmp_path: Path, pbs_defaults: dict[str, Any]) -> Iterator[Callable[..., PbsServer]]:
    """Start single lab PBS servers (`pbs_defaults`, overridable by keyword); stopped after."""
    servers: list[PbsServer] = []

    def start(**overrides: Any) -> PbsServer:
        spec = PbsServerSpec(**{**pbs_defaults, **overrides})
        server = PbsServer(spec, tmp_path / f"certs{len(servers)}")
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def pbs(start_pbs: Callable[..., PbsServer]) -> PbsServer:
    """One running lab PBS with the defaults."""
    return start_pbs()


@pytest.fixture
def start_dns() -> Iterator[Callable[..., DnsServer]]:
    """Start lab DNS servers (`DnsServer` arguments); every one is stopped afterwards."""
    servers: list[DnsServer] = []

    def start(*args: Any, **kwargs: Any) -> DnsServer:
        server = DnsServer(*args, **kwargs)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()
