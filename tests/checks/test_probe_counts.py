"""Many storages on few servers cost one probe per server and one storage-list read per run."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from checks_harness import RunChecks, WriteConfig, lab_config

from pbs_compliance.lab.pbs_server import PbsServer
from pbs_compliance.lab.runner import Lab

SERVERS = {
    "pbs1.lab.example": "homelab",
    "pbs2.lab.example": "offsite",
    "pbs3.lab.example": "media",
}


def fifty_storages(lab: Lab) -> dict[str, Any]:
    config = lab_config(lab)
    storages = []
    for i in range(50):
        server = list(SERVERS)[i % 3]
        pbs = lab.pbs[server]
        storages.append(
            {
                "name": f"store-{i:02d}",
                "server": server,
                "datastore": SERVERS[server],
                "port": pbs.port,
                "fingerprint": pbs.fingerprint,
            }
        )
    config["pbs_storages"] = storages
    return config


def settled_counts(pbs: PbsServer) -> dict[str, int]:
    """Connection counts once the server's threads have caught up with the closed sockets."""
    previous: dict[str, int] = {}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        counts = pbs.connection_counts
        if counts == previous:
            return counts
        previous = counts
        time.sleep(0.2)
    return previous


def test_fifty_storages_on_three_servers_cost_three_probes_of_each_kind_and_one_list_read(
    lab: Lab, run_checks: RunChecks, write_config: WriteConfig
) -> None:
    assert lab.dns is not None
    before = {name: pbs.connection_counts for name, pbs in lab.pbs.items()}
    asked_before = len(lab.dns.asked)
    requests_before = len(lab.requests())

    run = run_checks(lab, config=write_config(fifty_storages(lab)))

    assert run.cases["dns[store-49]"].outcome == "passed"
    assert len([c for c in run.cases if c.startswith("fingerprint[")]) == 50
    assert all(run.cases[f"fingerprint[store-{i:02d}]"].outcome == "passed" for i in range(50))
    # DNS: each server name asked once per record type, nothing else.
    asked = Counter(lab.dns.asked[asked_before:])
    assert {name for name, _ in asked} == set(SERVERS)
    assert set(asked.values()) == {1}
    # TCP and TLS: per server, one connection that never handshook (the port probe) and one
    # handshake that never sent a request (the TLS probe); the nodes' connections all do.
    for name, pbs in lab.pbs.items():
        now = settled_counts(pbs)
        delta = {k: now[k] - before[name][k] for k in now}
        assert delta["tcp"] - delta["tls"] == 1, (name, delta)
        assert delta["tls"] - delta["api"] == 1, (name, delta)
    # PVE: the storage list is read once per run.
    paths = [r["path"] for r in lab.requests()[requests_before:]]
    assert paths.count("/api2/json/storage") == 1
    assert paths.count("/api2/json/nodes") == 1
