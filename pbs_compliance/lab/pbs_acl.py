"""PBS privileges: who may see which datastore and namespace, as proxmox-backup decides it.

An ACL entry in a lab spec is ``"<store>[/<ns>][:<Role>]"`` (a path under ``/datastore``) or an
absolute ACL path ``"/datastore/<store>/<ns>:<Role>"`` / ``"/:<Role>"``; the role defaults to
``DatastoreAdmin``. The rules follow PBS (`pbs-config` `CachedUserInfo::lookup_privs`,
proxmox-access-control `AclTree::roles`):

- entries propagate down the tree, and the deepest path that has entries for an auth ID
  replaces what it inherited from above;
- an API token's privileges are its own entries intersected with its user's: a token inherits
  nothing from its user.

A lab convenience (not PBS): an auth ID with no `acl` entry at all has every privilege, so a
spec without `acl` gets a server where every user and token sees everything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["AUDIT", "BACKUP", "MODIFY", "NS_PRIVS_OK", "READ", "ROLES", "PbsAcl"]

AUDIT = "Datastore.Audit"
MODIFY = "Datastore.Modify"
READ = "Datastore.Read"
VERIFY = "Datastore.Verify"
BACKUP = "Datastore.Backup"
PRUNE = "Datastore.Prune"
_ALL = frozenset({AUDIT, MODIFY, READ, VERIFY, BACKUP, PRUNE, "Sys.Audit", "Sys.Modify"})
# Privileges that let an auth ID see a namespace (PBS `NS_PRIVS_OK`).
NS_PRIVS_OK = frozenset({AUDIT, MODIFY, READ, BACKUP})

# pbs-api-types `Role`: the built-in roles and their privileges (datastore part).
ROLES: Mapping[str, frozenset[str]] = {
    "Admin": _ALL,
    "Audit": frozenset({AUDIT, "Sys.Audit"}),
    "NoAccess": frozenset(),
    "DatastoreAdmin": frozenset({AUDIT, MODIFY, READ, VERIFY, BACKUP, PRUNE}),
    "DatastoreReader": frozenset({AUDIT, READ}),
    "DatastoreBackup": frozenset({BACKUP}),
    "DatastorePowerUser": frozenset({PRUNE, BACKUP}),
    "DatastoreAudit": frozenset({AUDIT}),
}
DEFAULT_ROLE = "DatastoreAdmin"


@dataclass(frozen=True)
class _Entry:
    path: tuple[str, ...]  # ("datastore", store, ns parts...) or () for "/"
    role: str


def parse_entry(text: str) -> _Entry:
    """One spec entry; raises ValueError naming the valid roles for a wrong one."""
    path_text, sep, role = text.rpartition(":")
    if not sep:
        path_text, role = text, DEFAULT_ROLE
    if role not in ROLES:
        raise ValueError(
            f"ACL entry '{text}': unknown role '{role}' (the roles: {', '.join(ROLES)})"
        )
    if path_text.startswith("/"):
        parts = tuple(p for p in path_text.split("/") if p)
        if parts and parts[0] != "datastore":
            raise ValueError(f"ACL entry '{text}': only '/' and paths below /datastore are known")
    else:
        parts = ("datastore", *(p for p in path_text.split("/") if p))
    return _Entry(parts, role)


class PbsAcl:
    """The ACL of one server: `{auth_id: [entries]}` as in the lab spec."""

    def __init__(self, acl: Mapping[str, Sequence[str]]) -> None:
        self._entries = {auth: [parse_entry(e) for e in entries] for auth, entries in acl.items()}

    def _own(self, auth_id: str, path: tuple[str, ...]) -> frozenset[str]:
        entries = self._entries.get(auth_id)
        if entries is None:
            return _ALL
        privileges: frozenset[str] = frozenset()
        for depth in range(len(path) + 1):
            here = [e for e in entries if e.path == path[:depth]]
            if here:  # deeper entries replace inherited ones
                privileges = frozenset().union(*(ROLES[e.role] for e in here))
        return privileges

    def privileges(self, auth_id: str, store: str, ns: str = "") -> frozenset[str]:
        """What `auth_id` may do on `/datastore/<store>[/<ns>]`."""
        path = ("datastore", store, *(p for p in ns.split("/") if p))
        own = self._own(auth_id, path)
        if "!" in auth_id:
            own &= self._own(auth_id.split("!", 1)[0], path)
        return own

    def any_below(self, auth_id: str, store: str) -> bool:
        """Some privilege that shows a namespace at or below `/datastore/<store>`
        (PBS `any_privs_below` with `NS_PRIVS_OK`)."""
        if self.privileges(auth_id, store) & NS_PRIVS_OK:
            return True
        user = auth_id.split("!", 1)[0]
        for entry in self._entries.get(auth_id, []):
            if entry.path[:2] == ("datastore", store) and len(entry.path) > 2:
                ns = "/".join(entry.path[2:])
                if self.privileges(auth_id, store, ns) & NS_PRIVS_OK:
                    return True
        if user != auth_id and auth_id not in self._entries:
            return any(
                self.privileges(auth_id, store, "/".join(e.path[2:])) & NS_PRIVS_OK
                for e in self._entries.get(user, [])
                if e.path[:2] == ("datastore", store)
            )
        return False
