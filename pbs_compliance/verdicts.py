"""The checks themselves, as pure functions from a declaration and evidence to a `Verdict`.

The pytest cases in `checks/` and the CLI's tables both call these, so a storage is judged the
same way wherever it is looked at. Each failure message says what was seen, what was expected
and the one thing to do about it.

One fault, one red case: a fault fails the case that names it, and every other case it touches
points at that case instead of failing too (a skip with "see the ... case"). For a storage, the
case that names a fault is, in this order:

- `drift` when PVE's entry differs from the declaration in what a node connects with (server,
  port, username, fingerprint, datastore): the nodes use PVE's values, not the declared ones;
- else `dns`, `port`, `tls` (the handshake) or `fingerprint` when that check fails from here:
  the nodes connect to the same server with the same pin, so they fail for the same reason;
- else the node's own case (`nodes`): its view, its resolver, the password PVE stores for it.

A declared fingerprint the server does not serve is the `fingerprint` case's alone: `drift`
does not judge the fingerprint line then, and the nodes prove the declared password with the
fingerprint PVE pins (`evidence.read_live`), not with the declared one.

Over 400 lines on purpose: the one-fault attribution above spans every check, and the verdicts
that point at each other read best side by side.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from pbs_compliance.config import ComplianceConfig, StorageSpec
from pbs_compliance.drift import Drift, PropertyDiff, diff
from pbs_compliance.essence import essence_from_api, essence_of
from pbs_compliance.evidence import LiveState, ServerEvidence, scan_key
from pbs_compliance.pvevalues import active, applies_to, entry_nodes, flag

Status = Literal["pass", "fail", "skip"]
CHECKS = ("dns", "port", "tls", "fingerprint", "drift", "nodes", "unmanaged")


@dataclass(frozen=True)
class Verdict:
    check: str
    storage: str
    status: Status
    message: str = ""
    facts: tuple[tuple[str, str], ...] = ()
    node: str | None = None
    drift: Drift | None = None

    @property
    def passed(self) -> bool:
        return self.status == "pass"


def _disabled(check: str, spec: StorageSpec) -> Verdict:
    return Verdict(
        check,
        spec.name,
        "skip",
        f"'{spec.name}' is declared `enabled: false`: connectivity is not checked",
    )


def dns(spec: StorageSpec, ev: ServerEvidence | None) -> Verdict:
    if not spec.enabled or ev is None:
        return _disabled("dns", spec)
    facts = (("server", spec.server), ("resolved", ", ".join(ev.dns.addresses) or "-"))
    if ev.dns.ok:
        return Verdict("dns", spec.name, "pass", facts=facts)
    return Verdict("dns", spec.name, "fail", ev.dns.describe(), facts)


def port(spec: StorageSpec, ev: ServerEvidence | None) -> Verdict:
    if not spec.enabled or ev is None:
        return _disabled("port", spec)
    if not ev.dns.ok:
        return Verdict(
            "port", spec.name, "skip", f"{spec.server} did not resolve (see the dns case)"
        )
    failed = [t for t in ev.tcp if not t.ok]
    facts = tuple((f"tcp {t.address}:{t.port}", "open" if t.ok else str(t.error)) for t in ev.tcp)
    if not failed:
        return Verdict("port", spec.name, "pass", facts=facts)
    lines = [
        f"{spec.server} port {spec.port}: no TCP connection to "
        f"{len(failed)} of {len(ev.tcp)} address(es):"
    ]
    lines += [f"  {t.address}:{t.port}: {t.error}" for t in failed]
    lines.append(
        f"fix: check that proxmox-backup-proxy runs on {spec.server} and that no firewall "
        f"blocks TCP {spec.port} from here (and from the PVE nodes)"
    )
    return Verdict("port", spec.name, "fail", "\n".join(lines), facts)


def _cert_facts(ev: ServerEvidence) -> tuple[tuple[str, str], ...]:
    cert = ev.tls.certificate if ev.tls is not None else None
    if cert is None:
        return ()
    return (
        ("subject", cert.subject),
        ("issuer", cert.issuer),
        ("valid", f"{cert.not_before:%Y-%m-%d} .. {cert.not_after:%Y-%m-%d}"),
        ("served fingerprint", cert.fingerprint),
    )


def tls(
    spec: StorageSpec, ev: ServerEvidence | None, now: dt.datetime, expiry_days: int
) -> Verdict:
    if not spec.enabled or ev is None:
        return _disabled("tls", spec)
    if ev.tls is None:
        return Verdict(
            "tls", spec.name, "skip", f"no TCP connection to {spec.server} (see the port case)"
        )
    result = ev.tls
    facts = _cert_facts(ev)
    if not result.ok:
        return Verdict(
            "tls",
            spec.name,
            "fail",
            f"TLS handshake with {spec.server}:{spec.port} failed: {result.error}\n"
            "fix: is this really the PBS API port? A server that accepts TCP but never answers "
            "TLS is hung or behind a broken proxy",
            facts,
        )
    cert = result.certificate
    assert cert is not None  # a completed handshake always yields the leaf certificate
    if cert.problems:
        return Verdict(
            "tls",
            spec.name,
            "fail",
            f"the certificate of {spec.server} is malformed: {'; '.join(cert.problems)}\n"
            "fix: issue a new certificate on the PBS (proxmox-backup-manager cert update), then "
            f"`pbs fingerprint --update {spec.name}`",
            (*facts, *(("problem", p) for p in cert.problems)),
        )
    if cert.not_before > now:
        return Verdict(
            "tls",
            spec.name,
            "fail",
            f"the certificate of {spec.server} is not valid before "
            f"{cert.not_before:%Y-%m-%d %H:%M} UTC "
            "- check the clocks of the PBS and of this machine",
            facts,
        )
    days = cert.days_left(now)
    if cert.is_expired(now):
        ago = (now - cert.not_after) // dt.timedelta(days=1)  # whole days since, not -floor(left)
        return Verdict(
            "tls",
            spec.name,
            "fail",
            f"the certificate of {spec.server} expired on {cert.not_after:%Y-%m-%d} "
            f"({ago} days ago)\nfix: renew it on the PBS (proxmox-backup-manager cert update), "
            f"then `pbs fingerprint --update {spec.name}`",
            facts,
        )
    if days < expiry_days:
        return Verdict(
            "tls",
            spec.name,
            "fail",
            f"the certificate of {spec.server} expires on {cert.not_after:%Y-%m-%d} "
            f"({days} days left, threshold {expiry_days})\nfix: renew it on the PBS, then "
            f"`pbs fingerprint --update {spec.name}` (or lower --cert-expiry-days)",
            facts,
        )
    return Verdict("tls", spec.name, "pass", facts=facts)


def fingerprint(spec: StorageSpec, ev: ServerEvidence | None, config_path: str = "") -> Verdict:
    if not spec.enabled or ev is None:
        return _disabled("fingerprint", spec)
    result = ev.tls.certificate if ev.tls is not None else None
    if result is None:
        return Verdict(
            "fingerprint",
            spec.name,
            "skip",
            f"no certificate from {spec.server} (see the tls case)",
        )
    facts = (("declared fingerprint", spec.fingerprint), *_cert_facts(ev))
    if result.matches(spec.fingerprint):
        return Verdict("fingerprint", spec.name, "pass", facts=facts)
    where = f" --config {config_path}" if config_path else ""
    return Verdict(
        "fingerprint",
        spec.name,
        "fail",
        f"{spec.server} serves a certificate with another fingerprint (renewed certificate?)\n"
        f"  declared: {spec.fingerprint}\n"
        f"  served:   {result.fingerprint}\n"
        f"fix: `pbs fingerprint {spec.server}:{spec.port} --update {spec.name}{where}` after "
        "confirming the new certificate is genuine; PVE refuses the connection until then",
        facts,
    )


def _live_unavailable(
    check: str, spec: StorageSpec, live: LiveState, node: str | None = None
) -> Verdict | None:
    if live.skipped:
        return Verdict(check, spec.name, "skip", f"{live.skipped}: PVE is not checked", node=node)
    if live.error:
        return Verdict(check, spec.name, "fail", f"cannot read PVE: {live.error}", node=node)
    return None


def drift(spec: StorageSpec, live: LiveState, server: ServerEvidence | None = None) -> Verdict:
    """Does PVE hold the entry as declared? With `server` (the probe of its PBS), a fingerprint
    line is left to the fingerprint case when the declared fingerprint is not the served one."""
    unavailable = _live_unavailable("drift", spec, live)
    if unavailable is not None:
        return unavailable
    entry = live.pbs_entries.get(spec.name)
    other = live.by_name.get(spec.name) if entry is None else None
    if other is not None:
        return Verdict(
            "drift",
            spec.name,
            "fail",
            f"PVE has a storage '{spec.name}' of type {other.get('type')}, not pbs; "
            "rename one of them",
        )
    result = diff(essence_of(spec), essence_from_api(entry) if entry is not None else None)
    facts = tuple((d.key, str(d).partition(": ")[2]) for d in result.diffs)
    if result.compliant:
        return Verdict("drift", spec.name, "pass", drift=result)
    pin = next((d for d in result.diffs if d.key == "fingerprint"), None)
    if pin is not None and _fingerprint_fails(spec, server):
        rest = Drift(result.name, result.missing, tuple(d for d in result.diffs if d is not pin))
        note = _pin_note(pin, server)
        if rest.compliant:
            return Verdict("drift", spec.name, "skip", note, facts, drift=result)
        message = f"{rest.describe()}\n{note}"
        return Verdict("drift", spec.name, "fail", message, facts, drift=result)
    return Verdict("drift", spec.name, "fail", result.describe(), facts, drift=result)


def _fingerprint_fails(spec: StorageSpec, server: ServerEvidence | None) -> bool:
    """The fingerprint case fails: a certificate was served, and not the declared one."""
    cert = server.tls.certificate if server is not None and server.tls is not None else None
    return spec.enabled and cert is not None and not cert.matches(spec.fingerprint)


def _pin_judged(d: PropertyDiff, spec: StorageSpec, server: ServerEvidence | None) -> bool:
    """A fingerprint line that is no connection fault of PVE's: PVE pins the served certificate,
    or the fingerprint case already fails (the declaration is what is wrong)."""
    if d.key != "fingerprint":
        return False
    cert = server.tls.certificate if server is not None and server.tls is not None else None
    served = cert is not None and d.live is not None and cert.matches(d.live)
    return served or _fingerprint_fails(spec, server)


def _pin_note(pin: PropertyDiff, server: ServerEvidence | None) -> str:
    cert = server.tls.certificate if server is not None and server.tls is not None else None
    served = cert is not None and pin.live is not None and cert.matches(pin.live)
    why = (
        "PVE pins the certificate the server serves, so the declaration is what is out of date"
        if served
        else "the server serves neither of them"
    )
    return (
        f"the fingerprint PVE pins ({pin.live or '(unset)'}) is not the declared one: {why} "
        "(see the fingerprint case)"
    )


# What a node connects to a PBS with: when PVE's entry differs in one of these, the drift case
# names the fault a node then runs into.
CONNECTION = ("server", "port", "username", "fingerprint", "datastore")


def _root_case(
    spec: StorageSpec, live: LiveState, server: ServerEvidence | None
) -> tuple[str, str] | None:
    """The case (and why) that already fails for a fault which stops every node from using this
    storage, or None: then a node's trouble is its own. See the module doc for the order."""
    entry = live.pbs_entries.get(spec.name)
    if entry is not None:
        differs = diff(essence_of(spec), essence_from_api(entry)).diffs
        keys = [d.key for d in differs if d.key in CONNECTION and not _pin_judged(d, spec, server)]
        if keys:
            return "drift", f"PVE's entry differs from the declaration in {', '.join(keys)}"
    if server is None or not spec.enabled:
        return None
    where = f"{spec.server}:{spec.port}"
    if not server.dns.ok:
        return "dns", f"{spec.server} does not resolve from here either"
    if any(not t.ok for t in server.tcp):
        return "port", f"{where} does not accept TCP from here either"
    if server.tls is not None and not server.tls.ok:
        return "tls", f"the TLS handshake with {where} fails from here too"
    if _fingerprint_fails(spec, server):
        return "fingerprint", f"{spec.server} serves a certificate with another fingerprint"
    return None


def node(
    spec: StorageSpec, node_name: str, live: LiveState, server: ServerEvidence | None = None
) -> Verdict:
    """Does this node use the storage (enabled, active) and can it log in with the declared
    password? With `server` (the probe of its PBS from here) a fault that another case names
    makes this case point at it instead of failing (see the module doc)."""
    unavailable = _live_unavailable("nodes", spec, live, node_name)
    if unavailable is not None:
        return unavailable
    if not spec.enabled:
        return Verdict(
            "nodes",
            spec.name,
            "skip",
            f"'{spec.name}' is declared `enabled: false`",
            node=node_name,
        )
    if node_name in live.node_errors:
        return Verdict(
            "nodes",
            spec.name,
            "fail",
            f"cannot read the view of {node_name}: {live.node_errors[node_name]}",
            node=node_name,
        )
    if spec.name not in live.pbs_entries:
        return Verdict(
            "nodes",
            spec.name,
            "skip",
            f"'{spec.name}' does not exist in PVE (see the drift case)",
            node=node_name,
        )
    entry = live.node_entry(node_name, spec.name)
    problems: list[str] = []
    if entry is None:
        problems.append(f"{node_name} does not list '{spec.name}' at all")
    elif not flag(entry.get("enabled")):
        live_entry = live.pbs_entries[spec.name]
        limited = entry_nodes(live_entry)
        why = (
            f"is limited to nodes {live_entry.get('nodes')} in PVE"
            if limited is not None and node_name not in limited
            else "is disabled in PVE"
        )
        return Verdict(
            "nodes",
            spec.name,
            "skip",
            f"'{spec.name}' {why}, so {node_name} does not use it (see the drift case)",
            node=node_name,
        )
    elif not active(entry):
        problems.append(
            f"{node_name} reports '{spec.name}' enabled but NOT active: it cannot reach or log in "
            f"to {spec.server}:{spec.port} from there"
        )
    facts: list[tuple[str, str]] = []  # the node itself is `Verdict.node`
    if entry is not None:
        facts.append(("active", str(entry.get("active"))))
    scan = live.scans.get(scan_key(node_name, spec)) if spec.password is not None else None
    # Only asked when something is wrong: a thousand healthy storages need no attribution.
    troubled = bool(problems) or (scan is not None and not scan.ok)
    root = _root_case(spec, live, server) if troubled else None
    unproven = ""
    if scan is not None and not scan.ok and root is not None:
        unproven = f"the declared password was not proven from {node_name}: {scan.error}"
        facts.append(("password", f"not proven (see the {root[0]} case)"))
    elif scan is not None and not scan.ok:
        problems.append(
            f"logging in from {node_name} with the declared password failed: {scan.error}"
        )
    elif scan is not None and spec.datastore not in scan.datastores:
        problems.append(
            f"from {node_name}, {spec.username} sees datastores "
            f"{', '.join(scan.datastores) or '(none)'} "
            f"but not '{spec.datastore}': check its permissions on the PBS"
        )
    elif scan is not None:
        facts.append(("password", "works from this node"))
    if (problems or unproven) and root is not None:
        check, why = root
        lines = [*problems, unproven] if unproven else problems
        lines.append(f"{why}: that is the fault (see the {check} case)")
        return Verdict("nodes", spec.name, "skip", "\n".join(lines), tuple(facts), node=node_name)
    if not problems:
        return Verdict("nodes", spec.name, "pass", facts=tuple(facts), node=node_name)
    problems.append(
        f"fix: from {node_name}, check `getent hosts {spec.server}`, the firewall to port "
        f"{spec.port}, the fingerprint and the credentials "
        "(journalctl -u pvestatd shows PVE's reason)"
    )
    return Verdict("nodes", spec.name, "fail", "\n".join(problems), tuple(facts), node=node_name)


def unmanaged(config: ComplianceConfig, live: LiveState) -> Verdict:
    placeholder = StorageSpec.model_construct(name="(all)")
    unavailable = _live_unavailable("unmanaged", placeholder, live)
    if unavailable is not None:
        return unavailable
    declared = {s.name for s in config.storages}
    extra = sorted(set(live.pbs_entries) - declared)
    if not extra:
        return Verdict("unmanaged", "(all)", "pass")
    lines = [f"{len(extra)} PBS storage(s) in PVE are not declared in {config.source}:"]
    for name in extra:
        entry = live.pbs_entries[name]
        lines.append(f"  {name}: server {entry.get('server')}, datastore {entry.get('datastore')}")
    lines.append(
        "fix: declare them (to manage them), or remove them with `--remediate --prune-unmanaged`"
    )
    return Verdict(
        "unmanaged", "(all)", "fail", "\n".join(lines), tuple((n, "unmanaged") for n in extra)
    )


def node_targets(config: ComplianceConfig, live: LiveState) -> list[tuple[StorageSpec, str]]:
    """(storage, node) pairs a node case exists for; nodes come from PVE, else none."""
    pairs = []
    for spec in config.storages:
        for node_name in applies_to(spec.nodes, live.nodes):
            pairs.append((spec, node_name))
    return pairs
