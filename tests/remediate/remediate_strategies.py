"""Shared test data for the reconciler: declarations, raw storage.cfg sections as PVE or a
human may have left them, probe evidence and options, as Hypothesis strategies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hypothesis import strategies as st
from pydantic import SecretStr
from remediate_lab import PBS_PASSWORD
from spec_builders import FP as AB_FP
from spec_builders import SEED_FP, storage_builder

from pbs_compliance.config.model import PruneBackups, StorageSpec
from pbs_compliance.drift import diff
from pbs_compliance.essence import essence_from_api, essence_of, to_api_params
from remediate import Plan, PlanOptions, Reachability, plan

FP = SEED_FP
OTHER_FP = AB_FP
SECRET = PBS_PASSWORD
_declared = storage_builder(
    strict=False, server="pbs1.lab", fingerprint=FP, password=SecretStr(SECRET)
)


def spec(name: str = "homelab-backup", **fields: Any) -> StorageSpec:
    return _declared(name=name, **fields)


def ok(fingerprint: str = FP) -> Reachability:
    return Reachability(ok=True, served_fingerprint=fingerprint)


NAMES = ("pbs-a", "pbs-b", "pbs-c", "pbs-d")
PASSWORDS = st.sampled_from([None, SecretStr(SECRET), SecretStr(SECRET)])
# Mostly agreeing values, so that updates, enables and re-creates are common, not refusals.
MOSTLY_PBS1 = st.sampled_from(["pbs1.lab"] * 4 + ["pbs2.lab"])
MOSTLY_STORE1 = st.sampled_from(["store1"] * 4 + ["store2"])
MOSTLY_FP = st.sampled_from([FP] * 3 + [FP.lower(), OTHER_FP])
prune_specs = st.none() | st.builds(
    PruneBackups,
    keep_last=st.none() | st.integers(0, 3),
    keep_daily=st.none() | st.integers(0, 9),
    keep_weekly=st.none() | st.integers(0, 4),
)


@st.composite
def specs(draw: st.DrawFn, name: str) -> StorageSpec:
    return spec(
        name,
        server=draw(MOSTLY_PBS1),
        datastore=draw(MOSTLY_STORE1),
        fingerprint=draw(MOSTLY_FP),
        enabled=draw(st.booleans()),
        content=draw(st.sampled_from([["backup"], ["none"]])),
        username=draw(st.sampled_from(["root@pam", "backup@pbs!pve"])),
        port=draw(st.sampled_from([8007, 8010])),
        namespace=draw(st.none() | st.sampled_from(["prod", "prod/vms"])),
        nodes=draw(st.none() | st.lists(st.sampled_from(["pve1", "pve2", "pve3"]), min_size=1)),
        max_protected_backups=draw(st.none() | st.integers(-1, 5)),
        prune_backups=draw(prune_specs),
        password=draw(PASSWORDS),
    )


LIVE_VALUES = {
    "content": st.sampled_from(["backup", "none", "backup,iso", "iso"]),
    "username": st.sampled_from(["root@pam", "backup@pbs!pve"]),
    "fingerprint": MOSTLY_FP,
    "port": st.sampled_from(["8007", "8010"]),
    "namespace": st.sampled_from(["prod", "prod/vms", "old"]),
    "nodes": st.sampled_from(["pve1", "pve2,pve1", "pve3"]),
    "max-protected-backups": st.sampled_from(["-1", "0", "5"]),
    "prune-backups": st.sampled_from(
        ["keep-all=1", "keep-daily=7", "keep-weekly=4,keep-daily=7", "keep-last=0"]
    ),
}


@st.composite
def pbs_sections(draw: st.DrawFn, name: str, declared: StorageSpec | None) -> str:
    """A `pbs:` section of storage.cfg as PVE or a human may have left it: random, or (half
    the time, when declared) the declaration with up to two options changed or removed."""
    options: dict[str, str] = {
        "server": draw(MOSTLY_PBS1),
        "datastore": draw(MOSTLY_STORE1),
    }
    if declared is not None and draw(st.booleans()):
        options = to_api_params(declared)
        del options["storage"], options["type"]
        options.pop("disable", None)
        for key in draw(st.lists(st.sampled_from(sorted(LIVE_VALUES)), max_size=2, unique=True)):
            if draw(st.booleans()):
                options[key] = draw(LIVE_VALUES[key])
            else:
                options.pop(key, None)
    else:
        for key, values in LIVE_VALUES.items():
            if draw(st.booleans()):
                options[key] = draw(values)
    lines = [f"pbs: {name}", *(f"\t{key} {value}" for key, value in options.items())]
    if draw(st.booleans()):
        lines.append("\tdisable")
    return "\n".join(lines) + "\n"


@st.composite
def scenarios(
    draw: st.DrawFn,
) -> tuple[list[StorageSpec], str, dict[str, Reachability], PlanOptions]:
    declared_names = draw(st.lists(st.sampled_from(NAMES), unique=True))
    desired = [draw(specs(name)) for name in declared_names]
    live_names = draw(st.lists(st.sampled_from(NAMES), unique=True))
    foreign = draw(st.none() | st.sampled_from(NAMES))
    by_name = {s.name: s for s in desired}
    sections = [
        draw(pbs_sections(name, by_name.get(name))) for name in live_names if name != foreign
    ]
    if foreign is not None:
        sections.append(f"nfs: {foreign}\n\tserver nas\n\texport /x\n\tpath /mnt/x\n")
    sections.append("dir: local\n\tpath /var/lib/vz\n\tcontent iso,backup\n")
    reach: dict[str, Reachability] = {}
    for s in desired:
        evidence = draw(st.sampled_from(["ok"] * 6 + ["none", "wrong-fp", "down"]))
        if evidence == "ok":
            reach[s.name] = ok(s.fingerprint)
        elif evidence == "wrong-fp":
            reach[s.name] = ok(OTHER_FP if s.fingerprint != OTHER_FP else FP)
        elif evidence == "down":
            reach[s.name] = Reachability(False, None, "TCP: connection refused")
    options = draw(st.builds(PlanOptions, st.booleans(), st.booleans(), st.booleans()))
    return desired, "\n".join(sections), reach, options


def check_converged(
    desired: Sequence[StorageSpec],
    before: Plan,
    after_live: Sequence[Mapping[str, object]],
    options: PlanOptions,
    reach: Mapping[str, Reachability],
) -> None:
    refused = {a.storage for a in before.refusals}
    pbs = {str(e["storage"]): e for e in after_live if e.get("type") == "pbs"}
    for s in desired:
        if s.name not in refused:
            assert diff(essence_of(s), essence_from_api(pbs[s.name])).compliant
    declared = {s.name for s in desired}
    if options.prune_unmanaged:
        assert set(pbs) <= declared
    again = plan(desired, after_live, options, reach)
    rotations = [a for a in again.changes if a.password_needed and not a.params and not a.delete]
    assert list(again.changes) == rotations
    assert {a.storage for a in again.refusals} == refused
