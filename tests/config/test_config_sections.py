"""The `pve:`, `dns:` and `defaults:` sections, and `${VAR}` interpolation anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest
from config_helpers import Load, Problem, Problems, StorageText, assert_issue, secret_of

from pbs_compliance.config import (
    DnsSettings,
    PruneBackups,
    parse_nameserver,
)

# -- pve ----------------------------------------------------------------------------------------


def test_every_pve_setting_is_read(load: Load, tmp_path: Path, ca_pem: bytes) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "pve-ca.pem").write_bytes(ca_pem)
    text = """\
        pbs_storages: []
        pve:
          url: https://pve1.example:8006
          verify_ssl: false
          ca_file: certs/pve-ca.pem
          timeout: 30
        """

    pve = load(text).pve

    assert pve.url == "https://pve1.example:8006"
    assert pve.verify_ssl is False
    assert pve.ca_file == tmp_path / "certs" / "pve-ca.pem"
    assert pve.timeout == 30.0


@pytest.mark.parametrize("url", ["https://pve1.example:8006", "https://10.0.0.1/", "pve1.example"])
def test_a_pve_url_may_be_https_or_a_bare_host_name(load: Load, url: str) -> None:
    assert load(f"pbs_storages: []\npve:\n  url: '{url}'\n").pve.url == url


def test_an_empty_pve_url_means_none_configured(load: Load) -> None:
    assert load("pbs_storages: []\npve:\n  url: ~\n").pve.url is None


@pytest.mark.parametrize("url", ["http://pve1:8006", "https://pve1/api2/json", "ftp:x"])
def test_a_pve_url_that_is_no_pve_address_is_rejected_with_an_example(
    problem: Problem, url: str
) -> None:
    assert_issue(
        problem(f"pbs_storages: []\npve:\n  url: '{url}'\n"), "pve.url", "https://pve1.example:8006"
    )


def test_an_absolute_ca_file_is_kept_and_an_env_reference_in_it_is_expanded(
    load: Load, tmp_path: Path, ca_pem: bytes
) -> None:
    certs = tmp_path / "pki"
    certs.mkdir()
    (certs / "ca.pem").write_bytes(ca_pem)
    text = "pbs_storages: []\npve:\n  ca_file: ${CERTS}/ca.pem\n"

    assert load(text, env={"CERTS": str(certs)}).pve.ca_file == certs / "ca.pem"


def test_a_ca_file_with_an_unset_variable_is_an_error_naming_it(problem: Problem) -> None:
    assert_issue(
        problem("pbs_storages: []\npve:\n  ca_file: ${CERTS}/ca.pem\n"),
        "pve.ca_file",
        message="environment variable `CERTS` is not set",
    )


@pytest.mark.parametrize("timeout", ["0", "601", "-1"])
def test_a_pve_timeout_outside_0_to_600_seconds_is_rejected(problem: Problem, timeout: str) -> None:
    issue = problem(f"pbs_storages: []\npve:\n  timeout: {timeout}\n")

    assert issue.field == "pve.timeout"
    assert issue.fix.startswith("use a value")


@pytest.mark.parametrize("section", ["pve", "dns", "defaults"])
def test_a_section_that_is_not_a_mapping_is_rejected(problem: Problem, section: str) -> None:
    issue = problem(f"pbs_storages: []\n{section}: [a]\n")

    assert_issue(issue, section, "must be a mapping")
    assert issue.fix


def test_an_unknown_pve_key_gets_the_closest_known_key_suggested(problem: Problem) -> None:
    assert_issue(
        problem("pbs_storages: []\npve:\n  verify_tls: false\n"),
        "pve.verify_tls",
        fix="did you mean `verify_ssl`?",
    )


# -- dns ----------------------------------------------------------------------------------------


def test_dns_nameservers_and_timeout_are_read(load: Load) -> None:
    text = """\
        pbs_storages: []
        dns:
          nameservers: [192.0.2.53, "ns1.example:5353", "2001:db8::53", "[2001:db8::53]:5353"]
          timeout: 1.5
        """

    dns = load(text).dns

    assert dns.timeout == 1.5
    assert dns.addresses == (
        ("192.0.2.53", 53),
        ("ns1.example", 5353),
        ("2001:db8::53", 53),
        ("2001:db8::53", 5353),
    )


@pytest.mark.parametrize(
    ("nameserver", "port"),
    [("ns1", 53), ("ns1:53", 53), ("[::1]", 53), ("[::1]:1", 1), ("10.0.0.1:65535", 65535)],
)
def test_a_nameserver_is_a_host_or_host_and_port(nameserver: str, port: int) -> None:
    assert parse_nameserver(nameserver)[1] == port


@pytest.mark.parametrize(
    "nameserver",
    ["ns1:", "ns1:x", "ns1:0", "ns1:65536", "[::1]x", "[::1]:", "[]:53", "bad host", "ns1:²"],
)
def test_a_nameserver_that_is_not_host_or_host_and_port_is_rejected(
    problem: Problem, nameserver: str
) -> None:
    assert_issue(
        problem(f"pbs_storages: []\ndns:\n  nameservers: ['{nameserver}']\n"),
        "dns.nameservers[0]",
        line=3,
    )


def test_dns_settings_default_to_the_system_resolver() -> None:
    assert DnsSettings().addresses == ()


def test_a_nameserver_from_the_environment_is_expanded_once(load: Load) -> None:
    text = "pbs_storages: []\ndns:\n  nameservers: ['${NS}']\n"

    assert load(text, env={"NS": "192.0.2.1:5353"}).dns.nameservers == ("192.0.2.1:5353",)


# -- defaults -----------------------------------------------------------------------------------


def test_defaults_apply_to_every_storage_and_an_entry_overrides_them(
    load: Load, storage_text: StorageText
) -> None:
    entry = storage_text().removeprefix("pbs_storages:\n")
    second = entry.replace("pbs1", "pbs2") + "    port: 8207\n"
    text = (
        """\
defaults:
  port: 9007
  username: sync@pbs!ci
  prune_backups: {keep_daily: 7}
  nodes: [pve1]
pbs_storages:
"""
        + entry
        + second
    )

    first, other = load(text).storages

    assert (first.port, other.port) == (9007, 8207)
    assert first.username == other.username == "sync@pbs!ci"
    assert first.prune_backups == other.prune_backups == PruneBackups(keep_daily=7)
    assert first.nodes == ("pve1",)


def test_a_bad_default_is_reported_once_at_the_default_not_once_per_storage(
    problem: Problem, storage_text: StorageText
) -> None:
    entry = storage_text().removeprefix("pbs_storages:\n")
    text = "defaults:\n  port: high\npbs_storages:\n" + entry + entry.replace("pbs1", "pbs2")

    assert_issue(problem(text), "defaults.port", at=(2, 9))


def test_a_default_name_is_rejected_because_every_storage_needs_its_own(
    problem: Problem, storage_text: StorageText
) -> None:
    assert_issue(
        problem("defaults:\n  name: x\n" + storage_text()),
        "defaults.name",
        message="`name` cannot have a default",
        fix_says="every storage needs its own name",
    )


def test_a_misspelt_default_gets_the_closest_field_suggested(
    problem: Problem, storage_text: StorageText
) -> None:
    assert_issue(
        problem("defaults:\n  prot: 8207\n" + storage_text()),
        "defaults.prot",
        fix="did you mean `port`?",
    )


def test_a_password_reference_can_be_a_default_for_every_storage(
    load: Load, storage_text: StorageText
) -> None:
    config = load("defaults:\n  password: ${PBS_PW}\n" + storage_text(), env={"PBS_PW": "pw"})

    assert secret_of(config) == "pw"


def test_a_literal_password_default_is_reported_once_at_the_default(
    problem: Problem, storage_text: StorageText
) -> None:
    entry = storage_text().removeprefix("pbs_storages:\n")
    text = "defaults:\n  password: hunter2\npbs_storages:\n" + entry + entry.replace("pbs1", "pbs2")

    assert_issue(
        problem(text),
        "defaults.password",
        message="a literal secret does not belong in the config file",
        fix_says="`password: ${PBS_PASSWORD}`",
    )


def test_an_unknown_prune_key_under_defaults_is_reported_at_the_default(
    problem: Problem, storage_text: StorageText
) -> None:
    assert_issue(
        problem("defaults:\n  prune_backups: {keep_dayly: 1}\n" + storage_text()),
        "defaults.prune_backups.keep_dayly",
        fix="did you mean `keep_daily`?",
    )


# -- interpolation ------------------------------------------------------------------------------


def test_env_references_are_expanded_in_any_text_value(
    load: Load, storage_text: StorageText
) -> None:
    text = storage_text(namespace="${SITE}/vms", description="'backups of ${SITE}'")
    text = text.replace("server: pbs.example", "server: ${PBS_HOST}")

    (spec,) = load(text, env={"SITE": "fra", "PBS_HOST": "pbs.fra.example"}).storages

    assert spec.server == "pbs.fra.example"
    assert spec.namespace == "fra/vms"
    assert spec.description == "backups of fra"


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("port", "8207", 8207),
        ("enabled", "false", False),
        ("enabled", "1", True),
        ("enabled", "off", False),
        ("max_protected_backups", "-1", -1),
    ],
)
def test_an_env_reference_filling_a_number_or_boolean_field_gives_that_type(
    load: Load, storage_text: StorageText, field: str, value: str, expected: object
) -> None:
    (spec,) = load(storage_text(**{field: "${VALUE}"}), env={"VALUE": value}).storages

    assert getattr(spec, field) == expected


def test_env_references_inside_prune_backups_and_pve_settings_get_their_types(
    load: Load, storage_text: StorageText
) -> None:
    text = storage_text(prune_backups="{keep_daily: '${DAYS}', keep_all: '${ALL}'}")
    text += "pve:\n  verify_ssl: ${VERIFY}\n  timeout: ${TIMEOUT}\n"
    env = {"DAYS": "7", "ALL": "no", "VERIFY": "yes", "TIMEOUT": "2.5"}

    config = load(text, env=env)

    assert config.storages[0].prune_backups == PruneBackups(keep_daily=7, keep_all=False)
    assert config.pve.verify_ssl is True
    assert config.pve.timeout == 2.5


def test_an_env_value_that_is_no_number_for_a_number_field_shows_the_value(
    storage_problem: Problem,
) -> None:
    assert_issue(
        storage_problem(port="${PORT}", env={"PORT": "high"}), "pbs_storages[0].port", "'high'"
    )


def test_an_env_value_for_a_text_field_stays_text_even_when_it_looks_like_a_number(
    load: Load, storage_text: StorageText
) -> None:
    (spec,) = load(storage_text().replace("store1", "${DS}"), env={"DS": "2024"}).storages

    assert spec.datastore == "2024"


def test_a_missing_variable_is_one_error_naming_it_at_its_field(storage_problem: Problem) -> None:
    assert_issue(
        storage_problem(port="${PBS_PORT}"),
        "pbs_storages[0].port",
        message="environment variable `PBS_PORT` is not set",
        at=(6, 11),
    )


def test_every_missing_variable_of_a_value_is_named(
    problems: Problems, storage_text: StorageText
) -> None:
    issues = problems(storage_text(description="'${A} and ${B}'"))

    assert [issue.message for issue in issues] == [
        "environment variable `A` is not set",
        "environment variable `B` is not set",
    ]


@pytest.mark.parametrize("reference", ["${}", "${1X}", "${A-B}"])
def test_a_malformed_reference_is_an_error(storage_problem: Problem, reference: str) -> None:
    issue = storage_problem(description=f"'{reference}'")

    assert "is not a valid variable reference" in issue.message


def test_a_double_dollar_is_a_literal_dollar_and_is_not_expanded_again(
    load: Load, storage_text: StorageText
) -> None:
    text = storage_text(description="'costs $$5, not $${X}'")

    (spec,) = load(text, env={"X": "expanded"}).storages

    assert spec.description == "costs $5, not ${X}"


def test_a_dns_value_is_expanded_only_once(problem: Problem) -> None:
    assert_issue(
        problem("pbs_storages: []\ndns:\n  nameservers: ['$${NS}']\n", env={"NS": "ns1"}),
        "dns.nameservers[0]",
        "'${NS}'",
    )
