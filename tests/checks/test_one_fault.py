"""One fault, one red case: each fault of the README's troubleshooting table, planted alone in a
fresh lab, fails exactly the (storage, check) pairs that name it - the full set, nothing more -
and every other case it touches points at that case (see `pbs_compliance.verdicts`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from checks_harness import (
    RunChecks,
    WriteConfig,
    create_stray_entry,
    lab_config,
    pve_client,
    storage,
)

from pbs_compliance.lab.fixtures import LabFactory
from pbs_compliance.lab.runner import Lab
from pbs_compliance.lab.scenario import builtin

Plant = Callable[[Lab, WriteConfig], Path | None]  # returns a changed declaration, if any
MEDIA_NODES = {"nodes[media:pve1]", "nodes[media:pve2]", "nodes[media:pve3]"}


@dataclass(frozen=True)
class Fault:
    plant: Plant
    red: set[tuple[str, str]]  # (storage, check) pairs that fail
    pointing: dict[str, str] = field(default_factory=dict)  # case id -> "see the X case"
    scenario: dict[str, Any] = field(default_factory=dict)
    args: tuple[str, ...] = ()


def nothing(lab: Lab, write_config: WriteConfig) -> Path | None:
    return None


def pbs3_down(lab: Lab, write_config: WriteConfig) -> Path | None:
    lab.pbs["pbs3.lab.example"].set_mode("down")
    return None


def pbs3_hung(lab: Lab, write_config: WriteConfig) -> Path | None:
    lab.pbs["pbs3.lab.example"].set_mode("blackhole")
    return None


def pbs3_expired(lab: Lab, write_config: WriteConfig) -> Path | None:
    """An expired certificate that PVE and the declaration both pin: only its dates are wrong."""
    pbs = lab.pbs["pbs3.lab.example"]
    pbs.set_expired(True)
    pve_client(lab).update("media", {"fingerprint": pbs.fingerprint})
    config = lab_config(lab)
    storage(config, "media")["fingerprint"] = pbs.fingerprint
    return write_config(config)


def pbs3_renewed(lab: Lab, write_config: WriteConfig) -> Path | None:
    """PBS renewed its certificate; PVE and the declaration still pin the old one."""
    lab.pbs["pbs3.lab.example"].renew_certificate()
    return None


def declared_fingerprint_wrong(lab: Lab, write_config: WriteConfig) -> Path | None:
    """The declaration pins another fingerprint; PVE holds the served (right) one."""
    config = lab_config(lab)
    storage(config, "media")["fingerprint"] = ":".join(["AB"] * 32)
    return write_config(config)


def retention_edited_in_the_gui(lab: Lab, write_config: WriteConfig) -> Path | None:
    pve_client(lab).update("homelab-backup", {"prune-backups": "keep-daily=30"})
    return None


def port_edited_in_the_gui(lab: Lab, write_config: WriteConfig) -> Path | None:
    pve_client(lab).update("media", {"port": "1"})
    return None


def password_pve_stores_wrongly(lab: Lab, write_config: WriteConfig) -> Path | None:
    pve_client(lab).update("homelab-backup", {}, password="wrong-stored-password")
    return None


def stray_entry(lab: Lab, write_config: WriteConfig) -> Path | None:
    create_stray_entry(lab)
    return None


def _pbs3_not_in_dns() -> dict[str, Any]:
    servers = builtin().model_dump()["pbs_servers"]
    for server in servers:
        if server["name"] == "pbs3.lab.example":
            server["in_dns"] = False
    return {"pbs_servers": servers}


FAULTS = {
    "dns": Fault(
        nothing,
        {("media", "dns")},
        {"port[media]": "see the dns case", "nodes[media:pve2]": "see the dns case"},
        scenario=_pbs3_not_in_dns(),
    ),
    "port": Fault(
        pbs3_down,
        {("media", "port")},
        {"tls[media]": "see the port case", "nodes[media:pve1]": "see the port case"},
    ),
    "tls-hung": Fault(
        pbs3_hung,
        {("media", "tls")},
        {"fingerprint[media]": "see the tls case", "nodes[media:pve3]": "see the tls case"},
        args=("--probe-timeout", "0.5"),
    ),
    "tls-expired": Fault(pbs3_expired, {("media", "tls")}),
    "fingerprint-renewed": Fault(
        pbs3_renewed,
        {("media", "fingerprint")},
        {"nodes[media:pve1]": "see the fingerprint case"},
    ),
    "fingerprint-declared-wrong": Fault(
        declared_fingerprint_wrong,
        {("media", "fingerprint")},
        {"drift[media]": "see the fingerprint case"},
    ),
    "drift": Fault(retention_edited_in_the_gui, {("homelab-backup", "drift")}),
    "drift-port": Fault(
        port_edited_in_the_gui,
        {("media", "drift")},
        {"nodes[media:pve2]": "see the drift case"},
    ),
    "nodes-resolver": Fault(
        nothing,
        {("homelab-backup", "nodes"), ("archive", "nodes")},
        scenario={"dns_hidden": {"pve3": ["pbs1.lab.example"]}},
    ),
    "nodes-stored-password": Fault(password_pve_stores_wrongly, {("homelab-backup", "nodes")}),
    "unmanaged": Fault(stray_entry, {("(all)", "unmanaged")}),
}


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
def test_one_fault_fails_exactly_the_case_that_names_it(
    make_lab: LabFactory, run_checks: RunChecks, write_config: WriteConfig, fault: Fault
) -> None:
    lab = make_lab({**builtin().model_dump(), **fault.scenario})
    config = fault.plant(lab, write_config)

    run = run_checks(lab, *fault.args, config=config)

    red = {
        (c.properties["storage"], c.properties["check"])
        for c in run.cases.values()
        if c.outcome == "failed"
    }
    assert red == fault.red, run.output
    assert run.ids("error") == set()
    for case, pointer in fault.pointing.items():
        assert run.cases[case].outcome == "skipped", (case, run.message(case))
        assert pointer in run.message(case), (case, run.message(case))
