"""A wrong fault request says what was wrong and what is valid, not an internal key (#10 item 22).

The admin routes are driven over real HTTPS with the lab's own token, as `pbs lab fault` does.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
import requests

from pbs_compliance.lab.pve_faults import FAULT_HELP, FaultSettings, PveFaults
from pbs_compliance.lab.runner import Lab


def admin(lab: Lab, route: str, body: dict[str, Any]) -> requests.Response:
    pve = json.loads((lab.state_dir / "lab.json").read_text(encoding="utf-8"))["pve"]
    return requests.post(
        f"{pve['url']}/api2/json/_lab/{route}",
        json=body,
        headers={"Authorization": f"PVEAPIToken={pve['token_id']}={pve['token_secret']}"},
        verify=pve["ca_file"],
        timeout=5,
    )


@pytest.mark.parametrize(
    ("route", "body", "status", "reason"),
    [
        (
            "pbs/pbs9.lab.example",
            {"renew": True},
            400,
            "no PBS server named 'pbs9.lab.example' in this lab (its PBS servers: "
            "pbs1.lab.example, pbs2.lab.example, pbs3.lab.example)",
        ),
        (
            "dns",
            {"fault": "servfail", "node": "pve9"},
            400,
            "no node named 'pve9' in this lab (its nodes: pve1, pve2, pve3)",
        ),
        (
            "pbs/pbs1.lab.example",
            {"mode": "sideways"},
            400,
            "mode 'sideways' is not one of up, down, blackhole",
        ),
        ("dns", {"fault": "nxdomain"}, 400, "DNS fault 'nxdomain' is not one of servfail,"),
        ("nope", {}, 501, "no lab fault at /_lab/nope; the lab's fault routes are"),
        ("faults", {"latency": "abc"}, 400, 'invalid PVE fault setting: latency="abc": '),
        ("faults", {"fail_nth": 0}, 400, "invalid PVE fault setting: fail_nth=0: Input should be"),
        (
            "faults",
            {"nonsense": 1},
            400,
            "unknown PVE fault setting(s): nonsense; the settings are latency, fail_nth,",
        ),
    ],
)
def test_a_wrong_fault_is_refused_in_words_with_the_valid_choices(
    shared_lab: Lab, route: str, body: dict[str, Any], status: int, reason: str
) -> None:
    assert shared_lab.pve is not None
    before = shared_lab.pve.faults.settings
    answer = admin(shared_lab, route, body)
    assert answer.status_code == status
    assert answer.reason.startswith(reason), answer.reason
    assert answer.json()["message"].startswith(reason)
    assert shared_lab.pve.faults.settings == before  # nothing changed
    assert all(pbs.mode == "up" for pbs in shared_lab.pbs.values())


def test_a_dns_fault_for_a_known_node_still_works(lab: Lab) -> None:
    answer = admin(lab, "dns", {"fault": "servfail", "node": "pve3"})
    assert answer.status_code == 200
    assert answer.json()["data"] == {"fault": "servfail"}


def test_every_pve_fault_setting_has_a_one_line_meaning() -> None:
    fields = [f.name for f in dataclasses.fields(FaultSettings)]
    assert list(FAULT_HELP) == fields
    assert all(meaning and "\n" not in meaning for meaning in FAULT_HELP.values())


def test_values_are_converted_like_the_command_line_sends_them() -> None:
    faults = PveFaults()
    settings = faults.set(latency=2, fail_message=404, concurrent_writer="true", fail_status="502")
    assert (settings.latency, settings.fail_message) == (2.0, "404")
    assert (settings.concurrent_writer, settings.fail_status) == (True, 502)
    with pytest.raises(ValueError, match=r"latency=-1: Input should be greater than or equal to 0"):
        faults.set(latency=-1)
    assert faults.settings == settings
