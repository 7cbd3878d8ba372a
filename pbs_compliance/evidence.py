"""Gather the evidence a run judges: probes once per server, PVE state once per cluster.

Everything here is I/O, done up front and concurrently: each distinct (server, port) is resolved,
connected and handshaken exactly once however many storages point at it, all servers at the same
time, so a dead server costs one timeout in total. PVE is read once (`GET /storage`) plus once per
node. The result is plain dataclasses that serialise to JSON through one pydantic adapter,
because under xdist the controller gathers it and the workers only judge it.

This is a boundary: nothing raised while gathering leaves it. A probe stage or a PVE read that
fails in a way nobody foresaw (a bug, a library's warning turned into an error) becomes that
stage's failure, reported on the cases of the storages it concerns, and the run goes on. No
secret, nor anything derived from one, is kept here: scans are filed by node and storage name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pydantic import TypeAdapter

from pbs_compliance.config import StorageSpec
from pbs_compliance.probes.dns import DnsResult, ResolverAnswer, resolve
from pbs_compliance.probes.tcp import TcpResult, connect
from pbs_compliance.probes.tls import TlsResult, handshake
from pbs_compliance.pve import MAX_CONNECTIONS, PveClient, PveError
from pbs_compliance.pvevalues import applies_to
from pbs_compliance.settings import RunSettings

MAX_WORKERS = MAX_CONNECTIONS  # threads reading at once; each keeps its PVE connection


@dataclass(frozen=True)
class ServerEvidence:
    """What one (server, port) looked like from here."""

    server: str
    port: int
    dns: DnsResult
    tcp: tuple[TcpResult, ...] = ()
    tls: TlsResult | None = None

    @property
    def key(self) -> str:
        return server_key(self.server, self.port)


def server_key(server: str, port: int) -> str:
    return f"{server.lower()}:{port}"


def probe_server(
    server: str, port: int, nameservers: Sequence[tuple[str, int]], timeout: float
) -> ServerEvidence:
    """DNS, then TCP to every address, then one TLS handshake on the first that connected.

    Each stage that raises (it should not) is that stage's failure, named as unexpected."""
    try:
        dns = resolve(server, nameservers, timeout)
    except Exception as exc:  # the boundary: a failed probe, never a failed run
        answer = ResolverAnswer("the DNS probe", 0, "unexpected", detail=unexpected(exc))
        dns = DnsResult(server, (), (answer,), is_literal=False)
    if not dns.ok:
        return ServerEvidence(server, port, dns)
    tcp = tuple(_connect(address, port, timeout) for address in dns.addresses)
    reachable = next((t.address for t in tcp if t.ok), None)
    if reachable is None:
        return ServerEvidence(server, port, dns, tcp)
    sni = None if dns.is_literal else server
    try:
        tls = handshake(reachable, port, sni, timeout)
    except Exception as exc:  # the boundary
        tls = TlsResult(reachable, port, sni, False, unexpected(exc), 0.0, kind="error")
    return ServerEvidence(server, port, dns, tcp, tls)


def _connect(address: str, port: int, timeout: float) -> TcpResult:
    try:
        return connect(address, port, timeout)
    except Exception as exc:  # the boundary
        return TcpResult(address, port, False, unexpected(exc), 0.0, "error")


def unexpected(exc: BaseException, redact: Callable[[str], str] = str) -> str:
    """An exception nobody foresaw, in one line (its frames are dropped with it)."""
    kind = "a warning raised as an error" if isinstance(exc, Warning) else "unexpected error"
    return f"{kind}: {type(exc).__name__}: {redact(str(exc))}"


@dataclass(frozen=True)
class NodeScan:
    """Whether one node could log in to a PBS with the declared password (`scan/pbs`)."""

    ok: bool
    datastores: tuple[str, ...] = ()
    error: str = ""


@dataclass
class LiveState:
    """PVE as read once in this run; `error` says why it could not be read (then all empty)."""

    storages: list[dict[str, Any]] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)
    node_views: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    node_errors: dict[str, str] = field(default_factory=dict)
    scans: dict[str, NodeScan] = field(default_factory=dict)
    error: str | None = None
    skipped: str | None = None  # why PVE was not asked at all (no credentials)

    # Indexed once: every case looks up its entry, and a linear scan each time makes a run of
    # N storages quadratic (the benchmark at N = 1,000 showed it).
    @cached_property
    def pbs_entries(self) -> dict[str, dict[str, Any]]:
        return {str(e["storage"]): e for e in self.storages if e.get("type") == "pbs"}

    @cached_property
    def by_name(self) -> dict[str, dict[str, Any]]:
        """Every entry (any type) by storage ID."""
        return {str(e.get("storage")): e for e in self.storages}

    @cached_property
    def _node_index(self) -> dict[tuple[str, str], dict[str, Any]]:
        return {
            (node, str(e.get("storage"))): e for node, view in self.node_views.items() for e in view
        }

    def node_entry(self, node: str, storage: str) -> dict[str, Any] | None:
        return self._node_index.get((node, storage))


def scan_key(node: str, spec: StorageSpec) -> str:
    """Where the scan of one storage from one node is filed: by names only, never by anything
    derived from its password (a hash prefix lets anyone test guesses offline)."""
    return f"{node}|{spec.name}"


def pinned_fingerprint(entry: Mapping[str, Any]) -> str | None:
    """The fingerprint PVE pins for an entry (None: PVE verifies against the CAs instead)."""
    value = entry.get("fingerprint")
    return str(value) if value else None


OnNodes = Callable[[list[str]], None]
OnProbes = Callable[[dict[str, ServerEvidence]], None]


def read_live(
    client: PveClient, storages: Sequence[StorageSpec], on_nodes: OnNodes | None = None
) -> LiveState:
    """One storage-list read, one node list, one view per node, one scan per distinct login.

    `on_nodes` hears the node list as soon as PVE gave it (pytest parametrises with it while
    the views and scans go on); a later failure keeps that list, so the cases made from it and
    the evidence they are judged on agree."""
    state = LiveState()
    try:
        _read_live(client, storages, state, on_nodes)
    except PveError as exc:
        state.error = str(exc)
    except Exception as exc:  # the boundary: PVE could not be judged, the run goes on
        state.error = unexpected(exc, client.redact)
    if state.error:
        return LiveState(error=state.error, nodes=state.nodes)
    return state


def _read_live(
    client: PveClient, storages: Sequence[StorageSpec], state: LiveState, on_nodes: OnNodes | None
) -> None:
    state.storages = client.storages()
    nodes = client.nodes()
    state.nodes = nodes
    if on_nodes is not None:
        on_nodes(list(nodes))
    # Views and scans all at once: a dead PBS's scans must not queue behind the node views.
    with ThreadPoolExecutor(max_workers=MAX_WORKERS) as pool:
        views = {node: pool.submit(client.node_storages, node) for node in state.nodes}
        logins: dict[tuple[object, ...], Future[NodeScan]] = {}
        filed: dict[str, Future[NodeScan]] = {}
        for spec in storages:
            entry = state.pbs_entries.get(spec.name)
            if spec.password is None or not spec.enabled or entry is None:
                continue  # no entry in PVE: its node cases skip (see the drift case)
            # The password is proven with what PVE pins, not with the declared fingerprint: a
            # wrong declared fingerprint is the fingerprint case's fault, not the nodes'.
            fingerprint = pinned_fingerprint(entry)
            for node in applies_to(spec.nodes, state.nodes):
                # Same node, server, port, user, pin and password = same answer (the SecretStr
                # compares by value and never shows it).
                login = (node, spec.server, spec.port, spec.username, fingerprint, spec.password)
                if login not in logins:
                    logins[login] = pool.submit(_scan, client, node, spec, fingerprint)
                filed[scan_key(node, spec)] = logins[login]
        for node, future in views.items():
            try:
                state.node_views[node] = future.result()
            except PveError as exc:
                state.node_errors[node] = str(exc)
        for key, scan in filed.items():
            state.scans[key] = scan.result()


def _scan(client: PveClient, node: str, spec: StorageSpec, fingerprint: str | None) -> NodeScan:
    assert spec.password is not None
    try:
        found = client.scan_pbs(
            node, spec.server, spec.username, spec.password, fingerprint, spec.port
        )
    except PveError as exc:
        return NodeScan(ok=False, error=exc.message)
    return NodeScan(ok=True, datastores=tuple(sorted(str(d.get("store")) for d in found)))


@dataclass
class Evidence:
    """Everything a run judges, gathered once."""

    servers: dict[str, ServerEvidence] = field(default_factory=dict)
    live: LiveState = field(default_factory=LiveState)
    extra: dict[str, Any] = field(default_factory=dict)  # what plugins add (`pytest_pbs_gather`)

    def server(self, spec: StorageSpec) -> ServerEvidence:
        return self.servers[server_key(spec.server, spec.port)]

    def to_json(self) -> str:
        """JSON for xdist's workers: every field of every evidence dataclass, by one mechanism
        (pydantic's adapter of the dataclasses), so a field added here cannot be forgotten."""
        return _ADAPTER.dump_json(self).decode()

    @classmethod
    def from_json(cls, text: str) -> Evidence:
        return _ADAPTER.validate_json(text)


_ADAPTER: TypeAdapter[Evidence] = TypeAdapter(Evidence)


def gather(
    storages: Sequence[StorageSpec],
    nameservers: Sequence[tuple[str, int]],
    timeout: float,
    client: PveClient | None,
    no_client_reason: str = "no PVE credentials configured",
    on_nodes: OnNodes | None = None,
    on_probes: OnProbes | None = None,
) -> Evidence:
    """Probe every distinct server and read PVE, all at once (never raises: see the module doc).

    `on_nodes` hears PVE's node list first (see `read_live`; an empty list without a client);
    `on_probes` hears every server's probes as soon as the last one ended, while PVE may still
    be answering (the connectivity cases judge nothing else)."""
    targets = {server_key(s.server, s.port): (s.server, s.port) for s in storages if s.enabled}
    try:
        return _gather(
            targets, storages, nameservers, timeout, client, no_client_reason, on_nodes, on_probes
        )
    except Exception as exc:  # the boundary's last line: every storage carries the reason
        why = unexpected(exc, client.redact if client is not None else str)
        servers = {key: _unprobed(server, port, why) for key, (server, port) in targets.items()}
        return Evidence(servers=servers, live=LiveState(error=why))


def _gather(
    targets: Mapping[str, tuple[str, int]],
    storages: Sequence[StorageSpec],
    nameservers: Sequence[tuple[str, int]],
    timeout: float,
    client: PveClient | None,
    no_client_reason: str,
    on_nodes: OnNodes | None,
    on_probes: OnProbes | None,
) -> Evidence:
    if client is None and on_nodes is not None:
        on_nodes([])  # PVE is not asked: no node cases to wait for
    workers = max(1, min(MAX_WORKERS, len(targets) + 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        live_future = (
            pool.submit(read_live, client, storages, on_nodes) if client is not None else None
        )
        futures = {
            key: pool.submit(probe_server, server, port, nameservers, timeout)
            for key, (server, port) in targets.items()
        }
        servers: dict[str, ServerEvidence] = {}
        for key, future in futures.items():
            try:
                servers[key] = future.result()
            except Exception as exc:  # the boundary: this server's cases carry the reason
                server, port = targets[key]
                servers[key] = _unprobed(server, port, unexpected(exc))
        if on_probes is not None:
            on_probes(dict(servers))
        live = LiveState(skipped=no_client_reason)
        if live_future is not None and client is not None:
            try:
                live = live_future.result()
            except Exception as exc:  # the boundary: the PVE cases carry the reason
                live = LiveState(error=unexpected(exc, client.redact))
    return Evidence(servers=servers, live=live)


def _unprobed(server: str, port: int, why: str) -> ServerEvidence:
    """A server whose probing broke before even DNS: its dns case fails with the reason."""
    answer = ResolverAnswer("evidence gathering", 0, "unexpected", detail=why)
    return ServerEvidence(server, port, DnsResult(server, (), (answer,), is_literal=False))


NO_CREDENTIALS = (
    "no PVE credentials configured (pve.token_id + pve.token_secret in the config, or "
    "PBS_COMPLIANCE_PVE_TOKEN_ID/_SECRET)"
)


def client_for(settings: RunSettings) -> PveClient | None:
    """A PVE client when credentials are configured (raises PveError when they are unusable)."""
    if not settings.has_pve_credentials:
        return None
    return PveClient(settings.pve, settings.secrets)


def client_or_reason(settings: RunSettings) -> tuple[PveClient | None, str]:
    """The PVE client of a run, or None and why not (no credentials, or unusable ones)."""
    try:
        return client_for(settings), NO_CREDENTIALS
    except PveError as exc:
        return None, str(exc)


def gather_evidence(
    settings: RunSettings, on_nodes: OnNodes | None = None, on_probes: OnProbes | None = None
) -> Evidence:
    """Probe every server and read PVE once: what a run (pytest or CLI) judges."""
    client, reason = client_or_reason(settings)
    return gather(
        settings.config.storages,
        settings.nameservers,
        settings.probe_timeout,
        client,
        reason,
        on_nodes,
        on_probes,
    )
