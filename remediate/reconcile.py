"""One reconcile path: read, plan, apply under the per-cluster lock, re-read, verify.

`pbs apply` and `pytest checks/ --remediate` both call `Reconciler.reconcile`; they differ only in
the scope (everything, one storage's drift case, the undeclared entries) and in what they show.
So both refuse, write and confirm exactly the same things:

- reachability for planning comes from the checks' own verdicts (`reach`): a storage whose
  dns, port or tls case fails - an expiring certificate included - is not created or enabled;
- the plan is made from a fresh read taken under the per-cluster lock (our own writers take
  turns: xdist workers, parallel jobs and `pbs apply` runs on this host), then applied;
- after the writes PVE is read again and every storage in scope judged by the `drift` verdict
  (and the `unmanaged` one when undeclared entries may be deleted): the fix is confirmed by the
  same check that found the fault, not by the writes' answers.

A dry run plans from the run's evidence (PVE as the checks saw it) and sends nothing, not even
a read. Ctrl-C while re-reading still raises `Interrupted` with every storage's result.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pbs_compliance import verdicts
from pbs_compliance.config import StorageSpec
from pbs_compliance.evidence import Evidence, LiveState, client_for
from pbs_compliance.pve import PveClient, PveError, PveNotFound
from pbs_compliance.settings import RunSettings
from pbs_compliance.verdicts import Verdict
from remediate.apply import Interrupted, Results, Status, apply
from remediate.plan import Plan, PlanOptions, Reachability, plan
from remediate.reach import reach_for

__all__ = ["EVERYTHING", "Outcome", "Reconciler", "Scope", "cluster_lock"]


@dataclass(frozen=True)
class Scope:
    """What one reconcile covers: declared storages (`storages`, None: all of them) and, with
    `unmanaged`, the PBS entries the declaration does not name."""

    storages: tuple[str, ...] | None = None
    unmanaged: bool = True

    @classmethod
    def storage(cls, name: str) -> Scope:
        """One declared storage (its drift case)."""
        return cls((name,), unmanaged=False)

    @classmethod
    def undeclared(cls) -> Scope:
        """Only the entries the declaration does not name (the unmanaged case)."""
        return cls((), unmanaged=True)

    @property
    def single(self) -> str | None:
        """The one storage in scope, when it is one: reading it alone is enough."""
        if self.storages is not None and len(self.storages) == 1 and not self.unmanaged:
            return self.storages[0]
        return None


EVERYTHING = Scope()


@dataclass(frozen=True)
class Outcome:
    """What one reconcile did: the plan, each storage's result, and the re-check after it.

    `recheck` holds the verdicts of the re-read (`drift` per storage in scope, `unmanaged` when
    undeclared entries could be deleted); empty on a dry run. `reread_error` says why PVE could
    not be read again (then the writes are unconfirmed).
    """

    plan: Plan
    results: Results
    recheck: tuple[Verdict, ...] = ()
    reread_error: str | None = None

    @property
    def dry_run(self) -> bool:
        return self.results.dry_run

    def verdict(self, check: str, storage: str) -> Verdict | None:
        """The re-check of one case (None: not re-checked)."""
        return next((v for v in self.recheck if v.check == check and v.storage == storage), None)

    @property
    def unconfirmed(self) -> tuple[str, ...]:
        """Storages reported changed or unchanged that the re-read still finds drifted."""
        still = {v.storage for v in self.recheck if v.check == "drift" and not v.passed}
        return tuple(
            r.storage
            for r in self.results.results
            if r.storage in still and r.status in (Status.CHANGED, Status.UNCHANGED)
        )

    @property
    def ok(self) -> bool:
        """Everything applied and confirmed (a dry run: nothing left to do)."""
        if self.dry_run:
            return self.plan.is_empty
        return self.results.ok and self.reread_error is None and not self.unconfirmed

    def done(self) -> str:
        """One line per storage the plan acted on: what happened to it."""
        acted = {a.storage for a in self.plan.actions}
        return "\n".join(r.line() for r in self.results.results if r.storage in acted)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: `plan`, `results`, `summary` and `verified` (None: not re-read)."""
        verified = None
        if not self.dry_run and self.reread_error is None:
            verified = {
                "ok": not self.unconfirmed,
                "unconfirmed": list(self.unconfirmed),
                "checks": [
                    {"check": v.check, "storage": v.storage, "status": v.status}
                    for v in self.recheck
                ],
            }
        return {
            "plan": self.plan.to_dict(),
            "results": self.results.to_dicts(),
            "summary": self.results.counts(),
            "verified": verified,
        }


@contextmanager
def cluster_lock(endpoint: object) -> Iterator[None]:
    """Serialise our own writers on this host (xdist workers, parallel jobs, `pbs apply`) per
    cluster.

    storage.cfg has one digest for the whole file, so two of our writers at once only make each
    other retry; taking turns costs nothing and leaves conflicts to real other writers.
    """
    digest = hashlib.sha1(str(endpoint).encode(), usedforsecurity=False).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"pbs-compliance-{digest}.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Reconciler:
    """One run's reconciler: its settings, the checks' evidence, the operator's options.

    The reachability is worked out once (probing the servers the checks skipped); the PVE
    client is made when the first write needs it.
    """

    def __init__(
        self,
        settings: RunSettings,
        evidence: Evidence,
        options: PlanOptions,
        client: PveClient | None = None,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.settings = settings
        self.evidence = evidence
        self.options = options
        self._client = client
        self._now = now
        self._reach: dict[str, Reachability] | None = None

    @property
    def client(self) -> PveClient:
        if self._client is None:
            client = client_for(self.settings)
            if client is None:
                raise PveError("no PVE credentials configured")
            self._client = client
        return self._client

    def reachability(self) -> Mapping[str, Reachability]:
        """Per declared storage, from the checks' verdicts; computed once."""
        if self._reach is None:
            self._reach = reach_for(
                self.settings.config.storages,
                self.evidence.live.storages,
                self.options,
                self.evidence,
                self.settings.nameservers,
                self.settings.probe_timeout,
                self._now(),
                self.settings.cert_expiry_days,
            )
        return self._reach

    def reconcile(
        self,
        scope: Scope | None = None,
        *,
        dry_run: bool = False,
        on_plan: Callable[[Plan], None] | None = None,
    ) -> Outcome:
        """Read, plan, apply under the per-cluster lock, re-read and verify `scope` (default:
        every declared storage and the undeclared entries).

        `on_plan` sees the plan before anything is written (`pbs apply` prints it). Raises
        `Interrupted` on Ctrl-C once writing began, `PveError` when PVE cannot be read first.
        """
        scope = scope or EVERYTHING
        specs = self._specs(scope)
        reach = self.reachability()
        if dry_run:
            planned = self._plan(scope, specs, self.evidence.live.storages, reach)
            if on_plan is not None:
                on_plan(planned)
            return Outcome(planned, apply(planned, None, specs, self.options, reach, dry_run=True))
        client = self.client
        with cluster_lock(client.endpoint):
            planned = self._plan(scope, specs, self._read(client, scope), reach)
            if on_plan is not None:
                on_plan(planned)
            results = apply(planned, client, specs, self.options, reach)
            try:
                recheck = self._verify(client, scope, specs)
            except PveError as exc:
                return Outcome(planned, results, reread_error=str(exc))
            except KeyboardInterrupt:
                raise Interrupted(results, planned) from None
        return Outcome(planned, results, recheck)

    # -- the steps ------------------------------------------------------------------------

    def _specs(self, scope: Scope) -> list[StorageSpec]:
        storages = self.settings.config.storages
        if scope.storages is None:
            return list(storages)
        wanted = set(scope.storages)
        return [spec for spec in storages if spec.name in wanted]

    def _read(self, client: PveClient, scope: Scope) -> list[dict[str, Any]]:
        """PVE now: the one entry of a single storage (`GET /storage/{id}` carries the
        file-wide digest, so N drift cases cost N small reads), else the whole list."""
        if scope.single is not None:
            return _one(client, scope.single)
        return client.storages()

    def _plan(
        self,
        scope: Scope,
        specs: Sequence[StorageSpec],
        live: Sequence[Mapping[str, object]],
        reach: Mapping[str, Reachability],
    ) -> Plan:
        everything = self.settings.config.storages
        full = plan(everything if scope.unmanaged else specs, live, self.options, reach)
        if scope.storages is None:
            return full
        declared = {s.name for s in everything}
        wanted = set(scope.storages)
        return Plan(
            tuple(
                a
                for a in full.actions
                if a.storage in wanted or (scope.unmanaged and a.storage not in declared)
            )
        )

    def _verify(
        self, client: PveClient, scope: Scope, specs: Sequence[StorageSpec]
    ) -> tuple[Verdict, ...]:
        fresh = LiveState(storages=self._read(client, scope), nodes=self.evidence.live.nodes)
        judged = [verdicts.drift(spec, fresh) for spec in specs]
        if scope.unmanaged and self.options.prune_unmanaged:
            judged.append(verdicts.unmanaged(self.settings.config, fresh))
        return tuple(judged)


def _one(client: PveClient, name: str) -> list[dict[str, Any]]:
    """The current entry of one storage as a one-item list (empty when it does not exist)."""
    try:
        return [client.storage(name)]
    except PveNotFound:
        return []
