"""`pbs validate` and `pbs status` against labs: tables, JSON, exit statuses, config errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import Invoke, as_json, assert_shows, storage, writes

from pbs_compliance.lab.runner import Lab
from pbs_compliance.lab.scenario import builtin

NAMES = ("archive", "homelab-backup", "media", "offsite")


def row(output: str, name: str) -> str:
    """The table line of one storage."""
    return next(line for line in output.splitlines() if line.startswith(f"│{name} "))


# -- validate -------------------------------------------------------------------------------------


def test_validate_shows_every_storage_reachable_and_exits_0(
    invoke: Invoke, shared_lab: Lab, use_lab: Callable[[Lab], Path]
) -> None:
    result = invoke("validate", "--config", use_lab(shared_lab))
    assert result.exit_code == 0, result.output
    header = next(line for line in result.stdout.splitlines() if "Storage" in line)
    for column in ("Status", "DNS", "Port", "TLS", "Fingerprint", "Issues"):
        assert column in header
    for name in NAMES:
        assert row(result.stdout, name).split("│")[2:7] == [
            " ok     ",
            " ok  ",
            " ok   ",
            " ok  ",
            " ok          ",
        ]
    assert "every enabled storage is reachable as declared" in result.stdout
    assert "\x1b[" not in result.stdout  # not a terminal: no colour


def test_validate_verbose_adds_addresses_and_certificates(
    invoke: Invoke, shared_lab: Lab, use_lab: Callable[[Lab], Path]
) -> None:
    result = invoke("validate", "--config", use_lab(shared_lab), "--verbose")
    assert result.exit_code == 0
    pbs2 = shared_lab.pbs["pbs2.lab.example"]
    assert_shows(
        result.stdout,
        f"resolved:    {pbs2.address}",
        f"served:      {pbs2.fingerprint}",
        "subject:     CN=pbs2.lab.example",
        "valid:",
    )


def test_validate_json_has_stable_keys_and_nothing_else_on_stdout(
    invoke: Invoke, shared_lab: Lab, use_lab: Callable[[Lab], Path]
) -> None:
    result = invoke("validate", "-c", use_lab(shared_lab), "--output", "json")
    assert result.exit_code == 0
    data = as_json(result)
    assert data["ok"] is True
    assert [s["name"] for s in data["storages"]] == sorted(NAMES)
    offsite = next(s for s in data["storages"] if s["name"] == "offsite")
    assert set(offsite) == {
        "name",
        "server",
        "port",
        "enabled",
        "status",
        "checks",
        "issues",
        "addresses",
        "certificate",
        "declared_fingerprint",
        "waived",
    }
    assert set(offsite["checks"]) == {"dns", "port", "tls", "fingerprint"}
    assert offsite["certificate"]["fingerprint"] == shared_lab.pbs["pbs2.lab.example"].fingerprint
    assert offsite["addresses"] == ["127.0.0.12"]


def test_validate_names_a_down_server_and_a_renewed_certificate_and_exits_1(
    invoke: Invoke, lab: Lab, use_lab: Callable[[Lab], Path]
) -> None:
    lab.pbs["pbs3.lab.example"].set_mode("down")
    lab.pbs["pbs2.lab.example"].renew_certificate()
    result = invoke("validate", "--config", use_lab(lab))
    assert result.exit_code == 1
    media = row(result.stdout, "media")
    assert "FAIL" in media
    assert "refused" in media
    offsite = row(result.stdout, "offsite")
    assert offsite.split("│")[6].strip() == "FAIL"
    assert "another fingerprint" in offsite
    assert "fix: `pbs fingerprint" in result.stdout  # the full message, with its fix
    assert "not reachable as declared: media, offsite" in result.stdout
    data = as_json(invoke("validate", "--config", lab.config_path, "-o", "json"))
    assert {s["name"]: s["status"] for s in data["storages"]} == {
        "archive": "ok",
        "homelab-backup": "ok",
        "media": "fail",
        "offsite": "fail",
    }


def test_validate_does_not_probe_a_disabled_storage_and_passes(
    invoke: Invoke, shared_lab: Lab, lab_config: Callable[..., Path]
) -> None:
    def disable(data: dict[str, Any]) -> None:
        storage(data, "media")["enabled"] = False
        storage(data, "media")["server"] = "nowhere.invalid"

    result = invoke("validate", "--config", lab_config(shared_lab, disable))
    assert result.exit_code == 0, result.output
    assert "disabled" in row(result.stdout, "media")


def test_a_broken_config_lists_every_problem_and_exits_2(invoke: Invoke, tmp_path: Path) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text(
        "pbs_storages:\n"
        "  - name: x\n"  # too short
        "    server: pbs1\n"
        "    datastore: d\n"  # too short
        "    fingerprint: nope\n",
        encoding="utf-8",
    )
    for command in ("validate", "status", "apply"):
        result = invoke(command, "--config", config)
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        assert_shows(
            result.stderr,
            "invalid configuration (3 problems)",
            "fingerprint",
            "pbs_storages[0].name",
        )
        assert result.stdout == ""
    data = as_json(invoke("validate", "--config", config, "--output", "json"))
    assert data["error"] == "config"
    assert len(data["issues"]) == 3
    assert {i["line"] for i in data["issues"]} == {2, 4, 5}


def test_a_missing_config_file_is_a_usage_error(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("validate", "--config", tmp_path / "nope.yaml")
    assert result.exit_code == 2
    assert "file not found" in result.stderr


def test_the_config_path_comes_from_the_environment_without_an_option(
    invoke: Invoke,
    shared_lab: Lab,
    use_lab: Callable[[Lab], Path],
    monkeypatch: Any,
) -> None:
    monkeypatch.setenv("PBS_COMPLIANCE_CONFIG", str(use_lab(shared_lab)))
    assert invoke("validate").exit_code == 0


# -- status ---------------------------------------------------------------------------------------


def test_status_shows_declared_and_live_entries_side_by_side(
    invoke: Invoke, shared_lab: Lab, use_lab: Callable[[Lab], Path]
) -> None:
    before = len(writes(shared_lab))
    result = invoke("status", "--config", use_lab(shared_lab))
    assert result.exit_code == 0, result.output
    header = next(line for line in result.stdout.splitlines() if "Name" in line)
    for column in ("Server", "Datastore", "Status", "Drift", "Nodes active"):
        assert column in header
    cells = [c.strip() for c in row(result.stdout, "offsite").split("│")[1:-1]]
    assert cells == ["offsite", "pbs2.lab.example", "offsite", "enabled", "none", "2/2"]
    assert "3/3" in row(result.stdout, "archive")
    assert len(writes(shared_lab)) == before  # status only reads


def test_status_reports_disabled_drifted_missing_unmanaged_and_inactive_entries(
    invoke: Invoke, make_lab: Callable[..., Lab], lab_config: Callable[..., Path]
) -> None:
    lab = make_lab(builtin().model_copy(update={"dns_hidden": {"pve3": ["pbs3.lab.example"]}}))
    config = lab_config(lab)

    def declare(data: dict[str, Any]) -> None:
        extra = dict(storage(data, "archive"), name="archive-prod", namespace="prod")
        data["pbs_storages"].append(extra)
        data["pbs_storages"].remove(storage(data, "homelab-backup"))

    config = lab_config(lab, declare)
    from pbs_compliance.config import load_config
    from pbs_compliance.evidence import client_for
    from pbs_compliance.settings import Overrides, resolve

    client = client_for(resolve(load_config(config), Overrides()))
    assert client is not None
    client.update("archive", {"disable": "1"})
    client.update("offsite", {"prune-backups": "keep-last=1"})

    result = invoke("status", "--config", config)
    assert result.exit_code == 1
    cells = {
        name: [c.strip() for c in row(result.stdout, name).split("│")[1:-1]]
        for name in ("archive", "archive-prod", "homelab-backup", "media", "offsite")
    }
    assert cells["archive"][3:] == ["disabled", "disable", "0/3"]
    assert cells["archive-prod"][3:] == ["missing", "missing in PVE", "-"]
    assert cells["homelab-backup"][3:5] == ["unmanaged", "not declared"]
    assert cells["media"][3:] == ["enabled", "none", "2/3 (not active: pve3)"]
    assert cells["offsite"][3:] == ["enabled", "prune-backups", "2/2"]

    data = as_json(invoke("status", "--config", config, "--output", "json"))
    assert data["ok"] is False
    assert data["nodes"] == ["pve1", "pve2", "pve3"]
    by_name = {s["name"]: s for s in data["storages"]}
    assert by_name["offsite"]["drift"] == [
        {
            "property": "prune-backups",
            "declared": "keep-last=3,keep-weekly=8",
            "live": "keep-last=1",
        }
    ]
    assert by_name["media"]["nodes"]["inactive"] == ["pve3"]
    assert by_name["homelab-backup"]["declared"] is False
    assert by_name["archive-prod"]["missing"] is True


def test_status_needs_pve_credentials(
    invoke: Invoke, shared_lab: Lab, lab_config: Callable[..., Path]
) -> None:
    config = lab_config(shared_lab, lambda data: data.pop("pve"))
    result = invoke("status", "--config", config)
    assert result.exit_code == 2
    assert "no PVE credentials configured" in result.stderr
    data = as_json(invoke("status", "--config", config, "--output", "json"))
    assert data == {"ok": False, "error": "pve", "message": data["message"]}


@pytest.mark.parametrize("command", ["status", "apply"])  # apply stops before any plan
def test_status_and_apply_say_why_pve_cannot_be_read_and_exit_1(
    invoke: Invoke, shared_lab: Lab, lab_config: Callable[..., Path], command: str
) -> None:
    def nowhere(data: dict[str, Any]) -> None:
        data["pve"]["url"] = "https://127.0.0.1:9"

    result = invoke(command, "--config", lab_config(shared_lab, nowhere))
    assert result.exit_code == 1
    assert "cannot read PVE" in result.stderr
    assert "127.0.0.1:9" in result.stderr
