"""One precedence order: command-line option, then environment, then the config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbs_compliance.config import parse_config
from pbs_compliance.settings import (
    DEFAULT_CERT_EXPIRY_DAYS,
    DEFAULT_CONFIG,
    DEFAULT_PROBE_TIMEOUT,
    Overrides,
    SettingError,
    config_path,
    resolve,
)

FP = ":".join(["AB"] * 32)
TEXT = f"""
pve:
  url: https://pve-file:8006
  token_id: root@pam!ci
  token_secret: ${{SECRET}}
dns:
  nameservers: ["192.0.2.53"]
pbs_storages:
  - name: homelab-backup
    server: pbs1.example
    datastore: homelab
    fingerprint: "{FP}"
    password: ${{PBS_PW}}
"""
ENV = {"SECRET": "canary-token", "PBS_PW": "canary-pbs"}


def test_the_config_path_comes_from_the_option_then_the_environment_then_the_default() -> None:
    env = {"PBS_COMPLIANCE_CONFIG": "/etc/pbs.yaml"}
    assert config_path(Overrides(config="mine.yaml"), env) == Path("mine.yaml")
    assert config_path(Overrides(), env) == Path("/etc/pbs.yaml")
    assert config_path(Overrides(), {}) == DEFAULT_CONFIG


def test_the_file_gives_everything_when_nothing_overrides_it() -> None:
    settings = resolve(parse_config(TEXT.encode(), Path("pbs.yaml"), ENV), Overrides(), {})
    assert settings.pve.url == "https://pve-file:8006"
    assert settings.nameservers == (("192.0.2.53", 53),)
    assert settings.probe_timeout == DEFAULT_PROBE_TIMEOUT
    assert settings.cert_expiry_days == DEFAULT_CERT_EXPIRY_DAYS
    assert settings.has_pve_credentials
    assert sorted(settings.secrets) == ["canary-pbs", "canary-token"]
    assert settings.origins["pve_url"] == "pbs.yaml (pve.url)"


def test_the_environment_beats_the_file_and_the_option_beats_both() -> None:
    cfg = parse_config(TEXT.encode(), Path("pbs.yaml"), ENV)
    env = {
        "PBS_COMPLIANCE_PVE_URL": "https://pve-env:8006",
        "PBS_COMPLIANCE_DNS_SERVERS": "127.0.0.1:5353, [::1]:5354",
        "PBS_COMPLIANCE_PROBE_TIMEOUT": "1.5",
        "PBS_COMPLIANCE_CERT_EXPIRY_DAYS": "14",
        "PBS_COMPLIANCE_PVE_TOKEN_ID": "ci@pve!compliance",
        "PBS_COMPLIANCE_PVE_TOKEN_SECRET": "canary-env",
    }
    from_env = resolve(cfg, Overrides(), env)
    assert from_env.pve.url == "https://pve-env:8006"
    assert from_env.pve.token_id == "ci@pve!compliance"
    assert from_env.nameservers == (("127.0.0.1", 5353), ("::1", 5354))
    assert (from_env.probe_timeout, from_env.cert_expiry_days) == (1.5, 14)
    from_option = resolve(
        cfg,
        Overrides(
            pve_url="https://pve-opt:8006",
            dns_servers=("10.0.0.53",),
            probe_timeout=0.5,
            cert_expiry_days=7,
        ),
        env,
    )
    assert from_option.pve.url == "https://pve-opt:8006"
    assert from_option.nameservers == (("10.0.0.53", 53),)
    assert (from_option.probe_timeout, from_option.cert_expiry_days) == (0.5, 7)
    assert from_option.origins["dns"] == "--dns-server"


@pytest.mark.parametrize(
    ("overrides", "env", "words"),
    [
        (Overrides(dns_servers=("not a host",)), {}, "--dns-server"),
        (Overrides(), {"PBS_COMPLIANCE_DNS_SERVERS": "1.2.3.4:99999"}, "PBS_COMPLIANCE_DNS"),
        (Overrides(), {"PBS_COMPLIANCE_PROBE_TIMEOUT": "soon"}, "PBS_COMPLIANCE_PROBE_TIMEOUT"),
        (Overrides(probe_timeout=0.0), {}, "between 0 and 120"),
        (Overrides(cert_expiry_days=-1), {}, "must not be negative"),
    ],
)
def test_a_bad_setting_names_where_it_came_from(
    overrides: Overrides, env: dict[str, str], words: str
) -> None:
    cfg = parse_config(TEXT.encode(), Path("pbs.yaml"), ENV)
    with pytest.raises(SettingError, match=words):
        resolve(cfg, overrides, env)


def test_without_credentials_the_run_knows_it_cannot_ask_pve() -> None:
    bare = TEXT.split("dns:")[1]
    cfg = parse_config(("dns:" + bare).encode(), Path("pbs.yaml"), ENV)
    assert not resolve(cfg, Overrides(), {}).has_pve_credentials


def test_a_token_id_from_the_environment_must_have_the_api_token_format() -> None:
    config = parse_config(TEXT.encode(), Path("pbs.yaml"), ENV)
    env = {
        "PBS_COMPLIANCE_PVE_TOKEN_ID": "root@pam",
        "PBS_COMPLIANCE_PVE_TOKEN_SECRET": "canary-env-token",
    }
    with pytest.raises(SettingError) as exc:
        resolve(config, Overrides(), env)
    assert str(exc.value) == (
        "PBS_COMPLIANCE_PVE_TOKEN_ID='root@pam' is not an API token id: the format "
        "is user@realm!name, e.g. root@pam!compliance (`pveum user token list USER`)"
    )
    assert "canary-env-token" not in str(exc.value)
    env["PBS_COMPLIANCE_PVE_TOKEN_ID"] = "ci@pve!nightly"
    assert resolve(config, Overrides(), env).pve.token_id == "ci@pve!nightly"


@pytest.mark.parametrize(
    ("overrides", "env", "message"),
    [
        (
            Overrides(pve_url="https://pve1:8006\n"),
            {},
            "--pve-url: url 'https://pve1:8006\\n' ends in a line break",
        ),
        (
            Overrides(),
            {"PBS_COMPLIANCE_PVE_URL": "ftp://pve1"},
            "PBS_COMPLIANCE_PVE_URL: 'ftp://pve1' is not a PVE address",
        ),
        (
            Overrides(pve_url="https://pve1:99999"),
            {"PBS_COMPLIANCE_PVE_URL": "https://pve-env:8006"},
            "--pve-url: 'https://pve1:99999' is not a PVE address",
        ),
    ],
)
def test_a_pve_url_from_an_option_or_the_environment_is_checked_like_the_configs(
    overrides: Overrides, env: dict[str, str], message: str
) -> None:
    config = parse_config(TEXT.encode(), Path("pbs.yaml"), ENV)
    with pytest.raises(SettingError) as exc:
        resolve(config, overrides, env)
    assert str(exc.value).startswith(message)


@pytest.mark.parametrize(
    "token_id", ["ci@pve!nightly\n", "ci@pve!night\u017fy", "ci@pve!a b", "ci@pve!"]
)
def test_an_environment_token_id_is_matched_whole_and_ascii_only(token_id: str) -> None:
    config = parse_config(TEXT.encode(), Path("pbs.yaml"), ENV)
    env = {"PBS_COMPLIANCE_PVE_TOKEN_ID": token_id, "PBS_COMPLIANCE_PVE_TOKEN_SECRET": "s"}
    with pytest.raises(SettingError, match="is not an API token id"):
        resolve(config, Overrides(), env)


@pytest.mark.parametrize("secret", ["canary-uuid\n", "canary\r\nuuid", "canary\tuuid"])
def test_an_environment_token_secret_with_a_line_break_is_refused_without_showing_it(
    secret: str,
) -> None:
    config = parse_config(TEXT.encode(), Path("pbs.yaml"), ENV)
    env = {
        "PBS_COMPLIANCE_PVE_TOKEN_ID": "ci@pve!nightly",
        "PBS_COMPLIANCE_PVE_TOKEN_SECRET": secret,
    }
    with pytest.raises(SettingError) as exc:
        resolve(config, Overrides(), env)
    assert str(exc.value).startswith(
        "PBS_COMPLIANCE_PVE_TOKEN_SECRET contains a line break or another control character"
    )
    assert "canary" not in str(exc.value)
