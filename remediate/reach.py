"""From the checks' evidence to the reconciler's `Reachability`: what may safely be written.

Kept apart from `plan` so the plan stays a function of plain values, and shared by the pytest
hook and `pbs apply`, which must refuse exactly the same things.

The checks probe only the servers of enabled storages. The reconciler writes about declared-
disabled ones too (creating them, pushing their fingerprint), and the rule that a server serving
another certificate refuses its storage as a whole must hold for them as well: `reach_for` probes
the servers the checks skipped, for the storages it would act on, before the final plan.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from pbs_compliance.config.model import StorageSpec
from pbs_compliance.evidence import MAX_WORKERS, Evidence, probe_server, server_key
from remediate.plan import Kind, PlanOptions, Reachability, plan


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


def probe_missing(
    evidence: Evidence,
    storages: Sequence[StorageSpec],
    nameservers: Sequence[tuple[str, int]],
    timeout: float,
) -> Evidence:
    """`evidence` plus a probe of every server of `storages` it has none for: each (server,
    port) once, all at the same time, so dead servers cost one probe timeout in total."""
    targets = {
        server_key(s.server, s.port): (s.server, s.port)
        for s in storages
        if server_key(s.server, s.port) not in evidence.servers
    }
    if not targets:
        return evidence
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(targets))) as pool:
        futures = {
            key: pool.submit(probe_server, server, port, nameservers, timeout)
            for key, (server, port) in targets.items()
        }
        probed = {key: future.result() for key, future in futures.items()}
    return dataclasses.replace(evidence, servers={**evidence.servers, **probed})


def reach_for(
    desired: Sequence[StorageSpec],
    live: Sequence[Mapping[str, object]],
    options: PlanOptions,
    evidence: Evidence,
    nameservers: Sequence[tuple[str, int]],
    timeout: float,
) -> dict[str, Reachability]:
    """The reachability to plan with: the evidence's, completed by probing the servers of every
    storage the reconciler would act on (write or refuse) that the checks did not probe."""
    known = reachability(evidence, desired)
    first = plan(desired, live, options, known)
    acting = {a.storage for a in first.actions if a.kind != Kind.NOTE}
    unprobed = [
        spec
        for spec in desired
        if spec.name in acting and server_key(spec.server, spec.port) not in evidence.servers
    ]
    if not unprobed:
        return known
    return reachability(probe_missing(evidence, unprobed, nameservers, timeout), desired)
