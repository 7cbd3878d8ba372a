"""Shared fixtures for the config tests: write YAML text, load it, look at its problems."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from config_helpers import SEED_FINGERPRINT, Load, Problem, Problems, StorageText
from spec_builders import storage_yaml

from pbs_compliance.config import ComplianceConfig, ConfigError, ConfigIssue, load_config
from pbs_compliance.lab.certs import CertificateAuthority


@pytest.fixture
def fingerprint() -> str:
    """The seed's PBS fingerprint (upper case, as PVE shows it)."""
    return SEED_FINGERPRINT


@pytest.fixture
def storage_text() -> StorageText:
    """A whole config with one minimal valid storage `pbs1` (5 lines, entry on line 2).

    Keyword arguments add `key: value` lines verbatim to the entry, from line 6 on; a value of
    `None`-like text such as `~` is passed through as YAML.
    """

    def make(**extra: str) -> str:
        return storage_yaml(*(f"    {key}: {value}" for key, value in extra.items()))

    return make


@pytest.fixture(scope="session")
def ca_pem() -> bytes:
    """A CA certificate in PEM, as a `pve.ca_file` holds it."""
    return CertificateAuthority.create("config test CA").cert_pem


@pytest.fixture
def secret_file(tmp_path: Path) -> Callable[..., Path]:
    """`secret_file(content, name="pbs.pw", mode=0o600)`: a secret file in tmp_path."""

    def write(content: str | bytes, name: str = "pbs.pw", mode: int = 0o600) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        path.chmod(mode)
        return path

    return write


@pytest.fixture
def config_file(tmp_path: Path) -> Callable[[str], Path]:
    """Write dedented YAML text to `pbs-storage.yaml` in a temporary directory."""

    def write(text: str) -> Path:
        path = tmp_path / "pbs-storage.yaml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def load(config_file: Callable[[str], Path]) -> Load:
    """Load YAML text as a config file: `load(text, env={...})`; the environment is explicit."""

    def run(text: str, env: Mapping[str, str] | None = None) -> ComplianceConfig:
        return load_config(config_file(text), environ=env or {})

    return run


@pytest.fixture
def problems(config_file: Callable[[str], Path]) -> Problems:
    """The issues of a config that must fail to load: `problems(text, env={...})`."""

    def run(text: str, env: Mapping[str, str] | None = None) -> list[ConfigIssue]:
        with pytest.raises(ConfigError) as caught:
            load_config(config_file(text), environ=env or {})
        return caught.value.issues

    return run


@pytest.fixture
def problem(problems: Problems) -> Problem:
    """The one issue of a config that must fail to load with exactly one problem."""

    def run(text: str, env: Mapping[str, str] | None = None) -> ConfigIssue:
        __tracebackhide__ = True
        issues = problems(text, env)
        assert len(issues) == 1, "\n".join(str(issue) for issue in issues)
        return issues[0]

    return run


@pytest.fixture
def storage_problem(problem: Problem, storage_text: StorageText) -> Problem:
    """The one issue of `storage_text(**fields)`: `storage_problem(port="0", env={...})`."""

    def run(env: Mapping[str, str] | None = None, **fields: str) -> ConfigIssue:
        __tracebackhide__ = True
        return problem(storage_text(**fields), env)

    return run
