"""From the checks' evidence to the reconciler's `Reachability`: what may safely be written.

Kept apart from `plan` so the plan stays a function of plain values, and shared by the pytest
hook and `pbs apply`, which must refuse exactly the same things.
"""

from __future__ import annotations

from collections.abc import Sequence

from pbs_compliance.config.model import StorageSpec
from pbs_compliance.evidence import Evidence, server_key
from remediate.plan import Reachability


def reachability(evidence: Evidence, storages: Sequence[StorageSpec]) -> dict[str, Reachability]:
    """Per declared storage: did DNS, TCP and TLS pass, and which certificate was served?"""
    result: dict[str, Reachability] = {}
    for spec in storages:
        ev = evidence.servers.get(server_key(spec.server, spec.port))
        if ev is None:
            result[spec.name] = Reachability(False, None, f"{spec.server} was not probed")
            continue
        served = ev.tls.certificate.fingerprint if ev.tls and ev.tls.certificate else None
        if not ev.dns.ok:
            problem = f"{spec.server} does not resolve"
        elif not ev.tcp or not all(t.ok for t in ev.tcp):
            problem = f"no TCP connection to {spec.server}:{spec.port}"
        elif ev.tls is None or not ev.tls.ok:
            problem = f"no TLS handshake with {spec.server}:{spec.port}"
        else:
            problem = ""
        result[spec.name] = Reachability(not problem, served, problem)
    return result
