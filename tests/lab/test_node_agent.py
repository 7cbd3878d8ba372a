from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pbs_compliance.lab.dns_server import DnsServer
from pbs_compliance.lab.node_agent import (
    LabNodeAgent,
    NodeAgent,
    NodeAgentError,
    _Target,
    is_api_token,
)
from pbs_compliance.lab.pbs_server import PbsServer

NAME = "pbs1.lab.example"


@pytest.fixture
def laptop_dns(start_dns: Callable[..., DnsServer], pbs: PbsServer) -> DnsServer:
    return start_dns({NAME: [pbs.address]}, {"backup.lab.example": NAME})


@pytest.fixture
def agent(laptop_dns: DnsServer) -> LabNodeAgent:
    return LabNodeAgent("pve1", (laptop_dns.address, laptop_dns.port), timeout=1.0)


def storage(pbs: PbsServer, **overrides: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "server": NAME,
        "datastore": "homelab",
        "port": pbs.port,
        "username": "root@pam",
        "fingerprint": pbs.fingerprint,
    }
    entry.update(overrides)
    return {k: v for k, v in entry.items() if v is not None}


def root_pw(pbs: PbsServer) -> str:
    return pbs.spec.users["root@pam"]


def test_reachable_storage_is_active(agent: LabNodeAgent, pbs: PbsServer) -> None:
    before = pbs.login_attempts
    assert agent.activate(storage(pbs), root_pw(pbs)) is None
    assert pbs.login_attempts == before + 1


def test_fingerprint_case_does_not_matter(agent: LabNodeAgent, pbs: PbsServer) -> None:
    assert agent.activate(storage(pbs, fingerprint=pbs.fingerprint.lower()), root_pw(pbs)) is None


def test_name_missing_in_this_nodes_view(
    agent: LabNodeAgent, pbs: PbsServer, start_dns: Callable[..., DnsServer]
) -> None:
    pve2_dns = start_dns({})
    pve2 = LabNodeAgent("pve2", (pve2_dns.address, pve2_dns.port), timeout=1.0)
    assert agent.activate(storage(pbs), root_pw(pbs)) is None
    assert pve2.activate(storage(pbs), root_pw(pbs)) == (
        f"error fetching datastores - 500 Can't connect to {NAME}:{pbs.port} "
        "(Name or service not known)"
    )


def test_name_without_any_address_is_not_known_either(
    pbs: PbsServer, start_dns: Callable[..., DnsServer]
) -> None:
    dns = start_dns({NAME: []})
    node = LabNodeAgent("pve3", (dns.address, dns.port), timeout=1.0)
    assert "(Name or service not known)" in (node.activate(storage(pbs), root_pw(pbs)) or "")


@pytest.mark.parametrize("fault", ["servfail", "silence"])
def test_broken_resolver_is_a_temporary_failure(
    pbs: PbsServer, laptop_dns: DnsServer, fault: str
) -> None:
    laptop_dns.set_fault(fault)  # type: ignore[arg-type]
    node = LabNodeAgent("pve1", (laptop_dns.address, laptop_dns.port), timeout=0.3)
    error = node.activate(storage(pbs), root_pw(pbs))
    assert error == (
        f"error fetching datastores - 500 Can't connect to {NAME}:{pbs.port} "
        "(Temporary failure in name resolution)"
    )


def test_ip_literal_server_needs_no_dns(
    agent: LabNodeAgent, pbs: PbsServer, laptop_dns: DnsServer
) -> None:
    before = laptop_dns.queries
    assert agent.activate(storage(pbs, server=pbs.address), root_pw(pbs)) is None
    assert laptop_dns.queries == before


def test_down_server_refuses(agent: LabNodeAgent, pbs: PbsServer) -> None:
    pbs.set_mode("down")
    assert agent.activate(storage(pbs), root_pw(pbs)) == (
        f"error fetching datastores - 500 Can't connect to {NAME}:{pbs.port} (Connection refused)"
    )


def test_blackholed_server_times_out_after_the_timeout(
    pbs: PbsServer, laptop_dns: DnsServer
) -> None:
    pbs.set_mode("blackhole")
    node = LabNodeAgent("pve1", (laptop_dns.address, laptop_dns.port), timeout=0.3)
    started = time.monotonic()
    error = node.activate(storage(pbs), root_pw(pbs))
    assert error is not None
    assert error.endswith("(Connection timed out)")
    assert time.monotonic() - started < 1.5


def test_stale_fingerprint_after_certificate_renewal(agent: LabNodeAgent, pbs: PbsServer) -> None:
    old_entry = storage(pbs)
    new_fp = pbs.renew_certificate()
    assert agent.activate(old_entry, root_pw(pbs)) == (
        f"error fetching datastores - fingerprint '{new_fp}' not verified, abort!"
    )


def test_without_fingerprint_a_self_signed_pbs_is_refused(
    agent: LabNodeAgent, pbs: PbsServer
) -> None:
    assert agent.activate(storage(pbs, fingerprint=None), root_pw(pbs)) == (
        f"error fetching datastores - fingerprint '{pbs.fingerprint}' not verified, abort!"
    )


def test_without_fingerprint_a_trusted_certificate_with_matching_name_works(
    pbs: PbsServer, laptop_dns: DnsServer, tmp_path: Path
) -> None:
    trusted = tmp_path / "trusted.pem"
    trusted.write_bytes(pbs.cert_pem)
    node = LabNodeAgent("pve1", (laptop_dns.address, laptop_dns.port), 1.0, cafile=str(trusted))
    assert node.activate(storage(pbs, fingerprint=None), root_pw(pbs)) is None
    # A name the certificate does not carry fails hostname verification.
    alias = storage(pbs, fingerprint=None, server="backup.lab.example")
    assert "not verified, abort!" in (node.activate(alias, root_pw(pbs)) or "")


def test_expired_certificate_passes_when_pinned_like_pve(
    agent: LabNodeAgent, pbs: PbsServer, laptop_dns: DnsServer, tmp_path: Path
) -> None:
    pbs.set_expired(True)
    assert agent.activate(storage(pbs), root_pw(pbs)) is None
    trusted = tmp_path / "trusted.pem"
    trusted.write_bytes(pbs.cert_pem)
    node = LabNodeAgent("pve1", (laptop_dns.address, laptop_dns.port), 1.0, cafile=str(trusted))
    error = node.activate(storage(pbs, fingerprint=None), root_pw(pbs))
    assert error == (
        f"error fetching datastores - fingerprint '{pbs.fingerprint}' not verified, abort!"
    )


def test_wrong_password(agent: LabNodeAgent, pbs: PbsServer) -> None:
    assert agent.activate(storage(pbs), "wrong") == "error fetching datastores - 401 Unauthorized"


def test_missing_password_skips_the_login_and_fails_on_the_listing(
    agent: LabNodeAgent, pbs: PbsServer
) -> None:
    before = pbs.login_attempts
    assert agent.activate(storage(pbs), None) == "error fetching datastores - 401 Unauthorized"
    assert pbs.login_attempts == before


def test_missing_datastore(agent: LabNodeAgent, pbs: PbsServer) -> None:
    assert agent.activate(storage(pbs, datastore="store1"), root_pw(pbs)) == (
        "Cannot find datastore 'store1', check permissions and existence!"
    )


def test_datastore_hidden_by_acl_looks_missing(agent: LabNodeAgent, pbs: PbsServer) -> None:
    entry = storage(pbs, datastore="offsite", username="backup@pbs")
    assert agent.activate(entry, pbs.spec.users["backup@pbs"]) == (
        "Cannot find datastore 'offsite', check permissions and existence!"
    )


def test_token_auth(agent: LabNodeAgent, pbs: PbsServer) -> None:
    secret = pbs.spec.tokens["sync@pbs!ci"]
    before = pbs.login_attempts
    assert agent.activate(storage(pbs, username="sync@pbs!ci"), secret) is None
    assert pbs.login_attempts == before  # tokens never log in
    assert agent.activate(storage(pbs, username="sync@pbs!ci"), "nope") == (
        "error fetching datastores - 401 Unauthorized"
    )


def test_scan_returns_the_datastore_list(agent: LabNodeAgent, pbs: PbsServer) -> None:
    stores = agent.scan(NAME, "root@pam", root_pw(pbs), pbs.fingerprint, pbs.port)
    assert stores == [{"store": "homelab"}, {"store": "offsite"}]
    token_stores = agent.scan(
        NAME, "sync@pbs!ci", pbs.spec.tokens["sync@pbs!ci"], pbs.fingerprint, pbs.port
    )
    assert token_stores == [{"store": "homelab"}]


def test_scan_errors_raise_with_pve_wording(agent: LabNodeAgent, pbs: PbsServer) -> None:
    with pytest.raises(NodeAgentError) as info:
        agent.scan(NAME, "root@pam", "wrong", pbs.fingerprint, pbs.port)
    assert str(info.value) == "401 Unauthorized"  # PVE prefixes "error fetching datastores - "


def test_status_is_stable_and_plausible(agent: LabNodeAgent, pbs: PbsServer) -> None:
    total, used, avail = agent.status(storage(pbs), root_pw(pbs))
    assert total == used + avail
    assert 0 < used < total
    assert agent.status(storage(pbs), root_pw(pbs)) == (total, used, avail)
    pbs.set_mode("down")
    with pytest.raises(NodeAgentError, match="Connection refused"):
        agent.status(storage(pbs), root_pw(pbs))


def test_incomplete_storage_entry(agent: LabNodeAgent) -> None:
    assert agent.activate({"server": NAME}, None) == (
        "error fetching datastores - storage entry lacks 'server' or 'datastore'"
    )


def test_defaults_port_8007_and_root_at_pam() -> None:
    target = _Target.of_storage({"server": "::1", "datastore": "x"}, "secret-pw")
    assert (target.port, target.username, target.fingerprint) == (8007, "root@pam", None)
    assert target.where == "[::1]:8007"
    assert "secret-pw" not in repr(target)


@pytest.mark.parametrize(
    ("auth_id", "token"),
    [
        ("root@pam", False),
        ("sync@pbs!ci", True),
        ("sync@pbs!", False),
        ("a b@pbs!x", False),
        ("user@my-realm!tok.en_1", True),
    ],
)
def test_is_api_token(auth_id: str, token: bool) -> None:
    assert is_api_token(auth_id) is token


def test_lab_agent_satisfies_the_protocol(agent: LabNodeAgent) -> None:
    as_protocol: NodeAgent = agent
    assert as_protocol.name == "pve1"
    assert "pve1" in repr(agent)


def test_ipv6_only_pbs_through_an_aaaa_record(
    start_pbs: Callable[..., PbsServer], start_dns: Callable[..., DnsServer]
) -> None:
    server = start_pbs(name="pbs6.lab.example", address="::1")
    dns = start_dns({"pbs6.lab.example": ["::1"]})
    node = LabNodeAgent("pve1", (dns.address, dns.port), timeout=1.0)
    entry = storage(server, server="pbs6.lab.example")
    assert node.activate(entry, root_pw(server)) is None
    assert node.activate(storage(server, server="[::1]"), root_pw(server)) is None
    server.set_mode("down")
    assert node.activate(entry, root_pw(server)) == (
        f"error fetching datastores - 500 Can't connect to pbs6.lab.example:{server.port} "
        "(Connection refused)"
    )


# -- pooled: one connection and login per login within a block ----------------------------------


def test_pooled_calls_of_one_login_share_one_connection_and_login(
    agent: LabNodeAgent, pbs: PbsServer
) -> None:
    logins, tls = pbs.login_attempts, pbs.connection_counts["tls"]
    with agent.pooled():
        assert agent.activate(storage(pbs), root_pw(pbs)) is None
        sizes = agent.status(storage(pbs), root_pw(pbs))
        assert agent.snapshots(storage(pbs), root_pw(pbs), None) == agent.snapshots(
            storage(pbs), root_pw(pbs), None
        )
        assert agent.activate(storage(pbs, datastore="offsite"), root_pw(pbs)) is None
    assert (pbs.login_attempts - logins, pbs.connection_counts["tls"] - tls) == (1, 1)
    assert sizes == agent.status(storage(pbs), root_pw(pbs))  # the same answer unpooled
    assert (pbs.login_attempts - logins, pbs.connection_counts["tls"] - tls) == (2, 2)


def test_unpooled_calls_each_connect_and_log_in(agent: LabNodeAgent, pbs: PbsServer) -> None:
    logins, tls = pbs.login_attempts, pbs.connection_counts["tls"]
    assert agent.activate(storage(pbs), root_pw(pbs)) is None
    assert agent.activate(storage(pbs), root_pw(pbs)) is None
    assert (pbs.login_attempts - logins, pbs.connection_counts["tls"] - tls) == (2, 2)


def test_pooled_logins_differ_by_user_and_secret(agent: LabNodeAgent, pbs: PbsServer) -> None:
    logins = pbs.login_attempts
    with agent.pooled():
        assert agent.activate(storage(pbs), root_pw(pbs)) is None
        assert agent.activate(storage(pbs), "wrong") == (
            "error fetching datastores - 401 Unauthorized"
        )
        entry = storage(pbs, datastore="offsite", username="backup@pbs")
        assert agent.activate(entry, pbs.spec.users["backup@pbs"]) is not None  # its ACL
        assert agent.activate(storage(pbs), root_pw(pbs)) is None
    assert pbs.login_attempts - logins == 3


def test_pooled_failed_login_fails_alike_without_asking_again(
    agent: LabNodeAgent, pbs: PbsServer
) -> None:
    logins = pbs.login_attempts
    with agent.pooled():
        first = agent.activate(storage(pbs), "wrong")
        second = agent.activate(storage(pbs, datastore="offsite"), "wrong")
        with pytest.raises(NodeAgentError, match=r"^401 Unauthorized$"):
            agent.status(storage(pbs), "wrong")
    assert first == second == "error fetching datastores - 401 Unauthorized"
    assert pbs.login_attempts - logins == 1


def test_pooled_unreachable_server_costs_one_connection(
    laptop_dns: DnsServer, pbs: PbsServer
) -> None:
    node = LabNodeAgent("pve1", (laptop_dns.address, laptop_dns.port), timeout=0.3)
    pbs.set_mode("blackhole")
    accepted = pbs.connection_counts["tcp"]
    with node.pooled():
        errors = {node.activate(storage(pbs, datastore=d), root_pw(pbs)) for d in ("a", "b")}
    assert errors == {
        f"error fetching datastores - 500 Can't connect to {NAME}:{pbs.port} (Connection timed out)"
    }
    assert pbs.connection_counts["tcp"] - accepted == 1


def test_pooled_connection_that_failed_a_call_is_not_reused(
    agent: LabNodeAgent, pbs: PbsServer
) -> None:
    tls = pbs.connection_counts["tls"]
    with agent.pooled():
        assert agent.activate(storage(pbs), root_pw(pbs)) is None
        with pytest.raises(NodeAgentError):
            agent.status(storage(pbs, datastore="nosuchstore"), root_pw(pbs))
        assert agent.activate(storage(pbs), root_pw(pbs)) is None  # a fresh connection
        assert agent.activate(storage(pbs), root_pw(pbs)) is None  # and that one kept
    assert pbs.connection_counts["tls"] - tls == 2


def test_pooled_blocks_nest_and_close_their_connections(
    agent: LabNodeAgent, pbs: PbsServer
) -> None:
    logins = pbs.login_attempts
    with agent.pooled():
        assert agent.activate(storage(pbs), root_pw(pbs)) is None
        with agent.pooled():
            assert agent.activate(storage(pbs), root_pw(pbs)) is None
        assert agent.activate(storage(pbs), root_pw(pbs)) is None
    assert pbs.login_attempts - logins == 1
    with agent.pooled():  # a new block: its own connection
        assert agent.activate(storage(pbs), root_pw(pbs)) is None
    assert pbs.login_attempts - logins == 2
