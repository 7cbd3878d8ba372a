"""`pbs validate` and `pbs status` show waived results as waived, with the exit rules of a
pytest run: every failure waived -> 0; an expired waiver (today pinned) -> 1 again (#14)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import Invoke, as_json, assert_shows, storage

from pbs_compliance.lab.runner import Lab
from pbs_compliance.lab.scenario import builtin

TODAY = "2030-06-10"


def row(output: str, name: str) -> list[str]:
    line = next(line for line in output.splitlines() if line.startswith(f"│{name} "))
    return [cell.strip() for cell in line.split("│")[1:-1]]


def waive(*entries: dict[str, str]) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        data["waivers"] = [dict(e, reason=e.get("reason", "OPS-1")) for e in entries]

    return edit


def test_validate_shows_a_waived_failure_and_exits_0_until_it_expires(
    invoke: Invoke,
    lab: Lab,
    lab_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lab.pbs["pbs3.lab.example"].set_mode("down")
    config = lab_config(lab, waive({"storage": "media", "check": "port", "expires": "2030-06-11"}))
    monkeypatch.setenv("PBS_COMPLIANCE_TODAY", TODAY)
    result = invoke("validate", "--config", config)
    assert result.exit_code == 0, result.stdout
    cells = row(result.stdout, "media")
    assert cells[1:4] == ["waived", "ok", "WAIVED"]  # Status, DNS, Port
    assert f"waived: media: port waived until 2030-06-11 ({config}:" in result.stdout
    data = as_json(invoke("validate", "--config", config, "-o", "json"))
    media = next(s for s in data["storages"] if s["name"] == "media")
    assert (data["ok"], media["status"], media["waived"]) == (True, "waived", ["port"])
    assert media["checks"]["port"]["status"] == "fail"  # the result itself is kept

    monkeypatch.setenv("PBS_COMPLIANCE_TODAY", "2030-06-11")  # the expiry date: ignored
    expired = invoke("validate", "--config", config)
    assert expired.exit_code == 1
    assert row(expired.stdout, "media")[1:4] == ["FAIL", "ok", "FAIL"]
    assert "waived:" not in expired.stdout


def test_status_waives_drift_inactive_nodes_and_unmanaged_entries(
    invoke: Invoke,
    make_lab: Callable[..., Lab],
    lab_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lab = make_lab(builtin().model_copy(update={"dns_hidden": {"pve3": ["pbs3.lab.example"]}}))
    monkeypatch.setenv("PBS_COMPLIANCE_TODAY", TODAY)
    base = lab_config(lab)
    from pbs_compliance.config import load_config
    from pbs_compliance.evidence import client_for
    from pbs_compliance.settings import Overrides, resolve

    client = client_for(resolve(load_config(base), Overrides()))
    assert client is not None
    client.update("offsite", {"prune-backups": "keep-last=1"})
    waivers = [
        {"storage": "media", "check": "nodes", "node": "pve3", "expires": "2030-07-01"},
        {"storage": "offsite", "check": "drift", "expires": "2030-07-01"},
        {"storage": "*", "check": "unmanaged", "expires": "2030-07-01"},
    ]

    def undeclare(data: dict[str, Any]) -> None:
        data["pbs_storages"].remove(storage(data, "homelab-backup"))
        waive(*waivers)(data)

    config = lab_config(lab, undeclare)
    result = invoke("status", "--config", config)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert_shows(
        result.stdout,
        "waived: media: nodes (pve3) waived until 2030-07-01",
        "waived: offsite: drift waived until 2030-07-01",
        "waived: homelab-backup: unmanaged waived until 2030-07-01",
    )
    data = as_json(invoke("status", "--config", config, "-o", "json"))
    by_name = {s["name"]: s for s in data["storages"]}
    assert data["ok"] is True
    assert by_name["media"]["waived"] == ["nodes:pve3"]
    assert (by_name["offsite"]["waived"], by_name["offsite"]["compliant"]) == (["drift"], True)
    assert by_name["homelab-backup"]["waived"] == ["unmanaged"]
    assert by_name["archive"]["waived"] == []

    # A waiver of another node does not cover pve3: not compliant, exit 1.
    def other_node(data: dict[str, Any]) -> None:
        undeclare(data)
        data["waivers"][0]["node"] = "pve2"

    data = as_json(invoke("status", "--config", lab_config(lab, other_node), "-o", "json"))
    assert data["ok"] is False
    assert {s["name"]: s["compliant"] for s in data["storages"]}["media"] is False
