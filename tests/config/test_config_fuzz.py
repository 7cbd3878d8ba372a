"""Whatever the bytes, `parse_config` gives a config or a `ConfigError` - never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from config_helpers import storage_document
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pbs_compliance.config import ComplianceConfig, ConfigError, parse_config

FILE = Path("/nonexistent/pbs-storage.yaml")
ENV = {"PBS_PW": "s3cret", "PORT": "8207", "EMPTY": "", "HOST": "pbs.example", "FLAG": "yes"}
# Modest counts keep the suite fast; CI runs them on every push, so coverage accumulates.
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FINGERPRINT = ":".join(["AB"] * 32)
KEYS = [
    "pbs_storages", "pve", "dns", "defaults", "name", "server", "datastore", "fingerprint",
    "enabled", "content", "username", "port", "namespace", "nodes", "max_protected_backups",
    "prune_backups", "description", "password", "password_file", "keep_daily", "keep_all",
    "url", "token_id", "token_secret", "token_secret_file", "user", "verify_ssl", "ca_file",
    "timeout", "nameservers", "<<", "yes", "",
]  # fmt: skip
WORDS = [
    *KEYS, "backup", "none", "root@pam", "a@b!c", "8007", "-1", "true", "~", "null", "1.5",
    "${PBS_PW}", "${MISSING}", "${EMPTY}", "${PORT}", "$$", "${", "12:34:56", FINGERPRINT,
    "2001:db8::1", "[::1]:53", "~nouser/x", "0x1F", "2024-01-01", "!!binary", "!!python/none",
    "&a", "*a", "*b", "---", "...", "? ", "- ", ": ", "|", ">", "#", "'", '"', "{", "}", "[", "]",
    ",", "\t", "\n", "\n  ", "\n    - ", "\ufeff", "\x00", "\x85",
]  # fmt: skip


def outcome(raw: bytes) -> ComplianceConfig | ConfigError:
    """The config, or the `ConfigError` checked for usable issues; anything else propagates."""
    try:
        return parse_config(raw, FILE, ENV)
    except ConfigError as error:
        caught = error
    assert caught.issues, "a ConfigError must carry at least one issue"
    for issue in caught.issues:
        assert issue.file == FILE
        assert issue.message
        assert str(issue).startswith(str(FILE))
    return caught


# -- arbitrary bytes and YAML-ish text ----------------------------------------------------------


@FUZZ
@given(st.binary(max_size=400))
@example(b"\xff\xfe")
@example(b"[" * 1000)
@example(b"a: &x [*x]")
@example(b"\x00")
def test_any_byte_string_gives_a_config_or_a_config_error(raw: bytes) -> None:
    outcome(raw)


@FUZZ
@given(st.lists(st.sampled_from(WORDS) | st.text(max_size=5), max_size=60).map("".join))
@example("pbs_storages:\n  - <<: {port: 1}\n")
@example("pbs_storages: [{name: ${PBS_PW}}]\n")
def test_any_yaml_ish_text_gives_a_config_or_a_config_error(text: str) -> None:
    outcome(text.encode("utf-8", "surrogatepass"))


# -- structured documents, dumped with yaml.safe_dump -------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(WORDS)
    | st.text(max_size=20)
    | st.binary(max_size=8)
    | st.dates()
)
documents = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=12,
)


def valid_storage(index: int) -> dict[str, Any]:
    return storage_document(
        index,
        enabled=True,
        username="root@pam",
        port=8007,
        namespace="prod/vms",
        max_protected_backups=5,
        description="a storage",
        password="${PBS_PW}",
    )


@st.composite
def near_valid_storage(draw: st.DrawFn, index: int) -> dict[str, Any]:
    """A valid storage entry with a few keys dropped, replaced or added."""
    entry = valid_storage(index)
    for key in draw(st.lists(st.sampled_from(sorted(entry)), max_size=3, unique=True)):
        del entry[key]
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=3)):
        entry[key] = draw(documents)
    return entry


@st.composite
def near_valid_configs(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(min_value=0, max_value=3))
    config: dict[str, Any] = {
        "pbs_storages": [draw(near_valid_storage(i % 2)) for i in range(count)]
    }
    for section in draw(st.lists(st.sampled_from(["pve", "dns", "defaults"]), unique=True)):
        config[section] = draw(st.dictionaries(st.sampled_from(KEYS), documents, max_size=4))
    return config


@FUZZ
@given(documents)
def test_any_yaml_document_gives_a_config_or_a_config_error(document: object) -> None:
    outcome(yaml.safe_dump(document).encode())


@settings(FUZZ, max_examples=50)
@given(near_valid_configs())
def test_any_near_valid_config_gives_a_config_or_a_config_error(document: dict[str, Any]) -> None:
    result = outcome(yaml.safe_dump(document).encode())

    if isinstance(result, ComplianceConfig):
        assert len(result.storages) == len(document["pbs_storages"])


def test_the_unmutated_near_valid_config_loads() -> None:
    document = {"pbs_storages": [valid_storage(0), valid_storage(1)]}

    result = outcome(yaml.safe_dump(document).encode())

    assert isinstance(result, ComplianceConfig)
    assert [spec.name for spec in result.storages] == ["pbs0", "pbs1"]
