"""A lab node remembers its resolver's answers only while the lab leaves that resolver alone.

The cache exists for load (thousands of node-side lookups per run at 1,000 storages); these tests
pin that it never changes an answer: a changed record, a fault, or an expired TTL is seen by the
very next lookup, and a failure is never remembered.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

import pbs_compliance.lab.node_agent as node_agent
from pbs_compliance.lab.dns_server import TTL, DnsServer
from pbs_compliance.lab.node_agent import EAI_AGAIN, EAI_NONAME, LabNodeAgent
from pbs_compliance.lab.pbs_server import PbsServer

NAME = "pbs1.lab.example"


@pytest.fixture
def resolver(start_dns: Callable[..., DnsServer], pbs: PbsServer) -> DnsServer:
    return start_dns({NAME: [pbs.address]})


def node(resolver: DnsServer, cached: bool = True) -> LabNodeAgent:
    version = resolver.version if cached else None
    where = (resolver.address, resolver.port)
    return LabNodeAgent("pve1", where, timeout=0.5, dns_version=version)


def activate(agent: LabNodeAgent, pbs: PbsServer) -> str | None:
    entry = {"server": NAME, "datastore": "homelab", "port": pbs.port}
    return agent.activate({**entry, "fingerprint": pbs.fingerprint}, pbs.spec.users["root@pam"])


def cant(pbs: PbsServer, reason: str) -> str:
    return f"error fetching datastores - 500 Can't connect to {NAME}:{pbs.port} ({reason})"


def test_one_lookup_serves_every_activation_while_nothing_changes(
    resolver: DnsServer, pbs: PbsServer
) -> None:
    agent = node(resolver)
    before = resolver.queries
    assert [activate(agent, pbs) for _ in range(3)] == [None, None, None]
    assert resolver.queries == before + 1  # one A question, answered; no AAAA needed


def test_without_the_version_every_activation_asks(resolver: DnsServer, pbs: PbsServer) -> None:
    agent = node(resolver, cached=False)
    before = resolver.queries
    assert [activate(agent, pbs) for _ in range(3)] == [None, None, None]
    assert resolver.queries == before + 3


@pytest.mark.parametrize("fault", ["servfail", "silence"])
def test_a_fault_is_seen_by_the_next_lookup_and_its_failure_is_not_kept(
    resolver: DnsServer, pbs: PbsServer, fault: str
) -> None:
    agent = node(resolver)
    assert activate(agent, pbs) is None
    resolver.set_fault(fault)  # type: ignore[arg-type]
    assert activate(agent, pbs) == cant(pbs, EAI_AGAIN)
    resolver.set_fault(None)
    before = resolver.queries
    assert activate(agent, pbs) is None
    assert resolver.queries == before + 1  # the failure was not remembered


def test_a_removed_name_is_unknown_at_once_and_back_when_restored(
    resolver: DnsServer, pbs: PbsServer
) -> None:
    agent = node(resolver)
    assert activate(agent, pbs) is None
    resolver.set_records({})
    assert activate(agent, pbs) == cant(pbs, EAI_NONAME)
    before = resolver.queries
    assert activate(agent, pbs) == cant(pbs, EAI_NONAME)
    assert resolver.queries == before  # "no such name" is kept for the SOA minimum, like a stub
    resolver.set_records({NAME: [pbs.address]})
    assert activate(agent, pbs) is None


def test_an_answer_is_kept_for_its_ttl_and_not_a_moment_longer(
    resolver: DnsServer, pbs: PbsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(node_agent, "monotonic", lambda: clock[0])
    agent = node(resolver)
    assert activate(agent, pbs) is None
    before = resolver.queries
    clock[0] += TTL - 0.001
    assert activate(agent, pbs) is None
    assert resolver.queries == before
    clock[0] += 0.001
    assert activate(agent, pbs) is None
    assert resolver.queries == before + 1
