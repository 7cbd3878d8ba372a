"""Does the PBS server name resolve, and what did each resolver say?

Every nameserver is asked (not only the first that answers), because the useful evidence is
the disagreement: "the laptop's resolver knows pbs9, the one pve2 uses does not".
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver

from pbs_compliance.probes._common import JsonForm, endpoint, is_ip_literal

# "unexpected": the probe itself broke (a bug, a library's warning raised as an error).
AnswerKind = Literal[
    "addresses", "nxdomain", "servfail", "no_answer", "timeout", "error", "unexpected"
]

__all__ = ["AnswerKind", "DnsResult", "ResolverAnswer", "interpret", "resolve"]


@dataclass(frozen=True)
class ResolverAnswer(JsonForm):
    """What one nameserver answered for A + AAAA."""

    nameserver: str
    port: int
    kind: AnswerKind
    addresses: tuple[str, ...] = ()
    elapsed: float = 0.0
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.kind == "addresses"

    def describe(self) -> str:
        where = endpoint(self.nameserver, self.port) if self.port else self.nameserver
        text = {
            "addresses": f"{where} answered {', '.join(self.addresses)}",
            "nxdomain": f"{where} answered NXDOMAIN",
            "servfail": f"{where} answered SERVFAIL",
            "no_answer": f"{where} answered with no A/AAAA record",
            "timeout": f"{where} timed out after {self.elapsed:.1f} s",
            "error": f"{where} failed: {self.detail}",
            "unexpected": f"{where} failed: {self.detail}",
        }[self.kind]
        return text


@dataclass(frozen=True)
class DnsResult(JsonForm):
    name: str
    addresses: tuple[str, ...]
    answers: tuple[ResolverAnswer, ...]
    is_literal: bool

    @property
    def ok(self) -> bool:
        return bool(self.addresses)

    @property
    def consistent(self) -> bool:
        """Every resolver answered, and all with the same addresses."""
        if self.is_literal:
            return True
        return all(a.ok for a in self.answers) and len({a.addresses for a in self.answers}) <= 1

    @property
    def hint(self) -> str:
        kinds = {a.kind for a in self.answers if not a.ok}
        if not kinds:
            return ""
        if "unexpected" in kinds:
            return (
                "nothing was learnt about DNS: the probe itself broke, which is a bug in "
                "pbs-compliance or a library it uses; please report it with this message"
            )
        if kinds <= {"nxdomain", "no_answer"}:
            return (
                f"add an A/AAAA record for {self.name} to the zone every listed resolver serves "
                "(or /etc/hosts on each node), or configure the storage by IP address"
            )
        if "servfail" in kinds:
            return "the resolver could not get an answer upstream; check its zone or forwarders"
        return (
            "check that the nameserver runs and is reachable on UDP and TCP port 53, "
            "and that /etc/resolv.conf points at the right one"
        )

    def describe(self) -> str:
        if self.is_literal:
            return f"{self.name}: an IP address, no DNS lookup needed"
        said = "; ".join(a.describe() for a in self.answers) or "no resolver asked"
        text = f"{self.name}: {said}"
        if self.ok and self.consistent:
            return text
        if self.ok:
            text += " (resolvers disagree)"
        return f"{text}. Fix: {self.hint}" if self.hint else text


def resolve(name: str, nameservers: Sequence[tuple[str, int]], timeout: float) -> DnsResult:
    """Resolve ``name`` through each nameserver in turn (the system's when none is given)."""
    if is_ip_literal(name):
        literal = str(ipaddress.ip_address(name.strip("[]")))
        return DnsResult(name, (literal,), (), True)
    servers = list(nameservers)
    answers: list[ResolverAnswer] = []
    if not servers:
        servers, problem = _system_nameservers()
        if problem:
            answers.append(ResolverAnswer("system resolver", 0, "error", detail=problem))
    answers += [_ask(name, address, port, timeout) for address, port in servers]
    first_ok = next((a for a in answers if a.ok), None)
    return DnsResult(name, first_ok.addresses if first_ok else (), tuple(answers), False)


def interpret(
    nameserver: str,
    port: int,
    responses: Sequence[dns.message.Message],
    elapsed: float,
) -> ResolverAnswer:
    """Turn the A (and AAAA) responses of one nameserver into a verdict. Pure."""
    addresses: list[str] = []
    for response in responses:
        rcode = response.rcode()
        if rcode == dns.rcode.NXDOMAIN:
            return ResolverAnswer(nameserver, port, "nxdomain", elapsed=elapsed)
        if rcode == dns.rcode.SERVFAIL:
            return ResolverAnswer(nameserver, port, "servfail", elapsed=elapsed)
        if rcode != dns.rcode.NOERROR:
            detail = f"answered {dns.rcode.to_text(rcode)}"
            return ResolverAnswer(nameserver, port, "error", elapsed=elapsed, detail=detail)
        for rrset in response.answer:
            if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                addresses += [item.to_text() for item in rrset if item.to_text() not in addresses]
    kind: AnswerKind = "addresses" if addresses else "no_answer"
    return ResolverAnswer(nameserver, port, kind, tuple(addresses), elapsed)


def _ask(name: str, nameserver: str, port: int, timeout: float) -> ResolverAnswer:
    """A, then AAAA unless the A answer already settled it (NXDOMAIN, SERVFAIL, silence)."""
    started = time.monotonic()
    responses: list[dns.message.Message] = []
    try:
        for rdtype in ("A", "AAAA"):
            remaining = timeout - (time.monotonic() - started)
            if responses and (remaining <= 0 or responses[0].rcode() != dns.rcode.NOERROR):
                break
            responses.append(_exchange(name, rdtype, nameserver, port, max(remaining, 0.001)))
    except dns.exception.Timeout:
        if not responses:
            return ResolverAnswer(nameserver, port, "timeout", elapsed=time.monotonic() - started)
    except (OSError, dns.exception.DNSException) as exc:
        if not responses:
            detail = str(exc) or type(exc).__name__
            elapsed = time.monotonic() - started
            return ResolverAnswer(nameserver, port, "error", elapsed=elapsed, detail=detail)
    return interpret(nameserver, port, responses, time.monotonic() - started)


def _exchange(
    name: str, rdtype: str, nameserver: str, port: int, timeout: float
) -> dns.message.Message:
    """One query over UDP, repeated over TCP when the answer came back truncated."""
    query = dns.message.make_query(name, rdtype)
    response = dns.query.udp(query, nameserver, timeout=timeout, port=port)
    if response.flags & dns.flags.TC:
        response = dns.query.tcp(query, nameserver, timeout=timeout, port=port)
    return response


def _system_nameservers() -> tuple[list[tuple[str, int]], str]:
    """The nameservers of /etc/resolv.conf, or why there are none."""
    try:
        resolver = dns.resolver.Resolver()
    except (dns.resolver.NoResolverConfiguration, OSError) as exc:
        return [], f"no system resolver configured ({exc or 'empty resolv.conf'})"
    servers = [
        (ns, resolver.nameserver_ports.get(ns, resolver.port))
        for ns in resolver.nameservers
        if isinstance(ns, str) and is_ip_literal(ns)
    ]
    if not servers:
        return [], "no usable nameserver in the system resolver configuration"
    return servers, ""
