"""Drift: what differs between the declared and the live essence of one storage, per property.

A pure function over two essences; the checks turn the result into a failure message and the
reconciler into API parameters, so both always agree on what "drift" means.
"""

from __future__ import annotations

from dataclasses import dataclass

from pbs_compliance.essence import FIXED, MANAGED, Essence


@dataclass(frozen=True)
class PropertyDiff:
    """One property whose live value (PVE's spelling) is not the declared one."""

    key: str
    declared: str | None
    live: str | None

    @property
    def fixed(self) -> bool:
        """PVE cannot change this in place: only delete + re-create fixes it."""
        return self.key in FIXED

    def __str__(self) -> str:
        return f"{self.key}: {_show(self.declared)} -> {_show(self.live)}"


@dataclass(frozen=True)
class Drift:
    """The verdict for one declared storage."""

    name: str
    missing: bool
    diffs: tuple[PropertyDiff, ...] = ()

    @property
    def compliant(self) -> bool:
        return not self.missing and not self.diffs

    @property
    def needs_recreate(self) -> bool:
        return any(d.fixed for d in self.diffs)

    def describe(self) -> str:
        """The failure message: one line per property, then how it can be fixed."""
        if self.missing:
            return (
                f"storage '{self.name}' is declared but does not exist in PVE\n"
                "fix: `pytest checks/ --remediate` or `pbs apply` creates it"
            )
        if not self.diffs:
            return f"storage '{self.name}' matches its declaration"
        lines = [f"storage '{self.name}' drifted (declared -> live):"]
        lines += [f"  {diff}" for diff in self.diffs]
        if self.needs_recreate:
            fixed = ", ".join(d.key for d in self.diffs if d.fixed)
            lines.append(
                f"needs re-creation: PVE cannot change {fixed} in place "
                "(`--remediate --allow-recreate` deletes and re-creates the entry; backups on the "
                "PBS are untouched)"
            )
        else:
            lines.append("can be fixed in place: `pytest checks/ --remediate` or `pbs apply`")
        return "\n".join(lines)


def diff(declared: Essence, live: Essence | None) -> Drift:
    """Compare one storage; `live` is None when PVE has no entry of that name."""
    if live is None:
        return Drift(declared.name, missing=True)
    diffs = tuple(
        PropertyDiff(key, declared.value(key), live.value(key))
        for key in MANAGED
        if live.value(key) != declared.value(key)
    )
    return Drift(declared.name, missing=False, diffs=diffs)


def _show(value: str | None) -> str:
    return "(unset)" if value is None else value
