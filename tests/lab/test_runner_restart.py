"""A lab restarted in the same state dir is the same cluster: same certificates, logins, ports."""

from __future__ import annotations

import json
import socket
import stat
from collections.abc import Callable
from pathlib import Path

from pbs_compliance import verdicts
from pbs_compliance.config import load_config
from pbs_compliance.evidence import gather_evidence
from pbs_compliance.lab.certs import fingerprint_of_der
from pbs_compliance.lab.runner import Lab
from pbs_compliance.lab.scenario import Scenario, builtin
from pbs_compliance.settings import Overrides, resolve


def test_a_restarted_lab_serves_what_its_kept_storage_cfg_pins(tmp_path: Path) -> None:
    scenario = builtin().with_ephemeral_ports().model_copy(update={"auth_failure_delay": 0.0})
    first = Lab(scenario, tmp_path)
    first.start()
    pinned = {name: (pbs.fingerprint, pbs.port) for name, pbs in first.pbs.items()}
    first.pbs["pbs3.lab.example"].renew_certificate()
    renewed = first.pbs["pbs3.lab.example"].fingerprint
    token = first.token_secret
    first.stop()
    assert stat.S_IMODE((tmp_path / "lab-state.json").stat().st_mode) == 0o600

    second = Lab(scenario, tmp_path)
    second.start()
    try:
        assert second.token_secret == token
        assert second.pbs["pbs1.lab.example"].fingerprint == pinned["pbs1.lab.example"][0]
        assert second.pbs["pbs1.lab.example"].port == pinned["pbs1.lab.example"][1]
        assert second.pbs["pbs3.lab.example"].fingerprint == renewed  # what happened stays
        config = load_config(second.config_path, second.env)
        evidence = gather_evidence(resolve(config, Overrides(), {}))
        for spec in config.storages:
            if spec.name == "media":  # PVE still pins the certificate from before the renewal
                media = verdicts.drift(spec, evidence.live)
                assert [d.key for d in media.drift.diffs] == ["fingerprint"]  # type: ignore[union-attr]
                continue
            assert verdicts.drift(spec, evidence.live).passed, spec.name
            for target, node in verdicts.node_targets(config, evidence.live):
                if target.name == spec.name:
                    assert verdicts.node(spec, node, evidence.live).passed, (spec.name, node)
    finally:
        second.stop()


def _scenario() -> Scenario:
    return builtin().with_ephemeral_ports().model_copy(update={"auth_failure_delay": 0.0})


def test_a_restart_keeps_the_pve_and_dns_ports_and_a_config_saved_before_still_works(
    tmp_path: Path,
) -> None:
    first = Lab(_scenario(), tmp_path / "state")
    first.start()
    assert first.dns is not None
    ports = (first.pve.port if first.pve else 0, first.dns.port)
    node_ports = {node: dns.port for node, dns in first.node_dns.items()}
    saved = tmp_path / "state" / "saved.yaml"  # a config someone kept from the first run
    saved.write_text(first.config_path.read_text(encoding="utf-8"), encoding="utf-8")
    ca_before = first.ca_file.read_bytes()
    env = dict(first.env)
    first.stop()

    second = Lab(_scenario(), tmp_path / "state")
    second.start()
    try:
        assert second.dns is not None
        assert second.pve is not None
        assert (second.pve.port, second.dns.port) == ports
        assert {node: dns.port for node, dns in second.node_dns.items()} == node_ports
        assert second.ca_file.read_bytes() == ca_before  # a copy of ca.pem still verifies
        assert second.notes == []
        config = load_config(saved, env)
        evidence = gather_evidence(resolve(config, Overrides(), {}))
        assert evidence.live.error is None
        assert set(evidence.live.pbs_entries) == {s.name for s in config.storages}
        for spec in config.storages:
            assert evidence.server(spec).dns.ok, spec.server  # through the saved nameserver
            assert verdicts.drift(spec, evidence.live).passed, spec.name
    finally:
        second.stop()


def test_a_kept_port_taken_by_something_else_moves_with_a_clear_note(tmp_path: Path) -> None:
    first = Lab(_scenario(), tmp_path)
    first.start()
    assert first.pve is not None
    assert first.dns is not None
    pve_port, dns_port = first.pve.port, first.dns.port
    first.stop()
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
    ):
        tcp.bind(("127.0.0.1", pve_port))
        tcp.listen(1)
        udp.bind(("127.0.0.1", dns_port))
        second = Lab(_scenario(), tmp_path)
        second.start()
        try:
            assert second.pve is not None
            assert second.dns is not None
            assert second.pve.port != pve_port
            assert second.dns.port != dns_port
            assert second.notes == [
                f"the lab's DNS listened on port {dns_port} last run, but that port is taken now "
                f"(Address already in use: another program or lab?); it listens on "
                f"{second.dns.port} instead. Configs saved from the last run need the new port "
                "(dns in lab.json)",
                f"the PVE API listened on port {pve_port} last run, but that port is taken now "
                f"(Address already in use: another program or lab?); it listens on "
                f"{second.pve.port} instead. Configs saved from the last run need the new port "
                "(pve.url in lab.json)",
            ]
            lab_json = json.loads((tmp_path / "lab.json").read_text(encoding="utf-8"))
            assert lab_json["pve"]["url"] == f"https://127.0.0.1:{second.pve.port}"
        finally:
            second.stop()


def test_an_expired_certificate_does_not_outlive_the_fault_and_a_restart_keeps_the_original(
    tmp_path: Path, fetch_certificate: Callable[..., bytes]
) -> None:
    first = Lab(_scenario(), tmp_path)
    first.start()
    pbs = first.pbs["pbs1.lab.example"]
    original = pbs.fingerprint
    pbs.set_expired(True)  # stopped while expired: the scenario says not expired
    first.stop()

    second = Lab(_scenario(), tmp_path)
    second.start()
    try:
        served = second.pbs["pbs1.lab.example"]
        assert fingerprint_of_der(fetch_certificate(served.address, served.port)) == original
    finally:
        second.stop()


def test_a_server_expired_by_the_scenario_serves_the_same_expired_certificate_after_a_restart(
    tmp_path: Path, fetch_certificate: Callable[..., bytes]
) -> None:
    scenario = _scenario()
    servers = [
        s.model_copy(update={"expired": s.name == "pbs3.lab.example"}) for s in scenario.pbs_servers
    ]
    scenario = scenario.model_copy(update={"pbs_servers": servers})
    first = Lab(scenario, tmp_path)
    first.start()
    expired = first.pbs["pbs3.lab.example"].fingerprint
    first.stop()

    second = Lab(scenario, tmp_path)
    second.start()
    try:
        pbs = second.pbs["pbs3.lab.example"]
        assert fingerprint_of_der(fetch_certificate(pbs.address, pbs.port)) == expired
        cfg = (tmp_path / "storage.cfg").read_text(encoding="utf-8")
        assert f"fingerprint {expired}" in cfg  # what the kept entry pins is still served
        pbs.set_expired(False)  # no valid certificate yet: a new one, then kept from here on
        valid = pbs.fingerprint
        assert valid != expired
    finally:
        second.stop()
    third = Lab(scenario, tmp_path)
    third.start()
    try:
        pbs = third.pbs["pbs3.lab.example"]
        assert pbs.fingerprint == expired
        pbs.set_expired(False)
        assert fingerprint_of_der(fetch_certificate(pbs.address, pbs.port)) == valid
    finally:
        third.stop()
