"""The reconciler: plan (pure) the writes that make PVE's PBS entries match the declaration,
then apply them through the PVE API, one storage at a time, safely."""

from __future__ import annotations

from remediate.apply import Interrupted, Results, Status, StorageResult, apply
from remediate.plan import Action, Kind, Plan, PlanOptions, Reachability, plan

__all__ = [
    "Action",
    "Interrupted",
    "Kind",
    "Plan",
    "PlanOptions",
    "Reachability",
    "Results",
    "Status",
    "StorageResult",
    "apply",
    "plan",
]
