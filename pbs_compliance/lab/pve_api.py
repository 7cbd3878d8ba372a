"""A local PVE API (storage configuration, node views, auth) over real HTTPS on loopback.

The answers follow PVE's wire behaviour request by request: the `{"data": ...}` envelope,
errors whose first message line is the HTTP reason phrase (the only text proxmoxer shows),
PVE's order of checks (auth, body on GET/DELETE, routing, URI/body conflicts, permissions,
schema, business rules), its URL-decoding quirks, tickets with CSRF tokens and API tokens.
The storage rules themselves live in `storage.py`, guests and pools in `pve_guests.py`, backup
jobs in `pve_jobs.py`, tasks in `pve_tasks.py`; this module is the HTTP edge.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pbs_compliance.lab import pve_jobs
from pbs_compliance.lab.pve_auth import (
    ALL_STORAGE_PRIVILEGES,
    Authenticator,
    Principal,
    require_any,
)
from pbs_compliance.lab.pve_cluster import ClusterStore
from pbs_compliance.lab.pve_errors import PveError, param_error
from pbs_compliance.lab.pve_faults import FaultSettings, PveFaults, RequestLog
from pbs_compliance.lab.pve_guests import list_pools, read_pool, resources
from pbs_compliance.lab.pve_nodes import (
    NodeAgent,
    node_storage_content,
    node_storage_list,
    node_storage_status,
    scan_pbs,
)
from pbs_compliance.lab.pve_schema import Params, Prop, Value, validate
from pbs_compliance.lab.pve_state import StorageStore
from pbs_compliance.lab.pve_tasks import list_tasks
from pbs_compliance.lab.serving import MethodHandler
from pbs_compliance.lab.storage import (
    create_storage,
    delete_storage,
    list_storages,
    read_storage,
    storage_view,
    touch_other_storage,
    update_storage,
)

__all__ = [
    "ALL_STORAGE_PRIVILEGES",
    "NodeAgent",
    "Principal",
    "PveApiServer",
    "PveFaults",
    "PveServerConfig",
    "decode_urlencoded",
]

API_PREFIX = "/api2/json"
PVE_VERSION = {"version": "9.1.3", "release": "9.1", "repoid": "1e5b2ac9"}
_ALLOCATE = ("Datastore.Allocate",)
_AUDIT_ANY = ("Datastore.Audit", "Datastore.AllocateSpace")
_LOGIN_SCHEMA = {
    "username": Prop("string", optional=False, max_length=64),
    "password": Prop("string", optional=False),
    "realm": Prop("string", max_length=32),
    "otp": Prop("string"),
    "tfa-challenge": Prop("string"),
    "path": Prop("string", max_length=64),
    "privs": Prop("string", max_length=64),
    "new-format": Prop("boolean"),
}
_DUPLICATE_URI_PARAM = "duplicate parameter (already defined in URI) with conflicting values!"
_NO_AUTH = {("GET", "/access/ticket"), ("POST", "/access/ticket"), ("GET", "/access/domains")}


@dataclass
class PveServerConfig:
    """Everything the lab orchestrator decides about one emulated PVE."""

    state_dir: Path
    cert_file: Path
    key_file: Path
    nodes: Mapping[str, NodeAgent]
    principals: Sequence[Principal]
    request_log: Path
    host: str = "127.0.0.1"
    port: int = 0
    cluster_name: str = "lab"
    initial_storage_cfg: str | None = None
    initial_passwords: Mapping[str, str] = field(default_factory=dict)
    auth_failure_delay: float = 0.0
    admin_handler: Callable[[str, Mapping[str, object]], object] | None = None
    faults: FaultSettings | None = None


# ---- wire decoding ---------------------------------------------------------------------


def decode_urlencoded(data: str) -> dict[str, Value]:
    """`decode_urlencoded` of pve-http-server: pairs split on `&` or `;`, key and value
    split on `=` keeping the first two pieces, a repeated key collects its values, a bare
    `key` is undefined and `key=` is the empty string (as observed on the real server)."""
    out: dict[str, Value] = {}
    for pair in re.split(r"[&;]", data):
        if not pair:
            continue
        pieces = pair.split("=")
        key = urllib.parse.unquote_plus(pieces[0])
        value = urllib.parse.unquote_plus(pieces[1]) if len(pieces) > 1 else None
        old = out.get(key)
        if value is None or old is None:
            out[key] = value
        elif isinstance(old, list):
            old.append(value)
        else:
            out[key] = [old, value]
    return out


def _json_params(body: bytes) -> dict[str, Value]:
    try:
        decoded = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise PveError(400, f"malformed JSON string: {exc}") from exc
    if not isinstance(decoded, dict):
        raise PveError(400, "malformed JSON string: expected an object")
    return {str(k): _json_value(v) for k, v in decoded.items()}


def _json_value(value: Any) -> Value:
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list):
        return [str(_json_value(v)) for v in value]
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


# ---- requests and responses --------------------------------------------------------------


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes


@dataclass
class _Response:
    status: int
    reason: str
    body: bytes = b""
    delay: float = 0.0
    drop: bool = False


def _ok(data: object) -> _Response:
    return _Response(200, "OK", _envelope({"data": data}))


def _envelope(payload: Mapping[str, object]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def _error_response(exc: PveError, body: bool = True) -> _Response:
    payload: dict[str, object] = {"data": None}
    if exc.errors is not None:
        payload["errors"] = exc.errors
    payload["message"] = exc.message
    return _Response(exc.status, exc.reason, _envelope(payload) if body else b"")


_Route = tuple[str, re.Pattern[str], str]
_ROUTES: list[_Route] = [
    (m, re.compile(p), name)
    for m, p, name in [
        ("GET", r"^/version$", "version"),
        ("GET", r"^/nodes$", "nodes"),
        ("GET", r"^/cluster/status$", "cluster_status"),
        ("GET", r"^/access/ticket$", "ticket_dummy"),
        ("POST", r"^/access/ticket$", "login"),
        ("GET", r"^/storage$", "storage_index"),
        ("POST", r"^/storage$", "storage_create"),
        ("GET", r"^/storage/(?P<storage>[^/]+)$", "storage_read"),
        ("PUT", r"^/storage/(?P<storage>[^/]+)$", "storage_update"),
        ("DELETE", r"^/storage/(?P<storage>[^/]+)$", "storage_delete"),
        ("GET", r"^/nodes/(?P<node>[^/]+)/storage$", "node_storage"),
        ("GET", r"^/nodes/(?P<node>[^/]+)/storage/(?P<storage>[^/]+)/status$", "node_status"),
        ("GET", r"^/nodes/(?P<node>[^/]+)/scan/pbs$", "scan_pbs"),
        ("GET", r"^/nodes/(?P<node>[^/]+)/storage/(?P<storage>[^/]+)/content$", "content"),
        ("GET", r"^/nodes/(?P<node>[^/]+)/tasks$", "tasks"),
        ("GET", r"^/cluster/resources$", "resources"),
        ("GET", r"^/cluster/backup$", "jobs_index"),
        ("POST", r"^/cluster/backup$", "job_create"),
        ("GET", r"^/cluster/backup/(?P<id>[^/]+)$", "job_read"),
        ("PUT", r"^/cluster/backup/(?P<id>[^/]+)$", "job_update"),
        ("DELETE", r"^/cluster/backup/(?P<id>[^/]+)$", "job_delete"),
        ("GET", r"^/cluster/backup/(?P<id>[^/]+)/included_volumes$", "job_included"),
        ("GET", r"^/cluster/backup-info/not-backed-up$", "not_backed_up"),
        ("GET", r"^/pools$", "pools"),
        ("GET", r"^/pools/(?P<poolid>[^/]+)$", "pool"),
    ]
]

# Routes answered by the cluster store alone (backup jobs, pools): call(cluster, params, who).
_CLUSTER_CALLS: dict[str, Callable[[ClusterStore, Params, Principal], object]] = {
    "jobs_index": pve_jobs.list_jobs,
    "job_create": pve_jobs.create_job,
    "job_read": pve_jobs.read_job,
    "job_update": pve_jobs.update_job,
    "job_delete": pve_jobs.delete_job,
    "job_included": pve_jobs.included_volumes,
    "not_backed_up": pve_jobs.not_backed_up,
    "pools": list_pools,
    "pool": read_pool,
}


class _PveApp:
    """Request handling without the socket: a request in, a response out."""

    def __init__(self, config: PveServerConfig, faults: PveFaults, log: RequestLog) -> None:
        self.config = config
        self.faults = faults
        self.log = log
        self.auth = Authenticator(config.principals)
        self.store = StorageStore(
            config.state_dir, config.initial_storage_cfg, config.initial_passwords
        )
        self.cluster = ClusterStore(config.state_dir)
        self.started = time.time()
        self.ssl_fingerprint = ""

    @property
    def handling_node(self) -> NodeAgent | None:
        return next(iter(self.config.nodes.values()), None)

    def handle(self, req: _Request) -> _Response:
        params: dict[str, Value] = {}
        principal: Principal | None = None
        rel = req.path[len(API_PREFIX) :] if req.path.startswith(API_PREFIX) else req.path
        rel = rel.rstrip("/") or "/"
        try:
            params = self._params(req)
        except PveError:
            params = {}
        resp: _Response
        if rel.startswith("/_lab/") or rel == "/_lab":
            resp, principal = self._lab(req, rel, params)
        else:
            decision = self.faults.decide(req.method, req.path, rel)
            if decision.drop:
                resp = _Response(0, "", delay=decision.delay, drop=True)
            elif decision.fail_status is not None:
                exc = PveError(decision.fail_status, decision.fail_message)
                resp = _error_response(exc)
                resp.delay = decision.delay
            else:
                resp, principal = self._serve(req, rel)
                resp.delay += decision.delay
        if resp.status == 401:
            override = self.faults.settings.auth_delay
            resp.delay += self.config.auth_failure_delay if override is None else override
        self.log.write(
            req.method,
            req.path,
            params,
            None if resp.drop else resp.status,
            principal.userid if principal else None,
        )
        return resp

    def _params(self, req: _Request) -> dict[str, Value]:
        params: dict[str, Value] = {}
        if req.method in ("PUT", "POST") and req.body:
            ctype = req.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype == "application/json":
                params = _json_params(req.body)
            else:
                params = decode_urlencoded(req.body.decode("utf-8", "replace"))
        params.update(decode_urlencoded(req.query))
        return params

    def _authenticate(self, req: _Request) -> Principal:
        return self.auth.authenticate(req.method, req.headers, req.headers.get("cookie"))

    def _serve(self, req: _Request, rel: str) -> tuple[_Response, Principal | None]:
        principal: Principal | None = None
        try:
            if (req.method, rel) not in _NO_AUTH:
                principal = self._authenticate(req)
        except PveError as exc:
            return _error_response(exc, body=False), None
        if req.body and req.method not in ("PUT", "POST"):
            unexpected = PveError(501, f"Unexpected content for method '{req.method}'")
            return _error_response(unexpected, body=False), principal
        try:
            params = self._params(req)
            name, uri = self._route(req.method, rel)
            for key, value in params.items():
                if key in uri and uri[key] != value:
                    raise param_error({key: _DUPLICATE_URI_PARAM})
            merged: dict[str, Value] = {**params, **uri}
            on_cluster = _CLUSTER_CALLS.get(name)
            if on_cluster is None:
                data = getattr(self, f"_h_{name}")(merged, principal)
            else:
                assert principal is not None  # none of these routes is in _NO_AUTH
                data = on_cluster(self.cluster, merged, principal)
        except PveError as exc:
            return _error_response(exc), principal
        except Exception as exc:  # a Perl `die` in PVE: 500 with its text
            return _error_response(PveError(500, str(exc) or type(exc).__name__)), principal
        if isinstance(data, _Response):
            return data, principal
        return _ok(data), principal

    def _route(self, method: str, rel: str) -> tuple[str, dict[str, str]]:
        for route_method, pattern, name in _ROUTES:
            found = pattern.match(rel)
            if found and route_method == method:
                uri = {k: urllib.parse.unquote(v) for k, v in found.groupdict().items()}
                return name, uri
        raise PveError(501, f"Method '{method} {rel}' not implemented")

    # ---- admin (/_lab) ----------------------------------------------------------------

    def _lab(
        self, req: _Request, rel: str, params: Mapping[str, Value]
    ) -> tuple[_Response, Principal | None]:
        try:
            principal = self._authenticate(req)
        except PveError as exc:
            return _error_response(exc, body=False), None
        if not (principal.is_root or principal.userid.startswith("root@pam!")):
            return _error_response(
                PveError(403, "Permission check failed (/, Sys.Modify)")
            ), principal
        try:
            body = _lab_body(req)
            if rel == "/_lab/faults" and req.method == "GET":
                return _ok(self.faults.settings.as_dict()), principal
            if rel == "/_lab/faults" and req.method == "POST":
                if body.get("clear"):
                    self.faults.clear()
                changes = {k: v for k, v in body.items() if k != "clear"}
                try:
                    settings = self.faults.set(**changes)
                except (TypeError, ValueError) as exc:
                    raise PveError(400, str(exc)) from exc
                return _ok(settings.as_dict()), principal
            if req.method == "POST" and self.config.admin_handler is not None:
                return _ok(self.config.admin_handler(rel, body)), principal
            raise PveError(501, f"Method '{req.method} {rel}' not implemented")
        except PveError as exc:
            return _error_response(exc), principal
        except Exception as exc:  # admin callbacks report as a 500
            return _error_response(PveError(500, str(exc) or type(exc).__name__)), principal

    # ---- handlers ---------------------------------------------------------------------

    def _h_version(self, params: Params, _who: Principal) -> object:
        validate(params, {})
        return dict(PVE_VERSION)

    def _h_ticket_dummy(self, params: Params, _who: Principal | None) -> object:
        return None

    def _h_login(self, params: Params, _who: Principal | None) -> object:
        data = self.auth.login(validate(params, _LOGIN_SCHEMA))
        principal = self.auth.principal(str(data["username"]))
        if principal is not None and principal.is_root:
            data["clustername"] = self.config.cluster_name
        return data

    def _h_nodes(self, params: Params, who: Principal) -> object:
        validate(params, {})
        uptime = int(time.time() - self.started)
        out = []
        for name in self.config.nodes:
            item: dict[str, object] = {
                "node": name,
                "status": "online",
                "id": f"node/{name}",
                "type": "node",
                "level": "",
                "ssl_fingerprint": self.ssl_fingerprint,
            }
            if who.has("Sys.Audit"):
                item.update(
                    cpu=0.01, maxcpu=4, mem=2 * 1024**3, maxmem=8 * 1024**3,
                    disk=4 * 1024**3, maxdisk=32 * 1024**3, uptime=uptime,
                )  # fmt: skip
            out.append(item)
        return out

    def _h_cluster_status(self, params: Params, _who: Principal) -> object:
        validate(params, {})
        names = list(self.config.nodes)
        out: list[dict[str, object]] = [
            {
                "type": "cluster",
                "id": "cluster",
                "name": self.config.cluster_name,
                "nodes": len(names),
                "quorate": 1,
                "version": len(names),
            }
        ]
        for i, name in enumerate(names):
            out.append(
                {
                    "type": "node",
                    "id": f"node/{name}",
                    "name": name,
                    "nodeid": i + 1,
                    "ip": self.config.host,
                    "online": 1,
                    "local": 1 if i == 0 else 0,
                    "level": "",
                }
            )
        return out

    def _visible(self, who: Principal) -> dict[str, bool]:
        visible = any(who.has(p) for p in _AUDIT_ANY)
        return {sid: visible for sid in self.store.state.config.ids()}

    def _h_storage_index(self, params: Params, who: Principal) -> object:
        data = list_storages(self.store.state, params)
        visible = self._visible(who)
        data = [d for d in data if visible.get(str(d["storage"]), False)]
        return self._after_read(data)

    def _h_storage_read(self, params: Params, who: Principal) -> object:
        require_any(who, f"/storage/{params['storage']}", _ALLOCATE)
        return self._after_read(read_storage(self.store.state, params))

    def _after_read(self, data: object) -> object:
        """The read is done (its digest taken); an armed concurrent writer saves now, so the
        client's next PUT with that digest meets a changed file."""
        if self.faults.take_concurrent_writer():
            self.store.write(lambda s: (touch_other_storage(s), None))
        return data

    def _h_storage_create(self, params: Params, who: Principal) -> object:
        require_any(who, "/storage", _ALLOCATE)
        node = self.handling_node
        name = node.name if node is not None else ""
        activate = node.activate if node is not None else None
        return self.store.write(
            lambda s: create_storage(s, params, handling_node=name, activate=activate)
        )

    def _h_storage_update(self, params: Params, who: Principal) -> object:
        require_any(who, "/storage", _ALLOCATE)
        return self.store.write(lambda s: update_storage(s, params))

    def _h_storage_delete(self, params: Params, who: Principal) -> object:
        require_any(who, "/storage", _ALLOCATE)
        self.store.write(lambda s: (delete_storage(s, params), None))
        return None

    def _node(self, params: Params) -> NodeAgent:
        """The node a `proxyto => 'node'` call goes to; PVE resolves unknown names by DNS."""
        name = str(params.get("node"))
        if name == "localhost" and self.handling_node is not None:
            return self.handling_node
        agent = self.config.nodes.get(name)
        if agent is None:
            raise PveError(
                500,
                f"hostname lookup '{name}' failed - failed to get address info for: "
                f"{name}: Name or service not known",
            )
        return agent

    def _h_node_storage(self, params: Params, who: Principal) -> object:
        agent = self._node(params)
        visible = self._visible(who)
        return node_storage_list(self.store.state, agent, params, visible, self.config.state_dir)

    def _h_node_status(self, params: Params, who: Principal) -> object:
        require_any(who, f"/storage/{params.get('storage')}", _AUDIT_ANY)
        agent = self._node(params)
        return node_storage_status(self.store.state, agent, params, self.config.state_dir)

    def _h_scan_pbs(self, params: Params, who: Principal) -> object:
        require_any(who, "/storage", _ALLOCATE)
        agent = self._node(params)
        return scan_pbs(agent, params)

    def _h_content(self, params: Params, who: Principal) -> object:
        storage = f"/storage/{params.get('storage')}"
        require_any(who, storage, _AUDIT_ANY)
        agent = self._node(params)

        def may_see(vmid: int) -> bool:  # check_volume_access for a backup volume
            return who.has("Datastore.Allocate", storage) or (
                who.has("Datastore.AllocateSpace", storage) and who.has("VM.Backup", f"/vms/{vmid}")
            )

        return node_storage_content(self.store.state, agent, params, may_see)

    def _h_tasks(self, params: Params, who: Principal) -> object:
        agent = self._node(params)
        return list_tasks(self.cluster.tasks(agent.name), {**params, "node": agent.name}, who)

    def _h_resources(self, params: Params, who: Principal) -> object:
        state = self.store.state
        views = []
        for sid in state.config.ids():
            with contextlib.suppress(PveError):  # a section PVE would skip as unusable
                views.append(storage_view(state, sid))
        return resources(self.cluster, list(self.config.nodes), views, params, who)


def _lab_body(req: _Request) -> dict[str, Any]:
    if not req.body:
        return {}
    try:
        decoded = json.loads(req.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise PveError(400, f"lab admin body must be a JSON object: {exc}") from exc
    if not isinstance(decoded, dict):
        raise PveError(400, "lab admin body must be a JSON object")
    return decoded


# ---- the HTTPS server ------------------------------------------------------------------


class _Handler(MethodHandler):
    """Silent (the JSON request log is the record)."""

    server: _Server
    server_version = "pve-api-daemon/3.0"

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        url = urllib.parse.urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        req = _Request(method, url.path, url.query, headers, body)
        resp = self.server.app.handle(req)
        if resp.delay > 0:
            time.sleep(resp.delay)
        if resp.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        reason = resp.reason.encode("latin-1", "replace").decode("latin-1")
        self.send_response(resp.status, reason)
        if resp.body:
            self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(resp.body)))
        self.send_header("Cache-Control", "max-age=0")
        self.send_header("Pragma", "no-cache")
        self.end_headers()
        self.wfile.write(resp.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: _PveApp, context: ssl.SSLContext) -> None:
        self.app = app
        self.context = context
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """TLS handshake in the connection's own thread, so a slow client blocks nobody."""
        raw: socket.socket = request
        raw.settimeout(30)
        # Headers and body go out in separate writes; without this, delayed ACKs add 40 ms.
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            conn = self.context.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            return
        with self._conn_lock:
            self._connections.add(conn)
        try:
            super().finish_request(conn, client_address)
        except (OSError, ssl.SSLError):
            pass
        finally:
            with self._conn_lock:
                self._connections.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def close_connections(self) -> None:
        with self._conn_lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class PveApiServer:
    """The emulated PVE API on loopback HTTPS; `start()` returns once it is listening."""

    def __init__(self, config: PveServerConfig) -> None:
        self.config = config
        self.faults = PveFaults(config.faults)
        self._log = RequestLog(config.request_log)
        self._app = _PveApp(config, self.faults, self._log)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(config.cert_file), str(config.key_file))
        self._app.ssl_fingerprint = _cert_fingerprint(config.cert_file)
        try:
            self._server: _Server | None = _Server((config.host, config.port), self._app, context)
        except OSError:  # the port is taken: nothing may stay open
            self._log.close()
            raise
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def port(self) -> int:
        server = self._server
        if server is None:
            raise RuntimeError("the PVE emulator is stopped")
        return int(server.server_address[1])

    @property
    def url(self) -> str:
        return f"https://{self.config.host}:{self.port}"

    @property
    def store(self) -> StorageStore:
        """The storage.cfg state (for assertions and the orchestrator)."""
        return self._app.store

    @property
    def cluster(self) -> ClusterStore:
        """Guests, pools, backup jobs and tasks (for the orchestrator and assertions)."""
        return self._app.cluster

    def start(self) -> None:
        if self._thread is not None or self._server is None:
            return
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"pve-api-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        server = self._server
        if server is not None:
            if self._thread is not None:
                server.shutdown()
                self._thread.join(timeout=5)
            server.close_connections()
            server.server_close()
            self._server = None
        self._log.close()

    def __enter__(self) -> PveApiServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _cert_fingerprint(cert_file: Path) -> str:
    """SHA-256 of the leaf's DER, upper-case hex pairs: how PVE shows `ssl_fingerprint`."""
    pem = cert_file.read_text(encoding="ascii")
    end = "-----END CERTIFICATE-----"
    leaf = pem[pem.index("-----BEGIN CERTIFICATE-----") : pem.index(end) + len(end)]
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(leaf)).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
