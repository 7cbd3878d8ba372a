"""`pbs lab fault`: break a running lab through its admin API, as a person at a shell would."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import Invoke, as_json

from pbs_compliance.lab.runner import Lab


def test_a_pbs_goes_down_comes_back_and_renews_its_certificate(invoke: Invoke, lab: Lab) -> None:
    where = ("--state-dir", lab.state_dir)
    pbs = lab.pbs["pbs1.lab.example"]
    down = invoke("lab", "fault", "pbs", "pbs1.lab.example", "--mode", "down", *where)
    assert down.exit_code == 0, down.output
    assert "pbs1.lab.example: mode=down" in down.stdout
    assert pbs.mode == "down"
    old = pbs.fingerprint
    result = invoke(
        "lab",
        "fault",
        "pbs",
        "pbs1.lab.example",
        "--mode",
        "up",
        "--renew",
        "--expired",
        *where,
        "--output",
        "json",
    )
    assert result.exit_code == 0, result.output
    data = as_json(result)
    assert data["result"]["fingerprint"] == pbs.fingerprint != old
    assert pbs.mode == "up"


def test_dns_and_pve_faults_are_set_and_cleared(invoke: Invoke, lab: Lab) -> None:
    where = ("--state-dir", lab.state_dir)
    dns = invoke("lab", "fault", "dns", "servfail", "--node", "pve3", *where, "-o", "json")
    assert as_json(dns)["result"] == {"fault": "servfail"}
    assert "dns: none" in invoke("lab", "fault", "dns", "none", *where).stdout
    assert lab.pve is not None
    pve = invoke("lab", "fault", "pve", "latency=0.01", "fail_method=PUT", *where)
    assert pve.exit_code == 0, pve.output
    assert lab.pve.faults.settings.latency == 0.01
    assert lab.pve.faults.settings.fail_method == "PUT"
    assert invoke("lab", "fault", "pve", "--clear", *where).exit_code == 0
    assert lab.pve.faults.settings.latency == 0.0


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("pbs", "pbs1.lab.example"), 2, "say what to change"),
        (("pve",), 2, "give KEY=VALUE settings"),
        (("pve", "latency"), 2, "'latency' is not KEY=VALUE"),
        (("pbs", "nope.lab.example", "--renew"), 1, "the lab refused the fault"),
        (("pve", "nonsense=1"), 1, "the lab refused the fault"),
    ],
)
def test_fault_mistakes_are_reported(
    invoke: Invoke, shared_lab: Lab, args: tuple[str, ...], code: int, message: str
) -> None:
    result = invoke("lab", "fault", *args, "--state-dir", shared_lab.state_dir)
    assert result.exit_code == code
    assert message in result.stderr


def test_a_fault_needs_a_running_lab(invoke: Invoke, tmp_path: Path) -> None:
    missing = invoke("lab", "fault", "dns", "none", "--state-dir", tmp_path)
    assert missing.exit_code == 2
    assert "no running lab in" in missing.stderr
    (tmp_path / "lab.json").write_text(
        '{"pve": {"url": "https://127.0.0.1:9", "token_id": "a@pam!b", "token_secret": "s",'
        ' "ca_file": "ca.pem"}}',
        encoding="utf-8",
    )
    stopped = invoke("lab", "fault", "dns", "none", "--state-dir", tmp_path)
    assert stopped.exit_code == 1
    assert "does not answer" in stopped.stderr
