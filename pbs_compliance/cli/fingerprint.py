"""`pbs fingerprint`: what certificate a PBS serves, and pinning it in the declaration."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Annotated, Any

import typer

from pbs_compliance.cli.app import app, settings_or_exit
from pbs_compliance.cli.app import now as utc_now
from pbs_compliance.cli.output import Out, Output, OutputOption, examples
from pbs_compliance.config import ConfigError
from pbs_compliance.pinning import Target, Updated, fetch, split_target, update_fingerprint
from pbs_compliance.settings import RunSettings

__all__ = ["fingerprint"]


@app.command(
    epilog=examples(
        "pbs fingerprint pbs1.example.com",
        "pbs fingerprint 192.0.2.10:8007 --output json",
        "pbs fingerprint pbs1.example.com --update homelab-backup --config config/pbs-storage.yaml",
        "pbs fingerprint --update homelab-backup      # HOST: the storage's declared server",
        "pbs fingerprint pbs1.lab.example --config .lab/pbs-storage.yaml  # via the lab's DNS",
        note="HOST is resolved by this machine's resolver (/etc/hosts, DNS); with --config, "
        "through that config's dns.nameservers, as the checks do - the lab's names are known "
        "only there.\n\nAfter a certificate renewal: confirm the new certificate on the PBS, "
        "--update, commit, then `pbs apply` pushes the fingerprint to PVE.",
    )
)
def fingerprint(
    target: Annotated[
        str | None, typer.Argument(metavar="HOST[:PORT]", help="the PBS (port 8007 by default)")
    ] = None,
    update: Annotated[
        str | None,
        typer.Option(
            "--update",
            metavar="NAME",
            help="write the served fingerprint into this storage's entry of --config",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            metavar="PATH",
            help="a declaration: HOST resolves through its dns.nameservers, the port defaults "
            "to the declared one, and --update writes into it",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, max=120, help="seconds for DNS, TCP and TLS")
    ] = 5.0,
    output: OutputOption = Output.text,
) -> None:
    """Connect to a PBS and show the SHA-256 fingerprint, subject, issuer and expiry of the
    certificate it serves; with --update, pin it in the config (comments and layout kept).
    Names resolve through --config's dns.nameservers, or else this machine's resolver."""
    out = Out.create(output)
    settings = settings_or_exit(out, config) if (config is not None or update is not None) else None
    declared = None
    if update is not None and settings is not None:
        declared = next((s for s in settings.config.storages if s.name == update), None)
        if declared is None:
            names = ", ".join(s.name for s in settings.config.storages) or "none"
            out.fail(
                2,
                f"no storage named '{update}' in {settings.config.source} (declared: {names})",
                "usage",
            )
    if target is None and declared is None:
        out.fail(2, "give HOST[:PORT], or --update NAME to use that storage's server", "usage")
    if target is None:
        assert declared is not None
        where = Target(declared.server, declared.port)
    else:
        try:
            host, port = split_target(target)
        except ValueError as exc:
            out.fail(2, str(exc), "usage")
        where = Target(host, port or _declared_port(settings, host))
    nameservers = settings.nameservers if settings is not None else ()
    result, resolved = fetch(where, nameservers, timeout)
    cert = result.certificate
    if not result.ok or cert is None:
        message = f"no certificate from {where}: {result.error}"
        if not nameservers and _system_cannot_resolve(where.host):
            message = (
                f"no certificate from {where}: this machine's resolver does not know "
                f"'{where.host}'. Try --config FILE to resolve it through that config's "
                "dns.nameservers (for the lab: --config .lab/pbs-storage.yaml, or the one in "
                "its --state-dir)"
            )
        out.fail(1, message, "tls", target=str(where))
    now = utc_now()
    facts: dict[str, Any] = {
        "command": "fingerprint",
        "target": str(where),
        "address": result.address,
        "resolved": resolved,
        "fingerprint": cert.fingerprint,
        "subject": cert.subject,
        "issuer": cert.issuer,
        "not_before": cert.not_before.isoformat(),
        "not_after": cert.not_after.isoformat(),
        "days_left": cert.days_left(now),
        "expired": cert.is_expired(now),
        "sans": list(cert.sans),
        "updated": None,
    }
    notes: list[str] = []
    if declared is not None and settings is not None:
        if where.host.lower() != declared.server.lower() or where.port != declared.port:
            notes.append(
                f"note: '{declared.name}' declares {declared.server}:{declared.port}, "
                f"the certificate pinned is the one {where} serves"
            )
        try:
            updated = update_fingerprint(settings.config.source, declared.name, cert.fingerprint)
        except ConfigError as exc:
            out.config_error(exc)
        facts["updated"] = _updated_dict(updated)
    if cert.is_expired(now):
        notes.append("warning: this certificate has EXPIRED; PVE will refuse it until renewed")
    if out.json:
        out.data({"ok": True, **facts, "notes": notes})
        raise typer.Exit(0)
    out.print(f"{where}  ({facts['resolved'] or result.address})", style="bold")
    out.print(f"  fingerprint  {cert.fingerprint}")
    out.print(f"  subject      {cert.subject}")
    out.print(f"  issuer       {cert.issuer}")
    out.print(
        f"  valid        {cert.not_before:%Y-%m-%d} .. {cert.not_after:%Y-%m-%d} "
        f"({cert.days_left(now)} days left)"
    )
    if cert.sans:
        out.print(f"  names        {', '.join(cert.sans)}")
    for note in notes:
        out.print(note, style="yellow")
    if facts["updated"] is not None:
        done = facts["updated"]
        if done["changed"]:
            out.print(
                f"pinned in {done['config']}: {done['storage']}.fingerprint "
                f"{done['previous'] or '(unset)'} -> {done['fingerprint']}",
                style="green",
            )
            out.print(
                "next: confirm the certificate is genuine, commit the change, then "
                "`pbs apply` (or `pytest checks/ --remediate`) pushes it to PVE"
            )
        else:
            out.print(f"{done['config']}: {done['storage']} already pins this certificate")
    raise typer.Exit(0)


def _system_cannot_resolve(host: str) -> bool:
    """Whether the name is unknown to this machine's resolver (an IP address never is)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return False
    except ValueError:
        pass
    try:
        socket.getaddrinfo(host, None)
    except socket.gaierror:
        return True
    except OSError:
        return False
    return False


def _declared_port(settings: RunSettings | None, host: str) -> int:
    """Without `:PORT`, the port a declared storage uses for that server, else PBS's 8007."""
    storages = settings.config.storages if settings is not None else ()
    return next((s.port for s in storages if s.server.lower() == host.lower()), 8007)


def _updated_dict(updated: Updated) -> dict[str, Any]:
    return {
        "storage": updated.storage,
        "config": str(updated.path),
        "previous": updated.previous,
        "fingerprint": updated.fingerprint,
        "changed": updated.changed,
    }
