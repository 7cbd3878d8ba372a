"""The reconciler: plan (pure) the writes that make PVE's PBS entries match the declaration,
apply them through the PVE API one storage at a time, safely, and confirm them; `reconcile` is
the one path `pbs apply` and `pytest checks/ --remediate` both take."""

from __future__ import annotations

from remediate.apply import Interrupted, Results, Status, StorageResult, apply
from remediate.plan import Action, Kind, Plan, PlanOptions, Reachability, plan
from remediate.reconcile import EVERYTHING, Outcome, Reconciler, Scope, cluster_lock

__all__ = [
    "EVERYTHING",
    "Action",
    "Interrupted",
    "Kind",
    "Outcome",
    "Plan",
    "PlanOptions",
    "Reachability",
    "Reconciler",
    "Results",
    "Scope",
    "Status",
    "StorageResult",
    "apply",
    "cluster_lock",
    "plan",
]
