from __future__ import annotations

import socket
import time
from collections.abc import Callable

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from pbs_compliance.lab.dns_server import DnsServer, LabZone, answer

RECORDS = {
    "pbs1.lab.example": ["127.0.0.2"],
    "pbs2.lab.example.": ["127.0.0.3", "::1"],
}
CNAMES = {"backup.lab.example": "pbs1.lab.example", "loop.lab.example": "loop2.lab.example"}


def ask(
    server: DnsServer, name: str, rdtype: str = "A", *, tcp: bool = False, timeout: float = 2.0
) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    if tcp:
        return dns.query.tcp(query, server.address, timeout=timeout, port=server.port)
    return dns.query.udp(query, server.address, timeout=timeout, port=server.port)


def addresses(response: dns.message.Message) -> list[str]:
    return [
        item.to_text()
        for rrset in response.answer
        if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
        for item in rrset
    ]


@pytest.fixture
def server(start_dns: Callable[..., DnsServer]) -> DnsServer:
    return start_dns(RECORDS, CNAMES)


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_a_records_over_udp_and_tcp_on_the_same_port(server: DnsServer, tcp: bool) -> None:
    response = ask(server, "pbs1.lab.example", tcp=tcp)
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.AA
    assert addresses(response) == ["127.0.0.2"]


@pytest.mark.parametrize("name", ["PBS2.Lab.Example", "pbs2.lab.example.", "pbs2.lab.example"])
def test_names_are_case_insensitive_and_trailing_dot_tolerant(server: DnsServer, name: str) -> None:
    assert addresses(ask(server, name, "A")) == ["127.0.0.3"]
    assert addresses(ask(server, name, "AAAA")) == ["::1"]


def test_cname_answers_carry_the_chain_and_the_target_addresses(server: DnsServer) -> None:
    response = ask(server, "backup.lab.example")
    assert [rrset.rdtype for rrset in response.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    assert addresses(response) == ["127.0.0.2"]
    only_cname = ask(server, "backup.lab.example", "CNAME")
    assert [rrset.rdtype for rrset in only_cname.answer] == [dns.rdatatype.CNAME]


def test_cname_to_an_unknown_target_is_the_cname_alone(server: DnsServer) -> None:
    response = ask(server, "loop.lab.example")
    assert response.rcode() == dns.rcode.NOERROR
    assert addresses(response) == []
    assert len(response.answer) == 1


def test_unknown_names_are_nxdomain_with_soa(server: DnsServer) -> None:
    response = ask(server, "pbs9.lab.example")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.answer == []
    assert response.authority[0].rdtype == dns.rdatatype.SOA
    assert response.authority[0].name.to_text() == "lab.example."


def test_missing_type_is_nodata_not_nxdomain(server: DnsServer) -> None:
    response = ask(server, "pbs1.lab.example", "AAAA")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.answer == []
    assert response.authority[0].rdtype == dns.rdatatype.SOA


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_servfail_fault(server: DnsServer, tcp: bool) -> None:
    server.set_fault("servfail")
    assert ask(server, "pbs1.lab.example", tcp=tcp).rcode() == dns.rcode.SERVFAIL
    server.set_fault(None)
    assert addresses(ask(server, "pbs1.lab.example", tcp=tcp)) == ["127.0.0.2"]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_silence_fault_times_out_but_counts_the_query(server: DnsServer, tcp: bool) -> None:
    server.set_fault("silence")
    before = server.queries
    started = time.monotonic()
    with pytest.raises(dns.exception.Timeout):
        ask(server, "pbs1.lab.example", tcp=tcp, timeout=0.3)
    assert time.monotonic() - started < 1.5
    assert server.queries == before + 1


def test_unknown_fault_is_refused(server: DnsServer) -> None:
    with pytest.raises(ValueError, match="unknown DNS fault"):
        server.set_fault("slow")  # type: ignore[arg-type]


def test_set_records_swaps_the_whole_view(server: DnsServer) -> None:
    server.set_records({"pbs9.lab.example": ["127.0.0.9"]})
    assert addresses(ask(server, "pbs9.lab.example")) == ["127.0.0.9"]
    assert ask(server, "pbs1.lab.example").rcode() == dns.rcode.NXDOMAIN
    assert ask(server, "backup.lab.example").rcode() == dns.rcode.NXDOMAIN


def test_query_counter_counts_udp_and_tcp(server: DnsServer) -> None:
    before = server.queries
    ask(server, "pbs1.lab.example")
    ask(server, "pbs1.lab.example", tcp=True)
    assert server.queries == before + 2


def test_large_answers_truncate_on_udp_and_come_whole_over_tcp(
    start_dns: Callable[..., DnsServer],
) -> None:
    many = [f"127.0.2.{i}" for i in range(1, 61)]
    server = start_dns({"big.lab.example": many})
    udp = ask(server, "big.lab.example")
    assert udp.flags & dns.flags.TC
    query = dns.message.make_query("big.lab.example", "A")
    response, used_tcp = dns.query.udp_with_fallback(
        query, server.address, timeout=2, port=server.port
    )
    assert used_tcp
    assert sorted(addresses(response)) == sorted(many)


def test_garbage_is_ignored_and_the_server_keeps_answering(server: DnsServer) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"\x00\x01garbage", (server.address, server.port))
    with socket.create_connection((server.address, server.port), timeout=1) as sock:
        sock.sendall(b"\x00\x05hello")
    assert addresses(ask(server, "pbs1.lab.example")) == ["127.0.0.2"]


def test_two_servers_give_two_views(start_dns: Callable[..., DnsServer]) -> None:
    laptop = start_dns({"pbs1.lab.example": ["127.0.0.2"]})
    pve2 = start_dns({})
    assert laptop.port != pve2.port
    assert addresses(ask(laptop, "pbs1.lab.example")) == ["127.0.0.2"]
    assert ask(pve2, "pbs1.lab.example").rcode() == dns.rcode.NXDOMAIN


def test_stop_start_are_idempotent_and_restart_keeps_the_port(server: DnsServer) -> None:
    port = server.port
    server.start()
    with socket.create_connection((server.address, port), timeout=1) as idle:
        server.stop()
        assert idle.recv(1) == b""
    server.stop()
    server.start()
    assert server.port == port
    assert addresses(ask(server, "pbs1.lab.example", tcp=True)) == ["127.0.0.2"]
    assert str(port) in repr(server)


def test_explicit_port_in_use_fails_loudly(
    server: DnsServer, start_dns: Callable[..., DnsServer]
) -> None:
    with pytest.raises(OSError, match="in use"):
        start_dns({}, port=server.port)


@pytest.mark.parametrize(
    ("records", "cnames", "message"),
    [
        ({"x.lab": ["not-an-ip"]}, {}, "does not appear to be an IPv4 or IPv6"),
        ({"x.lab": ["127.0.0.1"]}, {"x.lab": "y.lab"}, "both a CNAME and addresses"),
    ],
)
def test_bad_lab_data_fails_at_definition(
    records: dict[str, list[str]], cnames: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        LabZone.build(records, cnames)


def test_answer_rules_for_odd_queries() -> None:
    zone = LabZone.build(RECORDS, CNAMES)
    notify = dns.message.make_query("pbs1.lab.example", "A")
    notify.set_opcode(dns.opcode.NOTIFY)
    response = answer(notify, zone, None)
    assert response is not None
    assert response.rcode() == dns.rcode.NOTIMP
    chaos = dns.message.make_query("pbs1.lab.example", "TXT", "CH")
    response = answer(chaos, zone, None)
    assert response is not None
    assert response.rcode() == dns.rcode.REFUSED
    empty = dns.message.make_query("pbs1.lab.example", "A")
    empty.question = []
    response = answer(empty, zone, None)
    assert response is not None
    assert response.rcode() == dns.rcode.FORMERR
    assert answer(dns.message.make_query("pbs1.lab.example", "A"), zone, "silence") is None
