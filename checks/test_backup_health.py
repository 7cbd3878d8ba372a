"""Do backups actually land on each declared storage: a usable datastore with room, fresh and
verified backups of every guest that still exists?"""

from __future__ import annotations

from pbs_compliance import backup_plugin
from pbs_compliance.api import Compliance, StorageSpec, check


@check("datastore")
def test_datastore(pbs_storage: StorageSpec, pbs: Compliance) -> None:
    """The datastore exists on the PBS, no maintenance mode stops backups, and the declared
    namespace exists (PVE never checks it)."""
    backup_plugin.check(pbs, "datastore", pbs_storage)


@check("capacity")
def test_capacity(pbs_storage: StorageSpec, pbs: Compliance) -> None:
    """The datastore has room: at most `max_used_percent` used, and not full within
    `min_days_to_full` days as PBS predicts it."""
    backup_plugin.check(pbs, "capacity", pbs_storage)


@check("backups")
def test_backups(pbs_storage: StorageSpec, pbs: Compliance) -> None:
    """Every guest that still exists and has backups here has a finished one younger than
    `max_age`."""
    backup_plugin.check(pbs, "backups", pbs_storage)


@check("verified")
def test_verified(pbs_storage: StorageSpec, pbs: Compliance) -> None:
    """The newest backup of each guest did not fail verification (with `require_verified`:
    was verified ok within `verify_max_age`)."""
    backup_plugin.check(pbs, "verified", pbs_storage)
