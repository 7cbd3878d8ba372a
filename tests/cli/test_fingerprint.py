"""`pbs fingerprint`: what a PBS serves, and pinning it in the YAML without touching the rest."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import Invoke, as_json, assert_shows

from pbs_compliance.config import ConfigError
from pbs_compliance.lab.runner import Lab
from pbs_compliance.pinning import split_target, update_fingerprint

COMMENTED = """\
# Our PBS storages. Reviewed in merge requests; keep the comments.
pve:
  url: {url}                 # the cluster
  token_id: root@pam!compliance
  token_secret: ${{PBS_LAB_PVE_TOKEN_SECRET}}   # from the environment
  ca_file: {ca}
dns:
  nameservers: ["{dns}"]
pbs_storages:
  - name: offsite            # the second site
    server: pbs2.lab.example
    port: {port}
    datastore: offsite
    username: sync@pbs
    fingerprint: "{old}"  # pinned 2024-01-01
    nodes: [pve1, pve2]
    prune_backups: {{keep_last: 3, keep_weekly: 8}}

  # media keeps every backup
  - name: media
    server: pbs3.lab.example
    port: {port3}
    datastore: media
    fingerprint: '{fp3}'
"""


def commented_config(lab: Lab, path: Path) -> Path:
    pbs2, pbs3 = lab.pbs["pbs2.lab.example"], lab.pbs["pbs3.lab.example"]
    assert lab.dns is not None
    path.write_text(
        COMMENTED.format(
            url=lab.url,
            ca=lab.ca_file,
            dns=f"{lab.dns.address}:{lab.dns.port}",
            port=pbs2.port,
            old=pbs2.fingerprint,
            port3=pbs3.port,
            fp3=pbs3.fingerprint,
        ),
        encoding="utf-8",
    )
    return path


def test_fingerprint_shows_what_the_server_serves(invoke: Invoke, shared_lab: Lab) -> None:
    pbs = shared_lab.pbs["pbs1.lab.example"]
    result = invoke("fingerprint", f"{pbs.address}:{pbs.port}")
    assert result.exit_code == 0, result.output
    assert_shows(
        result.stdout,
        f"fingerprint  {pbs.fingerprint}",
        "subject      CN=pbs1.lab.example",
        "issuer       ",
        "days left",
    )
    data = as_json(invoke("fingerprint", f"{pbs.address}:{pbs.port}", "--output", "json"))
    assert data["fingerprint"] == pbs.fingerprint
    assert data["expired"] is False
    assert data["days_left"] > 300
    assert data["updated"] is None
    assert "DNS:pbs1.lab.example" in data["sans"]


def test_with_a_config_names_resolve_through_its_dns_and_the_port_is_the_declared_one(
    invoke: Invoke, shared_lab: Lab, use_lab: Callable[[Lab], Path]
) -> None:
    result = invoke("fingerprint", "pbs3.lab.example", "--config", use_lab(shared_lab))
    assert result.exit_code == 0, result.output
    pbs = shared_lab.pbs["pbs3.lab.example"]
    assert_shows(
        result.stdout,
        f"pbs3.lab.example:{pbs.port}",
        f"{pbs.address} from 127.0.0.1:",
        pbs.fingerprint,
    )


def test_update_pins_a_renewed_certificate_and_keeps_comments_and_layout(
    invoke: Invoke, lab: Lab, use_lab: Callable[[Lab], Path], tmp_path: Path
) -> None:
    use_lab(lab)
    config = commented_config(lab, tmp_path / "pbs-storage.yaml")
    before = config.read_text(encoding="utf-8")
    old = lab.pbs["pbs2.lab.example"].fingerprint
    new = lab.pbs["pbs2.lab.example"].renew_certificate()
    assert new != old

    result = invoke("fingerprint", "pbs2.lab.example", "--update", "offsite", "--config", config)
    assert result.exit_code == 0, result.output
    assert f"offsite.fingerprint {old} -> {new}" in result.stdout
    after = config.read_text(encoding="utf-8")
    changed = [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="")
        if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))
    ]
    assert changed == [
        f'-    fingerprint: "{old}"  # pinned 2024-01-01',
        f'+    fingerprint: "{new}"  # pinned 2024-01-01',
    ]
    again = invoke("fingerprint", "--update", "offsite", "--config", config, "-o", "json")
    assert again.exit_code == 0
    assert as_json(again)["updated"]["changed"] is False
    assert invoke("validate", "--config", config).exit_code == 0


def test_update_without_host_uses_the_declared_server(
    invoke: Invoke, lab: Lab, lab_config: Callable[..., Path]
) -> None:
    config = lab_config(lab)
    new = lab.pbs["pbs1.lab.example"].renew_certificate()
    result = invoke("fingerprint", "--update", "archive", "--config", config, "--output", "json")
    assert result.exit_code == 0, result.output
    data = as_json(result)
    assert data["updated"]["fingerprint"] == new
    assert data["updated"]["changed"] is True
    assert new in config.read_text(encoding="utf-8")


def test_update_of_another_host_pins_it_with_a_note(
    invoke: Invoke, shared_lab: Lab, lab_config: Callable[..., Path]
) -> None:
    config = lab_config(shared_lab)
    pbs = shared_lab.pbs["pbs1.lab.example"]
    target = f"{pbs.address}:{pbs.port}"
    result = invoke("fingerprint", target, "--update", "offsite", "--config", config)
    assert result.exit_code == 0
    assert "note: 'offsite' declares pbs2.lab.example" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("fingerprint",), "give HOST[:PORT]"),
        (("fingerprint", "pbs1:port"), "the port must be a number"),
        (("fingerprint", "[::1]x"), "write [IPv6]:PORT"),
    ],
)
def test_usage_errors_exit_2(invoke: Invoke, args: tuple[str, ...], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_update_of_an_undeclared_storage_exits_2(
    invoke: Invoke, shared_lab: Lab, lab_config: Callable[..., Path]
) -> None:
    result = invoke("fingerprint", "--update", "nope", "--config", lab_config(shared_lab))
    assert result.exit_code == 2
    assert "no storage named 'nope'" in result.stderr
    assert "(declared: homelab-backup, archive, offsite, media)" in result.stderr


def test_a_server_that_does_not_answer_exits_1(invoke: Invoke, shared_lab: Lab) -> None:
    result = invoke("fingerprint", "127.0.0.1:9", "--timeout", "1")
    assert result.exit_code == 1
    assert "no certificate from 127.0.0.1:9" in result.stderr
    data = as_json(invoke("fingerprint", "127.0.0.1:9", "--timeout", "1", "-o", "json"))
    assert data["error"] == "tls"
    assert data["target"] == "127.0.0.1:9"


def test_a_name_the_config_dns_does_not_know_exits_1(
    invoke: Invoke, shared_lab: Lab, use_lab: Callable[[Lab], Path]
) -> None:
    result = invoke("fingerprint", "unknown.lab.example", "--config", use_lab(shared_lab))
    assert result.exit_code == 1
    assert "NXDOMAIN" in result.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pbs1", ("pbs1", None)),
        ("pbs1:8008", ("pbs1", 8008)),
        ("192.0.2.1", ("192.0.2.1", None)),
        ("[2001:db8::1]:8007", ("2001:db8::1", 8007)),
        ("[2001:db8::1]", ("2001:db8::1", None)),
        ("2001:db8::1", ("2001:db8::1", None)),
    ],
)
def test_targets_parse_like_pve_writes_them(text: str, expected: tuple[str, int | None]) -> None:
    assert split_target(text) == expected


@pytest.mark.parametrize("text", ["", ":8007", "pbs1:0", "pbs1:99999"])
def test_bad_targets_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        split_target(text)


def test_update_inserts_a_missing_fingerprint_after_the_datastore(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "pbs_storages:\n- name: a1\n  server: s\n  datastore: ds1\n  username: root@pam\n",
        encoding="utf-8",
    )
    update_fingerprint(config, "a1", "AB:CD")
    assert config.read_text(encoding="utf-8") == (
        "pbs_storages:\n- name: a1\n  server: s\n  datastore: ds1\n  fingerprint: AB:CD\n"
        "  username: root@pam\n"
    )


@pytest.mark.parametrize("text", ["pbs_storages: [\n", "just a string\n", "pbs_storages: []\n"])
def test_update_of_an_unusable_file_is_a_config_error(tmp_path: Path, text: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError):
        update_fingerprint(config, "a1", "AB:CD")
    with pytest.raises(ConfigError, match="cannot read"):
        update_fingerprint(tmp_path / "missing.yaml", "a1", "AB:CD")


def test_a_name_this_machine_cannot_resolve_points_to_config_and_its_nameservers(
    invoke: Invoke,
) -> None:
    result = invoke("fingerprint", "pbs1.lab.example", "--timeout", "2")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "pbs: no certificate from pbs1.lab.example:8007: this machine's resolver does not know "
        "'pbs1.lab.example'. Try --config FILE to resolve it through that config's "
        "dns.nameservers (for the lab: --config .lab/pbs-storage.yaml"
    )
    data = as_json(invoke("fingerprint", "pbs1.lab.example", "--timeout", "2", "-o", "json"))
    assert "Try --config FILE" in data["message"]
    refused = invoke("fingerprint", "127.0.0.1:9", "--timeout", "1")  # resolved, nothing there
    assert "--config" not in refused.stderr


def test_help_says_names_resolve_through_the_configs_nameservers(invoke: Invoke) -> None:
    text = " ".join(invoke("fingerprint", "--help").stdout.split())
    assert_shows(
        text,
        "with --config, through that config's dns.nameservers",
        "pbs fingerprint pbs1.lab.example --config .lab/pbs-storage.yaml",
        "HOST resolves through its dns.nameservers",
    )
