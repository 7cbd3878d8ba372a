from __future__ import annotations

import json
from collections.abc import Callable

import dns.message
import dns.rcode
import dns.resolver
import pytest

from pbs_compliance.lab.dns_server import DnsServer
from pbs_compliance.probes.dns import DnsResult, ResolverAnswer, interpret, resolve

REAL_RESOLVER = dns.resolver.Resolver

RECORDS = {
    "pbs1.lab.example": ["127.0.0.2"],
    "pbs2.lab.example": ["127.0.0.3", "fd00::3"],
    "empty.lab.example": [],
}


def ns(server: DnsServer) -> tuple[str, int]:
    return (server.address, server.port)


@pytest.fixture
def laptop(start_dns: Callable[..., DnsServer]) -> DnsServer:
    return start_dns(RECORDS, {"backup.lab.example": "pbs2.lab.example"})


def test_name_resolves_through_the_lab_resolver(laptop: DnsServer) -> None:
    result = resolve("pbs1.lab.example", [ns(laptop)], timeout=1.0)
    assert result.ok
    assert result.consistent
    assert result.addresses == ("127.0.0.2",)
    assert not result.is_literal
    assert result.answers[0].kind == "addresses"
    assert result.describe() == (
        f"pbs1.lab.example: {laptop.address}:{laptop.port} answered 127.0.0.2"
    )
    assert result.hint == ""


def test_a_and_aaaa_and_cnames(laptop: DnsServer) -> None:
    result = resolve("backup.lab.example", [ns(laptop)], timeout=1.0)
    assert result.addresses == ("127.0.0.3", "fd00::3")


@pytest.mark.parametrize("literal", ["127.0.0.2", "::1", "[fd00::2]"])
def test_ip_literals_skip_dns(laptop: DnsServer, literal: str) -> None:
    before = laptop.queries
    result = resolve(literal, [ns(laptop)], timeout=1.0)
    assert result.is_literal
    assert result.ok
    assert result.consistent
    assert result.addresses == (literal.strip("[]"),)
    assert laptop.queries == before
    assert "no DNS lookup needed" in result.describe()


def test_missing_name_and_silent_resolver_read_like_a_diagnosis(
    laptop: DnsServer, start_dns: Callable[..., DnsServer]
) -> None:
    silent = start_dns(RECORDS)
    silent.set_fault("silence")
    result = resolve("pbs9.lab.example", [ns(laptop), ns(silent)], timeout=0.3)
    assert not result.ok
    assert [a.kind for a in result.answers] == ["nxdomain", "timeout"]
    text = result.describe()
    assert text.startswith(
        f"pbs9.lab.example: {laptop.address}:{laptop.port} answered NXDOMAIN; "
        f"{silent.address}:{silent.port} timed out after 0.3 s"
    )
    assert "Fix: check that the nameserver runs" in text


def test_nxdomain_everywhere_suggests_adding_the_record(laptop: DnsServer) -> None:
    result = resolve("pbs9.lab.example", [ns(laptop)], timeout=1.0)
    assert "Fix: add an A/AAAA record for pbs9.lab.example" in result.describe()


def test_servfail(laptop: DnsServer) -> None:
    laptop.set_fault("servfail")
    result = resolve("pbs1.lab.example", [ns(laptop)], timeout=1.0)
    assert result.answers[0].kind == "servfail"
    assert "answered SERVFAIL" in result.describe()
    assert "upstream" in result.hint


def test_name_without_addresses_is_no_answer(laptop: DnsServer) -> None:
    result = resolve("empty.lab.example", [ns(laptop)], timeout=1.0)
    assert result.answers[0].kind == "no_answer"
    assert "no A/AAAA record" in result.describe()


def test_node_view_lacking_a_name_makes_the_resolvers_disagree(
    laptop: DnsServer, start_dns: Callable[..., DnsServer]
) -> None:
    pve2 = start_dns({})
    result = resolve("pbs1.lab.example", [ns(pve2), ns(laptop)], timeout=1.0)
    assert result.ok
    assert not result.consistent
    assert result.addresses == ("127.0.0.2",)
    assert "(resolvers disagree)" in result.describe()


def test_truncated_udp_answers_are_retried_over_tcp(start_dns: Callable[..., DnsServer]) -> None:
    many = [f"127.0.3.{i}" for i in range(1, 61)]
    server = start_dns({"big.lab.example": many})
    result = resolve("big.lab.example", [ns(server)], timeout=1.0)
    assert sorted(result.addresses) == sorted(many)


def test_system_resolver_is_used_when_no_nameserver_is_given(
    laptop: DnsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def lab_system_resolver() -> dns.resolver.Resolver:
        resolver = REAL_RESOLVER(configure=False)
        resolver.nameservers = [laptop.address, "https://doh.invalid/dns-query"]
        resolver.port = laptop.port
        return resolver

    monkeypatch.setattr(dns.resolver, "Resolver", lab_system_resolver)
    result = resolve("pbs1.lab.example", [], timeout=1.0)
    assert result.addresses == ("127.0.0.2",)
    assert len(result.answers) == 1


@pytest.mark.parametrize(
    ("nameservers", "problem"),
    [(None, "no system resolver configured"), ([], "no usable nameserver")],
)
def test_missing_system_resolver_is_an_answer_not_a_crash(
    monkeypatch: pytest.MonkeyPatch, nameservers: list[str] | None, problem: str
) -> None:
    def broken() -> dns.resolver.Resolver:
        if nameservers is None:
            raise dns.resolver.NoResolverConfiguration  # dnspython raises the bare class
        resolver = REAL_RESOLVER(configure=False)
        resolver.nameservers = nameservers
        return resolver

    monkeypatch.setattr(dns.resolver, "Resolver", broken)
    result = resolve("pbs1.lab.example", [], timeout=0.5)
    assert not result.ok
    assert result.answers[0].kind == "error"
    assert problem in result.describe()


def _response(rcode: dns.rcode.Rcode, name: str = "pbs1.lab.example") -> dns.message.Message:
    response = dns.message.make_response(dns.message.make_query(name, "A"))
    response.set_rcode(rcode)
    return response


@pytest.mark.parametrize(
    ("rcode", "kind", "text"),
    [
        (dns.rcode.NXDOMAIN, "nxdomain", "answered NXDOMAIN"),
        (dns.rcode.SERVFAIL, "servfail", "answered SERVFAIL"),
        (dns.rcode.REFUSED, "error", "failed: answered REFUSED"),
        (dns.rcode.NOERROR, "no_answer", "no A/AAAA record"),
    ],
)
def test_interpret_is_pure_and_total(rcode: dns.rcode.Rcode, kind: str, text: str) -> None:
    answer = interpret("10.0.0.53", 53, [_response(rcode)], 0.01)
    assert answer.kind == kind
    assert text in answer.describe()


def test_error_answers_describe_their_detail() -> None:
    answer = ResolverAnswer("system resolver", 0, "error", detail="no nameservers")
    assert answer.describe() == "system resolver failed: no nameservers"


def test_json_round_trip(laptop: DnsServer, start_dns: Callable[..., DnsServer]) -> None:
    silent = start_dns({})
    silent.set_fault("silence")
    results = [
        resolve("pbs2.lab.example", [ns(laptop), ns(silent)], timeout=0.2),
        resolve("127.0.0.2", [], timeout=0.2),
    ]
    for result in results:
        again = DnsResult.from_dict(json.loads(json.dumps(result.to_dict())))
        assert again == result
        assert again.describe() == result.describe()
