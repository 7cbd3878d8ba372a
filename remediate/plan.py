"""The reconciler's plan: what to write to PVE so the live PBS entries match the declaration.

A pure function over the declaration, PVE's raw `GET /storage` list and the probes' evidence:
essence -> diff -> plan, the same `drift.diff` the checks use, so a storage the checks call
compliant never gets an action and every action shows the drift it fixes. `apply` executes the
same plan; a dry run prints it.

Decisions, each a safety rule (tests in `tests/remediate/test_remediate_plan.py`):
- One action per storage. `enable`/`disable` are used when the `disable` flag is the only
  difference; together with other property changes it travels in one `update` (one write, one
  digest, no window where half the fix is applied).
- A declared fingerprint that the server does not serve refuses the *whole* storage: the
  declaration is out of date, so nothing derived from it is written until `pbs fingerprint
  --update NAME` fixed it. Pushing a changed fingerprint also needs the evidence that the server
  serves it; without a probe result the storage is refused too.
- Create and re-create need passed connectivity checks and the password (an entry without one
  cannot log in, and deleting an entry drops PVE's stored password). Creates are sent with
  `disable=1`; `apply` enables the entry only after every node it applies to reaches the PBS.
- Enabling an existing entry whose probes failed is refused; enabling one without evidence is
  allowed because `apply` confirms every node sees it active, and disables it again otherwise.
- A declared-disabled storage is judged by the same rules: `reach.reach_for` probes its server
  when the checks did not, so a server serving another certificate refuses it too. Created
  disabled, it needs no connectivity (PVE never contacts a disabled entry's PBS).
- Only `type: pbs` entries are ever looked at; undeclared ones get a `note`, or a `delete` with
  `prune_unmanaged`. `enabled: false` disables, never deletes.
- The password never enters a plan: `password_needed` says `apply` must send the declared one.
  It is sent on create/re-create, with the enable of a disabled entry (after every node logged
  in with it: the stored one may be the wrong one a failed create left behind), and with
  `rotate_secrets` to every declared storage that has one (PVE cannot show the stored password,
  so there is no drift to detect: rotation is a request, and a plan made with it is never empty).

Over 400 lines on purpose: every safety rule above is one branch here, and reading them side by
side is how they are reviewed; the action and plan types with their printed and JSON forms take
the first half.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pbs_compliance.config.model import StorageSpec
from pbs_compliance.drift import Drift, PropertyDiff, diff
from pbs_compliance.essence import essence_from_api, essence_of, to_api_params
from pbs_compliance.pvevalues import flag_param, text

__all__ = ["Action", "Kind", "Plan", "PlanOptions", "Reachability", "plan"]


class Kind(StrEnum):
    """What an action does; a `str`, so `action.kind == "create"` reads naturally."""

    CREATE = "create"
    UPDATE = "update"
    ENABLE = "enable"
    DISABLE = "disable"
    RECREATE = "recreate"
    DELETE = "delete"
    REFUSE = "refuse"
    NOTE = "note"


WRITES = frozenset(
    {Kind.CREATE, Kind.UPDATE, Kind.ENABLE, Kind.DISABLE, Kind.RECREATE, Kind.DELETE}
)
_MARKERS = {
    Kind.CREATE: "+",
    Kind.UPDATE: "~",
    Kind.ENABLE: "~",
    Kind.DISABLE: "~",
    Kind.RECREATE: "-/+",
    Kind.DELETE: "-",
    Kind.REFUSE: "!",
    Kind.NOTE: "#",
}
_UNTOUCHED = "backups on the PBS are untouched"


@dataclass(frozen=True)
class PlanOptions:
    """The operator's permissions for riskier changes; everything is off by default."""

    allow_recreate: bool = False
    prune_unmanaged: bool = False
    rotate_secrets: bool = False


@dataclass(frozen=True)
class Reachability:
    """The probes' evidence for one declared storage, as seen from where the tool runs.

    `ok`: DNS, TCP and TLS passed. `served_fingerprint`: the SHA-256 fingerprint of the
    certificate the server actually served (None if no handshake happened).
    """

    ok: bool
    served_fingerprint: str | None
    problem: str = ""


@dataclass(frozen=True)
class Action:
    """One storage's step. `params` are exactly the PVE parameters to send (booleans as 0/1).

    `delete` lists options to remove (`PUT delete=...`); `digest` is the storage.cfg digest of
    the live list the action was planned from (None for creates). `enable_after` marks a create
    sent with `disable=1` that `apply` enables once every node in `nodes` (None: all) reaches the
    PBS. The password itself is never here; `password_needed` tells `apply` to send it.
    """

    storage: str
    kind: Kind
    params: Mapping[str, str] = field(default_factory=dict)
    delete: tuple[str, ...] = ()
    drift: Drift | None = None
    reason: str = ""
    password_needed: bool = False
    digest: str | None = None
    enable_after: bool = False
    nodes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        empty = [key for key, value in self.params.items() if value == ""]
        if empty:  # PVE reads `key=` as undefined: never send it, delete the option instead
            raise ValueError(f"{self.storage}: empty value for {', '.join(empty)}")

    @property
    def writes(self) -> bool:
        return self.kind in WRITES

    @property
    def enables(self) -> bool:
        """The entry ends enabled where it was not: `apply` confirms every node reaches it."""
        return self.enable_after or self.params.get("disable") == "0"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (stable keys; never the password, only whether it is needed)."""
        drift = self.drift
        return {
            "storage": self.storage,
            "kind": str(self.kind),
            "params": dict(self.params),
            "delete": list(self.delete),
            "reason": self.reason,
            "password_needed": self.password_needed,
            "enable_after": self.enable_after,
            "missing": bool(drift and drift.missing),
            "drift": []
            if drift is None
            else [{"property": d.key, "declared": d.declared, "live": d.live} for d in drift.diffs],
        }

    def lines(self) -> list[str]:
        """The readable diff: one line per property, `live -> planned`, then the why."""
        head = f"{_MARKERS[self.kind]} {self.storage}  {self.kind}"
        details = self._details()
        out = [f"{head}  {d}" for d in details] if details else [head]
        if self.reason:
            out.append(f"    {self.reason}")
        return out

    def _details(self) -> list[str]:
        if self.kind == Kind.NOTE:
            diffs = () if self.drift is None else self.drift.diffs
            return [" ".join(f"{d.key}={_show(d.live)}" for d in diffs)] if diffs else []
        if self.kind == Kind.REFUSE and self.drift is not None and self.drift.missing:
            return ["(missing in PVE)"]
        if self.kind in (Kind.CREATE, Kind.RECREATE):
            shown = [f"{k}={v}" for k, v in self.params.items() if k not in ("storage", "type")]
            fixed = [] if self.drift is None else [_change(d) for d in self.drift.diffs if d.fixed]
            return [*fixed, " ".join(shown) + (" password=(set)" if self.password_needed else "")]
        details = [] if self.drift is None else [_change(d) for d in self.drift.diffs]
        if self.password_needed and self.kind != Kind.REFUSE:
            how = "every node logs in with it first" if self.enables else "rotated"
            details.append(f"password: (stored) -> (declared, {how})")
        return details


@dataclass(frozen=True)
class Plan:
    """Every action, sorted by storage name. Compliant storages have none."""

    actions: tuple[Action, ...] = ()

    @property
    def changes(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.writes)

    @property
    def refusals(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.kind == Kind.REFUSE)

    @property
    def notes(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.kind == Kind.NOTE)

    @property
    def is_empty(self) -> bool:
        """Nothing to write and nothing refused; notes about unmanaged entries do not count."""
        return not self.changes and not self.refusals

    def for_storage(self, name: str) -> Action | None:
        for action in self.actions:
            if action.storage == name:
                return action
        return None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: whether it is empty, and every action."""
        return {"empty": self.is_empty, "actions": [a.to_dict() for a in self.actions]}

    def describe(self) -> str:
        counts = {kind: sum(1 for a in self.actions if a.kind == kind) for kind in Kind}
        if self.is_empty:
            header = "plan: no changes, every declared PBS storage matches"
        else:
            header = "plan (live -> declared): " + ", ".join(
                f"{counts[k]} {k}" for k in Kind if k != Kind.NOTE and counts[k]
            )
        lines = [header]
        for action in self.actions:
            lines += action.lines()
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.describe()


def plan(
    desired: Sequence[StorageSpec],
    live: Sequence[Mapping[str, object]],
    options: PlanOptions,
    reachability: Mapping[str, Reachability] | None = None,
) -> Plan:
    """Plan the writes that make `live` (PVE's raw `GET /storage` list) match `desired`."""
    names = [spec.name for spec in desired]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"storage names declared more than once: {', '.join(dupes)}")
    by_name = {str(entry.get("storage", "")): entry for entry in live}
    reach = reachability or {}
    actions: list[Action] = []
    for spec in desired:
        action = _plan_declared(spec, by_name.get(spec.name), options, reach.get(spec.name))
        if action is not None:
            actions.append(action)
    declared = set(names)
    for name, entry in by_name.items():
        if entry.get("type") == "pbs" and name not in declared:
            actions.append(_plan_unmanaged(name, entry, options))
    return Plan(tuple(sorted(actions, key=lambda a: a.storage)))


def _plan_declared(
    spec: StorageSpec,
    entry: Mapping[str, object] | None,
    options: PlanOptions,
    reach: Reachability | None,
) -> Action | None:
    if entry is not None and entry.get("type") != "pbs":
        return _refuse(
            spec,
            diff(essence_of(spec), None),
            f"a '{entry.get('type')}' storage is named '{spec.name}'; this tool never touches "
            "non-PBS storages: rename the declaration or the other storage",
        )
    declared = essence_of(spec)
    drift = diff(declared, None if entry is None else essence_from_api(entry))
    digest = None if entry is None else text(entry.get("digest"))

    served = reach.served_fingerprint if reach is not None else None
    if served is not None and served.upper() != declared.fingerprint:
        return _refuse(
            spec,
            drift,
            f"{spec.server} serves a certificate with fingerprint {served.upper()}, not the "
            f"declared one; nothing is written from an out-of-date declaration. If the new "
            f"certificate is expected: `pbs fingerprint --update {spec.name}`",
            digest,
        )
    if drift.missing:
        return _plan_create(spec, drift, reach, Kind.CREATE)
    if drift.needs_recreate:
        return _plan_recreate(spec, drift, options, reach, digest)
    return _plan_update(spec, drift, options, reach, digest)


def _plan_create(
    spec: StorageSpec,
    drift: Drift,
    reach: Reachability | None,
    kind: Kind,
    digest: str | None = None,
) -> Action:
    verb = "create" if kind == Kind.CREATE else "re-create"
    # A declared-disabled entry is created disabled and stays inert: PVE never contacts its PBS,
    # and its probes were skipped, so there is no evidence to wait for.
    if spec.enabled and reach is None:
        return _refuse(
            spec,
            drift,
            f"no connectivity evidence for {spec.server}: run the probes (DNS, TCP, TLS) first; "
            f"an entry is only {verb}d after they passed",
            digest,
        )
    if spec.enabled and reach is not None and not reach.ok:
        return _refuse(
            spec,
            drift,
            f"the connectivity checks of {spec.server}:{spec.port} failed "
            f"({reach.problem or 'no detail'}); not {verb}d until they pass",
            digest,
        )
    if spec.password is None:
        return _refuse(
            spec,
            drift,
            f"cannot {verb} without the password: PVE could never log in to the PBS; declare "
            "`password: ${ENV_VAR}` or `password_file`",
            digest,
        )
    params = to_api_params(spec)
    params["disable"] = "1"  # enabled by apply once every node reaches the PBS
    how = (
        "created disabled, enabled once every node it applies to reaches the PBS"
        if spec.enabled
        else "created disabled, as declared"
    )
    if not spec.enabled and reach is not None and reach.served_fingerprint is None:
        how += f"; its fingerprint is unconfirmed ({reach.problem or 'no TLS handshake'})"
    reason = how
    if kind == Kind.RECREATE:
        reason = f"deletes the PVE entry and creates it again ({how}) - {_UNTOUCHED}"
    return Action(
        storage=spec.name,
        kind=kind,
        params=params,
        drift=drift,
        reason=reason,
        password_needed=True,
        digest=digest,
        enable_after=spec.enabled,
        nodes=spec.nodes,
    )


def _plan_recreate(
    spec: StorageSpec,
    drift: Drift,
    options: PlanOptions,
    reach: Reachability | None,
    digest: str | None,
) -> Action:
    fixed = ", ".join(d.key for d in drift.diffs if d.fixed)
    if not options.allow_recreate:
        return _refuse(
            spec,
            drift,
            f"PVE cannot change {fixed} in place; allow re-creation (`--allow-recreate`) to "
            f"delete and re-create the PVE entry - {_UNTOUCHED}",
            digest,
        )
    if spec.password is None:
        return _refuse(
            spec,
            drift,
            f"re-creating (for {fixed}) deletes PVE's stored password and none is declared; "
            "declare `password: ${ENV_VAR}` or `password_file` first",
            digest,
        )
    return _plan_create(spec, drift, reach, Kind.RECREATE, digest)


def _plan_update(
    spec: StorageSpec,
    drift: Drift,
    options: PlanOptions,
    reach: Reachability | None,
    digest: str | None,
) -> Action | None:
    keys = {d.key for d in drift.diffs}
    if "fingerprint" in keys and (reach is None or reach.served_fingerprint is None):
        seen = "no probe ran" if reach is None else (reach.problem or "no TLS handshake")
        return _refuse(
            spec,
            drift,
            f"changing the fingerprint needs proof that {spec.server} serves the declared "
            f"certificate ({seen}); nothing written",
            digest,
        )
    enabling = "disable" in keys and spec.enabled
    if enabling and reach is not None and not reach.ok:
        return _refuse(
            spec,
            drift,
            f"not enabled: the connectivity checks of {spec.server}:{spec.port} failed "
            f"({reach.problem or 'no detail'}); every node would log errors",
            digest,
        )
    wanted = to_api_params(spec)
    params: dict[str, str] = {}
    delete: list[str] = []
    for key in (d.key for d in drift.diffs):
        if key == "disable":
            params[key] = flag_param(not spec.enabled)
        elif key in wanted:
            params[key] = wanted[key]
        else:
            delete.append(key)  # declared unset (or PVE's default): remove, never send ""
    rotate = options.rotate_secrets and spec.password is not None
    if not params and not delete and not rotate:
        return None
    kind = Kind.UPDATE
    if keys == {"disable"} and not rotate:
        kind = Kind.ENABLE if spec.enabled else Kind.DISABLE
    return Action(
        storage=spec.name,
        kind=kind,
        params=params,
        delete=tuple(delete),
        drift=drift,
        # Enabling sends the declared password too: a disabled entry's stored one may be the
        # wrong one an earlier create left behind, and nothing else would ever replace it.
        password_needed=rotate or (enabling and spec.password is not None),
        digest=digest,
        nodes=spec.nodes,
    )


def _plan_unmanaged(name: str, entry: Mapping[str, object], options: PlanOptions) -> Action:
    drift = Drift(
        name,
        missing=False,
        diffs=tuple(
            PropertyDiff(key, None, text(entry.get(key))) for key in ("server", "datastore")
        ),
    )
    if options.prune_unmanaged:
        return Action(
            storage=name,
            kind=Kind.DELETE,
            drift=drift,
            reason=f"not declared; deletes the PVE entry only - {_UNTOUCHED}",
        )
    return Action(
        storage=name,
        kind=Kind.NOTE,
        drift=drift,
        reason="not declared; left alone (`--prune-unmanaged` would delete the PVE entry)",
    )


def _refuse(spec: StorageSpec, drift: Drift, why: str, digest: str | None = None) -> Action:
    return Action(storage=spec.name, kind=Kind.REFUSE, drift=drift, reason=why, digest=digest)


def _change(d: PropertyDiff) -> str:
    """`key: live -> declared`: a plan shows what changes into what."""
    return f"{d.key}: {_show(d.live)} -> {_show(d.declared)}"


def _show(value: str | None) -> str:
    return "(unset)" if value is None else value
