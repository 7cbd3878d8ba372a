"""From the checks' evidence to the reconciler's `Reachability`: what may safely be written.

Kept apart from `plan` so the plan stays a function of plain values. `Reachability` is read off
the checks' own verdicts (dns, port, tls), so the reconciler and the checks agree on what is
reachable: a certificate the tls case fails (expired, expiring, malformed) fails here too.

The checks probe only the servers of enabled storages. The reconciler writes about declared-
disabled ones too (creating them, pushing their fingerprint), and the rule that a server serving
another certificate refuses its storage as a whole must hold for them as well: `reach_for` probes
the servers the checks skipped, for the storages it would act on, before the final plan.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from pbs_compliance import verdicts
from pbs_compliance.config.model import StorageSpec
from pbs_compliance.evidence import MAX_WORKERS, Evidence, probe_server, server_key
from pbs_compliance.tables import first_line
from pbs_compliance.verdicts import Verdict
from remediate.plan import Kind, PlanOptions, Reachability, plan


def reachability(
    evidence: Evidence, storages: Sequence[StorageSpec], now: dt.datetime, expiry_days: int
) -> dict[str, Reachability]:
    """Per declared storage: did its dns, port and tls cases pass, and which certificate was
    served? The checks' own verdicts decide, so an expiring certificate (`expiry_days`) that
    fails the tls case keeps the reconciler from creating or enabling the entry too. A
    declared-disabled storage is judged as if enabled: its server was probed for the reconciler.
    """
    result: dict[str, Reachability] = {}
    for spec in storages:
        ev = evidence.servers.get(server_key(spec.server, spec.port))
        if ev is None:
            result[spec.name] = Reachability(False, None, f"{spec.server} was not probed")
            continue
        served = ev.tls.certificate.fingerprint if ev.tls and ev.tls.certificate else None
        judged = spec if spec.enabled else spec.model_copy(update={"enabled": True})
        cases = (
            verdicts.dns(judged, ev),
            verdicts.port(judged, ev),
            verdicts.tls(judged, ev, now, expiry_days),
        )
        failed = next((v for v in cases if not v.passed), None)
        problem = "" if failed is None else _headline(failed)
        result[spec.name] = Reachability(not problem, served, problem)
    return result


def _headline(verdict: Verdict) -> str:
    """`the tls case: <its headline>` - what a refusal quotes."""
    return f"the {verdict.check} case: {first_line(verdict.message) or verdict.status}"


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
    now: dt.datetime,
    expiry_days: int,
) -> dict[str, Reachability]:
    """The reachability to plan with: the evidence's, completed by probing the servers of every
    storage the reconciler would act on (write or refuse) that the checks did not probe."""
    known = reachability(evidence, desired, now, expiry_days)
    first = plan(desired, live, options, known)
    acting = {a.storage for a in first.actions if a.kind != Kind.NOTE}
    unprobed = [
        spec
        for spec in desired
        if spec.name in acting and server_key(spec.server, spec.port) not in evidence.servers
    ]
    if not unprobed:
        return known
    probed = probe_missing(evidence, unprobed, nameservers, timeout)
    return reachability(probed, desired, now, expiry_days)
