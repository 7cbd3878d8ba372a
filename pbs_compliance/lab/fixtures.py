"""pytest fixtures that run labs: `pytest_plugins = ["pbs_compliance.lab.fixtures"]`.

Labs use ephemeral ports, so tests (and xdist workers) can run many side by side.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest

from pbs_compliance.lab.dns_server import DnsServer
from pbs_compliance.lab.pbs_server import PbsServer, PbsServerSpec
from pbs_compliance.lab.runner import Lab
from pbs_compliance.lab.scenario import Scenario, builtin

LabFactory = Callable[..., Lab]


class _Service(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


_S = TypeVar("_S", bound=_Service)


def _running(services: contextlib.ExitStack, service: _S) -> _S:
    """Start `service`; `services` stops it when the test ends (also after a failed start)."""
    services.callback(service.stop)
    service.start()
    return service


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
    with contextlib.ExitStack() as labs:

        def start(
            spec: Scenario | Mapping[str, Any] | None = None, state_dir: Path | None = None
        ) -> Lab:
            lab = Lab(_scenario(spec), state_dir or tmp_path_factory.mktemp("lab"))
            return _running(labs, lab)

        yield start


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
    numbers = itertools.count()
    with contextlib.ExitStack() as servers:

        def start(**overrides: Any) -> PbsServer:
            spec = PbsServerSpec(**{**pbs_defaults, **overrides})
            return _running(servers, PbsServer(spec, tmp_path / f"certs{next(numbers)}"))

        yield start


@pytest.fixture
def pbs(start_pbs: Callable[..., PbsServer]) -> PbsServer:
    """One running lab PBS with the defaults."""
    return start_pbs()


@pytest.fixture
def start_dns() -> Iterator[Callable[..., DnsServer]]:
    """Start lab DNS servers (`DnsServer` arguments); every one is stopped afterwards."""
    with contextlib.ExitStack() as servers:
        yield lambda *args, **kwargs: _running(servers, DnsServer(*args, **kwargs))
