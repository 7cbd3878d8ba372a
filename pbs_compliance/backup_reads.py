"""Read what the backup health checks judge: the PBS directly, PVE's view of the backups, guests.

Per run, all at once, each call with a timeout:

- the cluster once (`GET /cluster/resources`): which guests exist (name, node), which nodes are
  online and on which node each storage is available;
- each distinct PBS target - (server, port, datastore, namespace, user) - once, with the declared
  credentials and the declared fingerprint pinned (no credential is sent to a server that serves
  another certificate): per login the datastore list (existence, `maintenance`) and
  `/status/datastore-usage` (sizes, `estimated-full-date`); per target the namespace (when one
  is declared; PVE never checks it) and the caller's privileges there (`/access/permissions`, so
  an empty list can say which privilege hides the backups);
- PVE's own view of each target's backups once, from one node the storage is available on
  (`/nodes/{node}/storage/{id}/content?content=backup`): PVE asks the PBS with the entry's stored
  credentials and namespace, so this is what a restore in PVE would offer.

The first failed call of a login ends that login (a dead PBS costs one timeout, not one per
datastore). Nothing raised here leaves `read_backups`: every failure is recorded on the targets it
concerns, in words safe to show (no secret, no ticket). Without a declared password the PBS is not
read and the targets say why. The results are frozen dataclasses, serialised by one pydantic
adapter (`to_data`/`from_data`) so they travel to xdist workers unchanged.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import ssl
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests
from pydantic import SecretStr, TypeAdapter
from requests.adapters import HTTPAdapter
from urllib3.util.ssl_ import create_urllib3_context

from pbs_compliance.config import StorageSpec
from pbs_compliance.evidence import client_or_reason
from pbs_compliance.probes.dns import resolve
from pbs_compliance.pve import PveClient, PveError
from pbs_compliance.settings import RunSettings

MAX_WORKERS = 32
AUDIT = "Datastore.Audit"
BACKUP = "Datastore.Backup"


# -- what is read --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Guest:
    """A VM or container that exists in the cluster (`/cluster/resources`)."""

    vmid: int
    name: str
    node: str
    kind: str  # qemu | lxc
    template: bool = False

    @property
    def label(self) -> str:
        """`vm 100 (web) on pve1`."""
        short = "ct" if self.kind == "lxc" else "vm"
        name = f" ({self.name})" if self.name else ""
        return f"{short} {self.vmid}{name} on {self.node}"


@dataclass(frozen=True)
class Backup:
    """One snapshot as PVE lists it (`content?content=backup`)."""

    vmid: int
    btype: str  # vm | ct
    ctime: int  # backup time, epoch seconds
    size: int  # PVE shows 1 when the PBS gives no size: still being written
    verification: str | None = None  # ok | failed | None (never verified)
    verified_at: int | None = None  # start of the verify task (from its UPID), when known
    protected: bool = False

    @property
    def in_progress(self) -> bool:
        """A snapshot still being written: the PBS lists it without size or verification."""
        return self.size <= 1 and self.verification is None

    @property
    def when(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.ctime, dt.UTC)


@dataclass(frozen=True)
class Usage:
    """One datastore in `/status/datastore-usage` (None: not shown to this user)."""

    total: int | None = None
    used: int | None = None
    avail: int | None = None
    estimated_full: int | None = None  # epoch; 0 = never; None = no prediction
    error: str = ""  # a store that fails to load (maintenance) has only this


@dataclass(frozen=True)
class PbsTarget:
    """One (server, port, datastore, namespace, user) as the PBS answers it directly."""

    server: str
    port: int
    datastore: str
    namespace: str  # "" = the root
    auth_id: str
    skipped: str = ""  # why the PBS was not asked (no password, disabled)
    error: str = ""  # why it could not be read at all (connection, TLS, login)
    status: int | None = None  # HTTP status of that error, when the PBS gave one
    stores: tuple[str, ...] = ()  # GET /admin/datastore: what this user sees
    listed: bool = False  # the datastore is among them
    maintenance: str = ""  # its `maintenance` property string ("" = none)
    usage: Usage | None = None
    namespace_exists: bool | None = None  # None: the root, or not known (see namespace_error)
    namespace_error: str = ""
    privileges: tuple[str, ...] | None = None  # on /datastore/DS[/NS]; None: not known
    privileges_error: str = ""

    @property
    def acl_path(self) -> str:
        return f"/datastore/{self.datastore}" + (f"/{self.namespace}" if self.namespace else "")

    @property
    def read(self) -> bool:
        return not self.skipped and not self.error


@dataclass(frozen=True)
class PveBackups:
    """PVE's view of one storage's backups, asked on one node."""

    storage: str
    node: str = ""
    skipped: str = ""  # why PVE was not asked
    error: str = ""
    status: int | None = None
    items: tuple[Backup, ...] = ()

    @property
    def read(self) -> bool:
        return not self.skipped and not self.error


@dataclass(frozen=True)
class BackupEvidence:
    """Everything the backup health checks judge, read once per run."""

    guests: dict[int, Guest] = field(default_factory=dict)
    guests_error: str = ""  # why the guests are not known ("" when they are)
    pbs: dict[str, PbsTarget] = field(default_factory=dict)  # by target key
    pve: dict[str, PveBackups] = field(default_factory=dict)  # by target key
    storages: dict[str, str] = field(default_factory=dict)  # storage name -> target key
    reads: dict[str, int] = field(default_factory=dict)  # calls made, by endpoint (bench)

    def target(self, spec: StorageSpec) -> tuple[PbsTarget | None, PveBackups | None]:
        key = self.storages.get(spec.name)
        if key is None:
            return None, None
        return self.pbs.get(key), self.pve.get(key)

    def to_data(self) -> Any:
        """Plain JSON data (what `pytest_pbs_gather` hands to xdist workers)."""
        return _ADAPTER.dump_python(self, mode="json")

    @classmethod
    def from_data(cls, data: Any) -> BackupEvidence:
        return _ADAPTER.validate_python(data)


_ADAPTER: TypeAdapter[BackupEvidence] = TypeAdapter(BackupEvidence)


def target_key(spec: StorageSpec) -> str:
    """Storages that point at the same place share one read."""
    return (
        f"{spec.server.lower()}:{spec.port}/{spec.datastore}/{spec.namespace or ''}|{spec.username}"
    )


# -- the PBS client --------------------------------------------------------------------------------


class PbsReadError(Exception):
    """A PBS call failed; `str()` is safe to show (no secret, no ticket)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@functools.cache
def _pinning_context() -> ssl.SSLContext:
    """One TLS context for every pinned connection. Without it urllib3 makes one per connection
    and loads the system's CA store into each (tens of milliseconds apiece, for certificates a
    pinned connection never consults); the fingerprint is still asserted on every handshake."""
    context = create_urllib3_context(cert_reqs=ssl.CERT_NONE)
    context.check_hostname = False
    return context


class _Pinned(HTTPAdapter):
    """TLS like PVE talks to a PBS: the certificate is trusted by its SHA-256 fingerprint."""

    def __init__(self, fingerprint: str, server_name: str | None) -> None:
        self._fingerprint = fingerprint
        self._server_name = server_name
        super().__init__(max_retries=0)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **kw: Any
    ) -> None:
        kw.update(
            cert_reqs="CERT_NONE",
            assert_fingerprint=self._fingerprint,
            ssl_context=_pinning_context(),
        )
        if self._server_name is not None:
            kw["server_hostname"] = self._server_name
        super().init_poolmanager(connections, maxsize, block, **kw)


@dataclass(frozen=True)
class Login:
    """What one PBS session is made of (the password stays a SecretStr until it is sent)."""

    server: str
    port: int
    auth_id: str
    fingerprint: str
    password: SecretStr = field(repr=False)


class PbsSession:
    """A logged-in PBS API session: a ticket for users, the token header for API tokens."""

    def __init__(
        self,
        login: Login,
        nameservers: Sequence[tuple[str, int]],
        timeout: float,
        count: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.login = login
        self.timeout = timeout
        self._count = count
        self._nameservers = nameservers
        self._http = requests.Session()
        # Trusted by the pinned fingerprint (`_Pinned`), as PVE does; no CA bundle or proxy
        # from the environment (REQUESTS_CA_BUNDLE would turn chain verification back on).
        self._http.verify = False
        self._http.trust_env = False
        self._base = ""
        self._secrets = [login.password.get_secret_value()]

    def __repr__(self) -> str:
        return f"PbsSession({self.login.auth_id}@{self.login.server}:{self.login.port})"

    def open(self) -> None:
        """Resolve, pin, log in; raises PbsReadError."""
        address, literal = self._address()
        host = f"[{address}]" if ":" in address else address
        self._base = f"https://{host}:{self.login.port}/api2/json"
        self._http.mount(
            "https://", _Pinned(self.login.fingerprint, None if literal else self.login.server)
        )
        self._http.headers["Host"] = self.login.server if not literal else address
        if "!" in self.login.auth_id:
            self._http.headers["Authorization"] = (
                f"PBSAPIToken={self.login.auth_id}:{self.login.password.get_secret_value()}"
            )
            return
        data = self._call(
            "POST",
            "/access/ticket",
            "login",
            form={"username": self.login.auth_id, "password": self.login.password},
        )
        ticket = data.get("ticket") if isinstance(data, dict) else None
        if not isinstance(ticket, str):
            raise PbsReadError("the PBS answered the login without a ticket")
        self._secrets.append(ticket)
        self._http.cookies.set("PBSAuthCookie", ticket)

    def get(self, endpoint: str, what: str, **params: str) -> Any:
        return self._call("GET", endpoint, what, params=params)

    def close(self) -> None:
        self._http.close()

    def _address(self) -> tuple[str, bool]:
        """The address to connect to, and whether the server is one (then nothing is asked)."""
        result = resolve(self.login.server, self._nameservers, self.timeout)
        if not result.ok:
            raise PbsReadError(f"{self.login.server} does not resolve: {result.describe()}")
        return result.addresses[0], result.is_literal

    def _call(
        self,
        method: str,
        path: str,
        what: str,
        params: Mapping[str, str] | None = None,
        form: Mapping[str, str | SecretStr] | None = None,
    ) -> Any:
        # Mapped inside the handler, raised after it: no context, no frames holding the secret.
        self._count(what)
        try:
            body = None
            if form is not None:
                body = {
                    k: v.get_secret_value() if isinstance(v, SecretStr) else v
                    for k, v in form.items()
                }
            response = self._http.request(
                method, self._base + path, params=params, data=body, timeout=self.timeout
            )
            if response.status_code != 200:
                text = response.text.strip() or response.reason
                error = PbsReadError(self._redact(text[:300]), response.status_code)
            else:
                return response.json().get("data")
        except Exception as exc:  # every failure becomes a PbsReadError
            error = self._translate(exc)
        raise error

    def _translate(self, exc: Exception) -> PbsReadError:
        where = f"{self.login.server}:{self.login.port}"
        if isinstance(exc, requests.exceptions.SSLError):
            if "fingerprint" in str(exc).lower():
                return PbsReadError(
                    f"{where} serves a certificate whose fingerprint is not the declared one: "
                    "nothing was sent to it"
                )
            return PbsReadError(f"TLS with {where} failed: {self._redact(_root(exc))}")
        if isinstance(exc, requests.exceptions.Timeout):
            return PbsReadError(f"{where} did not answer within {self.timeout:g} s")
        if isinstance(exc, requests.exceptions.RequestException):
            return PbsReadError(f"cannot reach {where}: {self._redact(_root(exc))}")
        if isinstance(exc, ValueError):
            return PbsReadError(f"{where} answered something that is not JSON")
        return PbsReadError(
            f"unexpected error talking to {where}: {type(exc).__name__}: {self._redact(str(exc))}"
        )

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, "***")
        return text


def _root(exc: BaseException) -> str:
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return str(exc)


# -- reading ---------------------------------------------------------------------------------------


class _Counter:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def __call__(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1  # GIL-atomic enough for a tally


def read_backups(
    storages: Sequence[StorageSpec],
    nameservers: Sequence[tuple[str, int]],
    timeout: float,
    client: PveClient | None,
    no_client_reason: str = "no PVE credentials configured",
) -> BackupEvidence:
    """Read everything the backup health checks judge, all at once (never raises)."""
    counter = _Counter()
    specs = [s for s in storages if s.enabled]
    first: dict[str, StorageSpec] = {}
    sharing: dict[str, list[StorageSpec]] = {}  # every storage of a target, in declared order
    for spec in specs:
        first.setdefault(target_key(spec), spec)
        sharing.setdefault(target_key(spec), []).append(spec)
    storages_map = {s.name: target_key(s) for s in specs}
    logins: dict[Login, list[StorageSpec]] = {}
    pbs: dict[str, PbsTarget] = {}
    for key, spec in first.items():
        if spec.password is None:
            pbs[key] = _target(spec, skipped=_NO_PASSWORD.format(name=spec.name))
            continue
        login = Login(spec.server, spec.port, spec.username, spec.fingerprint, spec.password)
        logins.setdefault(login, []).append(spec)
    # Logins wait for their targets' reads, which wait for nothing: two pools, no deadlock.
    with (
        ThreadPoolExecutor(MAX_WORKERS, thread_name_prefix="pbs-health") as pool,
        ThreadPoolExecutor(MAX_WORKERS, thread_name_prefix="pbs-health-target") as targets,
    ):
        cluster = pool.submit(_cluster, client, counter) if client is not None else None
        pbs_futures = {
            login: pool.submit(_read_login, login, group, nameservers, timeout, counter, targets)
            for login, group in logins.items()
        }
        guests: dict[int, Guest] = {}
        nodes_by_storage: dict[str, list[str]] = {}
        guests_error = no_client_reason
        if cluster is not None:
            broke: tuple[dict[int, Guest], dict[str, list[str]], str] = (
                {},
                {},
                "reading the cluster's resources broke unexpectedly",
            )
            guests, nodes_by_storage, guests_error = _settle(cluster, broke)
        pve: dict[str, PveBackups] = {}
        content: dict[str, Future[PveBackups]] = {}
        for key, spec in first.items():
            if client is None:
                pve[key] = PveBackups(spec.name, skipped=no_client_reason)
            elif guests_error:
                pve[key] = PveBackups(spec.name, error=f"cannot read the cluster: {guests_error}")
            else:
                # Any storage of the target will do (same place, same backups): the first one
                # PVE has available somewhere, so one missing from PVE does not hide the rest.
                asked = next(
                    (s for s in sharing[key] if _node_for(s, nodes_by_storage) is not None), spec
                )
                node = _node_for(asked, nodes_by_storage)
                if node is None:
                    pve[key] = PveBackups(
                        spec.name,
                        skipped=f"no online PVE node has '{spec.name}' available",
                    )
                else:
                    content[key] = pool.submit(_content, client, asked, node, counter)
        for key, pending in content.items():
            pve[key] = _settle(
                pending, PveBackups(first[key].name, error="reading PVE's backup list broke")
            )
        for login, future in pbs_futures.items():
            broken = {target_key(s): _target(s, error=_BROKE) for s in logins[login]}
            pbs.update(_settle(future, broken))
    return BackupEvidence(
        guests=guests,
        guests_error=guests_error,
        pbs=pbs,
        pve=pve,
        storages=storages_map,
        reads=dict(sorted(counter.counts.items())),
    )


_BROKE = "reading the PBS broke unexpectedly"
_NO_PASSWORD = (
    "no password declared for '{name}' (password or password_file): the PBS itself "
    "(datastore, namespace, maintenance, capacity) is not read"
)


def _settle(future: Future[Any], fallback: Any) -> Any:
    """A future's result; an exception nobody foresaw becomes the fallback (the boundary)."""
    try:
        return future.result()
    except Exception:  # the boundary: recorded on what it concerns, never raised out
        return fallback


def _target(spec: StorageSpec, **values: Any) -> PbsTarget:
    return PbsTarget(
        spec.server, spec.port, spec.datastore, spec.namespace or "", spec.username, **values
    )


def _cluster(
    client: PveClient, count: Callable[[str], None]
) -> tuple[dict[int, Guest], dict[str, list[str]], str]:
    count("pve cluster/resources")
    try:
        resources = client.resources()
    except PveError as exc:
        return {}, {}, str(exc)
    guests: dict[int, Guest] = {}
    online: set[str] = set()
    available: dict[str, list[str]] = {}
    for item in resources:
        kind = item.get("type")
        if kind in ("qemu", "lxc") and item.get("vmid") is not None:
            vmid = int(item["vmid"])
            guests[vmid] = Guest(
                vmid,
                str(item.get("name") or ""),
                str(item.get("node") or ""),
                str(kind),
                bool(item.get("template")),
            )
        elif kind == "node" and item.get("status", "online") == "online":
            online.add(str(item.get("node")))
        elif kind == "storage" and item.get("status", "available") == "available":
            available.setdefault(str(item.get("storage")), []).append(str(item.get("node")))
    nodes = {sid: sorted(n for n in found if n in online) for sid, found in available.items()}
    return guests, nodes, ""


def _node_for(spec: StorageSpec, nodes_by_storage: Mapping[str, list[str]]) -> str | None:
    """One online node the storage is available on (a declared one first)."""
    found = nodes_by_storage.get(spec.name, [])
    preferred = [n for n in found if spec.nodes is None or n in spec.nodes]
    chosen = preferred or found
    return chosen[0] if chosen else None


def _content(
    client: PveClient, spec: StorageSpec, node: str, count: Callable[[str], None]
) -> PveBackups:
    count("pve storage content")
    try:
        items = client.backup_content(node, spec.name)
    except PveError as exc:
        return PveBackups(spec.name, node, error=exc.message, status=exc.status)
    backups = tuple(b for b in (_backup(i) for i in items) if b is not None)
    return PveBackups(spec.name, node, items=backups)


def _backup(item: Mapping[str, Any]) -> Backup | None:
    """One volume of PVE's list (`pbs-vm`/`pbs-ct` with a numeric vmid), else None."""
    fmt = str(item.get("format", ""))
    btype = {"pbs-vm": "vm", "pbs-ct": "ct"}.get(fmt)
    try:
        vmid, ctime = int(item["vmid"]), int(item["ctime"])
    except (KeyError, TypeError, ValueError):
        return None
    if btype is None:
        return None
    verification = item.get("verification")
    state = verification.get("state") if isinstance(verification, dict) else None
    upid = verification.get("upid") if isinstance(verification, dict) else None
    return Backup(
        vmid,
        btype,
        ctime,
        int(item.get("size") or 1),
        str(state) if state is not None else None,
        upid_start(str(upid)) if upid else None,
        bool(item.get("protected")),
    )


def upid_start(upid: str) -> int | None:
    """When a PBS task started, from its UPID
    (`UPID:node:pid:pstart:task_id:starttime:type:id:user:`, numbers in hex)."""
    parts = upid.split(":")
    if len(parts) < 9 or parts[0] != "UPID":
        return None
    try:
        return int(parts[5], 16)
    except ValueError:
        return None


def _read_login(
    login: Login,
    specs: Sequence[StorageSpec],
    nameservers: Sequence[tuple[str, int]],
    timeout: float,
    count: Callable[[str], None],
    pool: ThreadPoolExecutor,
) -> dict[str, PbsTarget]:
    """One session: login, datastore list, usage; then each target's namespace and privileges."""
    session = PbsSession(login, nameservers, timeout, count)
    try:
        try:
            count("pbs session")  # one name resolution and one login (or token) each
            session.open()
            stores = session.get("/admin/datastore", "pbs admin/datastore")
            usage = session.get("/status/datastore-usage", "pbs status/datastore-usage")
        except PbsReadError as exc:
            return {target_key(s): _target(s, error=exc.message, status=exc.status) for s in specs}
        listed = {str(s.get("store")): s for s in stores if isinstance(s, dict)}
        usages = {str(u.get("store")): u for u in usage if isinstance(u, dict)}
        futures = {
            target_key(s): pool.submit(_read_target, session, s, listed, usages) for s in specs
        }
        return {
            key: _settle(future, _target(spec, error=_BROKE))
            for (key, future), spec in zip(futures.items(), specs, strict=True)
        }
    finally:
        session.close()


def _read_target(
    session: PbsSession,
    spec: StorageSpec,
    listed: Mapping[str, Mapping[str, Any]],
    usages: Mapping[str, Mapping[str, Any]],
) -> PbsTarget:
    store = listed.get(spec.datastore)
    target = _target(
        spec,
        stores=tuple(sorted(listed)),
        listed=store is not None,
        maintenance=str(store.get("maintenance") or "") if store is not None else "",
        usage=_usage(usages.get(spec.datastore)),
    )
    values: dict[str, Any] = {}
    try:
        granted = session.get("/access/permissions", "pbs access/permissions", path=target.acl_path)
        privileges = granted.get(target.acl_path, {}) if isinstance(granted, dict) else {}
        values["privileges"] = tuple(sorted(privileges))
    except PbsReadError as exc:
        values["privileges_error"] = exc.message
    if spec.namespace and store is not None:
        values.update(_namespace(session, spec))
    return _replace(target, values)


def _namespace(session: PbsSession, spec: StorageSpec) -> dict[str, Any]:
    """Does the declared namespace exist? Listed from its parent, one level down: a missing
    namespace is simply not in the list (asking for it as the parent would be a bare 403)."""
    assert spec.namespace
    parent, _, _ = spec.namespace.rpartition("/")
    path = f"/admin/datastore/{quote(spec.datastore, safe='')}/namespace"
    try:
        found = session.get(path, "pbs namespace", parent=parent, **{"max-depth": "1"})
    except PbsReadError as exc:
        if exc.status == 403:
            where = f"/datastore/{spec.datastore}" + (f"/{parent}" if parent else "")
            return {
                "namespace_error": (
                    f"cannot list the namespaces below {parent or 'the root'}: {exc.message} "
                    f"(the parent does not exist, or {spec.username} has no privilege on {where})"
                )
            }
        return {"namespace_error": exc.message}
    names = {str(n.get("ns")) for n in found if isinstance(n, dict)}
    return {"namespace_exists": spec.namespace in names}


def _usage(item: Mapping[str, Any] | None) -> Usage | None:
    if item is None:
        return None
    if item.get("error"):
        return Usage(error=str(item["error"]))

    def number(key: str) -> int | None:
        value = item.get(key)
        return int(value) if isinstance(value, int | float) else None

    return Usage(number("total"), number("used"), number("avail"), number("estimated-full-date"))


def _replace(target: PbsTarget, values: Mapping[str, Any]) -> PbsTarget:
    return dataclasses.replace(target, **values)


def gather_backups(settings: RunSettings) -> BackupEvidence:
    """What a run judges about backups (the `pytest_pbs_gather` entry): `read_backups` with the
    run's storages, nameservers, probe timeout and PVE client (none without credentials)."""
    client, reason = client_or_reason(settings)
    return read_backups(
        settings.config.storages, settings.nameservers, settings.probe_timeout, client, reason
    )
