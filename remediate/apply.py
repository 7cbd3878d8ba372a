"""Apply a plan through the PVE API, one storage at a time, and say what happened to each.

The plan is pure; this is the only module of the reconciler that does I/O. Rules:
- Every update carries the digest of the storage.cfg it was planned from. The digest covers the
  whole file, so after any write of ours it is stale: the next update re-reads `GET /storage`
  and re-plans its storage first (one read), instead of provoking a conflict.
- A digest conflict (another writer got in between) re-reads, re-plans that storage and retries,
  at most `max_retries` times with exponential backoff. Any other API error (timeouts included)
  is recorded with PVE's own words and the run goes on with the next storage.
- A create is sent with `disable=1`. When the declaration says enabled, every node the entry
  applies to first scans the PBS with the declared credentials (`GET /nodes/{n}/scan/pbs`, the
  check PVE would only run on the node handling the create); then the entry is enabled and each
  node must report it active (`GET /nodes/{n}/storage`). A node that cannot reach it leaves the
  entry disabled - never deleted: a disabled entry is inert, keeps PVE's stored password, and the
  next run enables it once the network is fixed - and the storage is reported failed with those
  nodes. Enabling an existing disabled entry is checked the same way first (every node logs in
  with the declared password, which then travels with the enable: the stored one may be the
  wrong one an earlier create left behind), verified after, and undone when a node fails.
- A create answered "storage ID ... already defined" lost a race with another writer (another
  `pbs apply`): the entry is re-read and re-planned; one that matches is a success.
- Ctrl-C (KeyboardInterrupt) raises `Interrupted` with every storage's result so far, the
  interrupted one saying what its writes left behind (e.g. created disabled, not enabled yet).
  Counts include what failed storages wrote: a create left disabled counts as created.
- Dry run touches nothing: not even a read reaches the client.

Over 400 lines on purpose: the per-storage state machine (create -> confirm -> enable -> verify
-> undo, digest retries, Ctrl-C accounting) is one piece; split, its invariants would be spread
over modules that each only make sense with the others. Its results and their JSON form are the
first third.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pbs_compliance.config.model import StorageSpec
from pbs_compliance.pve import (
    PveClient,
    PveDigestConflict,
    PveError,
    PveNotFound,
    PveUnavailable,
)
from pbs_compliance.pvevalues import active
from remediate.plan import Action, Kind, Plan, PlanOptions, Reachability
from remediate.plan import plan as make_plan

__all__ = ["Interrupted", "Results", "Status", "StorageResult", "apply"]

_VERBS = {
    Kind.CREATE: "created",
    Kind.UPDATE: "updated",
    Kind.ENABLE: "enabled",
    Kind.DISABLE: "disabled",
    Kind.RECREATE: "re-created",
    Kind.DELETE: "deleted",
}
_SUMMARY_ORDER = (
    "created",
    "updated",
    "enabled",
    "disabled",
    "re-created",
    "deleted",
    "refused",
    "failed",
    "unchanged",
)
_STOPPED = ("interrupted", "not started")  # only in a summary when an interrupt stopped the run
_UPDATES = frozenset({Kind.UPDATE, Kind.ENABLE, Kind.DISABLE})
_MAX_STEPS = 4  # create -> enable -> revert is the longest chain; beyond that something loops
_ALREADY_DEFINED = "already defined"  # PVE: "create storage failed: storage ID 'x' already defined"
_UNTOUCHED = "backups on the PBS are untouched"


class Status(StrEnum):
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    REFUSED = "refused"
    PLANNED = "planned"  # dry run: this would be written
    INTERRUPTED = "interrupted"  # Ctrl-C while this storage's steps were under way
    NOT_STARTED = "not started"  # Ctrl-C before this storage's turn


@dataclass(frozen=True)
class StorageResult:
    """What happened to one storage. `action` is the planned one; `steps` are the writes sent.

    `retries` counts the re-read + re-plan rounds after digest conflicts; `unreachable_nodes`
    names the nodes that could not reach the PBS when a create or enable was verified. `left`
    is the verb of what the writes changed (created, updated, ...; empty when nothing or when
    undone), so a failed or interrupted storage still counts what it wrote.
    """

    storage: str
    status: Status
    action: Action | None = None
    reason: str = ""
    writes: int = 0
    retries: int = 0
    steps: tuple[str, ...] = ()
    unreachable_nodes: tuple[str, ...] = ()
    left: str = ""

    @property
    def verb(self) -> str:
        """created / updated / enabled / ... / refused / failed / unchanged / planned."""
        if self.status == Status.CHANGED and self.left:
            return self.left
        if self.status == Status.CHANGED and self.action is not None:
            return _VERBS.get(self.action.kind, "changed")
        return str(self.status)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (stable keys)."""
        return {
            "storage": self.storage,
            "status": str(self.status),
            "verb": self.verb,
            "reason": self.reason,
            "writes": self.writes,
            "retries": self.retries,
            "steps": list(self.steps),
            "unreachable_nodes": list(self.unreachable_nodes),
        }

    def line(self) -> str:
        text = f"{self.storage}: {self.verb}"
        if self.status == Status.PLANNED and self.action is not None:
            text += f" ({self.action.kind})"
        if self.reason:
            text += f" - {self.reason}"
        if self.retries:
            plural = "y" if self.retries == 1 else "ies"
            text += f" ({self.retries} retr{plural} after digest conflicts)"
        return text


@dataclass(frozen=True)
class Results:
    """Every storage's result, sorted by name; `ok` when nothing failed, was refused or is
    still only planned."""

    results: tuple[StorageResult, ...] = ()
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return all(r.status in (Status.CHANGED, Status.UNCHANGED) for r in self.results)

    @property
    def writes(self) -> int:
        return sum(r.writes for r in self.results)

    def for_storage(self, name: str) -> StorageResult | None:
        return next((r for r in self.results if r.storage == name), None)

    def counts(self) -> dict[str, int]:
        """Storages per outcome; a failed or interrupted storage that wrote something is also
        counted by what it wrote (a create left disabled: 1 created and 1 failed)."""
        counts = dict.fromkeys((*_SUMMARY_ORDER, "planned", *_STOPPED), 0)
        for result in self.results:
            counts[result.verb] = counts.get(result.verb, 0) + 1
            if result.left and result.verb != result.left:
                counts[result.left] = counts.get(result.left, 0) + 1
        return counts

    def summary(self) -> str:
        """`3 created, 1 updated, ... 0 failed` in one line (plus `planned` on a dry run)."""
        counts = self.counts()
        order = ("planned", "refused", "unchanged") if self.dry_run else _SUMMARY_ORDER
        order = (*order, *(key for key in _STOPPED if counts[key]))
        head = "dry run, nothing written: " if self.dry_run else ""
        return head + ", ".join(f"{counts[key]} {key}" for key in order)

    def describe(self) -> str:
        return "\n".join([*(r.line() for r in self.results), self.summary()])

    def to_dicts(self) -> list[dict[str, Any]]:
        """The JSON form: one object per storage."""
        return [r.to_dict() for r in self.results]

    def __str__(self) -> str:
        return self.describe()


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped `apply`; `results` holds every storage: done, interrupted (with what its
    writes left behind) or not started, `plan` what was being applied. A KeyboardInterrupt
    still, so whoever does not look for it stops as before."""

    def __init__(self, results: Results, plan: Plan | None = None) -> None:
        self.results = results
        self.plan = plan
        stopped = [r.line() for r in results.results if r.status == Status.INTERRUPTED]
        where = "; ".join(stopped) or "between two storages, none half-done"
        super().__init__(f"interrupted: {where} - re-running continues from there")


class _Stopped(KeyboardInterrupt):
    """Internal: Ctrl-C inside one storage's steps, with that storage's result."""

    def __init__(self, result: StorageResult) -> None:
        super().__init__(result.line())
        self.result = result


def apply(
    plan: Plan,
    client: PveClient | None,
    desired: Sequence[StorageSpec],
    options: PlanOptions,
    reachability: Mapping[str, Reachability] | None = None,
    max_retries: int = 5,
    backoff: float = 0.2,
    sleep: Callable[[float], None] = time.sleep,
    dry_run: bool = False,
) -> Results:
    """Perform `plan` (made from `desired`, `options` and `reachability`) storage by storage.

    A dry run needs no client: it says what each action would do and sends nothing."""
    acted = {a.storage for a in plan.actions}
    untouched = [
        StorageResult(spec.name, Status.UNCHANGED, reason="matches its declaration")
        for spec in desired
        if spec.name not in acted
    ]
    done: list[StorageResult] = []
    if dry_run:
        done = [_planned(action) for action in plan.actions]
    else:
        if client is None:
            raise ValueError("apply needs a PVE client unless it is a dry run")
        run = _Run(client, desired, options, reachability or {}, max_retries, backoff, sleep)
        try:
            for action in plan.actions:
                done.append(run.storage(action))
        except KeyboardInterrupt as exc:
            if isinstance(exc, _Stopped):
                done.append(exc.result)
            finished = {r.storage for r in done}
            rest = [_not_started(a) for a in plan.actions if a.storage not in finished]
            results = sorted([*done, *rest, *untouched], key=lambda r: r.storage)
            raise Interrupted(Results(tuple(results)), plan) from None
    return Results(tuple(sorted([*done, *untouched], key=lambda r: r.storage)), dry_run=dry_run)


def _planned(action: Action) -> StorageResult:
    if action.kind == Kind.REFUSE:
        return StorageResult(action.storage, Status.REFUSED, action, action.reason)
    if action.kind == Kind.NOTE:
        return StorageResult(action.storage, Status.UNCHANGED, action, action.reason)
    return StorageResult(action.storage, Status.PLANNED, action)


def _not_started(action: Action) -> StorageResult:
    if action.writes:
        return StorageResult(action.storage, Status.NOT_STARTED, action, "nothing sent")
    return _planned(action)


@dataclass
class _Tally:
    """One storage's running record while its steps are sent.

    `left` is the verb of what the writes so far changed, `state` the entry's state after the
    last write in words (what an interrupted run left behind), `in_flight` a write that was
    interrupted before PVE answered.
    """

    writes: int = 0
    retries: int = 0
    steps: list[str] = field(default_factory=list)
    created: bool = False
    password_sent: bool = False
    confirmed: bool = False  # every node logged in with the declared password
    left: str = ""
    state: str = ""
    in_flight: str = ""
    note: str = ""  # another writer created the entry at the same time

    def wrote(self, left: str, state: str) -> None:
        self.left, self.state = left, state

    def interrupted(self) -> str:
        parts = [self.state] if self.state else []
        if self.in_flight:
            parts.append(
                f"interrupted before PVE answered `{self.in_flight}`: it may or may not have "
                "been applied"
            )
        return "; ".join(parts) or "nothing written yet"


class _Enable(Exception):
    """Internal: the entry was created disabled and every node reached the PBS; re-read and
    let the (re-)plan enable it."""


class _Taken(Exception):
    """Internal: our create met an entry another writer created meanwhile; re-read, re-plan."""


class _Failed(Exception):
    def __init__(self, reason: str, nodes: tuple[str, ...] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.nodes = nodes


class _Run:
    """The state of one apply run: the client, whether our digest is current, the node list."""

    def __init__(
        self,
        client: PveClient,
        desired: Sequence[StorageSpec],
        options: PlanOptions,
        reachability: Mapping[str, Reachability],
        max_retries: int,
        backoff: float,
        sleep: Callable[[float], None],
    ) -> None:
        self.client = client
        self.specs = {spec.name: spec for spec in desired}
        self.options = options
        self.reachability = reachability
        self.max_retries = max_retries
        self.backoff = backoff
        self.sleep = sleep
        self.stale = False  # a write happened since the digest in the plan was read
        self._nodes: list[str] | None = None

    # ---- one storage ------------------------------------------------------------------

    def storage(self, planned: Action) -> StorageResult:
        tally = _Tally()

        def result(status: Status, reason: str = "", nodes: tuple[str, ...] = ()) -> StorageResult:
            return StorageResult(
                planned.storage,
                status,
                planned,
                reason,
                tally.writes,
                tally.retries,
                tuple(tally.steps),
                nodes,
                tally.left,
            )

        try:
            return self._steps(planned, tally, result)
        except KeyboardInterrupt:
            raise _Stopped(result(Status.INTERRUPTED, tally.interrupted())) from None

    def _steps(
        self, planned: Action, tally: _Tally, result: Callable[..., StorageResult]
    ) -> StorageResult:
        action: Action | None = planned
        replan = False
        for _ in range(_MAX_STEPS + self.max_retries):
            try:
                if replan or (self.stale and action is not None and action.kind in _UPDATES):
                    action = self._replan(planned.storage, tally)
                    replan = False
                if action is None:
                    if tally.writes:
                        return result(Status.CHANGED, tally.note)
                    return result(
                        Status.UNCHANGED, tally.note or "another writer already made it match"
                    )
                if action.kind == Kind.NOTE:
                    return result(Status.UNCHANGED, action.reason)
                if action.kind == Kind.REFUSE:
                    return result(Status.REFUSED, action.reason)
                if tally.created and action.kind in (Kind.CREATE, Kind.RECREATE):
                    return result(Status.FAILED, "the entry vanished right after it was created")
                self._perform(action, tally)
                return result(Status.CHANGED, tally.note)
            except _Enable:
                replan = True
            except _Taken:
                if tally.note:  # created, gone, created again by someone: stop chasing it
                    return result(Status.FAILED, "other writers keep creating and deleting it")
                tally.note = "another writer created it at the same time"
                replan = True
            except PveDigestConflict as exc:
                if tally.retries >= self.max_retries:
                    return result(
                        Status.FAILED,
                        f"gave up after {self.max_retries} retries: storage.cfg kept changing "
                        f"under us ({exc.message})",
                    )
                self.sleep(self.backoff * 2**tally.retries)
                tally.retries += 1
                replan = True
            except _Failed as exc:
                return result(Status.FAILED, exc.reason, exc.nodes)
            except PveError as exc:
                self.stale = True
                return result(Status.FAILED, str(exc))
        # Unreachable: every pass returns, counts a (bounded) retry, or follows a create once.
        return result(Status.FAILED, "did not converge")  # pragma: no cover

    def _replan(self, name: str, tally: _Tally) -> Action | None:
        """Re-read this one entry (`GET /storage/{id}` carries the file-wide digest) and plan it
        again: constant cost per storage, where a full list read would make a run quadratic."""
        try:
            live = [self.client.storage(name)]
        except PveNotFound:
            live = []
        self.stale = False
        spec = self._spec(name)
        options = self.options
        if tally.password_sent:  # just sent; rotating again would only repeat it
            options = dataclasses.replace(options, rotate_secrets=False)
        planned = make_plan([spec] if spec else [], live, options, self.reachability)
        action = planned.for_storage(name)
        if action is not None and tally.password_sent and action.password_needed:
            action = dataclasses.replace(action, password_needed=False)  # e.g. create -> enable
        return action

    def _spec(self, name: str) -> StorageSpec | None:
        return self.specs.get(name)

    # ---- the writes -------------------------------------------------------------------

    def _perform(self, action: Action, tally: _Tally) -> None:
        name = action.storage
        if action.kind == Kind.DELETE:
            self._write(tally, f"DELETE /storage/{name}", lambda: self.client.delete(name))
            tally.wrote("deleted", "deleted")
            return
        spec = self._spec(name)
        if spec is None:
            raise _Failed(f"'{name}' is not in the declaration given to apply")
        password = spec.password.get_secret_value() if spec.password else None
        if action.password_needed and password is None:  # pragma: no cover - plan guarantees
            raise _Failed("the password is needed but none is declared")
        if action.kind in (Kind.CREATE, Kind.RECREATE):
            self._create(action, spec, password, tally)
            return
        sent = password if action.password_needed else None
        if sent is not None and action.enables and not tally.confirmed:
            # the password goes with the enable: every node must log in with it first
            self._confirm_nodes_reach(action, spec, sent, tally)
        before = (tally.left, tally.state)
        self._write(
            tally,
            f"PUT /storage/{name} {_shown(action.params, action.delete, sent is not None)}",
            lambda: self.client.update(
                name, action.params, delete=action.delete, digest=action.digest, password=sent
            ),
        )
        tally.password_sent = tally.password_sent or sent is not None
        verb = _VERBS[action.kind]
        if action.enables:
            what = "enabled" if action.kind == Kind.ENABLE else "updated and enabled"
            tally.wrote(tally.left or verb, f"{what}, not yet confirmed active on every node")
            try:
                self._verify_active(action, spec, tally, sent is not None)
            except _Failed:
                if tally.state == "disabled again" and action.kind == Kind.ENABLE:
                    tally.left = before[0]  # undone: the enable left nothing behind
                raise
        else:
            tally.wrote(tally.left or verb, verb)

    def _create(
        self, action: Action, spec: StorageSpec, password: str | None, tally: _Tally
    ) -> None:
        name = action.storage
        if action.kind == Kind.RECREATE:
            self._write(tally, f"DELETE /storage/{name}", lambda: self.client.delete(name))
            tally.wrote("deleted", f"deleted, not created again yet: it is MISSING ({_UNTOUCHED})")
        try:
            self._write(
                tally,
                f"POST /storage {_shown(action.params)}",
                lambda: self.client.create(action.params, password=password),
            )
        except PveError as exc:
            if _ALREADY_DEFINED in exc.message:  # another writer created it since our read
                if action.kind == Kind.RECREATE:
                    tally.left = "re-created"
                raise _Taken from None
            if action.kind == Kind.CREATE:
                raise
            raise _Failed(
                f"deleted the old entry, but creating it again failed ({exc}); it is "
                f"MISSING now - the next run creates it ({_UNTOUCHED})"
            ) from None
        tally.created = True
        tally.password_sent = True
        verb = _VERBS[action.kind]
        tally.wrote(verb, f"{verb} disabled, not enabled yet (inert: no node uses it)")
        if action.enable_after:
            self._confirm_nodes_reach(action, spec, password, tally)
            raise _Enable

    def _write(self, tally: _Tally, step: str, call: Callable[[], None]) -> None:
        """Send one write; after it (even a failed one) our digest is stale."""
        self.stale = True
        try:
            call()
        except PveUnavailable as exc:
            tally.steps.append(f"{step} -> no answer")
            raise PveUnavailable(
                f"{exc.message}; the write may or may not have been applied - re-run to see",
                exc.status,
            ) from None
        except PveError as exc:
            tally.steps.append(f"{step} -> {exc}")
            raise
        except KeyboardInterrupt:
            tally.steps.append(f"{step} -> interrupted, no answer")
            tally.in_flight = step
            raise
        tally.writes += 1
        tally.steps.append(step)

    # ---- node checks ------------------------------------------------------------------

    def _applicable_nodes(self, action: Action) -> list[str]:
        if action.nodes:
            return list(action.nodes)
        if self._nodes is None:
            self._nodes = self.client.nodes()
        return self._nodes

    def _confirm_nodes_reach(
        self, action: Action, spec: StorageSpec, password: str | None, tally: _Tally
    ) -> None:
        """Before enabling: every node logs in to the PBS with the declared password and sees
        the datastore (`scan/pbs`), so an enable never starts nodes logging errors."""
        if password is None:  # pragma: no cover - a create always carries the password
            return
        problems: dict[str, str] = {}
        for node in self._applicable_nodes(action):
            try:
                found = self.client.scan_pbs(
                    node, spec.server, spec.username, password, spec.fingerprint, spec.port
                )
            except PveError as exc:
                problems[node] = exc.message
                continue
            if not any(item.get("store") == spec.datastore for item in found):
                problems[node] = (
                    f"datastore '{spec.datastore}' is not listed for {spec.username} "
                    "(missing, or no Datastore.Audit/Backup on it)"
                )
        if problems:
            done = "created disabled and left disabled" if tally.created else "left disabled"
            raise _Failed(
                f"{done}: {_nodes_text(problems)} cannot reach {spec.server}:{spec.port} or log "
                f"in as {spec.username} with the declared password; fix that (the declaration "
                "or the network) and re-run to enable it",
                tuple(sorted(problems)),
            )
        tally.confirmed = True

    def _verify_active(
        self, action: Action, spec: StorageSpec, tally: _Tally, password_sent: bool
    ) -> None:
        """After enabling: every node must report the entry active, else disable it again."""
        inactive: dict[str, str] = {}
        for node in self._applicable_nodes(action):
            try:
                view = self.client.node_storages(node, storage=spec.name)
            except PveError as exc:
                inactive[node] = exc.message
                continue
            entry = next((v for v in view if v.get("storage") == spec.name), None)
            if not active(entry):
                inactive[node] = "not active"
        if not inactive:
            return
        problem = f"enabled, but {_nodes_text(inactive)} cannot reach {spec.server}:{spec.port}"
        if not password_sent and spec.password is None:
            problem += (
                " (if PVE's stored password is wrong: declare `password` for it, and the next "
                "run sends it with the enable)"
            )
        try:
            self._disable_again(spec.name, tally)
        except PveError as exc:
            raise _Failed(
                f"{problem}; disabling it again failed too ({exc}) - it is ENABLED now: "
                "disable it by hand or re-run",
                tuple(sorted(inactive)),
            ) from None
        tally.state = "disabled again"
        raise _Failed(
            f"{problem}; disabled again - fix that and re-run to enable it",
            tuple(sorted(inactive)),
        )

    def _disable_again(self, name: str, tally: _Tally) -> None:
        """Undo an enable, with a fresh digest and the same bounded retry."""
        for attempt in range(self.max_retries + 1):
            live = {str(e.get("storage")): e for e in self.client.storages()}
            digest = str(live[name]["digest"]) if name in live else None

            def disable(digest: str | None = digest) -> None:
                self.client.update(name, {"disable": "1"}, digest=digest)

            try:
                self._write(tally, f"PUT /storage/{name} disable=1", disable)
                return
            except PveDigestConflict:
                if attempt == self.max_retries:
                    raise
                self.sleep(self.backoff * 2**attempt)
                tally.retries += 1


def _shown(params: Mapping[str, str], delete: Sequence[str] = (), password: bool = False) -> str:
    """A write as one readable line: the parameters (never the password, only that it went)."""
    parts = [f"{k}={v}" for k, v in params.items() if k not in ("storage", "type")]
    if delete:
        parts.append(f"delete={','.join(delete)}")
    if password:
        parts.append("password=***")
    return " ".join(parts)


def _nodes_text(problems: Mapping[str, str]) -> str:
    names = sorted(problems)
    what = "node " if len(names) == 1 else "nodes "
    return what + ", ".join(f"{n} ({problems[n]})" for n in names)
