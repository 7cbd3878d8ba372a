"""PVE authentication and privilege checks as the emulator applies them.

Tickets and CSRF tokens are HMAC-signed here instead of RSA-signed, but look and behave like
PVE's: `PVE:<userid>:<HEXTIME>::<signature>`, valid for two hours, renewable by posting the
ticket as the password; CSRF tokens are `<HEXTIME>:<signature>` bound to the user. API tokens
come as `Authorization: PVEAPIToken=USER@REALM!NAME=SECRET` and need no CSRF token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pbs_compliance.lab.pve_errors import PveError

__all__ = [
    "ALL_STORAGE_PRIVILEGES",
    "Authenticator",
    "Principal",
    "require_any",
]

TICKET_LIFETIME = 7200
ROOT_USER = "root@pam"
ALL_STORAGE_PRIVILEGES = frozenset(
    {"Datastore.Allocate", "Datastore.AllocateSpace", "Datastore.AllocateTemplate",
     "Datastore.Audit"}
)  # fmt: skip
_TOKEN_ID_RE = re.compile(r"^([^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+)!([A-Za-z][A-Za-z0-9.\-_]+)$")


@dataclass(frozen=True)
class Principal:
    """A user or an API token: `privileges` hold everywhere (on `/`, propagated), `acl` adds
    privileges on single paths and below them (`(("/vms/100", {"VM.Audit"}),)`)."""

    userid: str
    secret: str = field(repr=False)
    privileges: frozenset[str] = frozenset()
    acl: tuple[tuple[str, frozenset[str]], ...] = ()

    @property
    def is_token(self) -> bool:
        return "!" in self.userid

    @property
    def is_root(self) -> bool:
        """Only the user root@pam skips permission checks; its tokens do not."""
        return self.userid == ROOT_USER

    def has(self, privilege: str, path: str | None = None) -> bool:
        if self.is_root or privilege in self.privileges:
            return True
        if path is None:
            return False
        return any(
            privilege in privs and (path == where or path.startswith(where.rstrip("/") + "/"))
            for where, privs in self.acl
        )


def require_any(principal: Principal, path: str, privileges: Sequence[str]) -> None:
    """`RPCEnvironment::check_any`; PVE's 403 text names the path and the wanted privileges."""
    if any(principal.has(p, path) for p in privileges):
        return
    raise PveError(403, f"Permission check failed ({path}, {'|'.join(privileges)})")


class Authenticator:
    """Issues and verifies tickets, CSRF tokens and API tokens for a fixed set of principals."""

    def __init__(self, principals: Sequence[Principal]) -> None:
        self._principals = {p.userid: p for p in principals}
        self._key = secrets.token_bytes(32)

    def principal(self, userid: str) -> Principal | None:
        return self._principals.get(userid)

    # ---- tickets ------------------------------------------------------------------------

    def _sign(self, text: str) -> str:
        mac = hmac.new(self._key, text.encode(), hashlib.sha256).digest()
        # URL-safe alphabet: the ticket travels in a cookie and must survive it unquoted.
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def issue_ticket(self, userid: str, now: float | None = None) -> str:
        plain = f"PVE:{userid}:{int(now if now is not None else time.time()):08X}"
        return f"{plain}::{self._sign(plain)}"

    def ticket_user(self, ticket: str, now: float | None = None) -> str | None:
        """The user a valid, unexpired ticket belongs to."""
        plain, sep, signature = ticket.partition("::")
        parts = plain.split(":")
        if not sep or len(parts) != 3 or parts[0] != "PVE":
            return None
        if not hmac.compare_digest(signature, self._sign(plain)):
            return None
        try:
            issued = int(parts[2], 16)
        except ValueError:
            return None
        age = (now if now is not None else time.time()) - issued
        if age < -300 or age > TICKET_LIFETIME:
            return None
        return parts[1]

    def issue_csrf(self, userid: str, now: float | None = None) -> str:
        stamp = f"{int(now if now is not None else time.time()):08X}"
        return f"{stamp}:{self._sign(f'{stamp}:{userid}')}"

    def csrf_valid(self, userid: str, token: str | None) -> bool:
        if not token:
            return False
        stamp, _, signature = token.partition(":")
        return hmac.compare_digest(signature, self._sign(f"{stamp}:{userid}"))

    # ---- login and request authentication ----------------------------------------------

    def login(self, params: Mapping[str, object]) -> dict[str, object]:
        """POST /access/ticket: a password or a still-valid ticket buys a fresh ticket."""
        username = params.get("username")
        password = params.get("password")
        realm = params.get("realm")
        failure = PveError(401, "authentication failure")
        if not isinstance(username, str) or not isinstance(password, str):
            raise failure
        if "@" not in username and isinstance(realm, str) and realm:
            username = f"{username}@{realm}"
        principal = self._principals.get(username)
        if principal is None or principal.is_token:
            raise failure
        renewed = password.startswith("PVE:") and self.ticket_user(password) == username
        if not renewed and not hmac.compare_digest(password, principal.secret):
            raise failure
        data: dict[str, object] = {
            "username": username,
            "ticket": self.issue_ticket(username),
            "CSRFPreventionToken": self.issue_csrf(username),
            "cap": _capabilities(principal),
        }
        return data

    def authenticate(
        self, method: str, headers: Mapping[str, str], cookie_header: str | None
    ) -> Principal:
        """The principal behind a request, or PVE's 401 (`No ticket`, `Authentication failed!`,
        `Permission denied - invalid csrf token`)."""
        authorization = headers.get("authorization", "")
        if authorization.startswith(("PVEAPIToken=", "PVEAPIToken ")):
            return self._token_principal(authorization[len("PVEAPIToken=") :])
        ticket = _cookie(cookie_header, "PVEAuthCookie")
        if ticket is None and authorization.startswith("PVEAuthCookie="):
            ticket = authorization[len("PVEAuthCookie=") :]
        if not ticket:
            raise PveError(401, "No ticket")
        userid = self.ticket_user(ticket)
        principal = self._principals.get(userid) if userid else None
        if principal is None:
            raise PveError(401, "Authentication failed!")
        if method != "GET" and not self.csrf_valid(
            userid or "", headers.get("csrfpreventiontoken")
        ):
            raise PveError(401, "Permission denied - invalid csrf token")
        return principal

    def _token_principal(self, value: str) -> Principal:
        value = urllib.parse.unquote(value)
        token_id, sep, secret = value.rpartition("=")
        failed = PveError(401, "Authentication failed!")
        if not sep or not _TOKEN_ID_RE.match(token_id):
            raise failed
        principal = self._principals.get(token_id)
        if principal is None or not hmac.compare_digest(secret, principal.secret):
            raise failed
        return principal


def _cookie(header: str | None, name: str) -> str | None:
    """One cookie's value; split by hand because tickets hold characters `SimpleCookie`
    is picky about, and other cookies in the header must not spoil ours."""
    for part in (header or "").split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return urllib.parse.unquote(value.strip().strip('"'))
    return None


def _capabilities(principal: Principal) -> dict[str, dict[str, int]]:
    """The `cap` object of a login: the privileges the GUI may offer, by area."""
    privileges = ALL_STORAGE_PRIVILEGES if principal.is_root else principal.privileges
    storage = {p: 1 for p in sorted(privileges) if p.startswith("Datastore.")}
    return {"vms": {}, "storage": storage, "access": {}, "nodes": {}, "dc": {}, "sdn": {}}
