"""One Proxmox Backup Server, as far as PVE and our probes can tell.

A TLS listener on its own loopback address with its own certificate, answering the few
``/api2/json`` calls PVE's PBS plugin makes (login, datastore list, snapshots) plus ping,
version, namespaces, groups, datastore status and usage (those in `pbs_datastore.py`, the
contents in `backups.py`, the privileges in `pbs_acl.py`). Faults are real socket behaviour,
not flags a client reads: ``down`` refuses connections (the port stays reserved so the server
comes back on it), ``blackhole`` accepts TCP and never speaks TLS, ``expired``/
``renew_certificate`` change what the handshake presents.

Threads: one accept loop per server, one daemon thread per connection. Every socket has a
timeout and ``stop()`` shuts all of them down, so tests end without stray sockets.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import secrets
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import parse_qs, unquote, urlsplit

from pbs_compliance.lab.backups import BackupStore
from pbs_compliance.lab.certs import CertPair, self_signed
from pbs_compliance.lab.pbs_acl import AUDIT, BACKUP, PbsAcl
from pbs_compliance.lab.pbs_datastore import (
    PbsApiError,
    StoreRead,
    datastore_status,
    datastore_usage,
    list_groups,
    list_namespaces,
    list_snapshots,
)
from pbs_compliance.lab.serving import MethodHandler, SelectLoop

Mode = Literal["up", "down", "blackhole"]

API_BASE = "/api2/json"
TICKET_LIFETIME = 7200.0
HANDSHAKE_TIMEOUT = 10.0
IDLE_TIMEOUT = 15.0
MAX_BODY = 64 * 1024
PBS_VERSION = {
    "version": "3.2",
    "release": "4",
    "repoid": "4940514b0f05d6cd6a5f711edfdd47c1fa41b537",
}
JSON_CONTENT_TYPE = "application/json;charset=UTF-8"
_STORE_READS: dict[str, Callable[[StoreRead], object]] = {
    "namespace": list_namespaces,
    "status": datastore_status,
    "snapshots": list_snapshots,
    "groups": list_groups,
}

__all__ = ["Mode", "PbsServer", "PbsServerSpec"]


@dataclass
class PbsServerSpec:
    """What one lab PBS serves. Passwords and token secrets stay out of the repr."""

    name: str
    address: str = "127.0.0.2"
    port: int = 0
    datastores: Mapping[str, Sequence[str]] = field(default_factory=dict)
    users: Mapping[str, str] = field(default_factory=dict, repr=False)
    tokens: Mapping[str, str] = field(default_factory=dict, repr=False)
    # auth ID -> ACL entries ("store[/ns][:Role]", see pbs_acl.py); unlisted = every privilege
    acl: Mapping[str, Sequence[str]] = field(default_factory=dict)
    expired: bool = False
    # Real PBS holds every 401 back for 3 s; tests want it fast, the demo may want it real.
    unauthorized_delay: float = 0.0
    # Snapshots, fill levels, maintenance (shared by the lab's servers, persisted); None: a
    # private in-memory store with empty datastores.
    contents: BackupStore | None = field(default=None, repr=False, compare=False)


# --------------------------------------------------------------------------------------------
# The API: request in, response out. No sockets here.


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: bytes


@dataclass(frozen=True)
class _Response:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def data(cls, value: object) -> _Response:
        return cls(200, json.dumps({"data": value}).encode())

    @classmethod
    def error(cls, status: int, message: str) -> _Response:
        # PBS's /api2/json formatter: status from the error, the bare message as body.
        return cls(status, message.encode())


_ApiError = PbsApiError


class _PbsApi:
    """State and routes of one server: users, tokens, tickets, datastores, namespaces."""

    def __init__(self, spec: PbsServerSpec) -> None:
        self._spec = spec
        self._lock = threading.Lock()
        self._tickets: dict[str, tuple[str, float]] = {}
        self._csrf_secret = secrets.token_bytes(32)
        self.login_attempts = 0
        self.namespaces = {
            store: _with_ancestors(namespaces) for store, namespaces in spec.datastores.items()
        }
        self.acl = PbsAcl(spec.acl)
        self.contents = spec.contents if spec.contents is not None else BackupStore()
        self.contents.add_server(spec.name, spec.datastores)

    def handle(self, request: _Request) -> _Response:
        try:
            return self._route(request)
        except _ApiError as exc:
            return _Response.error(exc.status, exc.message)

    def _route(self, request: _Request) -> _Response:
        if not request.path.startswith(API_BASE + "/"):
            raise _ApiError(404, f"Path '{request.path}' not found.")
        parts = [unquote(p) for p in request.path[len(API_BASE) + 1 :].split("/") if p]
        method = request.method
        if parts == ["ping"] and method == "GET":
            return _Response.data({"pong": True})
        if parts == ["access", "ticket"] and method == "POST":
            return self._create_ticket(request)
        known = parts in (
            ["ping"],
            ["version"],
            ["access", "ticket"],
            ["admin", "datastore"],
            ["status", "datastore-usage"],
            ["access", "permissions"],
        ) or (len(parts) == 4 and parts[:2] == ["admin", "datastore"] and parts[3] in _STORE_READS)
        if not known:
            raise _ApiError(404, f"Path '{request.path}' not found.")
        if method != "GET":
            raise _ApiError(405, f"Method '{method} {request.path}' not implemented")
        auth_id = self._authenticate(request)
        if parts == ["version"]:
            return _Response.data(dict(PBS_VERSION))
        if parts == ["admin", "datastore"]:
            return _Response.data(self._datastore_list(auth_id))
        if parts == ["access", "permissions"]:
            return _Response.data(self._permissions(auth_id, request.query))
        name = self._spec.name
        if parts == ["status", "datastore-usage"]:
            states = {s: self.contents.datastore(name, s) for s in self._spec.datastores}
            return _Response.data(datastore_usage(self.acl, auth_id, name, states))
        store, call = parts[2], parts[3]
        state = self.contents.datastore(name, store) if store in self._spec.datastores else None
        namespaces = self.namespaces.get(store, frozenset({""}))
        read = StoreRead(self.acl, auth_id, name, store, state, namespaces, request.query)
        return _Response.data(_STORE_READS[call](read))

    # -- authentication ----------------------------------------------------------------------

    def _create_ticket(self, request: _Request) -> _Response:
        params = _body_params(request)
        with self._lock:
            self.login_attempts += 1
        username = params.get("username")
        password = params.get("password")
        if not username:
            raise _ApiError(400, "parameter verification failed - 'username': property is missing")
        if password is None:
            raise _ApiError(400, "no password provided")
        if not self._password_ok(username, password):
            raise _ApiError(401, "permission check failed.")
        now = time.time()
        ticket = f"PBS:{username}:{int(now):08X}::{secrets.token_urlsafe(32)}"
        with self._lock:
            self._tickets[ticket] = (username, now)
        return _Response.data(
            {
                "username": username,
                "ticket": ticket,
                "CSRFPreventionToken": self._csrf_token(username, int(now)),
            }
        )

    def _password_ok(self, username: str, password: str) -> bool:
        if password.startswith("PBS:"):  # ticket renewal, as proxmoxer and PVE do it
            return self._ticket_user(password) == username
        expected = self._spec.users.get(username)
        return expected is not None and hmac.compare_digest(expected, password)

    def _csrf_token(self, username: str, timestamp: int) -> str:
        data = f"{timestamp:08X}:{username}:".encode()
        digest = hmac.new(self._csrf_secret, data, hashlib.sha3_256).digest()
        return f"{timestamp:08X}:{base64.b64encode(digest).decode().rstrip('=')}"

    def _ticket_user(self, ticket: str) -> str | None:
        with self._lock:
            entry = self._tickets.get(ticket)
        if entry is None or time.time() - entry[1] > TICKET_LIFETIME:
            return None
        return entry[0] if entry[0] in self._spec.users else None

    def _authenticate(self, request: _Request) -> str:
        ticket = _cookie(request.headers.get("cookie", ""), "PBSAuthCookie")
        if ticket is not None:
            user = self._ticket_user(ticket)
            if user is None:
                raise _ApiError(401, "authentication failed - invalid ticket")
            return user
        authorization = request.headers.get("authorization", "")
        for prefix in ("PBSAPIToken=", "PBSAPIToken "):
            if authorization.startswith(prefix):
                token_id, sep, secret = authorization[len(prefix) :].partition(":")
                expected = self._spec.tokens.get(token_id)
                if not sep or expected is None or not hmac.compare_digest(expected, secret):
                    raise _ApiError(401, "authentication failed - invalid API token")
                return token_id
        raise _ApiError(401, "authentication failed - no authentication credentials provided.")

    def _permissions(self, auth_id: str, query: Mapping[str, str]) -> dict[str, dict[str, bool]]:
        """GET /access/permissions?path=/datastore/STORE[/NS] (PBS `list_permissions`): the
        caller's own privileges on that path, `{path: {privilege: propagate}}`; a path without
        any is left out. Asking about another auth ID needs Sys.Audit (the lab refuses it)."""
        other = query.get("auth-id")
        if other is not None and other != auth_id:
            raise _ApiError(403, "permission check failed")
        path = query.get("path", "/datastore")
        parts = [p for p in path.split("/") if p]
        if not parts or parts[0] != "datastore":
            return {}
        store = parts[1] if len(parts) > 1 else ""
        privileges = self.acl.privileges(auth_id, store, "/".join(parts[2:])) if store else set()
        return {path: dict.fromkeys(sorted(privileges), True)} if privileges else {}

    # -- datastores --------------------------------------------------------------------------

    def _datastore_list(self, auth_id: str) -> list[dict[str, str]]:
        """Stores with Audit or Backup, or a privilege on a namespace below (then without
        the comment); `maintenance` as the PBS property string when set."""
        out = []
        for store in sorted(self._spec.datastores):
            if not (
                self.acl.privileges(auth_id, store) & {AUDIT, BACKUP}
                or self.acl.any_below(auth_id, store)
            ):
                continue
            item = {"store": store}
            maintenance = self.contents.datastore(self._spec.name, store).maintenance
            if maintenance:
                item["maintenance"] = maintenance
            out.append(item)
        return out


def _with_ancestors(namespaces: Sequence[str]) -> frozenset[str]:
    """A PBS namespace cannot exist without its parents, so 'a/b' implies 'a' (and root)."""
    result = {""}
    for ns in namespaces:
        parts = [p for p in ns.split("/") if p]
        result.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return frozenset(result)


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return unquote(value)
    return None


def _body_params(request: _Request) -> dict[str, str]:
    params = dict(request.query)
    content_type = request.headers.get("content-type", "")
    if not request.body:
        return params
    if content_type.startswith("application/json"):
        try:
            decoded = json.loads(request.body)
        except ValueError as exc:
            raise _ApiError(400, f"unable to parse JSON body - {exc}") from exc
        if not isinstance(decoded, dict):
            raise _ApiError(400, "JSON body must be an object")
        params.update({str(k): str(v) for k, v in decoded.items()})
    else:
        form = parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        params.update({k: v[-1] for k, v in form.items()})
    return params


# --------------------------------------------------------------------------------------------
# HTTP over one TLS connection.

_NO_SERVER = cast("socketserver.BaseServer", None)


class _Handler(MethodHandler):
    server_version = "proxmox-backup-lab"
    timeout = IDLE_TIMEOUT

    def __init__(self, request: ssl.SSLSocket, address: Any, pbs: PbsServer) -> None:
        self.pbs = pbs
        self._first_request = True
        super().__init__(request, address, _NO_SERVER)

    def _dispatch(self, method: str) -> None:
        if self._first_request:
            self._first_request = False
            self.pbs._count("api")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send(_Response.error(413, "request body too large"))
            return
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        response = self.pbs._api.handle(_Request(method, url.path, query, headers, body))
        if response.status == 401 and self.pbs.spec.unauthorized_delay > 0:
            time.sleep(self.pbs.spec.unauthorized_delay)
        self._send(response)

    def _send(self, response: _Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", JSON_CONTENT_TYPE)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)


# --------------------------------------------------------------------------------------------
# The server: sockets, TLS, modes.


class PbsServer:
    """One lab PBS. ``start()``/``stop()`` are idempotent; faults switch at runtime."""

    def __init__(
        self,
        spec: PbsServerSpec,
        cert_dir: Path,
        certificate: CertPair | None = None,
        expired_certificate: CertPair | None = None,
    ) -> None:
        """`certificate`: the server's own (valid) certificate, new if None; with `spec.expired`
        the server serves `expired_certificate` (new if None) until `set_expired(False)`."""
        self.spec = spec
        self.address = spec.address
        self.port = spec.port
        self._cert_dir = cert_dir
        self._api = _PbsApi(spec)
        self._lock = threading.RLock()  # lifecycle: start, stop, mode, certificate
        self._conn_lock = threading.Lock()  # bookkeeping shared with the accept/worker threads
        self._mode: Mode = "up"
        self._expired = spec.expired
        self._generation = 0
        self._cert = CertPair(b"", b"")
        self._valid_cert: CertPair | None = certificate  # what --no-expired serves again
        self._expired_cert: CertPair | None = expired_certificate
        self._ssl_context: ssl.SSLContext | None = None
        self._socket: socket.socket | None = None  # listening, or bound-only while down
        self._accepting: SelectLoop | None = None
        self._parked: list[socket.socket] = []
        self._connections: set[socket.socket] = set()
        self._workers: set[threading.Thread] = set()
        self.last_sni: str | None = None  # server name of the latest handshake, for tests
        # Connections by how far they got: accepted (TCP), TLS handshake done, >= 1 API request.
        self._counts = {"tcp": 0, "tls": 0, "api": 0}
        self._install_certificate()

    def __repr__(self) -> str:
        return f"PbsServer({self.spec.name!r}, {self.address}:{self.port}, mode={self._mode})"

    # -- public ------------------------------------------------------------------------------

    @property
    def fingerprint(self) -> str:
        return self._cert.fingerprint

    @property
    def cert_pem(self) -> bytes:
        return self._cert.cert_pem

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def namespaces(self) -> dict[str, frozenset[str]]:
        """Each datastore's namespaces, parents included ('' is the root)."""
        return dict(self._api.namespaces)

    @property
    def login_attempts(self) -> int:
        return self._api.login_attempts

    @property
    def connection_counts(self) -> dict[str, int]:
        """Connections so far: ``tcp`` accepted, ``tls`` handshaken, ``api`` that sent a request.

        A TCP probe shows as tcp without tls, a TLS probe as tls without api.
        """
        with self._conn_lock:
            return dict(self._counts)

    def _count(self, kind: str) -> None:
        with self._conn_lock:
            self._counts[kind] += 1

    def start(self) -> None:
        with self._lock:
            if self._socket is not None:
                return
            if self.port:
                _ensure_free(self.address, self.port)
            sock = _new_socket(self.address)
            try:
                sock.bind((self.address, self.port))
            except OSError:
                sock.close()
                raise
            self.port = sock.getsockname()[1]
            self._socket = sock
            if self._mode != "down":
                self._listen()

    def stop(self) -> None:
        with self._lock:
            self._stop_accepting()
            if self._socket is not None:
                self._socket.close()
                self._socket = None
            self._drop_connections()
        with self._conn_lock:
            workers = list(self._workers)
        for worker in workers:
            worker.join(timeout=2.0)

    def set_mode(self, mode: Mode) -> None:
        if mode not in ("up", "down", "blackhole"):
            raise ValueError(f"unknown mode {mode!r}; expected 'up', 'down' or 'blackhole'")
        with self._lock:
            previous, self._mode = self._mode, mode
            if self._socket is None or previous == mode:
                return
            if mode == "down":
                self._go_down()
            elif previous == "down":
                self._listen()
            if previous == "blackhole":
                self._close_parked()

    def renew_certificate(self) -> str:
        """New key and certificate; new handshakes see them, open connections keep theirs.

        While expired, the renewal is expired too, and `set_expired(False)` still goes back
        to the valid certificate from before."""
        with self._lock:
            if self._expired:
                self._expired_cert = None
            else:
                self._valid_cert = None
            self._install_certificate()
            return self.fingerprint

    def set_expired(self, expired: bool) -> None:
        """Serve an expired certificate, or the valid one from before again (same fingerprint)."""
        with self._lock:
            if expired != self._expired:
                self._expired = expired
                self._install_certificate()

    # -- certificates ------------------------------------------------------------------------

    @property
    def certificate(self) -> CertPair:
        """The certificate and key served now."""
        return self._cert

    @property
    def expired(self) -> bool:
        return self._expired

    @property
    def valid_certificate(self) -> CertPair | None:
        """The server's own certificate, served whenever it is not expired (None: while expired
        since the start, until `set_expired(False)` makes one). A restarted lab keeps it."""
        return self._valid_cert

    @property
    def expired_certificate(self) -> CertPair | None:
        """The expired certificate served while expired (None until first expired)."""
        return self._expired_cert

    def _install_certificate(self) -> None:
        """Serve the kept certificate for the current state, made first if there is none."""
        if self._expired:
            if self._expired_cert is None:
                now = dt.datetime.now(dt.UTC)
                self._expired_cert = self._new_certificate(
                    not_before=now - dt.timedelta(days=400), not_after=now - dt.timedelta(days=30)
                )
            pair = self._expired_cert
        else:
            if self._valid_cert is None:
                self._valid_cert = self._new_certificate()
            pair = self._valid_cert
        self._generation += 1
        cert_path, key_path = pair.write(self._cert_dir, f"{self.spec.name}-{self._generation}")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        context.sni_callback = self._record_sni
        self._cert, self._ssl_context = pair, context

    def _new_certificate(self, **validity: dt.datetime) -> CertPair:
        return self_signed(self.spec.name, [self.spec.name], [self.address], **validity)

    def _record_sni(self, _sock: Any, server_name: str | None, _context: Any) -> None:
        self.last_sni = server_name

    # -- sockets -----------------------------------------------------------------------------

    def _listen(self) -> None:
        assert self._socket is not None
        self._socket.listen(128)
        self._socket.setblocking(False)
        self._accepting = SelectLoop([self._socket], self._accept, f"pbs-accept-{self.spec.name}")

    def _go_down(self) -> None:
        """Close the listener but keep the port: bind a non-listening twin first (REUSEPORT)."""
        assert self._socket is not None
        self._stop_accepting()
        reserve = _new_socket(self.address)
        reserve.bind((self.address, self.port))
        self._socket.close()
        self._socket = reserve
        self._drop_connections()

    def _stop_accepting(self) -> None:
        accepting, self._accepting = self._accepting, None
        if accepting is not None:
            accepting.stop()

    def _accept(self, listener: socket.socket) -> bool:
        """Take one connection; False once the listener is gone."""
        try:
            conn, peer = listener.accept()
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        self._dispatch(conn, peer)
        return True

    def _dispatch(self, conn: socket.socket, peer: Any) -> None:
        with self._conn_lock:
            self._counts["tcp"] += 1
            if self._mode == "blackhole":
                self._parked.append(conn)  # hold it, say nothing
                return
            worker = threading.Thread(
                target=self._serve,
                args=(conn, peer),
                name=f"pbs-conn-{self.spec.name}",
                daemon=True,
            )
            self._workers.add(worker)
            self._connections.add(conn)
        worker.start()

    def _serve(self, conn: socket.socket, peer: Any) -> None:
        current = conn
        try:
            context = self._ssl_context
            assert context is not None
            conn.setblocking(True)
            conn.settimeout(HANDSHAKE_TIMEOUT)
            tls = context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
            with self._conn_lock:
                self._connections.discard(conn)
                self._connections.add(tls)
                current = tls
            tls.do_handshake()
            self._count("tls")
            _Handler(tls, peer, self)
        except (OSError, ValueError):
            pass  # client went away, handshake failed, or stop() shut the socket down
        finally:
            with self._conn_lock:
                self._connections.discard(current)
                self._workers.discard(threading.current_thread())
            current.close()

    def _drop_connections(self) -> None:
        with self._conn_lock:
            connections = list(self._connections)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._close_parked()

    def _close_parked(self) -> None:
        with self._conn_lock:
            parked, self._parked = self._parked, []
        for sock in parked:
            sock.close()


def _ensure_free(address: str, port: int) -> None:
    """Raise EADDRINUSE when anyone holds the port: our own REUSEPORT socket would otherwise
    share it with another lab's server and the kernel would spread connections over both."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
        probe.bind((address, port))


def _new_socket(address: str) -> socket.socket:
    """REUSEPORT lets a bound-only twin hold the port while the listener is closed ('down')."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock
