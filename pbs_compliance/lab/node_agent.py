"""How one lab PVE node reaches a PBS, the way PVE's PBS storage plugin does.

Resolve the server through *this node's* resolver, connect, TLS (the fingerprint pinned and
hostname checks off when a fingerprint is configured; otherwise CA + hostname verification,
which a self-signed PBS certificate fails), log in or send the API token, list the datastores.
Failures read like PVE's (pve-apiclient LWP.pm + PBSPlugin.pm), e.g.
``error fetching datastores - 500 Can't connect to pbs9.lab.example:8007 (Name or service not
known)`` or ``error fetching datastores - fingerprint '<FP>' not verified, abort!``.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import ipaddress
import json
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from time import monotonic
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from pbs_compliance.lab.certs import fingerprint_of_der

DEFAULT_PORT = 8007
DEFAULT_USER = "root@pam"

# PBS auth ids (pbs-api-types; reused by PBSPlugin.pm auth_id_is_api_token).
_REALM = r"[A-Za-z0-9_][A-Za-z0-9._\-]*"
_TOKEN_ID = re.compile(rf"[^\s:/]+@{_REALM}!{_REALM}")

# glibc getaddrinfo texts, which LWP puts in its "Can't connect" message.
EAI_NONAME = "Name or service not known"
EAI_AGAIN = "Temporary failure in name resolution"

__all__ = ["LabNodeAgent", "NodeAgent", "NodeAgentError", "is_api_token"]


class NodeAgentError(Exception):
    """A PBS call from a node failed; ``str()`` is the client error text as PVE words it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NodeAgent(Protocol):
    """What the PVE emulator needs from a node: activate, scan and status of PBS storages."""

    name: str

    def activate(self, storage: Mapping[str, object], password: str | None) -> str | None: ...

    def scan(
        self, server: str, username: str, password: str, fingerprint: str | None, port: int
    ) -> list[dict[str, object]]: ...

    def status(
        self, storage: Mapping[str, object], password: str | None
    ) -> tuple[int, int, int]: ...

    def snapshots(
        self, storage: Mapping[str, object], password: str | None, vmid: int | None
    ) -> list[dict[str, object]]: ...

    def pooled(self) -> contextlib.AbstractContextManager[None]: ...


def is_api_token(auth_id: str) -> bool:
    """``user@realm!name`` authenticates with a token header instead of a ticket."""
    return _TOKEN_ID.fullmatch(auth_id) is not None


@dataclass(frozen=True)
class _Target:
    server: str
    port: int
    username: str
    secret: str | None = field(repr=False)
    fingerprint: str | None

    @property
    def where(self) -> str:
        host = self.server.strip("[]")
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    @classmethod
    def of_storage(cls, storage: Mapping[str, object], password: str | None) -> _Target:
        server, datastore = storage.get("server"), storage.get("datastore")
        if not isinstance(server, str) or not isinstance(datastore, str):
            raise NodeAgentError("storage entry lacks 'server' or 'datastore'")
        fingerprint = storage.get("fingerprint")
        return cls(
            server=server,
            port=int(str(storage.get("port") or DEFAULT_PORT)),
            username=str(storage.get("username") or DEFAULT_USER),
            secret=password,
            fingerprint=str(fingerprint) if fingerprint else None,
        )


def _negative_ttl(response: dns.message.Message) -> float:
    """How long "no such name" may be remembered: the SOA's minimum (RFC 2308), else not."""
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
            return float(min(rrset.ttl, next(iter(rrset)).minimum))
    return 0.0


class LabNodeAgent:
    """One PVE node's network view: its own resolver, loopback reachability, 7 s timeouts.

    With `dns_version` (the lab resolver's change counter) the node caches what its resolver
    answered - an address or "no such name" - for the record's TTL, as a caching stub resolver
    would, and drops the cache the moment the lab changes that resolver's records or faults, so
    every answer is still the one an uncached lookup would get. Without it, it asks every time.
    Why: at 1,000 storages one run makes thousands of node-side lookups, all answered by one
    Python thread in the lab's process beside the TLS work of every PBS; under load some missed
    the node timeout and failed cases that had no fault.
    """

    def __init__(
        self,
        name: str,
        nameserver: tuple[str, int],
        timeout: float = 7.0,
        *,
        cafile: str | None = None,
        dns_version: Callable[[], int] | None = None,
    ) -> None:
        self.name = name
        self.nameserver = nameserver
        self.timeout = timeout
        self._cafile = cafile  # None: the system trust store, as on a real node
        self._dns_version = dns_version
        self._cache: dict[str, tuple[int, float, str | None]] = {}  # host: version, until, address
        self._cache_lock = threading.Lock()
        self._host_locks: dict[str, threading.Lock] = {}
        self._local = threading.local()  # `pooled`: this thread's open sessions, by login

    def __repr__(self) -> str:
        host, port = self.nameserver
        return f"LabNodeAgent({self.name!r}, nameserver={host}:{port}, timeout={self.timeout})"

    # -- the NodeAgent protocol --------------------------------------------------------------

    def activate(self, storage: Mapping[str, object], password: str | None) -> str | None:
        """None when the storage is usable from this node, else the error PVE would log.

        The text is what PBSPlugin.pm dies with, without the ``<storeid>: `` prefix that
        ``activate_storage`` adds in front of it (the caller knows the storage ID).
        """
        try:
            target = _Target.of_storage(storage, password)
            stores = self._datastores(target)
        except NodeAgentError as exc:
            return f"error fetching datastores - {exc.message}"
        datastore = str(storage["datastore"])
        if not any(item.get("store") == datastore for item in stores):
            return f"Cannot find datastore '{datastore}', check permissions and existence!"
        return None

    def scan(
        self, server: str, username: str, password: str, fingerprint: str | None, port: int
    ) -> list[dict[str, object]]:
        """GET /nodes/{node}/scan/pbs: the datastore list as PBS returns it.

        Raises NodeAgentError with the bare client error (``401 Unauthorized``); the PVE side
        words it as ``error fetching datastores - <client error>``.
        """
        target = _Target(server, port or DEFAULT_PORT, username, password, fingerprint or None)
        return self._datastores(target)

    def status(self, storage: Mapping[str, object], password: str | None) -> tuple[int, int, int]:
        """(total, used, avail) of the datastore, from PBS's own status call."""
        target = _Target.of_storage(storage, password)
        path = f"/api2/json/admin/datastore/{quote(str(storage['datastore']), safe='')}/status"
        with self._session(target) as session:
            data = session.get(path)
        if not isinstance(data, dict):
            raise NodeAgentError("unexpected datastore status answer")
        return int(data["total"]), int(data["used"]), int(data["avail"])

    def snapshots(
        self, storage: Mapping[str, object], password: str | None, vmid: int | None
    ) -> list[dict[str, object]]:
        """The entry's snapshots from PBS (`ns` = its namespace, `backup-id` = the vmid), as
        PBSPlugin.pm `list_volumes` asks for them."""
        target = _Target.of_storage(storage, password)
        query: dict[str, str] = {}
        if vmid is not None:
            query["backup-id"] = str(vmid)
        if storage.get("namespace") is not None:
            query["ns"] = str(storage["namespace"])
        path = f"/api2/json/admin/datastore/{quote(str(storage['datastore']), safe='')}/snapshots"
        if query:
            path += "?" + urlencode(query)
        with self._session(target) as session:
            data = session.get(path)
        if not isinstance(data, list):
            raise NodeAgentError("unexpected snapshot list answer")
        return [dict(item) for item in data if isinstance(item, dict)]

    # -- the steps ---------------------------------------------------------------------------

    def _datastores(self, target: _Target) -> list[dict[str, object]]:
        with self._session(target) as session:
            data = session.get("/api2/json/admin/datastore")
        if not isinstance(data, list):
            raise NodeAgentError("unexpected datastore list answer")
        return [dict(item) for item in data if isinstance(item, dict)]

    @contextlib.contextmanager
    def pooled(self) -> Iterator[None]:
        """The calls of this thread inside the block share one logged-in connection per login
        (server, port, user, secret, pin), and a login that failed fails the same way for the
        rest of the block without being tried again.

        Why: one node view activates and measures every store; one connection and login per
        call made a 1,000-storage view hundreds of TLS handshakes and logins, all in the lab's
        one Python process beside the PBS servers answering them. Within one request the answers
        are the ones separate connections would get: the same server, credentials and pin."""
        if getattr(self._local, "pool", None) is not None:
            yield  # nested: the outer block's pool
            return
        pool: dict[_Target, _Session | NodeAgentError] = {}
        self._local.pool = pool
        try:
            yield
        finally:
            self._local.pool = None
            for session in pool.values():
                if isinstance(session, _Session):
                    session.close()

    @contextlib.contextmanager
    def _session(self, target: _Target) -> Iterator[_Session]:
        pool: dict[_Target, _Session | NodeAgentError] | None = getattr(self._local, "pool", None)
        if pool is None:
            session = self._open(target)
            try:
                yield session
            finally:
                session.close()
            return
        found = pool.get(target)
        if found is None:
            try:
                found = pool[target] = self._open(target)
            except NodeAgentError as exc:
                pool[target] = exc
                raise
        if isinstance(found, NodeAgentError):
            raise NodeAgentError(found.message)
        try:
            yield found
        except NodeAgentError:
            del pool[target]  # the next call opens a fresh connection
            found.close()
            raise

    def _open(self, target: _Target) -> _Session:
        """A verified TLS connection to the target, logged in (or carrying its token)."""
        address = self._resolve(target)
        tls = self._connect_tls(target, address)
        conn = http.client.HTTPConnection(target.server, target.port, timeout=self.timeout)
        conn.sock = tls  # already connected and verified; http.client only speaks HTTP on it
        session = _Session(conn, target)
        try:
            session.authenticate()
        except BaseException:
            session.close()
            raise
        return session

    def _resolve(self, target: _Target) -> str:
        host = target.server.strip("[]")
        with contextlib.suppress(ValueError):
            return str(ipaddress.ip_address(host))
        cant = f"500 Can't connect to {target.where}"
        if self._dns_version is None:
            found, _ = self._lookup(host, cant)
        else:
            found = self._cached_lookup(host, cant, self._dns_version)
        if found is None:
            raise NodeAgentError(f"{cant} ({EAI_NONAME})")
        return found

    def _cached_lookup(self, host: str, cant: str, version: Callable[[], int]) -> str | None:
        key = host.lower()
        with self._cache_lock:
            lock = self._host_locks.setdefault(key, threading.Lock())
        with lock:  # one lookup per name at a time: the others wait for its answer
            now_version = version()
            hit = self._cache.get(key)
            if hit is not None and hit[0] == now_version and monotonic() < hit[1]:
                return hit[2]
            found, ttl = self._lookup(host, cant)  # failures raise: never cached
            self._cache[key] = (now_version, monotonic() + ttl, found)
            return found

    def _lookup(self, host: str, cant: str) -> tuple[str | None, float]:
        """(address or None for "no such name", TTL) from this node's resolver, A then AAAA."""
        server, port = self.nameserver
        ttl = 0.0
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            query = dns.message.make_query(host, rdtype)
            try:
                response = dns.query.udp(query, server, timeout=self.timeout, port=port)
            except (dns.exception.DNSException, OSError) as exc:
                raise NodeAgentError(f"{cant} ({EAI_AGAIN})") from exc
            rcode = response.rcode()
            if rcode == dns.rcode.NXDOMAIN:
                return None, _negative_ttl(response)
            if rcode != dns.rcode.NOERROR:
                raise NodeAgentError(f"{cant} ({EAI_AGAIN})")
            for rrset in response.answer:
                if rrset.rdtype == rdtype and len(rrset):
                    return str(next(iter(rrset)).to_text()), float(rrset.ttl)
            ttl = _negative_ttl(response)
        return None, ttl

    def _connect_tls(self, target: _Target, address: str) -> ssl.SSLSocket:
        pinned = target.fingerprint is not None
        context = _pinning_context() if pinned else self._verifying_context()
        try:
            return self._handshake(context, target, address)
        except ssl.SSLCertVerificationError as exc:
            # PVE's verify callback: OpenSSL said no and nothing is pinned, so the leaf
            # fingerprint is "unknown" and the login aborts naming it.
            actual = self._peer_fingerprint(target, address)
            raise NodeAgentError(f"fingerprint '{actual}' not verified, abort!") from exc

    def _handshake(self, context: ssl.SSLContext, target: _Target, address: str) -> ssl.SSLSocket:
        cant = f"500 Can't connect to {target.where}"
        try:
            raw = socket.create_connection((address, target.port), timeout=self.timeout)
        except ConnectionRefusedError as exc:
            raise NodeAgentError(f"{cant} (Connection refused)") from exc
        except TimeoutError as exc:
            raise NodeAgentError(f"{cant} (Connection timed out)") from exc
        except OSError as exc:
            raise NodeAgentError(f"{cant} ({exc.strerror or exc})") from exc
        host = target.server.strip("[]")
        sni = None if _is_ip(host) and context.check_hostname is False else host
        try:
            tls = context.wrap_socket(raw, server_hostname=sni)
        except ssl.SSLCertVerificationError:
            raw.close()
            raise
        except TimeoutError as exc:
            raw.close()
            raise NodeAgentError(f"{cant} (Connection timed out)") from exc
        except (ssl.SSLError, OSError) as exc:
            raw.close()
            raise NodeAgentError(f"{cant} (SSL connect attempt failed {exc})") from exc
        if target.fingerprint is not None:
            actual = _fingerprint(tls)
            if actual != target.fingerprint.upper():
                tls.close()
                raise NodeAgentError(f"fingerprint '{actual}' not verified, abort!")
        return tls

    def _peer_fingerprint(self, target: _Target, address: str) -> str:
        """A second, unverified handshake, only to name the certificate that was refused."""
        unpinned = _Target(target.server, target.port, target.username, None, None)
        with self._handshake(_pinning_context(), unpinned, address) as tls:
            return _fingerprint(tls)

    def _verifying_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self._cafile)


class _Session:
    """HTTP on one verified TLS connection: ticket login or token header, then GETs."""

    def __init__(self, conn: http.client.HTTPConnection, target: _Target) -> None:
        self._conn = conn
        self._target = target
        self._headers: dict[str, str] = {}

    def close(self) -> None:
        self._conn.close()

    def authenticate(self) -> None:
        target = self._target
        if is_api_token(target.username):
            secret = target.secret or ""
            self._headers["Authorization"] = f"PBSAPIToken={target.username}:{secret}"
            return
        if not target.secret:
            return  # LWP.pm only logs in with a password; the GET then fails with 401
        form = urlencode({"username": target.username, "password": target.secret})
        status, reason, body, _ = self._request(
            "POST",
            "/api2/json/access/ticket",
            form.encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        if status != 200:
            raise NodeAgentError(f"{status} {reason}")
        try:
            ticket = json.loads(body)["data"]["ticket"]
        except (ValueError, KeyError, TypeError) as exc:
            raise NodeAgentError("undefined result data") from exc
        self._headers["Cookie"] = f"PBSAuthCookie={quote(str(ticket), safe='')}"

    def get(self, path: str) -> Any:
        status, reason, body, content_type = self._request("GET", path, None, {})
        if status != 200:
            raise NodeAgentError(f"{status} {reason}")
        if "application/json" not in content_type:
            raise NodeAgentError(f"{status} got unexpected content type")
        try:
            return json.loads(body)["data"]
        except (ValueError, KeyError, TypeError) as exc:
            raise NodeAgentError("undefined result data") from exc

    def _request(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> tuple[int, str, bytes, str]:
        try:
            self._conn.request(method, path, body=body, headers={**self._headers, **headers})
            response = self._conn.getresponse()
            data = response.read()
        except TimeoutError as exc:
            raise NodeAgentError("500 read timeout") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise NodeAgentError(f"500 Server closed connection ({exc})") from exc
        return response.status, response.reason, data, response.getheader("Content-Type", "")


@functools.cache
def _pinning_context() -> ssl.SSLContext:
    """No chain or hostname checks: the pinned fingerprint is the whole trust decision. One for
    every connection (it holds no per-connection state; sessions are never resumed with it)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _fingerprint(tls: ssl.SSLSocket) -> str:
    return fingerprint_of_der(tls.getpeercert(binary_form=True) or b"")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
