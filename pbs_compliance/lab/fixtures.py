"""pytest fixtures that run labs: `pytest_plugins = ["pbs_compliance.lab.fixtures"]`.

Labs use ephemeral ports, so tests (and xdist workers) can run many side by side.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

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
