"""Start and stop a whole lab, and write the files other tools use to find it.

Order matters: certificates, then PBS servers (their fingerprints go into storage.cfg), then DNS
views, then the PVE API; only when everything listens are `lab.json`, `lab.env` and
`pbs-storage.yaml` written - their presence is the "ready" signal for scripts and the demo.
A lab's first start also fills in its guests, pools, backup jobs and snapshots from the spec
(`admin.py`); a restart keeps what the state directory holds. The declaration it writes is the
field table's (`essence.declaration_of`) reading of the entries PVE starts with.

Over 400 lines on purpose: the start order above is one sequence over every part of the lab
(stopped again on any failure); the admin verbs, the storage and the PVE API live in
their own modules already.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import secrets
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import yaml

from pbs_compliance.essence import declaration_of, essence_from_api
from pbs_compliance.lab.admin import LabAdmin
from pbs_compliance.lab.backups import BackupStore
from pbs_compliance.lab.certs import CertificateAuthority, CertPair
from pbs_compliance.lab.dns_server import DnsServer
from pbs_compliance.lab.node_agent import LabNodeAgent
from pbs_compliance.lab.pbs_server import PbsServer, PbsServerSpec
from pbs_compliance.lab.pve_api import Principal, PveApiServer, PveServerConfig
from pbs_compliance.lab.pve_errors import PveError
from pbs_compliance.lab.scenario import Scenario, StorageScenario, parse_age

TOKEN_ID = "root@pam!compliance"
READONLY_TOKEN_ID = "auditor@pve!readonly"
ADMIN_USER = "root@pam"
TOKEN_SECRET_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ALL_PRIVILEGES = frozenset(
    {"Datastore.Allocate", "Datastore.Audit", "Datastore.AllocateSpace", "Sys.Audit",
     "Sys.Modify", "VM.Audit", "VM.Backup", "Pool.Audit", "Pool.Allocate"}
)  # fmt: skip
# The read-only token has PVE's PVEAuditor role: it reads jobs, guests, tasks and storage
# status, but sees no backups in storage content (that needs Allocate or VM.Backup).
AUDITOR_PRIVILEGES = frozenset({"Datastore.Audit", "Sys.Audit", "VM.Audit", "Pool.Audit"})


class LabError(Exception):
    """The lab cannot start as specified (a port in use, an unknown server name, ...)."""


def token_secret() -> str:
    """A new API token secret shaped like the ones PVE and PBS generate: a lower-case UUID.

    PVE (`pveum user token add`, PVE::TokenConfig) and PBS (`proxmox-backup-manager user
    generate-token`, proxmox_uuid) both hand out a random UUID as
    `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`; some third-party clients refuse any other shape.
    """
    return str(uuid.uuid4())


def is_token_secret(value: object) -> bool:
    """Whether `value` has the shape of a PVE/PBS token secret (see `token_secret`)."""
    return isinstance(value, str) and TOKEN_SECRET_PATTERN.fullmatch(value) is not None


def env_name(storage: str) -> str:
    """The lab.env variable that holds a storage's PBS password."""
    return "PBS_LAB_" + re.sub(r"[^A-Za-z0-9]+", "_", storage).upper() + "_PASSWORD"


class Lab:
    """A running lab. Use `start_lab()`; attributes are valid until `stop()`."""

    def __init__(self, scenario: Scenario, state_dir: Path) -> None:
        self.scenario = scenario
        self.state_dir = state_dir
        self.pbs: dict[str, PbsServer] = {}
        self.dns: DnsServer | None = None
        self.node_dns: dict[str, DnsServer] = {}
        self.pve: PveApiServer | None = None
        self.backups: BackupStore | None = None
        self.admin: LabAdmin | None = None
        self.env: dict[str, str] = {}
        # Things the person who started the lab should know (a kept port that was taken, ...).
        self.notes: list[str] = []
        self._pve_identity: tuple[bytes, CertPair] | None = None
        self._pve_port = 0
        self._pbs_credentials: dict[str, dict[str, str]] = {}
        self.token_secret = token_secret()
        self.readonly_token_secret = token_secret()
        self.password = secrets.token_urlsafe(12)

    # -- paths --------------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.state_dir / "pbs-storage.yaml"

    @property
    def ca_file(self) -> Path:
        return self.state_dir / "ca.pem"

    @property
    def request_log(self) -> Path:
        return self.state_dir / "requests.jsonl"

    @property
    def url(self) -> str:
        assert self.pve is not None
        return self.pve.url

    def requests(self) -> list[dict[str, Any]]:
        """Every API request so far, as logged (secrets redacted)."""
        if not self.request_log.exists():
            return []
        lines = self.request_log.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for name in ("lab.json", "lab.env", "pbs-storage.yaml"):
            (self.state_dir / name).unlink(missing_ok=True)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        cert_dir = self.state_dir / "certs"
        cert_dir.mkdir(exist_ok=True)
        kept = self._kept_state()
        kept_pve = kept.get("pve", {})
        if {"ca_pem", "cert_pem", "key_pem"} <= kept_pve.keys():
            ca_pem = kept_pve["ca_pem"].encode()
            pve_cert = CertPair(kept_pve["cert_pem"].encode(), kept_pve["key_pem"].encode())
        else:
            ca = CertificateAuthority.create("pbs-compliance lab CA")
            ca_pem = ca.cert_pem
            pve_cert = ca.issue(
                "pve.lab", dns_names=["localhost", "pve.lab"], ip_addresses=["127.0.0.1"]
            )
        self.ca_file.write_bytes(ca_pem)
        self._pve_identity = (ca_pem, pve_cert)
        self.backups = BackupStore(self.state_dir / BackupStore.FILE)
        for server in self.scenario.pbs_servers:
            before = kept.get("servers", {}).get(server.name, {})
            old = before.get("credentials", {})
            users = {
                u: p or old.get(u) or secrets.token_urlsafe(12) for u, p in server.users.items()
            }
            tokens = {t: s or old.get(t) or token_secret() for t, s in server.tokens.items()}
            self._pbs_credentials[server.name] = {**users, **tokens}
            spec = PbsServerSpec(
                name=server.name,
                address=server.address,
                port=server.port or before.get("port", 0),
                datastores=server.datastores,
                users=users,
                tokens=tokens,
                acl=server.acl,
                expired=server.expired,
                contents=self.backups,
            )
            pbs = self._start_pbs(spec, cert_dir, *_kept_certificates(before))
            self.pbs[server.name] = pbs
            if server.mode != "up":
                pbs.set_mode(server.mode)

        records = {s.name: [s.address] for s in self.scenario.pbs_servers if s.in_dns}
        records.update(self.scenario.dns_records)
        self.dns = self._start_dns(records, kept.get("dns_port", 0), "the lab's DNS", "dns")
        agents: dict[str, LabNodeAgent] = {}
        kept_node_ports = kept.get("node_dns_ports", {})
        for node in self.scenario.nodes:
            hidden = {h.lower() for h in self.scenario.dns_hidden.get(node, [])}
            view = {n: a for n, a in records.items() if n.lower() not in hidden}
            node_dns = self._start_dns(
                view, kept_node_ports.get(node, 0), f"the resolver of {node}", f"node_dns.{node}"
            )
            self.node_dns[node] = node_dns
            agents[node] = LabNodeAgent(
                node,
                (node_dns.address, node_dns.port),
                timeout=self.scenario.node_timeout,
                dns_version=node_dns.version,
            )

        cert_file, key_file = pve_cert.write(cert_dir, "pve")
        storage_cfg, passwords = self._initial_storage()
        pve_config = PveServerConfig(
            state_dir=self.state_dir,
            cert_file=cert_file,
            key_file=key_file,
            nodes=agents,
            principals=[
                Principal(ADMIN_USER, self.password, ALL_PRIVILEGES),
                Principal(TOKEN_ID, self.token_secret, ALL_PRIVILEGES),
                Principal(READONLY_TOKEN_ID, self.readonly_token_secret, AUDITOR_PRIVILEGES),
            ],
            request_log=self.request_log,
            initial_storage_cfg=storage_cfg,
            initial_passwords=passwords,
            auth_failure_delay=self.scenario.auth_failure_delay,
            admin_handler=self._admin,
        )
        self.pve = self._start_pve(pve_config, kept_pve.get("port", 0))
        self._pve_port = self.pve.port
        self.admin = LabAdmin(
            cluster=self.pve.cluster,
            storage=self.pve.store,
            backups=self.backups,
            nodes=tuple(self.scenario.nodes),
            namespaces={name: pbs.namespaces for name, pbs in self.pbs.items()},
        )
        if self.pve.cluster.fresh:
            self._fill_from_spec(self.admin, pbs_side=self.backups.fresh)
        for view_name, fault in self.scenario.dns_faults.items():
            target = self.dns if view_name == "admin" else self.node_dns.get(view_name)
            if target is None:
                raise LabError(
                    f"dns_faults: no view '{view_name}'; the views are 'admin' (what this tool's "
                    f"DNS check asks) and the nodes {', '.join(self.scenario.nodes)}"
                )
            target.set_fault(fault)
        self.pve.start()
        if self.scenario.pve_faults:
            try:
                self.pve.faults.set(**self.scenario.pve_faults)
            except ValueError as exc:
                raise LabError(f"pve_faults: {exc}") from None
        self._write_files()

    def _start_dns(
        self, view: Mapping[str, list[str]], port: int, what: str, key: str
    ) -> DnsServer:
        """A DNS server on last run's port, so saved configs still find it; any port if taken."""
        server = DnsServer(view, self.scenario.dns_cnames, port=port)
        try:
            server.start()
        except OSError as exc:
            if port == 0:
                raise
            server = DnsServer(view, self.scenario.dns_cnames)
            server.start()
            self._moved(what, key, port, server.port, exc)
        return server

    def _start_pve(self, config: PveServerConfig, port: int) -> PveApiServer:
        """The PVE API on last run's port, so saved URLs still work; any port if taken."""
        try:
            return PveApiServer(dataclasses.replace(config, port=port))
        except OSError as exc:
            if port == 0:
                raise
            server = PveApiServer(config)
            self._moved("the PVE API", "pve.url", port, server.port, exc)
            return server

    def _moved(self, what: str, key: str, old: int, new: int, exc: OSError) -> None:
        self.notes.append(
            f"{what} listened on port {old} last run, but that port is taken now "
            f"({exc.strerror or exc}: another program or lab?); it listens on {new} instead. "
            f"Configs saved from the last run need the new port ({key} in lab.json)"
        )

    def _start_pbs(
        self,
        spec: PbsServerSpec,
        cert_dir: Path,
        certificate: CertPair | None,
        expired_certificate: CertPair | None,
    ) -> PbsServer:
        pbs = PbsServer(spec, cert_dir, certificate, expired_certificate)
        try:
            pbs.start()
            return pbs
        except OSError as exc:
            scenario_port = next(s.port for s in self.scenario.pbs_servers if s.name == spec.name)
            if scenario_port == 0 and spec.port != 0:  # last run's port is taken: any will do
                moved = self._start_pbs(
                    dataclasses.replace(spec, port=0),
                    cert_dir,
                    pbs.valid_certificate,
                    pbs.expired_certificate,
                )
                self._moved(f"PBS {spec.name}", "pbs_servers", spec.port, moved.port, exc)
                return moved
            raise LabError(
                f"PBS server {spec.name} cannot listen on {spec.address}:{spec.port}: "
                f"{exc.strerror} (another lab running? use port 0)"
            ) from None

    def _fill_from_spec(self, admin: LabAdmin, pbs_side: bool) -> None:
        """The first start: guests, pools, jobs (through PVE's job rules), snapshots, fill
        levels, maintenance and the jobs' last runs, as the spec says."""
        spec = self.scenario
        try:
            for pool, comment in spec.pools.items():
                admin.cluster.add_pool(pool, comment)
            for guest in spec.guests:
                admin.add_guest(guest.model_dump())
            for job in spec.jobs:
                admin.add_job(
                    {
                        **job.options,
                        "id": job.id,
                        "storage": job.storage,
                        "schedule": job.schedule,
                        "all": job.all or None,
                        "vmid": job.vmid,
                        "exclude": job.exclude,
                        "pool": job.pool,
                        "node": job.node,
                        "enabled": None if job.enabled else "0",
                    }
                )
            admin.cluster.save()
            if not pbs_side:
                return
            for server in spec.pbs_servers:
                for store, kind in server.maintenance.items():
                    admin.maintenance(server.name, sorted(server.datastores),
                                      {"maintenance": kind, "datastore": store})  # fmt: skip
                for store, usage in server.usage.items():
                    full_in = parse_age(usage.full_in) if usage.full_in is not None else None
                    admin.fill(
                        {"server": server.name, "datastore": store,
                         "used_percent": usage.used_percent, "full_in": full_in}
                    )  # fmt: skip
            for snap in spec.snapshots:
                admin.add_backup({**snap.model_dump(), "age": parse_age(snap.age)})
            for job in spec.jobs:
                if job.last_run is not None:
                    admin.run_job({"id": job.id, "status": job.last_run,
                                   "age": parse_age(job.last_run_age)})  # fmt: skip
            admin.backups.save()
        except PveError as exc:
            raise LabError(f"the lab spec's guests, jobs or snapshots: {exc.reason}") from None

    # -- what a restart in the same state dir keeps ----------------------------------------------

    @property
    def _state_file(self) -> Path:
        return self.state_dir / "lab-state.json"

    def _kept_state(self) -> dict[str, Any]:
        """Secrets, certificates and ports of the last run, when its storage.cfg is kept.

        A restarted lab must serve what the kept storage.cfg and passwords pin, or every entry
        would show fingerprint drift and refused logins that no real cluster would have.
        """
        if not (self.state_dir / "storage.cfg").exists() or not self._state_file.exists():
            return {}
        try:
            kept: dict[str, Any] = json.loads(self._state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        # A state dir from before the lab used UUIDs keeps its password, not a token that
        # third-party clients would refuse (lab.env is rewritten with the new one).
        if is_token_secret(kept.get("token_secret")):
            self.token_secret = kept["token_secret"]
        if is_token_secret(kept.get("readonly_token_secret")):
            self.readonly_token_secret = kept["readonly_token_secret"]
        self.password = kept.get("password", self.password)
        return kept

    def _keep_state(self) -> None:
        servers: dict[str, dict[str, Any]] = {}
        for name, pbs in self.pbs.items():
            kept: dict[str, Any] = {"credentials": self._pbs_credentials[name], "port": pbs.port}
            pairs = {"": pbs.valid_certificate, "expired_": pbs.expired_certificate}
            for prefix, pair in pairs.items():
                if pair is not None:
                    kept[f"{prefix}cert_pem"] = pair.cert_pem.decode()
                    kept[f"{prefix}key_pem"] = pair.key_pem.decode()
            servers[name] = kept
        pve: dict[str, Any] = {}
        if self.pve is not None and self._pve_identity is not None:
            ca_pem, pve_cert = self._pve_identity
            pve = {
                "port": self._pve_port,
                "ca_pem": ca_pem.decode(),
                "cert_pem": pve_cert.cert_pem.decode(),
                "key_pem": pve_cert.key_pem.decode(),
            }
        state = {
            "pve": pve,
            "dns_port": self.dns.port if self.dns is not None else 0,
            "node_dns_ports": {node: dns.port for node, dns in self.node_dns.items()},
            "token_secret": self.token_secret,
            "readonly_token_secret": self.readonly_token_secret,
            "password": self.password,
            "servers": servers,
        }
        _write_private(self._state_file, json.dumps(state, indent=2) + "\n")

    def stop(self) -> None:
        """Stop everything; safe to call twice and after a failed start."""
        if self.pve is not None:
            self.pve.stop()
            self._keep_state()
        for server in self.node_dns.values():
            server.stop()
        if self.dns is not None:
            self.dns.stop()
        for pbs in self.pbs.values():
            pbs.stop()

    # -- what the lab holds -------------------------------------------------------------------

    def pbs_password(self, server: str, auth_id: str) -> str:
        return self._pbs_credentials[server][auth_id]

    def _storage_password(self, storage: StorageScenario) -> str | None:
        if storage.password is not None:
            return storage.password
        if storage.server in self._pbs_credentials:
            return self._pbs_credentials[storage.server].get(storage.username)
        return None

    def _initial_storage(self) -> tuple[str | None, dict[str, str]]:
        """storage.cfg text (PVE's section-config format) and passwords for the scenario."""
        sections = ["dir: local\n\tpath /var/lib/vz\n\tcontent iso,vztmpl,backup\n"]
        passwords: dict[str, str] = {}
        for storage in self.scenario.storages:
            lines = [f"{storage.type}: {storage.name}"]
            if storage.type == "pbs":
                if storage.server is None or storage.datastore is None:
                    raise LabError(f"lab storage {storage.name}: pbs needs server and datastore")
                lines += [f"\tserver {storage.server}", f"\tdatastore {storage.datastore}"]
                lines.append(f"\tusername {storage.username}")
                fingerprint = storage.fingerprint or self._served_fingerprint(storage.server)
                if fingerprint:
                    lines.append(f"\tfingerprint {fingerprint}")
                password = self._storage_password(storage)
                if password:
                    passwords[storage.name] = password
                server = self._server_scenario(storage.server)
                if server is not None and server.port not in (0, 8007):
                    lines.append(f"\tport {server.port}")
                elif server is not None and server.port == 0:
                    lines.append(f"\tport {self.pbs[storage.server].port}")
            for key, value in storage.options.items():
                lines.append(f"\t{key}" if key == "disable" else f"\t{key} {value}")
            sections.append("\n".join(lines) + "\n")
        return "\n".join(sections), passwords

    def _server_scenario(self, name: str) -> Any:
        return next((s for s in self.scenario.pbs_servers if s.name == name), None)

    def _served_fingerprint(self, server: str) -> str | None:
        pbs = self.pbs.get(server)
        return pbs.fingerprint if pbs is not None else None

    # -- files --------------------------------------------------------------------------------

    def _write_files(self) -> None:
        assert self.pve is not None
        assert self.dns is not None
        self.env = {
            "PBS_LAB_PVE_TOKEN_SECRET": self.token_secret,
            "PBS_LAB_PVE_READONLY_TOKEN_SECRET": self.readonly_token_secret,
            "PBS_LAB_PVE_PASSWORD": self.password,
        }
        declared = []
        for storage in self.scenario.storages:
            if storage.type != "pbs" or not storage.declare:
                continue
            password = self._storage_password(storage)
            if password:
                self.env[env_name(storage.name)] = password
            declared.append(self._declaration(storage, password is not None))
        lab = {
            "pve": {
                "url": self.pve.url,
                "ca_file": str(self.ca_file),
                "nodes": list(self.scenario.nodes),
                "token_id": TOKEN_ID,
                "token_secret": self.token_secret,
                "readonly_token_id": READONLY_TOKEN_ID,
                "readonly_token_secret": self.readonly_token_secret,
                "user": ADMIN_USER,
                "password": self.password,
            },
            "dns": f"{self.dns.address}:{self.dns.port}",
            "node_dns": {n: f"{d.address}:{d.port}" for n, d in self.node_dns.items()},
            "pbs_servers": [
                {
                    "name": name,
                    "address": pbs.address,
                    "port": pbs.port,
                    "fingerprint": pbs.fingerprint,
                    "datastores": sorted(self._server_scenario(name).datastores),
                    "username": "root@pam",
                    "password": self._pbs_credentials[name].get("root@pam"),
                }
                for name, pbs in self.pbs.items()
            ],
        }
        config = {
            "pve": {
                "url": self.pve.url,
                "token_id": TOKEN_ID,
                "token_secret": "${PBS_LAB_PVE_TOKEN_SECRET}",
                "ca_file": "ca.pem",
            },
            "dns": {"nameservers": [f"{self.dns.address}:{self.dns.port}"], "timeout": 1.0},
            "pbs_storages": declared,
        }
        _write_private(
            self.state_dir / "lab.env", "".join(f"{k}={v}\n" for k, v in self.env.items())
        )
        header = (
            "# Written by `pbs lab serve`: the lab's PBS entries exactly as they are.\n"
            f"# Secrets come from lab.env: set -a; . {self.state_dir / 'lab.env'}; set +a\n"
        )
        self.config_path.write_text(
            header + yaml.safe_dump(config, sort_keys=False, width=120), encoding="utf-8"
        )
        _write_private(self.state_dir / "lab.json", json.dumps(lab, indent=2) + "\n")

    def _declaration(self, storage: StorageScenario, has_password: bool) -> dict[str, Any]:
        """The entry as `GET /storage` shows it, declared through the field table: the lab's
        declaration says exactly what PVE holds."""
        assert storage.server is not None
        entry: dict[str, Any] = {
            "storage": storage.name,
            "server": storage.server,
            "datastore": storage.datastore,
            "username": storage.username,
            "fingerprint": storage.fingerprint or self._served_fingerprint(storage.server),
            **storage.options,
        }
        if "disable" in storage.options:  # a bare `disable` line: GET shows `disable: 1`
            entry["disable"] = 1
        pbs = self.pbs.get(storage.server)
        if pbs is not None and pbs.port != 8007:
            entry["port"] = pbs.port
        declared: dict[str, Any] = {"name": storage.name, **declaration_of(essence_from_api(entry))}
        if has_password:
            declared["password"] = f"${{{env_name(storage.name)}}}"
        declared["description"] = f"lab: {storage.datastore} on {storage.server}"
        return declared

    # -- run-time faults (POST /_lab/... on the PVE API) ---------------------------------------

    def _admin(self, path: str, body: Mapping[str, object]) -> object:
        """`POST /_lab/pbs/NAME`, `POST /_lab/dns`, `POST /_lab/{backup,guest,job}/VERB`; a
        mistake is a 400 that says what is valid."""
        parts = [p for p in path.split("/") if p and p != "_lab"]
        admin = self.admin
        verbs = {
            ("backup", "add"): admin.add_backup if admin else None,
            ("backup", "fill"): admin.fill if admin else None,
            ("guest", "add"): admin.add_guest if admin else None,
            ("job", "add"): admin.add_job if admin else None,
            ("job", "run"): admin.run_job if admin else None,
        }
        verb = verbs.get((parts[0], parts[1])) if len(parts) == 2 else None
        if verb is not None:
            return verb(body)
        if len(parts) == 2 and parts[0] == "pbs":
            pbs = self.pbs.get(parts[1])
            if pbs is None:
                raise PveError(
                    400,
                    f"no PBS server named '{parts[1]}' in this lab "
                    f"(its PBS servers: {', '.join(self.pbs) or 'none'})",
                )
            if "mode" in body and body["mode"] not in ("up", "down", "blackhole"):
                raise PveError(400, f"mode '{body['mode']}' is not one of up, down, blackhole")
            answer: dict[str, object] = {"name": parts[1]}
            if "maintenance" in body and admin is not None:
                stores = sorted(self._server_scenario(parts[1]).datastores)
                answer["maintenance"] = admin.maintenance(parts[1], stores, body)
            if "mode" in body:
                pbs.set_mode(str(body["mode"]))  # type: ignore[arg-type]
            if "expired" in body:
                pbs.set_expired(bool(body["expired"]))
            if body.get("renew"):
                pbs.renew_certificate()
            return {**answer, "fingerprint": pbs.fingerprint}
        if parts == ["dns"]:
            fault = body.get("fault")
            if fault not in (None, "servfail", "silence"):
                raise PveError(400, f"DNS fault '{fault}' is not one of servfail, silence, none")
            if "node" in body and str(body["node"]) not in self.node_dns:
                raise PveError(
                    400,
                    f"no node named '{body['node']}' in this lab "
                    f"(its nodes: {', '.join(self.node_dns)})",
                )
            targets = (
                [self.node_dns[str(body["node"])]]
                if "node" in body
                else [*([self.dns] if self.dns else []), *self.node_dns.values()]
            )
            for server in targets:
                server.set_fault(fault)
            return {"fault": fault}
        raise PveError(
            501,
            f"no lab fault at {path}; the lab's fault routes are POST /_lab/pbs/NAME, "
            "/_lab/dns and /_lab/faults (`pbs lab fault --help`), its admin routes "
            "/_lab/backup/add|fill, /_lab/guest/add, /_lab/job/add|run",
        )


def _kept_certificates(kept: Mapping[str, Any]) -> tuple[CertPair | None, CertPair | None]:
    """(valid, expired) certificate of a server in lab-state.json, each None if not kept.

    The scenario says whether the server starts expired; either way it serves the kept
    certificate for that state, so what the kept storage.cfg pins still matches. A state file
    of an older lab has one certificate, whichever was served: its dates tell which it is.
    """
    valid = expired = None
    if "cert_pem" in kept:
        valid = CertPair(kept["cert_pem"].encode(), kept["key_pem"].encode())
    if "expired_cert_pem" in kept:
        expired = CertPair(kept["expired_cert_pem"].encode(), kept["expired_key_pem"].encode())
    elif valid is not None and valid.not_after <= dt.datetime.now(dt.UTC):
        valid, expired = None, valid
    return valid, expired


def _write_private(path: Path, text: str) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text, encoding="utf-8")


@contextmanager
def start_lab(state_dir: Path, scenario: Scenario | None = None) -> Iterator[Lab]:
    """Run a lab for the duration of a `with` block (ephemeral ports unless the spec says)."""
    from pbs_compliance.lab.scenario import builtin

    lab = Lab(scenario or builtin(), state_dir)
    lab.start()
    try:
        yield lab
    finally:
        with suppress(Exception):
            lab.stop()
