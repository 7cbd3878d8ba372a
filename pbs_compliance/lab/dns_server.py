"""A small authoritative DNS server for lab names, over UDP and TCP on one port.

The lab runs one per point of view (the admin's laptop, each PVE node), so "the name resolves
here but not on pve2" is a real resolver answering NXDOMAIN, not a flag. Faults are what a
broken resolver does on the wire: SERVFAIL, or silence (the client times out).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from pbs_compliance.lab.serving import SelectLoop

Fault = Literal["servfail", "silence"]

TTL = 60
TCP_IDLE_TIMEOUT = 10.0
UDP_DEFAULT_PAYLOAD = 512
MAX_CNAME_CHAIN = 8
BIND_ATTEMPTS = 50

__all__ = ["DnsServer", "Fault", "LabZone", "answer"]


def _key(name: str | dns.name.Name) -> str:
    """Lab names compare case-insensitively and with or without the trailing dot."""
    text = name.to_text() if isinstance(name, dns.name.Name) else name
    return text.rstrip(".").lower()


@dataclass(frozen=True)
class LabZone:
    """What one resolver knows: name -> addresses, alias -> target. Immutable; swapped whole."""

    addresses: Mapping[str, tuple[str, ...]]
    cnames: Mapping[str, str]

    @classmethod
    def build(cls, records: Mapping[str, Sequence[str]], cnames: Mapping[str, str]) -> LabZone:
        addresses: dict[str, tuple[str, ...]] = {}
        for name, values in records.items():
            for value in values:
                ipaddress.ip_address(value)  # a typo in the lab must fail loudly, here
            addresses[_key(name)] = tuple(values)
        aliases = {_key(alias): _key(target) for alias, target in cnames.items()}
        clash = sorted(set(aliases) & set(addresses))
        if clash:
            raise ValueError(f"names cannot have both a CNAME and addresses: {', '.join(clash)}")
        return cls(addresses, aliases)

    def knows(self, key: str) -> bool:
        return key in self.addresses or key in self.cnames


def answer(
    query: dns.message.Message, zone: LabZone, fault: Fault | None
) -> dns.message.Message | None:
    """The response to ``query`` (None: stay silent). Pure, so the rules are easy to test."""
    if fault == "silence":
        return None
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    if fault == "servfail":
        response.set_rcode(dns.rcode.SERVFAIL)
        return response
    if query.opcode() != dns.opcode.QUERY:
        response.set_rcode(dns.rcode.NOTIMP)
        return response
    if len(query.question) != 1:
        response.set_rcode(dns.rcode.FORMERR)
        return response
    question = query.question[0]
    if question.rdclass != dns.rdataclass.IN:
        response.set_rcode(dns.rcode.REFUSED)
        return response
    owner, key, rdtype = question.name, _key(question.name), question.rdtype
    if not zone.knows(key):
        response.set_rcode(dns.rcode.NXDOMAIN)
        response.authority.append(_soa(key))
        return response
    for _ in range(MAX_CNAME_CHAIN):
        target = zone.cnames.get(key)
        if target is None:
            break
        response.answer.append(dns.rrset.from_text(owner, TTL, "IN", "CNAME", target + "."))
        if rdtype == dns.rdatatype.CNAME:
            return response
        owner, key = dns.name.from_text(target), target
    wanted = [a for a in zone.addresses.get(key, ()) if _rdtype_of(a) == rdtype]
    if wanted:
        rdtype_text = dns.rdatatype.to_text(rdtype)
        response.answer.append(dns.rrset.from_text_list(owner, TTL, "IN", rdtype_text, wanted))
    elif not response.answer:
        response.authority.append(_soa(key))  # NODATA: the name exists, this type does not
    return response


def _rdtype_of(address: str) -> dns.rdatatype.RdataType:
    if ipaddress.ip_address(address).version == 4:
        return dns.rdatatype.A
    return dns.rdatatype.AAAA


def _soa(key: str) -> dns.rrset.RRset:
    labels = key.split(".")
    apex = ".".join(labels[1:]) + "." if len(labels) > 1 else "."
    return dns.rrset.from_text(
        apex, TTL, "IN", "SOA", f"ns.{apex} hostmaster.{apex} 1 3600 600 86400 {TTL}"
    )


class DnsServer:
    """Lab resolver on ``address``: UDP and TCP on the same port (0 = pick a free one)."""

    def __init__(
        self,
        records: Mapping[str, Sequence[str]],
        cnames: Mapping[str, str] | None = None,
        address: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.address = address
        self.port = port
        self._zone = LabZone.build(records, cnames or {})
        self._fault: Fault | None = None
        self._version = 0  # bumped by every change of records or fault
        self._lock = threading.Lock()
        self._queries = 0
        self._asked: list[tuple[str, str]] = []
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None
        self._loop: SelectLoop | None = None
        self._connections: set[socket.socket] = set()
        self._workers: set[threading.Thread] = set()

    def __repr__(self) -> str:
        return f"DnsServer({self.address}:{self.port}, fault={self._fault})"

    @property
    def queries(self) -> int:
        return self._queries

    def version(self) -> int:
        """Changes whenever the answers may: a cache keyed on it never serves a stale one."""
        return self._version

    @property
    def asked(self) -> list[tuple[str, str]]:
        """Every question so far as (name, type), e.g. ("pbs1.lab.example", "A")."""
        with self._lock:
            return list(self._asked)

    def set_records(
        self, records: Mapping[str, Sequence[str]], cnames: Mapping[str, str] | None = None
    ) -> None:
        """Replace the whole view (records and CNAMEs) at once."""
        self._zone = LabZone.build(records, cnames or {})
        self._version += 1

    def set_fault(self, fault: Fault | None) -> None:
        if fault not in (None, "servfail", "silence"):
            raise ValueError(f"unknown DNS fault {fault!r}; expected None, 'servfail', 'silence'")
        self._fault = fault
        self._version += 1

    def start(self) -> None:
        if self._loop is not None:
            return
        self._udp, self._tcp = self._bind_pair()
        self.port = self._udp.getsockname()[1]
        self._tcp.listen(64)
        self._udp.setblocking(False)
        self._tcp.setblocking(False)
        self._loop = SelectLoop(
            [self._udp, self._tcp], self._ready, f"dns-{self.address}:{self.port}"
        )

    def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        loop.stop()
        for sock in (self._udp, self._tcp):
            if sock is not None:
                sock.close()
        self._udp = self._tcp = None
        with self._lock:
            connections, workers = list(self._connections), list(self._workers)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for worker in workers:
            worker.join(timeout=2.0)

    # -- sockets -----------------------------------------------------------------------------

    def _bind_pair(self) -> tuple[socket.socket, socket.socket]:
        """UDP first (it picks the port), then TCP on the same number; retry if TCP clashes."""
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        attempts = BIND_ATTEMPTS if self.port == 0 else 1
        for attempt in range(attempts):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            tcp = socket.socket(family, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                udp.bind((self.address, self.port))
                tcp.bind((self.address, udp.getsockname()[1]))
            except OSError as exc:
                udp.close()
                tcp.close()
                if exc.errno != errno.EADDRINUSE or attempt == attempts - 1:
                    raise
                continue
            return udp, tcp
        raise AssertionError("unreachable")  # pragma: no cover

    def _respond(self, wire: bytes, max_size: int | None) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None  # not DNS; a real server might send FORMERR, silence is as good here
        with self._lock:
            self._queries += 1
            self._asked += [(_key(q.name), dns.rdatatype.to_text(q.rdtype)) for q in query.question]
        response = answer(query, self._zone, self._fault)
        if response is None:
            return None
        if max_size is None:
            return response.to_wire()
        limit = max(UDP_DEFAULT_PAYLOAD, query.payload if query.edns >= 0 else 0)
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            truncated = dns.message.make_response(query)
            truncated.flags |= dns.flags.TC | dns.flags.AA
            return truncated.to_wire()

    def _ready(self, sock: socket.socket) -> bool:
        """Serve one UDP query or accept one TCP connection; keep going whatever happens."""
        try:
            if sock.type == socket.SOCK_DGRAM:
                self._serve_udp(sock)
            else:
                self._accept_tcp(sock)
        except OSError:
            pass  # not ready after all, or e.g. ICMP-triggered errors from a vanished client
        return True

    def _serve_udp(self, udp: socket.socket) -> None:
        data, peer = udp.recvfrom(65535)
        reply = self._respond(data, UDP_DEFAULT_PAYLOAD)
        if reply is not None:
            udp.sendto(reply, peer)

    def _accept_tcp(self, tcp: socket.socket) -> None:
        conn, _ = tcp.accept()
        conn.setblocking(True)
        conn.settimeout(TCP_IDLE_TIMEOUT)
        worker = threading.Thread(target=self._serve_tcp, args=(conn,), daemon=True)
        with self._lock:
            self._connections.add(conn)
            self._workers.add(worker)
        worker.start()

    def _serve_tcp(self, conn: socket.socket) -> None:
        try:
            while True:
                header = _recv_exactly(conn, 2)
                if header is None:
                    return
                body = _recv_exactly(conn, int.from_bytes(header, "big"))
                if body is None:
                    return
                reply = self._respond(body, None)
                if reply is not None:
                    conn.sendall(len(reply).to_bytes(2, "big") + reply)
        except OSError:
            return  # timeout, reset, or stop() shutting us down
        finally:
            with self._lock:
                self._connections.discard(conn)
                self._workers.discard(threading.current_thread())
            conn.close()


def _recv_exactly(conn: socket.socket, size: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = conn.recv(size - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)
