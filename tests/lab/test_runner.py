"""The lab orchestrator's contract: what `Lab` starts, the files it writes, what it logs.

Scripts, the demo and the checks find a lab only through `lab.json`, `lab.env` and the
generated `pbs-storage.yaml`, so these tests read those files the way a user would, then
look at the real sockets, certificates and DNS answers behind them.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from pydantic import SecretStr

from pbs_compliance import verdicts
from pbs_compliance.config import load_config
from pbs_compliance.config.model import PveSettings
from pbs_compliance.evidence import gather_evidence
from pbs_compliance.lab.runner import Lab, LabError
from pbs_compliance.lab.scenario import Scenario, builtin
from pbs_compliance.probes import dns, tcp, tls
from pbs_compliance.pve import PveClient
from pbs_compliance.settings import Overrides, resolve

LabFactory = Callable[..., Lab]
PVE_KEYS = {
    "url",
    "ca_file",
    "nodes",
    "token_id",
    "token_secret",
    "readonly_token_id",
    "readonly_token_secret",
    "user",
    "password",
}
PBS_KEYS = {"name", "address", "port", "fingerprint", "datastores", "username", "password"}
SERVER = "pbs1.lab.example"
SMALL: dict[str, Any] = {  # one PBS, one entry: for tests that change the lab
    "nodes": ["pve1", "pve2"],
    "pbs_servers": [{"name": SERVER, "address": "127.0.0.11", "datastores": {"homelab": []}}],
    "storages": [{"name": "homelab-backup", "server": SERVER, "datastore": "homelab"}],
}


def read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def read_env(path: Path) -> dict[str, str]:
    """lab.env as a shell would read it: KEY=value lines."""
    pairs = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        assert sep, f"not a KEY=value line: {line!r}"
        assert key.isidentifier(), f"not a KEY=value line: {line!r}"
        pairs[key] = value
    return pairs


@contextmanager
def pve_client(lab: Lab) -> Iterator[PveClient]:
    """The admin token from lab.json, the CA from lab.json: what a script would use."""
    pve = read_json(lab.state_dir / "lab.json")["pve"]
    settings = PveSettings(
        url=pve["url"],
        token_id=pve["token_id"],
        token_secret=SecretStr(pve["token_secret"]),
        ca_file=Path(pve["ca_file"]),
        timeout=5,
    )
    client = PveClient(settings)
    try:
        yield client
    finally:
        if client._api is not None:
            client._api._store["session"].close()


def admin(lab: Lab, path: str, body: dict[str, Any], token: str = "admin") -> requests.Response:
    """POST to the lab's admin endpoint (`/_lab/...`) with a lab token."""
    pve = read_json(lab.state_dir / "lab.json")["pve"]
    token_id, secret = {
        "admin": (pve["token_id"], pve["token_secret"]),
        "readonly": (pve["readonly_token_id"], pve["readonly_token_secret"]),
        "none": ("", ""),
    }[token]
    headers = {"Authorization": f"PVEAPIToken={token_id}={secret}"} if token_id else {}
    with requests.Session() as session:
        return session.post(
            f"{pve['url']}/api2/json{path}",
            json=body,
            headers=headers,
            verify=str(pve["ca_file"]),
            timeout=5,
        )


# -- lab.json, lab.env, pbs-storage.yaml -------------------------------------------------------


def test_lab_json_names_the_pve_api_the_dns_server_and_every_pbs(shared_lab: Lab) -> None:
    data = read_json(shared_lab.state_dir / "lab.json")

    assert {"pve", "dns", "pbs_servers"} <= data.keys()
    assert data["pve"].keys() == PVE_KEYS
    assert data["pve"]["nodes"] == ["pve1", "pve2", "pve3"]
    assert Path(data["pve"]["ca_file"]) == shared_lab.ca_file
    assert data["pve"]["url"] == shared_lab.url
    host, _, port = data["dns"].rpartition(":")
    assert host == "127.0.0.1"
    assert dns.resolve(SERVER, [(host, int(port))], 1.0).ok
    assert [s["name"] for s in data["pbs_servers"]] == sorted(shared_lab.pbs)
    for server in data["pbs_servers"]:
        assert server.keys() == PBS_KEYS
        assert server["port"] == shared_lab.pbs[server["name"]].port
        assert server["password"] == shared_lab.pbs_password(server["name"], "root@pam")
    with pve_client(shared_lab) as client:
        assert client.nodes() == ["pve1", "pve2", "pve3"]


def test_lab_env_holds_the_secrets_as_key_value_lines_readable_only_by_the_owner(
    shared_lab: Lab,
) -> None:
    path = shared_lab.state_dir / "lab.env"

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((shared_lab.state_dir / "lab.json").stat().st_mode) == 0o600
    env = read_env(path)
    assert env == shared_lab.env
    assert env["PBS_LAB_PVE_TOKEN_SECRET"] == shared_lab.token_secret
    assert env["PBS_LAB_HOMELAB_BACKUP_PASSWORD"] == shared_lab.pbs_password(SERVER, "root@pam")


def test_the_generated_declaration_loads_with_lab_env_and_every_check_passes(
    shared_lab: Lab,
) -> None:
    config = load_config(shared_lab.config_path, environ=read_env(shared_lab.state_dir / "lab.env"))
    settings = resolve(config, Overrides(), environ={})
    evidence = gather_evidence(settings)

    assert evidence.live.error is None
    declared = {s.name for s in config.storages}
    assert declared == set(evidence.live.pbs_entries)  # exactly the lab's PBS entries
    assert declared == {"archive", "homelab-backup", "media", "offsite"}
    judged: list[verdicts.Verdict] = []
    for spec in config.storages:
        server = evidence.server(spec)
        judged += [
            verdicts.dns(spec, server),
            verdicts.port(spec, server),
            verdicts.tls(spec, server, dt.datetime.now(dt.UTC), settings.cert_expiry_days),
            verdicts.fingerprint(spec, server, str(config.source)),
            verdicts.drift(spec, evidence.live),
        ]
    judged += [
        verdicts.node(s, n, evidence.live) for s, n in verdicts.node_targets(config, evidence.live)
    ]
    judged.append(verdicts.unmanaged(config, evidence.live))
    failing = [
        f"{v.check}[{v.storage}:{v.node}] {v.status}: {v.message}" for v in judged if not v.passed
    ]
    assert failing == []
    assert len(judged) == 4 * 5 + (3 + 3 + 3 + 2) + 1


def test_the_fingerprints_in_lab_json_are_the_ones_the_servers_present(shared_lab: Lab) -> None:
    servers = read_json(shared_lab.state_dir / "lab.json")["pbs_servers"]

    for server in servers:
        served = tls.handshake(server["address"], server["port"], server["name"], 2.0)
        assert served.ok, served.error
        assert served.fingerprint == server["fingerprint"], server["name"]
    assert len({s["fingerprint"] for s in servers}) == len(servers)


def test_the_files_are_written_only_once_everything_listens(tmp_path: Path) -> None:
    for name in ("lab.json", "lab.env", "pbs-storage.yaml"):
        (tmp_path / name).write_text("stale from an earlier lab\n", encoding="utf-8")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        spec = {**SMALL, "pbs_servers": [{**SMALL["pbs_servers"][0], "port": port}]}
        spec["pbs_servers"][0]["address"] = "127.0.0.1"
        lab = Lab(Scenario.model_validate(spec), tmp_path)

        with pytest.raises(LabError, match=f"cannot listen on 127.0.0.1:{port}"):
            lab.start()

    assert not any((tmp_path / n).exists() for n in ("lab.json", "lab.env", "pbs-storage.yaml"))


# -- the built-in scenario ---------------------------------------------------------------------


def test_the_builtin_scenario_has_three_nodes_three_named_pbs_and_a_dir_storage(
    shared_lab: Lab,
) -> None:
    data = read_json(shared_lab.state_dir / "lab.json")
    host, _, port = data["dns"].rpartition(":")

    assert len(data["pve"]["nodes"]) == 3
    assert len(data["pbs_servers"]) >= 3
    for server in data["pbs_servers"]:
        answer = dns.resolve(server["name"], [(host, int(port))], 1.0)
        assert answer.addresses == (server["address"],), server["name"]
    assert sum(len(s["datastores"]) for s in data["pbs_servers"]) >= 4
    with pve_client(shared_lab) as client:
        entries = client.storages()
    enabled_pbs = [e for e in entries if e["type"] == "pbs" and not e.get("disable")]
    assert len(enabled_pbs) >= 3
    assert {e["storage"] for e in entries if e["type"] == "dir"} >= {"local", "local-images"}
    assert builtin().nodes == ["pve1", "pve2", "pve3"]


# -- sockets -----------------------------------------------------------------------------------


def _own_socket_inodes() -> set[str]:
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _address(hex_address: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    """`0100007F:1F90` (little-endian words, as /proc/net shows them) -> (127.0.0.1, 8080)."""
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.IPv4Address(words) if len(words) == 4 else ipaddress.IPv6Address(words)
    return ip, int(port, 16)


def bound_sockets() -> list[tuple[str, ipaddress.IPv4Address | ipaddress.IPv6Address, int]]:
    """This process's listening TCP and bound UDP sockets: (table, address, port)."""
    mine = _own_socket_inodes()
    found = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        lines = Path(f"/proc/net/{table}").read_text(encoding="ascii").splitlines()[1:]
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            listening = state == "0A" if table.startswith("tcp") else state == "07"
            if inode in mine and listening:
                ip, port = _address(local)
                found.append((table, ip, port))
    return found


def test_a_lab_binds_nothing_outside_loopback(shared_lab: Lab) -> None:
    sockets = bound_sockets()

    outside = [
        (t, str(ip), port)
        for t, ip, port in sockets
        if not (ip.is_loopback and ip.version in (4, 6))
    ]
    assert outside == []
    ports = {(t[:3], port) for t, _, port in sockets}
    assert ("tcp", int(shared_lab.url.rsplit(":", 1)[1])) in ports  # the PVE API
    assert all(("tcp", pbs.port) in ports for pbs in shared_lab.pbs.values())
    assert shared_lab.dns is not None
    assert ("udp", shared_lab.dns.port) in ports
    assert ("tcp", shared_lab.dns.port) in ports


def test_the_proc_net_address_parser_reads_ipv4_and_ipv6() -> None:
    assert _address("0100007F:1F90") == (ipaddress.IPv4Address("127.0.0.1"), 8080)
    assert _address("00000000000000000000000001000000:0035") == (ipaddress.IPv6Address("::1"), 53)
    assert _address("0B00007F:1F47")[0] == ipaddress.IPv4Address("127.0.0.11")


# -- the initial state -------------------------------------------------------------------------


def test_an_empty_storage_cfg_in_the_state_dir_means_only_the_implicit_local(
    make_lab: LabFactory, tmp_path: Path
) -> None:
    (tmp_path / "storage.cfg").write_text("", encoding="utf-8")

    lab = make_lab(SMALL, state_dir=tmp_path)

    with pve_client(lab) as client:
        assert [(e["storage"], e["type"]) for e in client.storages()] == [("local", "dir")]


def test_an_existing_storage_cfg_in_the_state_dir_is_the_initial_state(
    make_lab: LabFactory, tmp_path: Path
) -> None:
    (tmp_path / "storage.cfg").write_text(
        "dir: local\n\tpath /var/lib/vz\n\tcontent iso,backup\n\n"
        "dir: scratch\n\tpath /srv/scratch\n\tcontent backup\n",
        encoding="utf-8",
    )

    lab = make_lab(SMALL, state_dir=tmp_path)

    with pve_client(lab) as client:
        assert sorted(e["storage"] for e in client.storages()) == ["local", "scratch"]


def test_without_a_storage_cfg_the_scenarios_entries_are_the_initial_state(lab: Lab) -> None:
    with pve_client(lab) as client:
        names = sorted(e["storage"] for e in client.storages())

    assert names == sorted(["local", *(s.name for s in builtin().storages)])
    assert (lab.state_dir / "storage.cfg").exists()


# -- the request log ---------------------------------------------------------------------------


def test_every_request_is_logged_and_the_labs_secrets_never_appear_in_the_log(
    make_lab: LabFactory,
) -> None:
    lab = make_lab(SMALL)
    pbs = lab.pbs[SERVER]
    pbs_password = lab.pbs_password(SERVER, "root@pam")
    with pve_client(lab) as client:
        client.storages()
        client.scan_pbs("pve1", SERVER, "root@pam", pbs_password, pbs.fingerprint, pbs.port)
        client.create(
            {
                "storage": "second",
                "type": "pbs",
                "server": SERVER,
                "datastore": "homelab",
                "username": "root@pam",
                "fingerprint": pbs.fingerprint,
                "port": str(pbs.port),
            },
            password=pbs_password,
        )
    login = PveSettings(
        url=lab.url, user="root@pam", password=SecretStr(lab.password), ca_file=lab.ca_file
    )
    password_client = PveClient(login)
    assert password_client.nodes() == ["pve1", "pve2"]
    password_client.api._store["session"].close()
    assert admin(lab, "/_lab/dns", {"fault": None}, token="readonly").status_code == 403

    log = lab.request_log.read_text(encoding="utf-8")
    records = lab.requests()

    assert all(r.keys() >= {"time", "method", "path", "params", "status"} for r in records)
    seen = [(r["method"], r["path"].removeprefix("/api2/json"), r["status"]) for r in records]
    assert seen[:3] == [
        ("GET", "/storage", 200),
        ("GET", "/nodes/pve1/scan/pbs", 200),
        ("POST", "/storage", 200),
    ]
    assert ("POST", "/access/ticket", 200) in seen
    assert ("POST", "/_lab/dns", 403) in seen
    assert records[1]["params"]["password"] == "***"
    assert records[2]["params"]["password"] == "***"
    secrets = [lab.token_secret, lab.readonly_token_secret, lab.password, pbs_password]
    assert [s for s in secrets if s in log] == []
    assert all(isinstance(r["time"], float) for r in records)


# -- run-time faults ---------------------------------------------------------------------------


def test_the_admin_endpoint_takes_a_pbs_down_and_brings_it_back(lab: Lab) -> None:
    pbs = lab.pbs[SERVER]
    assert tcp.connect(pbs.address, pbs.port, 1.0).ok

    assert admin(lab, f"/_lab/pbs/{SERVER}", {"mode": "down"}).status_code == 200
    down = tcp.connect(pbs.address, pbs.port, 1.0)
    assert not down.ok
    assert down.kind == "refused"

    assert admin(lab, f"/_lab/pbs/{SERVER}", {"mode": "up"}).status_code == 200
    assert tcp.connect(pbs.address, pbs.port, 1.0).ok


def test_the_admin_endpoint_renews_a_certificate(lab: Lab) -> None:
    pbs = lab.pbs[SERVER]
    before = tls.handshake(pbs.address, pbs.port, SERVER, 2.0).fingerprint

    response = admin(lab, f"/_lab/pbs/{SERVER}", {"renew": True})

    assert response.status_code == 200
    renewed = response.json()["data"]["fingerprint"]
    assert renewed != before
    assert tls.handshake(pbs.address, pbs.port, SERVER, 2.0).fingerprint == renewed


def test_the_admin_endpoint_makes_dns_fail_and_recover(lab: Lab) -> None:
    assert lab.dns is not None
    nameserver = [(lab.dns.address, lab.dns.port)]
    assert dns.resolve(SERVER, nameserver, 1.0).ok

    assert admin(lab, "/_lab/dns", {"fault": "servfail"}).status_code == 200
    failed = dns.resolve(SERVER, nameserver, 1.0)
    assert not failed.ok
    assert [a.kind for a in failed.answers] == ["servfail"]

    assert admin(lab, "/_lab/dns", {"fault": None}).status_code == 200
    assert dns.resolve(SERVER, nameserver, 1.0).ok


@pytest.mark.parametrize(("token", "status"), [("none", 401), ("readonly", 403)])
def test_the_admin_endpoint_needs_the_labs_admin_token(lab: Lab, token: str, status: int) -> None:
    response = admin(lab, f"/_lab/pbs/{SERVER}", {"mode": "down"}, token=token)

    assert response.status_code == status
    pbs = lab.pbs[SERVER]
    assert tcp.connect(pbs.address, pbs.port, 1.0).ok


# -- lifecycle ---------------------------------------------------------------------------------


def _lab_threads() -> set[str]:
    prefixes = ("pve-api-", "pbs-accept-")
    return {t.name for t in threading.enumerate() if t.name.startswith(prefixes)}


def test_a_lab_starts_and_stops_twice_in_one_state_dir_and_keeps_storage_cfg(
    tmp_path: Path,
) -> None:
    scenario = Scenario.model_validate(SMALL).with_ephemeral_ports()
    threads_before = _lab_threads()

    first = Lab(scenario, tmp_path)
    first.start()
    with pve_client(first) as client:
        client.update("homelab-backup", {"prune-backups": "keep-last=9"})
    first_url = first.url
    first.stop()
    assert not tcp.connect("127.0.0.1", int(first_url.rsplit(":", 1)[1]), 0.5).ok

    second = Lab(scenario, tmp_path)
    second.start()
    try:
        with pve_client(second) as client:
            entry = client.storage("homelab-backup")
        assert entry["prune-backups"] == "keep-last=9"  # the first run's change survived
        assert read_json(tmp_path / "lab.json")["pve"]["url"] == second.url
        methods = [r["method"] for r in second.requests()]
        assert methods.count("PUT") == 1  # the log goes on, appended
    finally:
        second.stop()
    assert _lab_threads() == threads_before
